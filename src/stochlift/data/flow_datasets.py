"""Flow data sets: presets, parallel and resumable generation, written as trajectory files.

Trajectory i of a set is a pure function of (seed, i, settings): its permeability comes from
``numpy.random.default_rng([seed, i])``. Generation runs trajectories in worker processes; each finished
one is saved at once (atomically) as ``<out>.parts/<i>.npz``, next to a ``manifest.json`` of the
settings. A run that is interrupted (Ctrl-C, a crash, a killed job) and started again with the same
settings simulates only the missing trajectories; the HDF5 file is then assembled (atomically) and the
parts directory removed. Changing the number of trajectories keeps the finished parts valid.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from stochlift.data.datasets import Splits, split_sizes
from stochlift.data.flow import FlowParams, run_flow, step_plan
from stochlift.data.permeability import PermeabilityParams, log_permeability
from stochlift.data.trajectories import TrajectoryMeta, TrajectoryWriter
from stochlift.errors import StochliftError
from stochlift.io import atomic_path, require_disk, write_json

__all__ = ["FLOW_PRESETS", "FlowPreset", "area_resample", "make_flow_dataset", "simulate_trajectory"]

PARTS_FORMAT = 1


@dataclass(frozen=True)
class FlowPreset:
    """A Flow data set recipe.

    `stored` is the saved frame size S (S x S); `correlation` the Matérn correlation length as a
    fraction of the domain side (0.1 = the paper's 10 of 100 cells), so a coarser grid keeps the
    same medium statistics.
    """

    params: FlowParams
    stored: int
    splits: Splits
    description: str
    correlation: float = 0.1
    permeability: PermeabilityParams = PermeabilityParams()


FLOW_PRESETS: dict[str, FlowPreset] = {
    "quick": FlowPreset(
        FlowParams(shape=(32, 32), frames=50),
        stored=32,
        # as the Wave quick set: 128 training trajectories (label dimension ~ 2 x 128), >= 128 held out
        splits=Splits(train=128, valid=32, test=192),
        description="32x32 cells, 50 frames; ~0.35 s per trajectory, about a minute on 2 cores",
    ),
    "paper": FlowPreset(
        FlowParams(),  # 100 x 100 cells, t_end 0.7, dt 0.007, 50 frames
        stored=96,
        splits=Splits(train=1000, valid=64, test=512),
        description="the paper's Flow set (Appendix D.2, Table 3): 100x100 cells stored at 96x96, "
                    "M = 1000 training trajectories, T = 50",
    ),
}

#: Evaluation's breakthrough QoI: the producer's corner square spans 1/8 of the stored side, and water
#: has "arrived" when any of its pixels exceeds this saturation (the Buckley-Leverett shock reaches 0.71).
CORNER_FRACTION = 1 / 8
CROSSING_THRESHOLD = 0.5


def area_resample(field: np.ndarray, size: int) -> np.ndarray:
    """Conservative (area-weighted) resampling of the last two axes [..., n, n] to [..., size, size].

    Each new pixel is the overlap-weighted average of the cells it covers, so the mean (the water
    volume) is kept exactly and values stay within the cells' range. 100 -> 96 shifts no well: both
    corner cells stay in the corner pixels, unlike a crop that would cut off the injector or producer.
    """
    n = field.shape[-1]
    if field.shape[-2] != n:
        raise StochliftError(f"area_resample needs square fields, got {field.shape[-2:]}")
    if size == n:
        return field.copy()
    edges_in, edges_out = np.linspace(0.0, 1.0, n + 1), np.linspace(0.0, 1.0, size + 1)
    overlap = np.clip(np.minimum(edges_out[1:, None], edges_in[None, 1:])
                      - np.maximum(edges_out[:-1, None], edges_in[None, :-1]), 0.0, None)
    weights = overlap * size  # [size, n], rows sum to 1
    return weights @ field @ weights.T  # two small matrix products per frame


def simulate_trajectory(index: int, seed: int, params: FlowParams, permeability: PermeabilityParams,
                        stored: int) -> tuple[np.ndarray, np.ndarray]:
    """Trajectory `index`: (saturation [frames, S, S], log-permeability [S, S]), float32, on the stored grid."""
    log_k = log_permeability(seed, index, params.shape, permeability)
    saturation = run_flow(np.exp(log_k), params).saturation
    return (area_resample(saturation, stored).astype(np.float32),
            area_resample(log_k, stored).astype(np.float32))


def _part_path(parts: Path, index: int) -> Path:
    return parts / f"{index:06d}.npz"


def _simulate_part(task: tuple[int, int, FlowParams, PermeabilityParams, int, str]) -> int:
    """Worker: simulate one trajectory and save it atomically as a part file; returns its index."""
    index, seed, params, permeability, stored, parts = task
    saturation, log_k = simulate_trajectory(index, seed, params, permeability, stored)
    with atomic_path(_part_path(Path(parts), index)) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, saturation=saturation, log_permeability=log_k)
    return index


def _manifest(params: FlowParams, permeability: PermeabilityParams, stored: int, seed: int) -> dict[str, Any]:
    """What a part depends on (not the trajectory count); JSON round-tripped so it compares with a file."""
    return json.loads(json.dumps({
        "parts_format": PARTS_FORMAT,
        "flow": dataclasses.asdict(params),
        "permeability": dataclasses.asdict(permeability),
        "stored": stored,
        "seed": seed,
    }))


def _open_parts(parts: Path, manifest: dict[str, Any]) -> None:
    """Create the parts directory, or check that an existing one was made with the same settings."""
    path = parts / "manifest.json"
    if path.is_file():
        try:
            found = json.loads(path.read_text())
        except ValueError:
            found = None
        if found != manifest:
            raise StochliftError(
                f"{parts} holds an unfinished flow data set made with other settings (or seed); "
                f"rerun with those settings to continue it, or delete the directory to start afresh")
        return
    parts.mkdir(parents=True, exist_ok=True)
    write_json(path, manifest)


def _run_parts(todo: list[int], seed: int, params: FlowParams, permeability: PermeabilityParams, stored: int,
               parts: Path, workers: int, progress: bool, done: int, total: int) -> None:
    tasks = [(i, seed, params, permeability, stored, str(parts)) for i in todo]
    with tqdm(total=total, initial=done, desc="flow trajectories", unit="traj", disable=not progress) as bar:
        if workers == 1 or len(tasks) <= 1:  # in-process: no start-up cost, easy to debug
            for task in tasks:
                _simulate_part(task)
                bar.update()
            return
        # spawn, not fork: the parent may hold threads (torch, h5py) that a forked child would inherit
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
            futures = [pool.submit(_simulate_part, task) for task in tasks]
            try:
                for future in as_completed(futures):
                    future.result()
                    bar.update()
            except BaseException:
                for future in futures:  # finish the running ones (their parts are kept), drop the rest
                    future.cancel()
                raise


def _resolve(preset: FlowPreset, frames: int | None, size: int | None, grid: int | None) -> tuple[FlowParams, int]:
    """(simulation params, stored size). A preset that stores its own grid (quick) simulates at `size`;
    one that resamples (paper: 100 -> 96) keeps its grid unless `grid` is given."""
    for name, value in (("frames", frames), ("size", size), ("grid", grid)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise StochliftError(f"flow: {name} must be a positive integer, got {value!r}")
    preset_grid = preset.params.shape[0]
    if grid is None:
        grid = size if (size is not None and preset_grid == preset.stored) else preset_grid
    stored = size if size is not None else (grid if preset_grid == preset.stored else min(preset.stored, grid))
    if stored > grid:
        raise StochliftError(f"flow: stored size {stored} exceeds the simulation grid {grid}; "
                             f"frames are only ever resampled down")
    if grid < 2:
        raise StochliftError(f"flow: the grid needs at least 2 x 2 cells, got {grid}")
    overrides: dict[str, Any] = {"shape": (grid, grid)}
    if frames is not None:
        overrides["frames"] = frames
    params = dataclasses.replace(preset.params, **overrides)
    params.validate()
    return params, stored


def make_flow_dataset(
    out: str | os.PathLike,
    *,
    preset: str = "quick",
    trajectories: int | None = None,
    frames: int | None = None,
    size: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    grid: int | None = None,
) -> Path:
    """Simulate the Flow problem in parallel and write it with train/valid/test splits.

    size: stored frame size S (the quick preset simulates S x S cells; the paper preset simulates its
    100 x 100 cells and area-resamples them to S, 96 by default). grid: simulation cells per side, to
    override that. workers: processes (default: all cores). Saturation is stored as is (already in
    [0, 1]); the static field `log_permeability` holds log K resampled the same way.
    """
    if preset not in FLOW_PRESETS:
        raise StochliftError(f"unknown flow preset {preset!r}; choose from {sorted(FLOW_PRESETS)}")
    if seed < 0:
        raise StochliftError(f"flow: seed must be >= 0, got {seed}")
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise StochliftError(f"flow: workers must be >= 1, got {workers}")
    chosen = FLOW_PRESETS[preset]
    params, stored = _resolve(chosen, frames, size, grid)
    permeability = dataclasses.replace(chosen.permeability, correlation_length=chosen.correlation * params.shape[0])
    permeability.validate()
    splits = split_sizes(trajectories, chosen.splits).as_dict()
    total = sum(splits.values())
    per_trajectory = 4 * (params.frames + 1) * stored**2  # float32 saturation and log-permeability
    require_disk(out, total * per_trajectory, f"writing {total} flow trajectories")

    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    _open_parts(parts, _manifest(params, permeability, stored, seed))
    todo = [i for i in range(total) if not _part_path(parts, i).is_file()]
    require_disk(out, (len(todo) + total) * per_trajectory, f"{len(todo)} flow trajectories to simulate and the file")
    _run_parts(todo, seed, params, permeability, stored, parts, workers, progress, total - len(todo), total)

    corner = max(1, round(stored * CORNER_FRACTION))
    per_frame, step = step_plan(params)
    centres = (np.arange(stored) + 0.5) / stored * params.extent[0]
    meta = TrajectoryMeta(
        dataset_name=f"flow-{preset}",
        problem="flow",
        field_names=("saturation",),
        time=np.linspace(0.0, params.t_end, params.frames),
        x=centres,
        y=centres,
        periodic=False,
        field_scales={"saturation": 1.0},
        parameters={
            "generator": "stochlift.data.flow.run_flow",
            "preset": preset,
            "seed": seed,
            **dataclasses.asdict(params),
            **{f"perm_{k}": v for k, v in dataclasses.asdict(permeability).items()},
            "perm_zbar": "spatial mean of Z",
            "stored_size": stored,
            "resample": "area-average" if stored != params.shape[0] else "none",
            "pressure_steps_per_frame": per_frame,
            "pressure_dt": step,
            "injector_cell": [0, 0],
            "producer_cell": [params.shape[0] - 1, params.shape[1] - 1],
            # how evaluation measures this problem: breakthrough in the producer's corner square
            "qoi_corner_size": corner,
            "qoi_crossing_threshold": CROSSING_THRESHOLD,
        },
    )
    _assemble(out, meta, splits, parts)
    shutil.rmtree(parts, ignore_errors=True)
    return out


def _assemble(out: Path, meta: TrajectoryMeta, splits: dict[str, int], parts: Path, chunk: int = 32) -> None:
    """Stream the parts into the trajectory file, `chunk` trajectories at a time (bounded memory)."""
    with TrajectoryWriter(out, meta, splits, static_fields=["log_permeability"]) as writer:
        first = 0
        for split, count in splits.items():
            for start in range(0, count, chunk):
                rows = range(first + start, first + min(start + chunk, count))
                saturation, log_k = zip(*(_load_part(_part_path(parts, i)) for i in rows))
                saturation, log_k = np.stack(saturation), np.stack(log_k)
                writer.write(split, start, {"saturation": saturation}, static={"log_permeability": log_k})
            first += count


def _load_part(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path) as part:
            return part["saturation"], part["log_permeability"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # a truncated .npz: BadZipFile
        raise StochliftError(f"part file {path} is damaged ({exc}); delete it and rerun to redo it") from None
