"""Export one of our trajectory files in The Well's layout (`stochlift data export-well`).

    <out>/data/<split>/<name>.hdf5     one file per split: train, valid, test (The Well's names)
    <out>/stats.yaml                   mean, std, mean_delta, std_delta per field (of the train split)

Each file follows The Well's schema (root attributes, /dimensions, /boundary_conditions, /scalars,
t0_fields / t1_fields / t2_fields). Our channels become scalar t0_fields, [n_traj, T, x, y] with x our
frame's H axis and y its W axis (see stochlift.data.well: reading them back gives our frames exactly);
values are written in physical units (stored value * the field's normalization_scale); static
per-trajectory fields (e.g. the wave speed) become t0_fields with time_varying=False, [n_traj, x, y].
Numeric parameters go in `simulation_parameters`, as root attributes and as /scalars datasets.

Our split names map to The Well's: train -> train; valid, val, validation -> valid; test -> test. Any
other split (e.g. 'generated' in a file of samples) must be mapped explicitly (`--split generated=test`).
The statistics are those of the splits exported as train (of all exported data when there is none), in
float64: mean and standard deviation of every value, and of every frame-to-frame change (mean_delta,
std_delta). The whole tree is written in a temporary directory and renamed into place when complete.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml
from tqdm.auto import tqdm

from stochlift.data.trajectories import TrajectoryFile
from stochlift.errors import StochliftError
from stochlift.io import atomic_dir

WELL_SPLITS = ("train", "valid", "test")
SPLIT_NAMES = {"train": "train", "training": "train", "valid": "valid", "val": "valid", "validation": "valid",
               "test": "test", "testing": "test"}
BLOCK_BYTES = 64 << 20  # rows of trajectories are read and written in blocks of at most about this size
_RESERVED = {"dataset_name", "grid_type", "n_spatial_dims", "n_trajectories", "simulation_parameters", "problem"}


class Moments:
    """Streaming per-channel mean and standard deviation (float64, blocks combined as Chan et al.)."""

    def __init__(self, channels: int) -> None:
        self.n, self.mean, self.m2 = 0, np.zeros(channels), np.zeros(channels)

    def add(self, values: np.ndarray, channel_axis: int) -> None:
        v = np.moveaxis(np.asarray(values, dtype=np.float64), channel_axis, -1).reshape(-1, len(self.mean))
        if not len(v):
            return
        count, mean = len(v), v.mean(axis=0)
        m2 = ((v - mean) ** 2).sum(axis=0)
        total = self.n + count
        delta = mean - self.mean
        self.mean = self.mean + delta * count / total
        self.m2 = self.m2 + m2 + delta**2 * self.n * count / total
        self.n = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.n, 1))


def split_mapping(splits: list[str], given: dict[str, str] | None = None) -> dict[str, str]:
    """Our split -> The Well's (train/valid/test); unknown names must be in `given`."""
    given = dict(given or {})
    for ours, theirs in given.items():
        if ours not in splits:
            raise StochliftError(f"--split {ours}={theirs}: the file has no split {ours!r}; it has {splits}")
        if theirs not in WELL_SPLITS:
            raise StochliftError(f"--split {ours}={theirs}: The Well's splits are {list(WELL_SPLITS)}")
    unknown = [s for s in splits if s not in given and s.lower() not in SPLIT_NAMES]
    if unknown:
        raise StochliftError(f"split(s) {unknown} have no counterpart among The Well's {list(WELL_SPLITS)}; "
                             f"map them, e.g. --split {unknown[0]}=test")
    return {s: given.get(s) or SPLIT_NAMES[s.lower()] for s in splits}


def _attr(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str, np.integer, np.floating)):
        return value
    return json.dumps(value)


def _write_file(path: Path, file: TrajectoryFile, split: str, static: list[str], moments: dict | None,
                bar: tqdm) -> None:
    m, n = file.meta, file.splits[split]
    h, w = len(m.x), len(m.y)
    scales = np.array([m.field_scales.get(name, 1.0) for name in m.field_names], np.float32)[:, None, None]
    with h5py.File(path, "w") as f:
        numeric = sorted(k for k, v in m.parameters.items() if isinstance(v, (int, float)) and k not in _RESERVED)
        f.attrs.update(dataset_name=m.dataset_name, grid_type="cartesian", n_spatial_dims=2, n_trajectories=n,
                       problem=m.problem, simulation_parameters=np.array(numeric, dtype=h5py.string_dtype()))
        for key, value in m.parameters.items():
            if key not in _RESERVED:
                f.attrs[key] = _attr(value)
        scalars = f.create_group("scalars")
        scalars.attrs["field_names"] = np.array(numeric, dtype=h5py.string_dtype())
        for key in numeric:
            d = scalars.create_dataset(key, data=np.asarray([m.parameters[key]]))
            d.attrs.update(sample_varying=False, time_varying=False)
        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = np.array(["x", "y"], dtype=h5py.string_dtype())
        for name, values in (("time", m.time), ("x", m.x), ("y", m.y)):
            d = dims.create_dataset(name, data=np.asarray(values, dtype=np.float32))
            d.attrs.update(sample_varying=False, time_varying=name == "time")
        bcs = f.create_group("boundary_conditions")
        for dim, size, kind in zip(("x", "y"), (h, w), m.bc_types):
            g = bcs.create_group(f"{dim}_{kind.lower()}")
            g.attrs.update(associated_dims=np.array([dim], dtype=h5py.string_dtype()), bc_type=kind,
                           associated_fields=np.array([], dtype=h5py.string_dtype()),
                           sample_varying=False, time_varying=False)
            mask = np.zeros(size, dtype=bool)
            mask[[0, -1]] = True
            g.create_dataset("mask", data=mask)
            g.create_dataset("values", data=np.zeros(int(mask.sum()), dtype=np.float32))
        groups = {g: f.create_group(g) for g in ("t0_fields", "t1_fields", "t2_fields")}
        for g in ("t1_fields", "t2_fields"):
            groups[g].attrs["field_names"] = np.array([], dtype=h5py.string_dtype())
        t0 = groups["t0_fields"]
        t0.attrs["field_names"] = np.array([*m.field_names, *static], dtype=h5py.string_dtype())
        chunk_t = int(np.clip((1 << 20) // (4 * h * w), 1, m.frames))
        for name in m.field_names:
            t0.create_dataset(name, (n, m.frames, h, w), "f4", chunks=(1, chunk_t, h, w))
        for name in static:
            t0.create_dataset(name, (n, h, w), "f4", chunks=(1, h, w))
        for name in (*m.field_names, *static):
            t0[name].attrs.update(dim_varying=np.array([True, True]), sample_varying=True,
                                  time_varying=name in m.field_names)
        rows = max(1, BLOCK_BYTES // (4 * m.frames * m.channels * h * w))
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            values = file.read(split, slice(start, stop)) * scales  # [rows, T, C, H, W], physical units
            for c, name in enumerate(m.field_names):
                t0[name][start:stop] = values[:, :, c]
            extra = [file.read_static(split, name, slice(start, stop)).astype(np.float32) for name in static]
            for name, array in zip(static, extra):
                t0[name][start:stop] = array
            if moments is not None:
                moments["fields"].add(values, 2)
                moments["delta"].add(np.diff(values, axis=1), 2)
                for name, array in zip(static, extra):
                    moments[name].add(array[:, None], 1)
            bar.update(stop - start)


def export_well(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    splits: dict[str, str] | None = None,
    name: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write trajectory file `src` as a Well data set in directory `out`; returns `out`.

    `splits` maps our split names to The Well's (only needed for names other than train/valid/val/test);
    `name` names the files (default: the data set's name). `out` must not exist or be empty unless
    `overwrite`. Nothing appears at `out` unless every file was written.
    """
    with TrajectoryFile(src) as file:
        return _export(file, Path(src), Path(out), splits, name, overwrite, progress)


def _export(file: TrajectoryFile, src: Path, out: Path, splits: dict[str, str] | None, name: str | None,
            overwrite: bool, progress: bool) -> Path:
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise StochliftError(f"{out} already exists and is not empty; pass --overwrite or choose another --out")
    if len(file.meta.spatial_dims) != 2:
        raise StochliftError(f"{src} holds frames {list(file.meta.frame_shape)}; export-well writes 2-D fields "
                             "[C, H, W] only")
    mapping = split_mapping(list(file.splits), splits)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name or file.meta.dataset_name).strip("._") or "data"
    static = sorted(set(file.h5[next(iter(file.splits))]["t0_fields"]) - set(file.meta.field_names))
    trained = [s for s, t in mapping.items() if t == "train"] or list(mapping)
    moments = {"fields": Moments(file.meta.channels), "delta": Moments(file.meta.channels),
               **{n: Moments(1) for n in static}}
    with atomic_dir(out, replace=overwrite) as tmp, \
            tqdm(total=sum(file.splits.values()), desc="export", unit="traj", disable=not progress) as bar:
        for split, target in mapping.items():
            shared = sum(t == target for t in mapping.values()) > 1  # two of ours in one of theirs: tell apart
            path = tmp / "data" / target / (f"{stem}_{split}.hdf5" if shared else f"{stem}.hdf5")
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_file(path, file, split, static, moments if split in trained else None, bar)
        fields = list(file.meta.field_names)
        stats = {
            "mean": {**dict(zip(fields, moments["fields"].mean.tolist())), **{n: float(moments[n].mean[0]) for n in static}},
            "std": {**dict(zip(fields, moments["fields"].std.tolist())), **{n: float(moments[n].std[0]) for n in static}},
            "mean_delta": dict(zip(fields, moments["delta"].mean.tolist())),
            "std_delta": dict(zip(fields, moments["delta"].std.tolist())),
        }
        if not all(math.isfinite(v) for part in stats.values() for v in part.values()):
            raise StochliftError(f"{src}: the statistics are not finite (NaN or Inf in the data?)")
        header = f"# statistics of split(s) {trained} of {src.name}, written by stochlift data export-well\n"
        (tmp / "stats.yaml").write_text(header + yaml.safe_dump(stats, sort_keys=False))
    return out
