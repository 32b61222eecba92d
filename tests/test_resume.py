"""An interrupted and resumed training run ends bit-identical to an uninterrupted one with the same seed.

Every tensor of the final checkpoint (weights, EMA weights, optimizer moments and step counters) must be
equal (torch.equal), which catches any training state that the checkpoint forgets.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from conftest import cli_command, cli_env, run_cli_subprocess, tiny_config
from stochlift.errors import StochliftError
from stochlift.lifting.checkpoint import CHECKPOINT_NAME, read_checkpoint
from stochlift.lifting.loader import StepBatches
from stochlift.lifting.runs import load_run
from stochlift.lifting.train import train

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

# EMA and gradient clipping on (both carry state or act on every step), warm-up into a cosine schedule,
# checkpoints every 4 steps so an interruption between checkpoints loses (and must redo) some steps.
RESUME_OVERRIDES = (
    "train.steps=10",
    "train.batch_size=4",
    "train.lr=1e-3",
    "train.ema_decay=0.9",
    "train.grad_clip=0.05",
    "train.warmup_steps=3",
    "train.schedule=cosine",
    "train.checkpoint_every=4",
    "train.log_every=1",
    "train.seed=5",
)


def checkpoint_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / CHECKPOINT_NAME))


def checkpoint_metadata(run_dir: Path) -> dict[str, str]:
    with safe_open(str(run_dir / CHECKPOINT_NAME), framework="pt") as f:
        return f.metadata()


def assert_identical_checkpoints(a: Path, b: Path) -> None:
    ta, tb = checkpoint_tensors(a), checkpoint_tensors(b)
    assert sorted(ta) == sorted(tb), f"tensor names differ: {sorted(set(ta) ^ set(tb))}"
    assert any(k.startswith("model.") for k in ta)
    assert any(k.startswith("ema.") for k in ta), "EMA is on, so its weights must be in the checkpoint"
    assert any(k.startswith("optim.") for k in ta)
    different = [k for k in ta if ta[k].dtype != tb[k].dtype or not torch.equal(ta[k], tb[k])]
    assert not different, f"{len(different)} of {len(ta)} tensors differ after resuming, e.g. {different[:5]}"
    ma, mb = checkpoint_metadata(a), checkpoint_metadata(b)
    for key in ("step", "config", "param_groups"):
        assert ma[key] == mb[key], f"checkpoint metadata {key!r} differs"


# ------------------------------------------------------------------------------------------ in-process


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path, one_torch_thread) -> Path:
    """The uninterrupted reference run."""
    run = tmp_path_factory.mktemp("straight") / "run"
    train(tiny_config(tiny_data, *RESUME_OVERRIDES), run, progress=False)
    return run


def test_stop_and_resume_matches_an_uninterrupted_run(straight_run: Path, tmp_path: Path, tiny_data: Path) -> None:
    config = tiny_config(tiny_data, *RESUME_OVERRIDES)
    run = tmp_path / "run"
    train(config, run, stop_after=6, progress=False)  # 6 is not a multiple of checkpoint_every=4
    _, state, _ = read_checkpoint(run / CHECKPOINT_NAME)
    assert state.step == 6
    result = train(config, run, resume=True, progress=False)
    assert_identical_checkpoints(run, straight_run)
    assert checkpoint_metadata(run)["history"] == checkpoint_metadata(straight_run)["history"]
    # what train() hands back (and load_run rebuilds) are the EMA weights
    ema = {k[4:]: v for k, v in checkpoint_tensors(run).items() if k.startswith("ema.")}
    for name, value in result.model.state_dict().items():
        assert torch.equal(value, ema[name]), name
    model, _, _ = load_run(run)
    for name, value in model.state_dict().items():
        assert torch.equal(value, ema[name]), name


def test_crash_between_checkpoints_and_resume_matches(
    straight_run: Path, tmp_path: Path, tiny_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash at step 7 loses steps 5-7; the resume redoes them from the step-4 checkpoint, exactly."""
    config = tiny_config(tiny_data, *RESUME_OVERRIDES)
    run = tmp_path / "run"
    real = StepBatches.global_batch

    def crashing(self, step):
        if step == 7:
            raise KeyboardInterrupt
        return real(self, step)

    monkeypatch.setattr(StepBatches, "global_batch", crashing)
    with pytest.raises(KeyboardInterrupt):
        train(config, run, progress=False)
    monkeypatch.setattr(StepBatches, "global_batch", real)
    _, state, _ = read_checkpoint(run / CHECKPOINT_NAME)
    assert state.step == 4
    train(config, run, resume=True, progress=False)
    assert_identical_checkpoints(run, straight_run)


def test_resuming_a_finished_run_changes_nothing(straight_run: Path, tmp_path: Path, tiny_data: Path) -> None:
    before = (straight_run / CHECKPOINT_NAME).read_bytes()
    train(tiny_config(tiny_data, *RESUME_OVERRIDES), straight_run, resume=True, progress=False)
    assert (straight_run / CHECKPOINT_NAME).read_bytes() == before


def test_resume_refuses_a_different_training_config(straight_run: Path, tiny_data: Path) -> None:
    before = (straight_run / CHECKPOINT_NAME).read_bytes()
    with pytest.raises(StochliftError, match="cannot resume .*train.seed"):
        train(tiny_config(tiny_data, *RESUME_OVERRIDES, "train.seed=6"), straight_run, resume=True, progress=False)
    assert (straight_run / CHECKPOINT_NAME).read_bytes() == before


def test_resume_keeps_the_loss_history(tmp_path: Path, tiny_data: Path) -> None:
    config = tiny_config(tiny_data, *RESUME_OVERRIDES, "train.log_every=4", "train.steps=8")
    train(config, tmp_path / "b", progress=False)
    train(config, tmp_path / "a", stop_after=6, progress=False)
    train(config, tmp_path / "a", resume=True, progress=False)
    assert_identical_checkpoints(tmp_path / "a", tmp_path / "b")  # the weights are fine ...
    assert checkpoint_metadata(tmp_path / "a")["history"] == checkpoint_metadata(tmp_path / "b")["history"]


# --------------------------------------------------------------------------------------- a real kill

KILL_STEPS = 60  # long enough that the kill (at the first checkpoint with step >= 2) lands mid-run


def _cli_train_args(data: Path, run: Path, *extra: str) -> list[str]:
    return [
        "train", "--data", str(data), "--out", str(run), "--quiet",
        "model.options={depths: [8, 16], mid_blocks: 1, embed_width: 16, groups: 4}",
        "model.label_dim=4",
        *RESUME_OVERRIDES,
        f"train.steps={KILL_STEPS}",
        "train.checkpoint_every=2",
        "train.log_every=5",
        *extra,
    ]


def _checkpoint_step(run: Path) -> int | None:
    if not (run / CHECKPOINT_NAME).is_file():
        return None
    try:
        _, state, _ = read_checkpoint(run / CHECKPOINT_NAME)
    except StochliftError:  # cannot happen with atomic replaces; tolerate it rather than flake
        return None
    return state.step


def test_sigkill_and_cli_resume_matches_an_uninterrupted_cli_run(tmp_path: Path, tiny_data: Path) -> None:
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    # the uninterrupted reference runs alongside the one to be killed (one thread each), to save wall time
    reference = subprocess.Popen(
        cli_command(*_cli_train_args(tiny_data, straight)),
        env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    proc = subprocess.Popen(
        cli_command(*_cli_train_args(tiny_data, killed)),
        env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        step = None
        while time.monotonic() < deadline and proc.poll() is None:
            step = _checkpoint_step(killed)
            if step is not None and step >= 2:
                break
            time.sleep(0.01)
        if proc.poll() is not None:
            err = proc.stderr.read()
            pytest.fail(
                f"the training run ended (exit {proc.returncode}, checkpoint step {_checkpoint_step(killed)}) "
                f"before it could be killed; raise KILL_STEPS.\nstderr: {err[-2000:]}"
            )
        if step is None or step < 2:
            pytest.fail(f"no checkpoint with step >= 2 within 120 s (last seen: {step})")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        stopped_at = _checkpoint_step(killed)
        if proc.returncode == 0 or (stopped_at is not None and stopped_at >= KILL_STEPS):
            pytest.fail(f"the run had already finished (step {stopped_at}) when SIGKILL landed; raise KILL_STEPS")
        assert proc.returncode == -signal.SIGKILL, proc.returncode
        assert stopped_at is not None and stopped_at >= 2, stopped_at

        # resume through the CLI (while the reference may still be running)
        resumed = run_cli_subprocess(*_cli_train_args(tiny_data, killed), "--resume", timeout=300)
        reference_err = reference.communicate(timeout=300)[1]
    finally:
        for p in (proc, reference):
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
            p.stderr.close()
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert reference.returncode == 0, reference_err

    assert int(checkpoint_metadata(killed)["step"]) == KILL_STEPS
    assert int(checkpoint_metadata(straight)["step"]) == KILL_STEPS
    assert_identical_checkpoints(killed, straight)
    print(f"killed at checkpoint step {stopped_at} of {KILL_STEPS}")


# ------------------------------------------------------------------------ which data (issue 21, case 3)


def test_resume_refuses_other_data_at_the_same_path(tmp_path: Path, run_cli_inprocess) -> None:
    """The data file replaced by another of the same shape (a re-simulation with another seed): a one-line
    error, and the run is left as it was, instead of continuing silently on other data."""
    from conftest import write_tiny
    from test_cli_errors import assert_one_line_error

    data, run = write_tiny(tmp_path / "data.h5"), tmp_path / "run"
    train(tiny_config(data, *RESUME_OVERRIDES), run, stop_after=6, progress=False)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    write_tiny(data, seed=1)  # same shape, splits and metadata; other values
    line = assert_one_line_error(run_cli_inprocess("train", "--out", run, "--resume", "--quiet"),
                                 "cannot resume", "not the data it was trained on", "--data")
    assert str(data.resolve()) in line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_resume_follows_data_that_moved(straight_run: Path, tmp_path: Path, run_cli_inprocess) -> None:
    """The data file moved after the interruption: `--resume --data NEWPATH` continues exactly (its fingerprint
    matches), and the run records the new path."""
    import shutil

    from conftest import write_tiny

    data, run = write_tiny(tmp_path / "data.h5"), tmp_path / "run"  # the same values as tiny_data
    train(tiny_config(data, *RESUME_OVERRIDES), run, stop_after=6, progress=False)
    moved = tmp_path / "elsewhere" / "renamed.h5"
    moved.parent.mkdir()
    shutil.move(data, moved)
    stale = run_cli_inprocess("train", "--out", run, "--resume", "--quiet")
    assert stale.returncode == 2 and "no such file" in stale.stderr
    result = run_cli_inprocess("train", "--out", run, "--resume", "--data", moved, "--quiet")
    assert result.returncode == 0, result.stderr
    ta, tb = checkpoint_tensors(run), checkpoint_tensors(straight_run)
    assert sorted(ta) == sorted(tb) and all(torch.equal(ta[k], tb[k]) for k in ta)  # exact, as never moved
    _, state, _ = read_checkpoint(run / CHECKPOINT_NAME)
    assert state.config["data"]["path"] == str(moved.resolve()) == state.data["path"]
    assert state.data["fingerprint"] == read_checkpoint(straight_run / CHECKPOINT_NAME)[1].data["fingerprint"]


def test_the_fingerprint_covers_the_values_trained_on(tmp_path: Path) -> None:
    """One value changed anywhere in the trained rows changes the fingerprint; rows beyond data.trajectories,
    other splits and the file's name do not."""
    import h5py

    from conftest import write_tiny
    from stochlift.lifting.train import open_training_data

    def fingerprint(path: Path, *overrides: str) -> str:
        return open_training_data(tiny_config(path, *overrides)).identity["fingerprint"]

    data = write_tiny(tmp_path / "a.h5")
    first = fingerprint(data)
    assert first.startswith("sha256:") and fingerprint(data) == first
    copy = tmp_path / "b.h5"
    copy.write_bytes(data.read_bytes())
    assert fingerprint(copy) == first
    limited = fingerprint(data, "data.trajectories=3")
    assert limited != first
    with h5py.File(copy, "r+") as f:
        f["test/t0_fields/u"][0, 0, 0, 0] += 1.0  # not trained on
        f["train/t0_fields/u"][3, 5, 7, 7] += 1e-3  # beyond the first 3 rows
    assert fingerprint(copy, "data.trajectories=3") == limited
    assert fingerprint(copy) != first
