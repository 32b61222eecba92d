"""No silent data loss (issue 21): outputs never overwrite inputs, one training per run directory at a time,
temporary files of killed writers are cleaned, SIGTERM unwinds like Ctrl-C, and a full disk is one line.

Each test states the case of issue 21 it covers; each failed before the fix (an input destroyed with exit 0,
a mixed run, a temporary left forever, a segmentation fault).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_OVERRIDES, CliResult, cli_command, cli_env, tiny_config, write_tiny
from stochlift.lifting.train import train
from test_cli_errors import assert_one_line_error

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def snapshot(*paths: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in paths}


@pytest.fixture(scope="module")
def run_on_copy(tmp_path_factory: pytest.TempPathFactory, one_torch_thread) -> Path:
    """A finished tiny run trained on its own data file (tests try to destroy it)."""
    folder = tmp_path_factory.mktemp("safety")
    data = write_tiny(folder / "data.h5")
    train(tiny_config(data, "train.steps=2"), folder / "run", progress=False)
    return folder / "run"


# ----------------------------------------------------------------- case 1: an output that is an input


def test_evaluate_refuses_an_out_that_is_one_of_its_inputs(run_cli_inprocess, tmp_path: Path) -> None:
    reference, generated = write_tiny(tmp_path / "ref.h5"), write_tiny(tmp_path / "gen.h5", splits={"generated": 3})
    before = snapshot(reference, generated)
    for target in (reference, generated):
        result = run_cli_inprocess("evaluate", "--reference", reference, "--generated", generated, "--out", target)
        assert_one_line_error(result, "refusing to write", "it is the input")
    assert snapshot(reference, generated) == before


def test_sample_refuses_to_write_over_the_runs_data_or_its_start(run_cli_inprocess, run_on_copy: Path,
                                                                 tmp_path: Path) -> None:
    data = run_on_copy.parent / "data.h5"
    initial = write_tiny(tmp_path / "initial.h5")
    before = snapshot(data, initial, run_on_copy / "checkpoint.safetensors")
    assert_one_line_error(run_cli_inprocess("sample", "--run", run_on_copy, "--out", data, "--trajectories", "2"),
                          "refusing to write", str(data))
    assert_one_line_error(run_cli_inprocess("sample", "--run", run_on_copy, "--out", initial, "--initial", initial),
                          "refusing to write")
    assert_one_line_error(run_cli_inprocess("sample", "--run", run_on_copy, "--trajectories", "2",
                                            "--out", run_on_copy / "checkpoint.safetensors"), "refusing to write")
    link = tmp_path / "link.h5"  # the same file under another name
    link.symlink_to(data)
    assert_one_line_error(run_cli_inprocess("sample", "--run", run_on_copy, "--out", link, "--trajectories", "2"),
                          "refusing to write")
    assert snapshot(data, initial, run_on_copy / "checkpoint.safetensors") == before


def test_report_refuses_to_write_over_the_checkpoint(run_cli_inprocess, run_on_copy: Path) -> None:
    checkpoint = run_on_copy / "checkpoint.safetensors"
    before = snapshot(checkpoint)
    result = run_cli_inprocess("report", "--run", run_on_copy, "--out", checkpoint, "--quiet")
    assert_one_line_error(result, "refusing to write", "checkpoint.safetensors")
    assert snapshot(checkpoint) == before


def test_export_well_refuses_an_out_that_holds_its_source(run_cli_inprocess, tmp_path: Path) -> None:
    folder = tmp_path / "exported"
    folder.mkdir()
    source = write_tiny(folder / "wave.h5")
    before = snapshot(source)
    result = run_cli_inprocess("data", "export-well", source, "--out", folder, "--overwrite", "--quiet")
    assert_one_line_error(result, "refusing to write", "it holds the input")
    assert snapshot(source) == before


def test_the_guard_sees_links_and_folders(tmp_path: Path) -> None:
    from stochlift.errors import StochliftError
    from stochlift.io import refuse_overwriting_inputs

    data = write_tiny(tmp_path / "a" / "data.h5")
    hard = tmp_path / "hard.h5"
    os.link(data, hard)
    for output in (data, hard, tmp_path / "a", tmp_path / "a" / ".." / "a" / "data.h5"):
        with pytest.raises(StochliftError, match="refusing to write"):
            refuse_overwriting_inputs([output], [data])
    refuse_overwriting_inputs([tmp_path / "a" / "other.h5", tmp_path / "b"], [data, None])  # unrelated: fine
    refuse_overwriting_inputs([tmp_path / "a" / "data.h5.out"], [data])  # a prefix of the name is not a folder


# ----------------------------------------------------------------- case 2: two trainings of one run


def _wait_for(condition, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the process ended early (exit {proc.returncode}): {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"nothing happened within {timeout} s")
        time.sleep(0.05)


def sigterm_when(proc: subprocess.Popen, condition, then) -> str:
    """Wait (at most 120 s) until `condition()`, call `then()`, send SIGTERM and return the stderr; the
    process never outlives the test."""
    try:
        _wait_for(condition, 120, proc)
        then()
        proc.send_signal(signal.SIGTERM)
        return proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_second_training_into_the_same_run_fails_at_once_and_sigterm_unwinds(
    run_cli_inprocess, tmp_path: Path, tiny_data: Path
) -> None:
    """While one `stochlift train --out RUN` runs, a second one into RUN fails at once, naming the first (it
    used to go ahead); SIGTERM then ends the first like Ctrl-C (exit 143, 'interrupted', no temporary left)."""
    run = tmp_path / "run"
    long = (*TINY_OVERRIDES, "train.steps=100000", "train.checkpoint_every=5")
    first = subprocess.Popen(cli_command("train", "--data", tiny_data, "--out", run, "--quiet", *long),
                             env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def second_training() -> None:
        second = run_cli_inprocess("train", "--data", tiny_data, "--out", run, "--quiet", "--resume",
                                   *TINY_OVERRIDES, "train.steps=3")
        assert_one_line_error(second, "is in use by process", str(first.pid))

    err = sigterm_when(first, lambda: (run / "checkpoint.safetensors").is_file(), second_training)
    assert first.returncode == 143, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert "steps: 100000" in (run / "config.yaml").read_text()


def test_two_trainings_started_together_never_both_succeed(tmp_path: Path, tiny_data: Path) -> None:
    """Started at the same moment with different settings, one trains and the other fails with one line:
    never both exit 0 with a run whose config is one's and whose checkpoint is the other's."""
    from stochlift.config import load_config
    from stochlift.lifting.checkpoint import read_checkpoint

    run = tmp_path / "run"
    procs = [subprocess.Popen(cli_command("train", "--data", tiny_data, "--out", run, "--quiet", *TINY_OVERRIDES,
                                          "train.steps=40", f"model.label_dim={d}"),
                              env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for d in (4, 8)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], errors
    loser = errors[[p.returncode for p in procs].index(2)]
    assert "in use by process" in loser or "already holds a run" in loser, loser
    _, state, _ = read_checkpoint(run / "checkpoint.safetensors")
    assert state.config["model"]["label_dim"] == load_config(run / "config.yaml").model.label_dim


def test_the_lock_is_free_again_after_a_run(tmp_path: Path, tiny_data: Path) -> None:
    from stochlift.io import exclusive

    train(tiny_config(tiny_data, "train.steps=1"), tmp_path / "run", progress=False)
    with exclusive(tmp_path / "run", wait=False):  # nobody holds it now; and it is re-entrant in a thread
        with exclusive(tmp_path / "run", wait=False):
            pass


# ----------------------------------------------------- temporary files of killed writers (case 8)


KILLED_WRITER = """
import os, signal, sys
from stochlift.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_writer_killed_with_sigkill_leaves_a_temporary_the_next_run_removes(run_cli_inprocess,
                                                                              tmp_path: Path) -> None:
    out = tmp_path / "wave.h5"
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(out)], env=cli_env())
    assert killed.returncode == -signal.SIGKILL
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".wave.h5.")]
    assert len(left) == 1 and left[0].read_bytes() == b"half"
    live = tmp_path / f".wave.h5.{os.getpid()}.abcdefgh.tmp"  # a live writer's (ours): left alone
    live.write_bytes(b"busy")
    other = tmp_path / ".wave.h5.notes"  # not a temporary of ours
    other.write_bytes(b"keep")
    result = run_cli_inprocess("data", "wave", "--out", out, "--trajectories", "4", "--frames", "4", "--size", "8",
                               "--quiet")
    assert result.returncode == 0, result.stderr
    assert not left[0].exists() and live.exists() and other.exists() and out.is_file()


def test_sigterm_while_sampling_removes_the_unfinished_file(run_on_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "samples.h5"
    proc = subprocess.Popen(cli_command("sample", "--run", run_on_copy, "--out", out, "--trajectories", "64",
                                        "--frames", "100000", "--batch-size", "64", "--quiet"),
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = sigterm_when(proc, lambda: any(p.name.startswith(".samples.h5.") for p in tmp_path.iterdir()),
                       lambda: time.sleep(0.5))
    assert proc.returncode == 143 and err.strip().splitlines()[-1] == "interrupted", err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ------------------------------------------------------------------------- a full disk (case 8)


def run_cli_with_file_limit(limit: int, *args: str | os.PathLike) -> CliResult:
    """The CLI with writes beyond `limit` bytes per file failing (RLIMIT_FSIZE: EFBIG, as a full disk fails
    with ENOSPC), through the same HDF5 and safetensors paths."""

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(cli_command(*args), capture_output=True, text=True, env=cli_env(), timeout=300,
                          preexec_fn=limited)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("command", ["data", "sample"])
def test_a_failing_hdf5_write_is_one_line_not_a_crash(command: str, run_on_copy: Path, tmp_path: Path) -> None:
    """HDF5 used to fail its close, print `error:` and then crash at exit (segmentation fault, exit 139)."""
    out = tmp_path / "out" / "file.h5"
    args = (("data", "wave", "--out", out, "--trajectories", "40", "--frames", "16", "--size", "32")
            if command == "data" else
            ("sample", "--run", run_on_copy, "--out", out, "--trajectories", "600", "--frames", "30"))
    result = run_cli_with_file_limit(1 << 20, *args, "--quiet")
    assert_one_line_error(result, "File too large")
    assert sorted(p.name for p in out.parent.iterdir()) == []


def test_a_failing_checkpoint_write_is_one_line(tmp_path: Path, tiny_data: Path) -> None:
    """safetensors' own SafetensorError used to escape as a traceback."""
    run = tmp_path / "run"
    result = run_cli_with_file_limit(8 << 10, "train", "--data", tiny_data, "--out", run, "--quiet",
                                     *TINY_OVERRIDES, "train.steps=1")
    assert_one_line_error(result, "cannot write", "checkpoint.safetensors")
    assert not (run / "checkpoint.safetensors").exists()
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
