"""End to end on a tiny Wave set: the CLI's data -> train -> sample -> evaluate, and the demo function."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stochlift.apps.demo import run_demo
from stochlift.data.trajectories import TrajectoryFile

TINY = ["train.steps=6", "train.batch_size=4", "train.log_every=2", "train.checkpoint_every=3",
        "model.options={depths: [8, 16], mid_blocks: 1, embed_width: 16, groups: 4}"]


@pytest.mark.slow
def test_cli_pipeline(tmp_path, one_torch_thread, run_cli_inprocess):
    data, run, samples, metrics = (tmp_path / n for n in ("wave.h5", "run", "samples.h5", "metrics.json"))
    assert run_cli_inprocess("data", "wave", "--out", str(data), "--trajectories", "12", "--frames", "8",
                              "--size", "16").returncode == 0
    f = TrajectoryFile(data)
    assert f.meta.problem == "wave" and f.meta.frames == 8 and f.meta.frame_shape == (1, 16, 16)
    assert sum(f.splits.values()) == 12 and f.meta.parameters["seed"] == 0
    assert run_cli_inprocess("train", "--data", str(data), "--out", str(run), "--config", "wave-quick", "--quiet",
                              *TINY).returncode == 0
    assert (run / "config.yaml").is_file() and (run / "checkpoint.safetensors").is_file()
    assert run_cli_inprocess("sample", "--run", str(run), "--out", str(samples), "--trajectories", "5",
                              "--frames", "10", "--quiet").returncode == 0
    generated = TrajectoryFile(samples)
    assert generated.splits == {"generated": 5} and generated.meta.frames == 10
    np.testing.assert_allclose(generated.meta.time[:8], f.meta.time)  # the time grid extends the data's
    first = generated.read("generated")[:, 0]
    np.testing.assert_array_equal(first, np.repeat(f.read("test", 0)[None, 0], 5, axis=0))
    assert run_cli_inprocess("evaluate", "--reference", str(data), "--generated", str(samples),
                              "--out", str(metrics)).returncode != 0  # 10 frames against 8: a clear error
    assert not metrics.exists()
    assert run_cli_inprocess("sample", "--run", str(run), "--out", str(tmp_path / "s8.h5"), "--trajectories", "5",
                              "--quiet").returncode == 0
    assert run_cli_inprocess("evaluate", "--reference", str(data), "--generated", str(tmp_path / "s8.h5"),
                              "--out", str(metrics)).returncode == 0
    report = json.loads(metrics.read_text())
    for key in ("wct", "wct_relative", "mass_w2", "mass_w2_relative", "final_std_ratio"):
        assert key in report
    assert report["n_generated"] == 5 and np.isfinite(report["wct"]) and np.isfinite(report["mass_w2"])


@pytest.mark.slow
def test_demo_writes_everything_and_resumes(tmp_path, one_torch_thread):
    result = run_demo(tmp_path / "demo", trajectories=12, frames=8, size=16, samples=6, overrides=TINY,
                      progress=False)
    for name in ("data", "samples", "metrics", "animation", "crossing_times", "mass", "snapshots"):
        assert result.files[name].is_file() and result.files[name].stat().st_size > 0, name
    assert set(json.loads(result.files["metrics"].read_text())) >= {"wct", "wct_relative", "mass_w2_relative"}
    before = result.files["samples"].stat().st_mtime_ns
    again = run_demo(tmp_path / "demo", trajectories=12, frames=8, size=16, samples=6, overrides=TINY,
                     progress=False)
    assert again.files["samples"].stat().st_mtime_ns == before  # finished stages are reused
    assert again.metrics["wct"] == result.metrics["wct"]
    assert "wct_relative" in again.summary()
    # issue 21, case 4: other arguments redo the stages they change (and every later one), never old results
    fewer = run_demo(tmp_path / "demo", trajectories=12, frames=8, size=16, samples=6,
                     overrides=[*TINY, "train.steps=4"], progress=False)
    assert json.loads((tmp_path / "demo" / "run" / "train_log.json").read_text())["step"] == 4
    assert fewer.files["samples"].stat().st_mtime_ns != before
    assert TrajectoryFile(fewer.files["data"]).meta.parameters["seed"] == 0  # the data were kept
    data_made = fewer.files["data"].stat().st_mtime_ns
    reseeded = run_demo(tmp_path / "demo", seed=1, trajectories=12, frames=8, size=16, samples=6,
                        overrides=[*TINY, "train.steps=4"], progress=False)
    assert TrajectoryFile(reseeded.files["data"]).meta.parameters["seed"] == 1
    assert reseeded.files["data"].stat().st_mtime_ns != data_made
    stages = json.loads((tmp_path / "demo" / "stages.json").read_text())
    assert stages["sample"]["seed"] == 2 and stages["train"]["config"]["train"]["seed"] == 1
