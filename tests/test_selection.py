"""Choosing the best of several training seeds on the validation split (stochlift.apps.selection)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from stochlift.apps.demo import run_demo
from stochlift.apps.selection import SELECTION_FILE, train_best_of, train_side_by_side
from stochlift.config import apply_overrides, load_config
from stochlift.data.flow_datasets import make_flow_dataset
from stochlift.errors import StochliftError
from stochlift.lifting.checkpoint import CHECKPOINT_NAME, checkpoint_step
from stochlift.lifting.runs import run_finished
from stochlift.lifting.train import train

TINY_FLOW = ["train.steps=4", "model.label_dim=144", "train.batch_size=4", "train.log_every=1",
             "train.checkpoint_every=2",
             "model.options={depths: [8, 16], mid_blocks: 1, embed_width: 16, groups: 4, label_planes: 1}"]


@pytest.fixture(scope="module")
def flow_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flow") / "flow.h5"
    return make_flow_dataset(path, seed=0, workers=1, trajectories=24, frames=16, size=12, progress=False)


def flow_config(data: Path, *overrides: str):
    config = apply_overrides(load_config("flow-quick"), [*TINY_FLOW, *overrides])
    config.data.path = str(data)
    return config


@pytest.fixture(scope="module")
def selected(flow_data: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("best") / "runs"
    return out, train_best_of(flow_config(flow_data), out, [3, 4], trajectories=6, jobs=2, progress=False)


def test_the_kept_seed_has_the_lowest_validation_score(selected) -> None:
    out, selection = selected
    assert sorted(selection.scores) == [3, 4] and selection.split == "valid"
    assert selection.seed == min(selection.scores, key=lambda s: selection.scores[s]["score"])
    assert selection.chosen == out / f"seed{selection.seed}"
    for seed, scores in selection.scores.items():
        assert scores["score"] == pytest.approx((scores["wct_relative"] + scores["mass_w2_relative"]) / 2)
        metrics = json.loads((out / f"seed{seed}" / "valid-metrics.json").read_text())
        assert metrics["reference_split"] == "valid" and metrics["wct_relative"] == scores["wct_relative"]
    saved = json.loads((out / SELECTION_FILE).read_text())
    assert saved["seed"] == selection.seed and saved["chosen"] == f"seed{selection.seed}"


def test_seeds_trained_side_by_side_equal_training_each_alone(selected, flow_data: Path, tmp_path: Path) -> None:
    out, _ = selected
    alone = tmp_path / "alone"
    train(flow_config(flow_data, "train.seed=4"), alone, progress=False)
    side, single = load_file(str(out / "seed4" / CHECKPOINT_NAME)), load_file(str(alone / CHECKPOINT_NAME))
    assert side.keys() == single.keys()
    for key in side:
        np.testing.assert_allclose(side[key], single[key], atol=1e-5, rtol=0, err_msg=key)


def test_choosing_again_reuses_the_runs_and_refuses_other_seeds(selected, flow_data: Path) -> None:
    out, selection = selected
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = train_best_of(flow_config(flow_data), out, [4, 3], trajectories=6, progress=False)
    assert again == selection
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps
    with pytest.raises(StochliftError, match="chose among seeds"):
        train_best_of(flow_config(flow_data), out, [3, 5], progress=False)


def test_an_interrupted_run_is_resumed_side_by_side_to_the_uninterrupted_one(flow_data: Path, tmp_path: Path) -> None:
    config = flow_config(flow_data, "train.seed=1")
    train(config, tmp_path / "straight", progress=False)
    train(config, tmp_path / "cut", progress=False, stop_after=2)
    assert checkpoint_step(tmp_path / "cut" / CHECKPOINT_NAME) == 2 and not run_finished(tmp_path / "cut")
    train_side_by_side([(config, tmp_path / "cut"), (flow_config(flow_data, "train.seed=2"), tmp_path / "other")],
                       jobs=2, progress=False)
    assert run_finished(tmp_path / "cut") and run_finished(tmp_path / "other")
    cut = load_file(str(tmp_path / "cut" / CHECKPOINT_NAME))
    straight = load_file(str(tmp_path / "straight" / CHECKPOINT_NAME))
    for key in straight:
        np.testing.assert_allclose(cut[key], straight[key], atol=1e-5, rtol=0, err_msg=key)


def test_checkpoint_step_of_a_missing_or_foreign_file_is_zero(tmp_path: Path) -> None:
    assert checkpoint_step(tmp_path / "none.safetensors") == 0
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    assert checkpoint_step(tmp_path / "junk.safetensors") == 0


def test_best_of_is_refused_where_there_is_nothing_to_score(tmp_path: Path) -> None:
    with pytest.raises(StochliftError, match="wave and flow only"):
        run_demo(tmp_path / "demo", problem="digits", best_of=2, progress=False)
    with pytest.raises(StochliftError, match="best_of must be >= 1"):
        run_demo(tmp_path / "demo", problem="flow", best_of=0, progress=False)


def test_train_best_of_on_the_command_line_names_the_run_it_kept(flow_data: Path, tmp_path: Path,
                                                                   run_cli_inprocess) -> None:
    result = run_cli_inprocess("train", "--data", flow_data, "--config", "flow-quick", "--out", tmp_path / "runs",
                               "--best-of", "2", "--quiet", *TINY_FLOW, "train.seed=7")
    assert result.returncode == 0, result.stderr
    kept = json.loads((tmp_path / "runs" / SELECTION_FILE).read_text())["chosen"]
    assert "seed 7: wct_relative" in result.stdout and "seed 8: wct_relative" in result.stdout
    assert f"kept {tmp_path / 'runs' / kept}" in result.stdout
    bad = run_cli_inprocess("train", "--data", flow_data, "--config", "flow-quick", "--out", tmp_path / "x",
                            "--best-of", "0")
    assert bad.returncode == 2 and "must be a positive integer" in bad.stderr
