"""`stochlift train` without --config: the automatic recipe chooses the config from the data, prints each
choice with its reason and keeps them in RUN/recipe.json; overrides apply on top; settings that cannot work
are warnings, a budget that cannot work a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from stochlift.lifting.recipe import recipe_for_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHORT = ("train.steps=20",)


@pytest.fixture(scope="module")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A [N, T, 3] random walk saved as .npy and imported as a user would."""
    from click.testing import CliRunner

    from stochlift.apps.cli import cli

    root = tmp_path_factory.mktemp("vectors")
    rng = np.random.default_rng(0)
    np.save(root / "x.npy", np.cumsum(rng.normal(size=(32, 6, 3)), axis=1).astype(np.float32))
    result = CliRunner().invoke(cli, ["data", "import", str(root / "x.npy"), "--layout", "N,T,D",
                                      "--out", str(root / "data.h5")])
    assert result.exit_code == 0, result.output
    return root / "data.h5"


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    return lines[0]


def test_train_without_config_uses_the_recipe(run_cli_inprocess, vectors: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_cli_inprocess("train", "--data", vectors, "--out", run, *SHORT)
    assert result.returncode == 0, result.stderr
    assert "automatic recipe for" in result.stdout
    assert "model.backbone = mlp: " in result.stdout and "train.lr = " in result.stdout
    assert "train.steps=20: your override" in result.stdout
    assert "warning: train.steps=20 is fewer than" in result.stdout
    recipe = json.loads((run / "recipe.json").read_text())
    assert {c["setting"] for c in recipe["choices"]} >= {"model.backbone", "model.label_dim", "train.steps"}
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["backbone"] == "mlp" and config["train"]["steps"] == 20
    assert config["train"]["lr"] == next(c["value"] for c in recipe["choices"] if c["setting"] == "train.lr")
    assert config["train"]["warmup_steps"] < 20  # the schedule follows the overridden steps


def test_config_auto_is_the_same_and_d0_is_a_warning(run_cli_inprocess, vectors: Path, tmp_path: Path) -> None:
    result = run_cli_inprocess("train", "--data", vectors, "--out", tmp_path / "run", "--config", "auto", *SHORT,
                               "model.label_dim=0")
    assert result.returncode == 0, result.stderr
    assert "warning: model.label_dim=0" in result.stdout
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["model"]["label_dim"] == 0


def test_recipe_for_file_matches_the_cli(vectors: Path) -> None:
    recipe = recipe_for_file(vectors, overrides=SHORT)
    assert recipe.config.data.path == str(vectors) and recipe.config.data.split == "train"
    assert recipe.summary.frame_shape == (3,) and recipe.config.train.steps == 20
    assert recipe.describe().count("\n") >= len(recipe.choices)


def test_a_budget_that_cannot_work_is_one_line(run_cli_inprocess, vectors: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert "affords only" in one_error_line(run_cli_inprocess("train", "--data", vectors, "--out", run,
                                                              "--budget", "0.001s"))
    assert "90s, 10m or 1.5h" in one_error_line(run_cli_inprocess("train", "--data", vectors, "--out", run,
                                                                   "--budget", "soon"))
    assert "automatic recipe only" in one_error_line(run_cli_inprocess("train", "--data", vectors, "--out", run,
                                                                       "--config", "wave-quick", "--budget", "1m"))
    assert not run.exists()


def test_a_budget_fits_the_steps(vectors: Path) -> None:
    recipe = recipe_for_file(vectors, "1h")
    steps = next(c for c in recipe.choices if c.setting == "train.steps")
    assert "budget" in steps.reason and recipe.budget_seconds == 3600
