"""Data-parallel training (torchrun, gloo on the CPU), gradient accumulation and the step DataLoader.

Design: one torchrun launch (2 processes) trains the same tiny run twice, once to the end and once
stopped after 3 of 6 steps; every rank saves the weights it holds. A second launch resumes the stopped
run through the real CLI (`torchrun ... -m stochlift train --resume`). Then:
  - both ranks hold identical weights (torch.equal: DDP all-reduces, so they must agree bit for bit);
  - the 2-process run equals a 1-process run with the same global batch within atol 1e-5 (the weights
    are O(1); only the order of float sums differs: 2 shard means averaged vs one mean; seen: ~2e-6);
  - the resumed 2-process run equals the uninterrupted one exactly (every checkpoint tensor, torch.equal).
The run has input noise, pushforward (unroll=1) and gradient clipping on, so the sharding of the noise,
of the labels and of the pushforward windows is checked as well.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY_OVERRIDES, cli_env, tiny_config, tiny_meta
from stochlift.data.trajectories import TrajectoryFile, TrajectoryWriter
from stochlift.errors import StochliftError
from stochlift.lifting.checkpoint import CHECKPOINT_NAME
from stochlift.lifting.labels import batch_indices
from stochlift.lifting.loader import StepBatches, read_pairs
from stochlift.lifting.pairs import FileSource, PairSet
from stochlift.lifting.train import train

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

DDP_OVERRIDES = (
    "train.steps=6",
    "train.batch_size=4",
    "train.checkpoint_every=2",
    "train.log_every=1",
    "train.input_noise=0.1",
    "train.unroll=1",
    "train.grad_clip=0.05",
    "train.warmup_steps=2",
    "train.seed=3",
)
STOP = 3  # the interrupted run stops here (not a checkpoint multiple: the resume redoes step 3 from 2)
TOLERANCE = 1e-5  # 2 processes vs 1: same global batch, float sums in another order

RANK_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from safetensors.torch import save_file
    from stochlift.config import apply_overrides, load_config
    from stochlift.lifting.train import train

    data, out, stop, *overrides = sys.argv[1:]
    out = Path(out)
    config = apply_overrides(load_config(None), [*overrides, f"data.path={data}"])
    rank = int(os.environ["RANK"])
    full = train(config, out / "full", progress=False)
    weights = {k: v.contiguous() for k, v in full.model.state_dict().items()}
    save_file(weights, str(out / f"weights-rank{rank}.safetensors"))
    train(config, out / "stopped", progress=False, stop_after=int(stop))
    """
)


def torchrun(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=cli_env(), timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        pytest.fail(f"torchrun did not finish within {timeout} s:\n{err[-4000:]}")
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    script = out / "rank.py"
    script.write_text(RANK_SCRIPT)
    overrides = [*TINY_OVERRIDES, *DDP_OVERRIDES]
    torchrun(str(script), str(tiny_data), str(out), str(STOP), *overrides)
    # resume the stopped run through the real command line, as a user would
    proc = torchrun("-m", "stochlift", "train", "--data", str(tiny_data), "--out", str(out / "stopped"),
                    "--resume", "--quiet", *overrides)
    assert proc.stdout.count("trained") == 1, f"only rank 0 should report: {proc.stdout!r}"
    return out


def test_both_ranks_hold_identical_weights(ddp_runs: Path) -> None:
    a = load_file(str(ddp_runs / "weights-rank0.safetensors"))
    b = load_file(str(ddp_runs / "weights-rank1.safetensors"))
    assert sorted(a) == sorted(b)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"ranks disagree on {different}"


def test_two_processes_equal_one_process_with_the_same_global_batch(ddp_runs: Path, tiny_data: Path,
                                                                    tmp_path: Path) -> None:
    single = train(tiny_config(tiny_data, *DDP_OVERRIDES), tmp_path / "single", progress=False)
    ddp = load_file(str(ddp_runs / "full" / CHECKPOINT_NAME))
    one = load_file(str(tmp_path / "single" / CHECKPOINT_NAME))
    assert sorted(ddp) == sorted(one)
    worst = max((ddp[k].double() - one[k].double()).abs().max().item() for k in one if k.startswith("model."))
    assert worst < TOLERANCE, f"largest weight difference 1 vs 2 processes: {worst:.3g}"
    ranked = load_file(str(ddp_runs / "weights-rank0.safetensors"))
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ranked[name], value, atol=TOLERANCE, rtol=0)
    # the logged loss is the global batch's mean on both sides
    losses = [h["loss"] for h in json.loads((ddp_runs / "full" / "train_log.json").read_text())["history"]]
    np.testing.assert_allclose(losses, [h["loss"] for h in single.history], rtol=1e-5)


def test_ddp_resume_after_a_stop_is_exact(ddp_runs: Path) -> None:
    full = load_file(str(ddp_runs / "full" / CHECKPOINT_NAME))
    resumed = load_file(str(ddp_runs / "stopped" / CHECKPOINT_NAME))
    assert sorted(full) == sorted(resumed)
    different = [k for k in full if not torch.equal(full[k], resumed[k])]
    assert not different, f"{len(different)} tensors differ after the DDP resume, e.g. {different[:4]}"


# ------------------------------------------------------------------------------ one process, no torchrun


def test_grad_accum_2_equals_grad_accum_1(tiny_data: Path, tmp_path: Path) -> None:
    """Two micro-batches of 2 = one batch of 4: the summed half-gradients / 2 equal the full mean up to rounding."""
    one = train(tiny_config(tiny_data, *DDP_OVERRIDES), tmp_path / "a", progress=False)
    two = train(tiny_config(tiny_data, *DDP_OVERRIDES, "train.grad_accum=2"), tmp_path / "b", progress=False)
    for (name, a), b in zip(one.model.state_dict().items(), two.model.state_dict().values()):
        torch.testing.assert_close(b, a, atol=TOLERANCE, rtol=0, msg=name)
    np.testing.assert_allclose([h["loss"] for h in two.history], [h["loss"] for h in one.history], rtol=1e-5)


def test_batch_must_split_over_ranks_and_micro_batches(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(StochliftError, match="divisible by world_size x train.grad_accum"):
        train(tiny_config(tiny_data, "train.batch_size=5", "train.grad_accum=2"), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_mixed_precision_is_refused_on_an_explicit_cpu(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(StochliftError, match="needs a CUDA device"):
        train(tiny_config(tiny_data, "train.precision=bf16", "train.device=cpu"), tmp_path / "r", progress=False)


def test_results_do_not_depend_on_the_number_of_workers(tiny_data: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_data, *DDP_OVERRIDES, "train.steps=4")
    train(config, tmp_path / "w0", progress=False)
    train(tiny_config(tiny_data, *DDP_OVERRIDES, "train.steps=4", "train.workers=2"), tmp_path / "w2", progress=False)
    a, b = load_file(str(tmp_path / "w0" / CHECKPOINT_NAME)), load_file(str(tmp_path / "w2" / CHECKPOINT_NAME))
    assert sorted(a) == sorted(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_step_items_are_the_rank_shards_read_in_file_order(tiny_data: Path) -> None:
    pairs = PairSet(FileSource(TrajectoryFile(tiny_data)), window=3)
    full = StepBatches(pairs, 8, seed=1, steps=5, unroll=1)[4]
    halves = [StepBatches(pairs, 8, seed=1, steps=5, rank=r, world_size=2, unroll=1)[4] for r in (0, 1)]
    index = batch_indices(pairs.n_pairs, 8, 1, 4)
    assert np.array_equal(full["index"].numpy(), index)
    for key in ("index", "window", "target", "start"):
        assert torch.equal(torch.cat([h[key] for h in halves]), full[key]), key
    window, target = pairs.batch(index)
    assert torch.equal(full["window"], window) and torch.equal(full["target"], target)
    assert all(torch.equal(a, b) for a, b in zip(read_pairs(pairs, index), pairs.batch(index)))


# ------------------------------------------------------------------------------ bounded memory

MEMORY_CAP = 64 << 20  # peak-RSS growth allowed while training
STREAM_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    import stochlift.lifting.pairs
    from stochlift.config import apply_overrides, load_config
    from stochlift.lifting.train import train

    # the 200 MiB split is under the 256 MiB that training holds in memory: measure the streaming path
    stochlift.lifting.pairs.IN_MEMORY_BYTES = 0

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

    warm_data, data, out, *overrides = sys.argv[1:]
    # torch initialises lazily (the first optimizer step alone imports ~140 MB of torch._dynamo): a
    # one-step run on another, tiny file pays for that first, so what is measured next is what the data cost
    train(apply_overrides(load_config(None), [*overrides, "train.steps=1", f"data.path={warm_data}"]), out + "-warm",
          progress=False)
    config = apply_overrides(load_config(None), [*overrides, f"data.path={data}"])
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # peak RSS := current RSS
    before = status("VmRSS")
    train(config, out, progress=False)
    print("GROWTH", status("VmHWM") - before)
    """
)


def test_training_on_a_file_3x_larger_than_the_memory_cap_stays_under_it(tmp_path: Path, tiny_data: Path) -> None:
    """A 200 MiB float32 file; training (NaN check over the whole split, residual scale, 30 batches read
    in this process, workers=0, so that every read counts) grows the peak resident set by less than
    MEMORY_CAP = 64 MiB (measured: 41-46 MiB, flat for files of 50-400 MiB; mostly the NaN-check block and
    the residual-scale sample)."""
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc/self/clear_refs to measure the peak resident set")
    size, frames, trajectories = 32, 160, 320  # 4 KiB per frame, 640 KiB per trajectory: 200 MiB
    path = tmp_path / "big.h5"
    meta = tiny_meta(frames=frames, size=size)
    rng = np.random.default_rng(0)
    with TrajectoryWriter(path, meta, {"train": trajectories}) as writer:
        for start in range(0, trajectories, 40):
            writer.write("train", start, {"u": rng.standard_normal((40, frames, size, size), dtype=np.float32)})
    file_bytes = trajectories * frames * size * size * 4
    assert file_bytes >= 3 * MEMORY_CAP and path.stat().st_size >= 3 * MEMORY_CAP
    script = tmp_path / "stream.py"
    script.write_text(STREAM_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(tiny_data), str(path), str(tmp_path / "run"),
         "model.options={depths: [8, 16], mid_blocks: 1, embed_width: 16, groups: 4}", "model.label_dim=4",
         "train.steps=30", "train.batch_size=16", "train.checkpoint_every=30"],
        capture_output=True, text=True, env=cli_env(), timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    growth = int(proc.stdout.split("GROWTH")[1])
    print(f"file {file_bytes / 2**20:.0f} MiB, peak RSS growth {growth / 2**20:.1f} MiB, cap {MEMORY_CAP >> 20} MiB")
    assert growth < MEMORY_CAP
