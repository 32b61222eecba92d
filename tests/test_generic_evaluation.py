"""Data of no built-in problem are scored by field scores with floors, never by another problem's quantity,
and a user's quantity of interest plugs in from the CLI and from Python."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import stochlift
from stochlift.data.trajectories import TrajectoryMeta, write_trajectories
from stochlift.errors import StochliftError

QOI_MODULE = '''
import numpy as np


def final_spread(frames):
    """One number per trajectory: the spread of its last frame."""
    return frames[:, -1].reshape(len(frames), -1).std(axis=1)
'''


def _walks(n: int, seed: int, scale: float = 0.1, shape: tuple[int, ...] = (3,)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = rng.normal(scale=scale, size=(n, 6, *shape))
    steps[:, 0] = 0.0
    return np.cumsum(steps, axis=1).astype(np.float32)


def _files(tmp_path: Path, generated_scale: float, shape: tuple[int, ...] = (3,)) -> tuple[Path, Path]:
    coords = {} if len(shape) == 1 else {"x": np.arange(float(shape[1]))}
    meta = TrajectoryMeta("walks", "generic", tuple(f"v{i}" for i in range(shape[0])), np.arange(6.0), **coords)
    truth, generated = tmp_path / "truth.h5", tmp_path / "generated.h5"
    write_trajectories(truth, meta, {"test": _walks(200, 0, shape=shape)})
    write_trajectories(generated, meta, {"generated": _walks(200, 1, generated_scale, shape)})
    return truth, generated


@pytest.mark.parametrize("shape", [(3,), (2, 16)])
def test_generic_data_get_field_scores_relative_to_their_floor(tmp_path, shape):
    truth, good = _files(tmp_path, 0.1, shape)
    report, metrics = stochlift.evaluate_files(truth, good)
    assert report["problem"] == "generic" and "wct" not in report  # no Wave crossing time on foreign data
    assert 0.8 < report["sliced_w2_ratio"] < 1.5 and 0.97 < report["energy_score_ratio"] < 1.05
    (tmp_path / "collapsed").mkdir()
    truth, collapsed = _files(tmp_path / "collapsed", 0.001, shape)  # all members near the shared start
    bad, _ = stochlift.evaluate_files(truth, collapsed)
    assert bad["sliced_w2_ratio"] > 4 and bad["energy_score_ratio"] > 1.2
    assert "sliced_w2" in metrics.summary()


def test_a_user_quantity_of_interest_plugs_in_from_the_cli_and_from_python(tmp_path, run_cli_inprocess):
    truth, generated = _files(tmp_path, 0.1)
    (tmp_path / "my_qoi.py").write_text(QOI_MODULE)
    out = tmp_path / "metrics.json"
    result = run_cli_inprocess("evaluate", "--reference", truth, "--generated", generated, "--out", out,
                               "--qoi", f"{tmp_path / 'my_qoi.py'}:final_spread")
    assert result.returncode == 0, result.stderr
    saved = json.loads(out.read_text())
    assert saved["final_spread_w2_ratio"] is not None and "final_spread_w2" in saved["field_scores"]["scores"]
    report, _ = stochlift.evaluate_files(truth, generated, qoi={"last_mean": lambda f: f[:, -1].mean(axis=1)})
    assert report["last_mean_w2_ratio"] > 0
    bad = run_cli_inprocess("evaluate", "--reference", truth, "--generated", generated, "--qoi", "nowhere")
    assert bad.returncode == 2 and bad.stderr_lines[0].startswith("error: a quantity of interest is given as")


def test_a_problems_own_files_can_be_scored_as_generic_data(tmp_path, tiny_data):
    from stochlift.data.trajectories import TrajectoryFile

    wave = TrajectoryFile(tiny_data)
    meta = wave.meta
    write_trajectories(tmp_path / "gen.h5", meta, {"generated": wave.read("train")})
    qoi = {"m": lambda f: f.mean(axis=(2, 3, 4))}
    with pytest.raises(StochliftError, match="--problem generic"):
        stochlift.evaluate_files(tiny_data, tmp_path / "gen.h5", reference_split="train", qoi=qoi)
    report, _ = stochlift.evaluate_files(tiny_data, tmp_path / "gen.h5", reference_split="train", problem="generic",
                                         qoi=qoi)
    assert report["problem"] == "generic" and "m_w2_ratio" in report
