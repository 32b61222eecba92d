"""`stochlift config list / show`: every preset and experiment named, a resolved config that reads back, the
values training takes from the data marked (or filled by a dry run exactly as training fills them), and
backbone options checked against the backbone's signature."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import TINY_OVERRIDES, tiny_config
from stochlift.config import CONFIG_DIR, EXPERIMENT_DIR, apply_overrides, load_config, summary_line
from stochlift.errors import StochliftError
from stochlift.lifting.preview import filled_from_data, resolve_from_data, show_config
from stochlift.lifting.train import train
from stochlift.models import BACKBONES


def test_config_list_names_every_preset_and_experiment(run_cli_inprocess) -> None:
    result = run_cli_inprocess("config", "list")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ") and line[2] != " "}
    presets = {p.stem for p in CONFIG_DIR.glob("*.yaml")}
    experiments = {p.stem for p in EXPERIMENT_DIR.glob("*.yaml")}
    assert presets and experiments and listed == presets | experiments
    assert "The Wave recipe for 2 CPU cores" in result.stdout  # wave-quick's one-line description
    assert "[quick, paper]" in result.stdout  # an experiment's scales


def test_summary_line_stops_at_the_first_clause() -> None:
    assert summary_line("The Wave recipe (the demo's): ~8 minutes. More") == "The Wave recipe (the demo's)"
    assert summary_line("L of Eq. (5) for d. Then", ".") == "L of Eq. (5) for d"


def test_config_show_reads_back_and_marks_the_values_from_the_data(run_cli_inprocess, tmp_path: Path) -> None:
    result = run_cli_inprocess("config", "show", "wave-quick", "train.steps=500", "model.label_dim=32")
    assert result.returncode == 0, result.stderr
    shown = tmp_path / "shown.yaml"
    shown.write_text(result.stdout)
    expected = apply_overrides(load_config("wave-quick"), ["train.steps=500", "model.label_dim=32"])
    assert load_config(shown).to_dict() == expected.to_dict()
    lines = {line.split(":")[0].strip(): line for line in result.stdout.splitlines()}
    for key in ("frame_shape", "residual_scale", "# periodic"):
        assert "from the data" in lines[key], key
    assert "from the data" not in lines["label_dim"]


def test_dry_run_fills_what_training_fills(tmp_path: Path, tiny_data: Path) -> None:
    config = tiny_config(tiny_data, "train.steps=1", "train.validate_every=0")
    assert set(filled_from_data(config)) == {"model.frame_shape", "model.residual_scale", "model.options.periodic"}
    dry = resolve_from_data(config)
    trained = train(config, tmp_path / "run", progress=False).config
    assert dry.config.to_dict() == trained.to_dict()
    assert dry.config.model.frame_shape == [1, 8, 8] and dry.config.model.options["periodic"] is True
    assert dry.trajectories == 4 and dry.parameters > 0
    assert not (tmp_path / "dry").exists()
    text = show_config(None, TINY_OVERRIDES, data=tiny_data)
    assert yaml.safe_load(text)["model"]["residual_scale"] == pytest.approx(trained.model.residual_scale)
    assert f"{dry.parameters:,} parameters" in text


def test_ardm_marks_its_own_scales() -> None:
    notes = filled_from_data(apply_overrides(load_config("wave-quick"), ["model.method=ardm", "model.label_dim=0"]))
    assert {"model.frame_scale", "model.clip_denoised"} <= set(notes)


def test_config_show_of_an_experiment_prints_its_settings(run_cli_inprocess) -> None:
    result = run_cli_inprocess("config", "show", "table1")
    assert result.returncode == 0 and result.stdout == (EXPERIMENT_DIR / "table1.yaml").read_text()


def test_config_show_unknown_preset(run_cli_inprocess) -> None:
    result = run_cli_inprocess("config", "show", "wave-quik")
    assert result.returncode == 2 and result.stderr.startswith("error: no config file or preset 'wave-quik'")


@pytest.mark.parametrize("option, fragment", [
    ("model.options.depth=[8,16]", "did you mean 'depths'"),
    ("model.options.embed_widht=16", "did you mean 'embed_width'"),
    ("model.options.label_dim=3", "set by the run"),
])
def test_a_typo_in_backbone_options_is_one_line_with_a_suggestion(run_cli_inprocess, tmp_path: Path,
                                                                   tiny_data: Path, option: str,
                                                                   fragment: str) -> None:
    for args in (("config", "show", "wave-quick", option),
                 ("train", "--data", tiny_data, "--out", tmp_path / "run", *TINY_OVERRIDES, option)):
        result = run_cli_inprocess(*args)
        assert result.returncode == 2 and len(result.stderr_lines) == 1, result.stderr
        assert fragment in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_every_backbone_lists_its_options() -> None:
    for name in BACKBONES.names():
        with pytest.raises(StochliftError, match=f"unknown option model.options.zzz for backbone '{name}'"):
            BACKBONES.get(name).check_options(name, {"zzz": 1})
        BACKBONES.get(name).check_options(name, {})
