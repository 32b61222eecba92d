"""The CLI's answer to user mistakes: one `error: ...` line (or click's usage error), a non-zero exit, no
traceback and no partial output.

`run_cli` runs the real entry point (`python -m stochlift`) in a subprocess; each one that reaches
training imports torch (5 s on a busy 2-core machine), so some cases use `run_cli_inprocess`, which calls
the same `stochlift.apps.cli.main` and reads its SystemExit code and stderr.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import TINY_OVERRIDES, CliResult, tiny_config, write_tiny
from stochlift.lifting.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def assert_one_line_error(result: CliResult, *fragments: str) -> str:
    """A StochliftError as the CLI shows it: exit 2, exactly one stderr line `error: ...`, no traceback."""
    assert result.returncode == 2, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr_lines
    assert len(lines) == 1, f"expected one error line, got:\n{result.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def assert_usage_error(result: CliResult, *fragments: str) -> None:
    """click's own answer to a bad option value: exit 2, `Error: Invalid value ...`, no traceback."""
    assert result.returncode == 2, f"exit {result.returncode}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr_lines if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"


def assert_empty_or_absent(directory: Path) -> None:
    if directory.exists():
        assert sorted(p.name for p in directory.iterdir()) == [], f"partial output in {directory}"


# ------------------------------------------------------------------------------------------------ help


@pytest.mark.parametrize(
    "command, options",
    [
        ((), ["--help", "--version", "data", "train", "sample", "evaluate", "demo"]),
        (("data",), ["wave"]),
        (("data", "wave"), ["--out", "--preset", "--trajectories", "--frames", "--size", "--seed"]),
        (("train",), ["--data", "--out", "--config", "--resume", "--quiet", "SECTION.KEY=VALUE"]),
        (("sample",), ["--run", "--out", "--trajectories", "--frames", "--initial", "--initial-frames",
                       "--seed", "--batch-size"]),
        (("evaluate",), ["--reference", "--generated", "--out", "--reference-split", "--generated-split"]),
        (("demo",), ["--out", "--problem", "--seed", "--quiet"]),
    ],
    ids=["root", "data", "data-wave", "train", "sample", "evaluate", "demo"],
)
def test_help(run_cli, command: tuple[str, ...], options: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "Usage:" in result.stdout
    for option in options:
        assert option in result.stdout, f"{option} missing from `{' '.join(command)} --help`"


def test_short_help_flag(run_cli) -> None:
    result = run_cli("train", "-h")
    assert result.returncode == 0 and "--resume" in result.stdout


# ---------------------------------------------------------------------------------- data wave options


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--size", "0"], "'--size': must be a positive integer, got 0"),
        (["--size", "-4"], "'--size': must be a positive integer, got -4"),
        (["--trajectories", "0"], "'--trajectories': must be a positive integer, got 0"),
        (["--frames", "-1"], "'--frames': must be a positive integer"),
        (["--size", "abc"], "'--size'"),
        (["--preset", "huge"], "'--preset'"),
    ],
)
def test_data_wave_bad_options(run_cli, tmp_path: Path, args: list[str], fragment: str) -> None:
    out = tmp_path / "wave.h5"
    assert_usage_error(run_cli("data", "wave", "--out", out, *args), fragment)
    assert_empty_or_absent(tmp_path)


def test_data_wave_too_few_trajectories(run_cli_inprocess, tmp_path: Path) -> None:
    out = tmp_path / "wave.h5"
    result = run_cli_inprocess("data", "wave", "--out", out, "--trajectories", "2")
    assert_one_line_error(result, "--trajectories must be >= 3")
    assert_empty_or_absent(tmp_path)


# ------------------------------------------------------------------------------------------- evaluate


def test_evaluate_missing_file(run_cli, tmp_path: Path, tiny_data: Path) -> None:
    out = tmp_path / "metrics.json"
    missing = tmp_path / "missing.h5"
    line = assert_one_line_error(
        run_cli("evaluate", "--reference", missing, "--generated", tiny_data, "--out", out), "no such file"
    )
    assert "missing.h5" in line
    assert_empty_or_absent(tmp_path)


# ---------------------------------------------------------------------------------------------- train


def _train_args(data: Path | None, out: Path, *extra: str) -> list[str]:
    args = ["train", "--out", str(out), "--quiet"]
    if data is not None:
        args += ["--data", str(data)]
    return [*args, *TINY_OVERRIDES, *extra]


def test_train_on_wrong_layout(run_cli, tmp_path: Path) -> None:
    data = tmp_path / "random.h5"
    with h5py.File(data, "w") as f:
        f.create_dataset("random", data=np.random.default_rng(0).normal(size=(8, 8)))
    run = tmp_path / "run"
    assert_one_line_error(run_cli(*_train_args(data, run)), "random.h5", "not a stochlift trajectory file")
    assert_empty_or_absent(run)


def test_train_on_nan_data(run_cli_inprocess, tiny_data_copy: Path, tmp_path: Path) -> None:
    with h5py.File(tiny_data_copy, "r+") as f:
        f["train/t0_fields/u"][2, 4, 1, 1] = np.nan
    run = tmp_path / "run"
    assert_one_line_error(run_cli_inprocess(*_train_args(tiny_data_copy, run)), "'train' contains NaN or Inf")
    assert_empty_or_absent(run)


def test_train_on_fewer_frames_than_the_window(run_cli_inprocess, tmp_path: Path) -> None:
    data = write_tiny(tmp_path / "short.h5", frames=2)
    run = tmp_path / "run"
    result = run_cli_inprocess(*_train_args(data, run, "model.window=3"))
    assert_one_line_error(result, "2 frames", "Markov window (3)")
    assert_empty_or_absent(run)


def test_train_without_data_and_with_bad_overrides(run_cli_inprocess, tmp_path: Path, tiny_data: Path) -> None:
    # in-process (these fail before any heavy work); exercises the same main() and its exit codes
    run = tmp_path / "run"
    assert_one_line_error(run_cli_inprocess(*_train_args(None, run)), "no training data")
    assert_one_line_error(run_cli_inprocess(*_train_args(tiny_data, run, "train.lr=fast")), "train.lr must be a number")
    assert_one_line_error(run_cli_inprocess(*_train_args(tiny_data, run, "train.nope=1")), "unknown key 'nope'")
    assert_one_line_error(run_cli_inprocess(*_train_args(tiny_data, run, "--config", "nope")),
                          "no config file or preset")
    assert_empty_or_absent(run)


@pytest.fixture
def trained_run(tmp_path: Path, tiny_data: Path) -> Path:
    """A finished tiny run, trained in-process with exactly the config the CLI builds from TINY_OVERRIDES."""
    run = tmp_path / "run"
    train(tiny_config(tiny_data), run, progress=False)
    assert (run / "checkpoint.safetensors").is_file()
    return run


def test_train_into_an_existing_run_and_resume_with_an_incompatible_config(
    run_cli, run_cli_inprocess, trained_run: Path, tiny_data: Path
) -> None:
    before = {p.name: p.read_bytes() for p in trained_run.iterdir()}

    result = run_cli_inprocess(*_train_args(tiny_data, trained_run))
    line = assert_one_line_error(result, "already holds a run", "--resume")
    assert str(trained_run) in line

    line = assert_one_line_error(
        run_cli(*_train_args(tiny_data, trained_run, "model.label_dim=8", "--resume")), "cannot resume"
    )
    assert "model.label_dim=4" in line and "8" in line

    after = {p.name: p.read_bytes() for p in trained_run.iterdir()}
    assert after == before, "a refused train/resume modified the run directory"


def test_resume_with_nothing_to_resume(run_cli_inprocess, tmp_path: Path, tiny_data: Path) -> None:
    run = tmp_path / "run"
    assert_one_line_error(run_cli_inprocess(*_train_args(tiny_data, run, "--resume")), "nothing to resume")
    assert_empty_or_absent(run)


# --------------------------------------------------------------------------------------------- sample


def test_sample_from_a_directory_that_is_no_run(run_cli_inprocess, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "samples.h5"
    assert_one_line_error(run_cli_inprocess("sample", "--run", tmp_path / "empty", "--out", out),
                          "is not a training run")
    assert not out.exists()


def test_sample_bad_option(run_cli, tmp_path: Path) -> None:
    out = tmp_path / "samples.h5"
    assert_usage_error(run_cli("sample", "--run", tmp_path, "--out", out, "--trajectories", "0"), "'--trajectories'")
    assert not out.exists()


def test_sample_with_the_water_balance_on_wave_data(run_cli_inprocess, tmp_path: Path, tiny_data: Path) -> None:
    train(tiny_config(tiny_data, "train.steps=1"), tmp_path / "run", progress=False)
    out = tmp_path / "samples.h5"
    result = run_cli_inprocess("sample", "--run", tmp_path / "run", "--out", out, "--constraint", "water_balance")
    assert_one_line_error(result, "water_balance needs a Flow data file")
    assert not out.exists()


def test_train_takes_the_data_path_verbatim(run_cli_inprocess, tmp_path: Path) -> None:
    data = write_tiny(tmp_path / "wave #1.h5")
    run = tmp_path / "run"
    result = run_cli_inprocess(*_train_args(data, run, "train.steps=1"))
    assert result.returncode == 0, result.stderr
