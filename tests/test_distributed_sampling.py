"""Sampling across processes: `torchrun ... -m stochlift sample` (or the older `-m stochlift.cli`, a shim of the
same CLI) shards whole batches over the ranks (each keeps its label stream) and writes one file equal to the
one-process file.

The ranks and the one-process run go through the same code on the same CPU with one thread each, so the
files are compared exactly (every dataset and attribute): no reduction crosses processes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import cli_env, run_cli_subprocess, tiny_config, tiny_meta
from stochlift.data.trajectories import TrajectoryWriter
from stochlift.errors import StochliftError
from stochlift.lifting.distributed import batch_shard
from stochlift.lifting.rollout import merge_parts, part_path
from stochlift.lifting.train import train

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

SAMPLE = ("--trajectories", "5", "--batch-size", "2", "--frames", "7", "--seed", "3", "--device", "cpu", "--quiet")


def torchrun(nproc: int, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, env=cli_env(), timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        pytest.fail(f"torchrun did not finish within {timeout} s (a rank waiting for another?):\n{err[-4000:]}")


def contents(path: Path) -> dict:
    """Every dataset's values and every attribute of an HDF5 file, by name."""
    found: dict = {}
    with h5py.File(path, "r") as f:
        found["/"] = dict(f.attrs)

        def visit(name: str, obj) -> None:
            found[name + "@attrs"] = dict(obj.attrs)
            if isinstance(obj, h5py.Dataset):
                found[name] = obj[()]

        f.visititems(visit)
    return found


def assert_same_file(a: Path, b: Path) -> None:
    left, right = contents(a), contents(b)
    assert sorted(left) == sorted(right)
    for key, value in left.items():
        if isinstance(value, dict):
            assert sorted(value) == sorted(right[key]), key
            for attr, v in value.items():
                assert np.array_equal(np.asarray(v), np.asarray(right[key][attr])), f"{key}: {attr}"
        else:
            assert value.dtype == right[key].dtype and np.array_equal(value, right[key]), key


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path) -> Path:
    out = tmp_path_factory.mktemp("sharded") / "run"
    train(tiny_config(tiny_data), out, progress=False)
    return out


def test_two_processes_write_the_one_process_file(run_dir: Path, tmp_path: Path) -> None:
    one = run_cli_subprocess("sample", "--run", run_dir, "--out", tmp_path / "one.h5", *SAMPLE)
    assert one.returncode == 0, one.stderr
    two = torchrun(2, "-m", "stochlift", "sample", "--run-dir", str(run_dir), "--out", str(tmp_path / "two.h5"),
                   *SAMPLE)
    assert two.returncode == 0, two.stderr[-4000:]
    assert two.stdout.count("wrote") == 1, f"only rank 0 should report: {two.stdout!r}"
    assert_same_file(tmp_path / "one.h5", tmp_path / "two.h5")
    with h5py.File(tmp_path / "two.h5") as f:  # 3 batches (2, 2, 1 rows) over 2 ranks: both ranks had rows
        values = f["generated/t0_fields/u"][()]
    assert values.shape[:2] == (5, 7) and np.abs(values[2:] - values[:2].mean(0)).max() > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.h5", "two.h5"]  # no part file left


def test_a_failing_rank_fails_all_and_leaves_no_file(run_dir: Path, tmp_path: Path) -> None:
    """Trajectory 4 (rank 1's rows) starts from frames so large that the rollout overflows: rank 1 fails,
    rank 0 finishes its part, both stop with an error instead of waiting, and nothing is written."""
    frames = np.random.default_rng(0).normal(size=(5, 6, 1, 8, 8)).astype(np.float32) * 0.1
    frames[4] = 3e38
    initial = tmp_path / "initial.h5"
    with TrajectoryWriter(initial, tiny_meta(), {"test": 5}) as writer:
        writer.write("test", 0, {"u": frames[:, :, 0]})
    out = tmp_path / "samples.h5"
    proc = torchrun(2, "-m", "stochlift.cli", "sample", "--run-dir", str(run_dir), "--out", str(out), "--initial",
                    str(initial), *SAMPLE)
    assert proc.returncode != 0
    assert "diverged" in proc.stderr and "another process" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["initial.h5"]


def test_batch_shards_cover_every_batch_once_in_order() -> None:
    for rows, batch, world in [(5, 2, 2), (2, 2, 3), (100, 7, 4), (1, 1, 1)]:
        shards = [batch_shard(rows, batch, rank, world) for rank in range(world)]
        assert [b for s in shards for b in s] == list(range(-(-rows // batch)))
        assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1


def test_a_missing_part_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    meta = tiny_meta()
    out = tmp_path / "merged.h5"
    present = part_path(out, 0, 2)
    with TrajectoryWriter(present, meta, {"generated": 2}) as writer:
        writer.write("generated", 0, {"u": np.zeros((2, meta.frames, 8, 8), np.float32)})
    with pytest.raises(StochliftError, match="is missing"):
        merge_parts(out, meta, [(present, 2), (part_path(out, 1, 2), 3)], batch_size=2)
    with pytest.raises(StochliftError, match="does not hold the 3 rows"):
        merge_parts(out, meta, [(present, 3)], batch_size=2)
    assert not out.exists()
    merge_parts(out, meta, [(present, 2), (part_path(out, 1, 2), 0)], batch_size=2)
    assert_same_file(out, present)
