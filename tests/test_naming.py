"""One naming scheme: option names agree across commands (earlier spellings still work, unlisted), every metric
has one name and a glossary entry, `evaluate` prints a short table, and help texts say what the code does."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import ROOT, write_tiny
from stochlift.apps.glossary import GLOSSARY, glossary_markdown, metric_for, metrics_table
from stochlift.data.trajectories import TrajectoryFile, write_trajectories

RENAMED = [  # (command, new name, old name)
    (("bench",), "--batch-size", "--batch"),
    (("bench",), "--train-batch-size", "--train-batch"),
    (("video-eval",), "--test-split", "--split"),
    (("data", "import"), "--split-fractions", "--split"),
    (("data", "import-video"), "--split-fractions", "--split"),
    (("data", "export-well"), "--split-map", "--split"),
]


@pytest.mark.parametrize("command, new, old", RENAMED)
def test_help_shows_the_new_name_only(run_cli_inprocess, command, new, old) -> None:
    shown = run_cli_inprocess(*command, "--help").stdout
    assert re.search(rf"{re.escape(new)}\b", shown)
    assert not re.search(rf"{re.escape(old)}(?![-\w])", shown), f"{old} still listed in {' '.join(command)} --help"


def test_old_spellings_still_work_and_errors_name_the_new_one(run_cli_inprocess, tmp_path: Path) -> None:
    source = tmp_path / "paths.npy"
    import numpy as np

    np.save(source, np.random.default_rng(0).normal(size=(10, 5, 2)).astype(np.float32))
    for name in ("--split", "--split-fractions"):
        out = tmp_path / f"{name.strip('-')}.h5"
        result = run_cli_inprocess("data", "import", source, "--layout", "N,T,D", name, "0.6,0.2,0.2", "--out", out,
                                   "--quiet")
        assert result.returncode == 0, result.stderr
        assert TrajectoryFile(out).splits == {"train": 6, "valid": 2, "test": 2}
    bad = run_cli_inprocess("data", "import", source, "--layout", "N,T,D", "--split", "1,2", "--out", tmp_path / "x.h5")
    assert bad.returncode == 2 and "'--split-fractions'" in bad.stderr and "'--split'" not in bad.stderr


def test_digits_is_the_data_commands_name_too(run_cli_inprocess) -> None:
    listing = run_cli_inprocess("data", "--help").stdout
    assert re.search(r"^\s+digits\s", listing, re.M) and "moving-digits" not in listing
    assert run_cli_inprocess("data", "moving-digits", "--help").returncode == 0  # the old name still works
    assert "digits" in run_cli_inprocess("demo", "--help").stdout


def test_initial_frames_help_says_how_the_history_is_padded(run_cli_inprocess) -> None:
    shown = " ".join(run_cli_inprocess("sample", "--help").stdout.split())
    assert "history_padding" in shown and "zeros" in shown and "repeat" in shown


def test_demo_times_agree_between_help_and_readme(run_cli_inprocess) -> None:
    shown = " ".join(run_cli_inprocess("demo", "--help").stdout.split())
    times = re.search(r"About (\d+) minutes \(wave\), (\d+) \(flow[^)]*\) or (\d+) \(digits\)", shown)
    wave, flow, digits = times.groups()
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"Wave demo took about {wave} minutes" in readme
    assert f"`--problem flow` (about {flow} minutes" in readme
    assert f"Digits video, about {digits} minutes" in readme


def test_docs_glossary_is_generated_from_the_glossary() -> None:
    assert (ROOT / "docs" / "glossary.md").read_text() == glossary_markdown(), (
        "regenerate: python -m stochlift.apps.glossary > docs/glossary.md")
    assert "docs/glossary.md" in (ROOT / "README.md").read_text()


def test_every_metric_evaluate_reports_has_a_glossary_entry(tmp_path: Path, run_cli_inprocess) -> None:
    reference = write_tiny(tmp_path / "ref.h5")
    file = TrajectoryFile(reference)
    write_trajectories(tmp_path / "gen.h5", file.meta, {"generated": file.read("train")})
    out = tmp_path / "metrics.json"
    result = run_cli_inprocess("evaluate", "--reference", reference, "--generated", tmp_path / "gen.h5", "--out", out)
    assert result.returncode == 0, result.stderr
    saved = json.loads(out.read_text())
    settings = {"n_reference", "n_generated", "threshold", "ring_width"}
    scalars = [k for k, v in saved.items() if isinstance(v, (int, float)) and k not in settings]
    assert {"wct", "mass_w2", "mass_w2_relative", "final_std_ratio"} <= set(scalars)
    assert all(metric_for(k) is not None for k in [*scalars, "mass_w2_per_time"]), scalars
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for key in scalars:  # shown rounded (4 significant digits), the file keeps full precision
        shown = lines[key].split()[1]
        if shown != "n/a":
            assert len(shown.replace("-", "").replace(".", "").lstrip("0")) <= 4, lines[key]
            assert float(shown) == pytest.approx(saved[key], rel=1e-3, abs=1e-12)
    assert "{" not in result.stdout  # no JSON on the screen


def test_metrics_table_rounds_and_explains() -> None:
    table = metrics_table({"wct": 0.012345678901234, "wct_relative": None, "n_generated": 12, "problem": "wave",
                           "energy_score_ratio": 1.23456})
    rows = [line.split(None, 2) for line in table.splitlines()]
    assert [r[0] for r in rows] == ["wct", "wct_relative", "n_generated", "energy_score_ratio"]
    assert rows[0][1] == "0.01235" and rows[1][1] == "n/a" and rows[2][1] == "12"
    assert rows[0][2] == GLOSSARY["wct"].good and "truth" in rows[3][2]


def test_experiments_use_the_evaluate_names() -> None:
    """The paper's WCT and WIM appear only as the paper's names, beside ours."""
    for module in ("table1.py", "label_dim.py"):
        text = (ROOT / "src" / "stochlift" / "apps" / "experiments" / module).read_text()
        assert '"wim"' not in text and "['wim']" not in text
    assert GLOSSARY["wct"].paper == "WCT" and GLOSSARY["mass_w2"].paper == "WIM"
