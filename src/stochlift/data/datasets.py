"""Built-in data sets: presets, train/valid/test splits and normalisation, written as trajectory files."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stochlift.data.trajectories import TrajectoryMeta, write_trajectories
from stochlift.data.wave import WaveParams, simulate_wave
from stochlift.errors import StochliftError
from stochlift.io import require_disk, require_memory


@dataclass(frozen=True)
class Splits:
    train: int
    valid: int
    test: int

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v > 0}


@dataclass(frozen=True)
class WavePreset:
    params: WaveParams
    splits: Splits
    description: str


WAVE_PRESETS: dict[str, WavePreset] = {
    "quick": WavePreset(
        WaveParams(size=32, frames=64),
        # 128 training trajectories: few enough for a label dimension of 2 x 128 (see configs/wave-quick.yaml)
        # and for each pair to be seen ~8 times in the CPU budget; 256 held out for evaluation
        Splits(train=128, valid=32, test=256),
        "32x32, 64 frames; trains on 2 CPU cores in minutes",
    ),
    "paper": WavePreset(
        WaveParams(size=64, frames=64),
        Splits(train=1024, valid=64, test=512),
        "the paper's Wave set (Appendix D.1): M = 1024 training trajectories, T = 64, 64x64",
    ),
}


def split_sizes(total: int | None, preset: Splits) -> Splits:
    """Preset splits, or `total` trajectories split in the preset's proportions (at least 1 test, 1 train)."""
    if total is None:
        return preset
    if total < 3:
        raise StochliftError(f"--trajectories must be >= 3 (train, valid and test), got {total}")
    whole = preset.train + preset.valid + preset.test
    test = max(1, round(total * preset.test / whole))
    valid = max(1, round(total * preset.valid / whole))
    while total - test - valid < 1:  # rounding left no training trajectory: take one from the larger split
        if test >= valid:
            test -= 1
        else:
            valid -= 1
    return Splits(train=total - test - valid, valid=valid, test=test)


def make_wave_dataset(
    out: str | os.PathLike,
    *,
    preset: str = "quick",
    trajectories: int | None = None,
    frames: int | None = None,
    size: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Simulate the Wave problem and write it with train/valid/test splits.

    All splits come from one seeded simulation (trajectory i of the set is the same whatever the split
    sizes); values are divided by one global max|u| over the whole set, stored as `normalization_scale`.
    """
    if preset not in WAVE_PRESETS:
        raise StochliftError(f"unknown wave preset {preset!r}; choose from {sorted(WAVE_PRESETS)}")
    chosen = WAVE_PRESETS[preset]
    overrides: dict[str, Any] = {k: v for k, v in (("frames", frames), ("size", size)) if v is not None}
    params = dataclasses.replace(chosen.params, **overrides)
    params.validate()
    splits = split_sizes(trajectories, chosen.splits).as_dict()
    n, solve = sum(splits.values()), params.size * params.solve_factor
    stored = 4 * n * params.frames * params.size**2  # float32 frames
    # the frames twice (simulated, then normalised), the float64 speed fields, a solver batch's buffers
    require_memory(2 * stored + 8 * n * solve**2 + 48 * min(n, 128) * solve**2,
                   f"simulating {n} wave trajectories of {params.frames} frames of {params.size} x {params.size}")
    require_disk(out, stored + 4 * n * params.size**2, f"writing {n} wave trajectories")
    sim = simulate_wave(n, params, seed=seed, progress=progress)
    scale = float(np.abs(sim.u).max())
    u = sim.u / scale
    meta = TrajectoryMeta(
        dataset_name=f"wave-{preset}",
        problem="wave",
        field_names=("u",),
        time=sim.time,
        x=sim.x,
        y=sim.x,
        periodic=True,
        field_scales={"u": scale},
        parameters={
            "generator": "stochlift.data.wave.simulate_wave",
            "preset": preset,
            "seed": seed,
            "solver_steps": sim.solver_steps,
            "dt": sim.dt,
            **{k: v for k, v in dataclasses.asdict(params).items()},
            # how evaluation measures this problem (anchors.md section 1)
            "qoi_crossing_threshold": 0.05,
            "qoi_ring_width": 1,
        },
    )
    bounds = np.cumsum([0, *splits.values()])
    arrays = {name: u[a:b, :, None] for name, a, b in zip(splits, bounds[:-1], bounds[1:])}
    static = {name: {"wave_speed": sim.speed[a:b]} for name, a, b in zip(splits, bounds[:-1], bounds[1:])}
    write_trajectories(out, meta, arrays, static)
    return Path(out)
