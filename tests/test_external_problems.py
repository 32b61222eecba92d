"""benchmarks/external_problems.py's data side: the exact linear-Gaussian law, and a problem made, saved and
imported through the CLI as recorded. (py-pde and torchsde problems need the `external` extra and minutes.)"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from stochlift.data.trajectories import TrajectoryFile

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("external_problems", ROOT / "benchmarks" / "external_problems.py")
external = sys.modules["external_problems"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up
_spec.loader.exec_module(external)


def test_the_linear_gaussian_one_step_law_is_exact() -> None:
    s = external.PROBLEMS["linear_gaussian"].settings
    # with A = 0 the SDE is a Brownian motion: Phi = I and Q = B B^T dt exactly
    phi, q = external.linear_gaussian_step({**s, "A": np.zeros((4, 4))})
    b = np.asarray(s["B"])
    np.testing.assert_allclose(phi, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(q, b @ b.T * s["interval"], atol=1e-12)
    # a scalar OU process dX = -k X dt + b dW: Phi = exp(-k dt), Q = b^2 (1 - exp(-2 k dt)) / (2 k)
    k, sigma, dt = 0.7, 0.3, s["interval"]
    phi, q = external.linear_gaussian_step({"A": [[-k]], "B": [[sigma]], "interval": dt})
    assert phi[0, 0] == pytest.approx(np.exp(-k * dt))
    assert q[0, 0] == pytest.approx(sigma**2 * (1 - np.exp(-2 * k * dt)) / (2 * k))
    mean, cov = external.linear_gaussian_law(s)
    x = external.linear_gaussian_samples(s, 8000, seed=3)
    assert np.abs(x.mean(0) - mean).max() < 4 * np.sqrt(np.diagonal(cov, axis1=1, axis2=2).max() / 8000)
    np.testing.assert_allclose(np.einsum("ntd,nte->tde", x - mean, x - mean) / 8000, cov, atol=0.02)


def test_a_problem_is_saved_as_a_user_would_and_imported_as_recorded(tmp_path: Path) -> None:
    small = dataclasses.replace(external.PROBLEMS["linear_gaussian"],
                                settings={**external.PROBLEMS["linear_gaussian"].settings, "trajectories": 40,
                                          "frames": 6})
    record = external.generate(small, tmp_path, seed=2)
    raw = np.load(tmp_path / "linear_gaussian" / "raw" / "paths.npy")
    data = TrajectoryFile(tmp_path / "linear_gaussian" / "data.h5")
    assert raw.shape == (40, 6, 4) and data.splits == record["splits"] == {"train": 32, "valid": 4, "test": 4}
    rows = np.concatenate([data.read(s) for s in ("train", "valid", "test")])
    assert sorted(map(tuple, rows[:, -1].round(5))) == sorted(map(tuple, raw[:, -1].astype(np.float32).round(5)))
    assert record["import_command"].startswith(
        "stochlift data import $OUT/linear_gaussian/raw/paths.npy --layout N,T,D")
    assert data.meta.time == pytest.approx(0.1 * np.arange(6))
    assert external.load_problems(tmp_path)["linear_gaussian"]["seed"] == record["seed"]


def _external_run():
    spec = importlib.util.spec_from_file_location("external_run", ROOT / "benchmarks" / "external_run.py")
    module = sys.modules["external_run"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_run_stage_scores_and_tables(tmp_path: Path) -> None:
    """The run stage's scoring and results table, on exact samples (training is left to the benchmark itself:
    `run --only linear_gaussian --budget 20s` end to end takes minutes)."""
    run = _external_run()
    s = {**external.PROBLEMS["linear_gaussian"].settings, "frames": 8}
    truth, same = external.linear_gaussian_samples(s, 64, seed=0), external.linear_gaussian_samples(s, 64, seed=1)
    exact = run.score(same, truth, seed=0)
    collapsed = run.score(np.repeat(same.mean(0, keepdims=True), 64, axis=0), truth, seed=0)
    assert exact["spread"] == pytest.approx(1, abs=0.2) and collapsed["spread"] == pytest.approx(0, abs=1e-6)
    assert exact["sliced_w2"]["ratio"] < 2 < collapsed["sliced_w2"]["ratio"]
    records = {name: {**r, "within": r["sliced_w2"]["ratio"] <= 2, "train_seconds": 0.0}
               for name, r in (("resample", exact), ("d0", collapsed))}
    stem = tmp_path / "results" / "external_problems"
    run.write_results(stem, {"linear_gaussian": records}, "python benchmarks/external_problems.py run", "20s")
    run.write_results(stem, {"other": records}, "again", "20s")  # --only merges into what is there
    saved = json.loads(stem.with_suffix(".json").read_text())
    assert set(saved["problems"]) == {"linear_gaussian", "other"} and saved["budget"] == "20s"
    table = stem.with_suffix(".md").read_text()
    assert "| linear_gaussian | d0 |" in table and "| no |" in table and "Machine: " in table
