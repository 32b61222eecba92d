"""Export one of our trajectory files in The Well's layout (`stochlift data export-well`).

    <out>/data/<split>/<name>.hdf5     one file per split: train, valid, test (The Well's names)
    <out>/stats.yaml                   mean, std, mean_delta, std_delta per field (of the train split)

Each file follows The Well's schema (root attributes, /dimensions, /boundary_conditions, /scalars,
t0_fields / t1_fields / t2_fields). Our channels become scalar t0_fields, [n_traj, T, x, y] with x our
frame's H axis and y its W axis (see stochlift.data.well: reading them back gives our frames exactly);
values are written in physical units (stored value * the field's normalization_scale); static
per-trajectory fields (e.g. the wave speed) become t0_fields with time_varying=False, [n_traj, x, y].
Channels that came from a Well vector or tensor field (our metadata's `well_fields` record, kept by `data
import` and by sampling a run trained on The Well) go back whole: `velocity_x`, `velocity_y` as the t1 field
`velocity` [n_traj, T, x, y, 2], constant ones with time_varying=False. Numeric parameters go in
`simulation_parameters`, as root attributes and as /scalars datasets of shape () (as The Well writes them).

Our split names map to The Well's: train -> train; valid, val, validation -> valid; test -> test. Any
other split (e.g. 'generated' in a file of samples) must be mapped explicitly (`--split-map generated=test`).
The statistics are those of the splits exported as train (of all exported data when there is none), in
float64: mean and standard deviation of every value, and of every frame-to-frame change (mean_delta,
std_delta). The whole tree is written in a temporary directory and renamed into place when complete.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

from stochlift.data.h5write import writing
from stochlift.data.trajectories import TrajectoryFile, TrajectoryMeta
from stochlift.data.well import WELL_FIELDS, FieldSpec
from stochlift.errors import StochliftError
from stochlift.io import atomic_dir, refuse_overwriting_inputs
from stochlift.progress import tqdm

WELL_SPLITS = ("train", "valid", "test")
SPLIT_NAMES = {"train": "train", "training": "train", "valid": "valid", "val": "valid", "validation": "valid",
               "test": "test", "testing": "test"}
BLOCK_BYTES = 64 << 20  # rows of trajectories are read and written in blocks of at most about this size
_RESERVED = {"dataset_name", "grid_type", "n_spatial_dims", "n_trajectories", "simulation_parameters", "problem",
             WELL_FIELDS}
GROUPS = ("t0_fields", "t1_fields", "t2_fields")


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
            raise StochliftError(f"--split-map {ours}={theirs}: the file has no split {ours!r}; it has {splits}")
        if theirs not in WELL_SPLITS:
            raise StochliftError(f"--split-map {ours}={theirs}: The Well's splits are {list(WELL_SPLITS)}")
    unknown = [s for s in splits if s not in given and s.lower() not in SPLIT_NAMES]
    if unknown:
        raise StochliftError(f"split(s) {unknown} have no counterpart among The Well's {list(WELL_SPLITS)}; "
                             f"map them, e.g. --split-map {unknown[0]}=test")
    return {s: given.get(s) or SPLIT_NAMES[s.lower()] for s in splits}


def field_layout(meta: TrajectoryMeta, static: list[str]) -> list[FieldSpec]:
    """The Well fields to write: those of the `well_fields` record whose channels this file has (in order,
    2^order of them), then every other channel and static field as a scalar t0 field."""
    used: set[str] = set()
    layout: list[FieldSpec] = []
    record = meta.parameters.get(WELL_FIELDS)
    for entry in record if isinstance(record, list) else []:
        try:
            group, name, channels, varying = entry["group"], str(entry["name"]), tuple(entry["channels"]), bool(
                entry["time_varying"])
        except (KeyError, TypeError):
            continue
        pool = meta.field_names if varying else static
        if group in GROUPS and len(channels) == 2 ** GROUPS.index(group) and used.isdisjoint(channels) \
                and all(c in pool for c in channels):
            layout.append(FieldSpec(group, name, channels, True, (True, True), varying))
            used.update(channels)
    layout += [FieldSpec("t0_fields", c, (c,), True, (True, True), True) for c in meta.field_names if c not in used]
    layout += [FieldSpec("t0_fields", s, (s,), True, (True, True), False) for s in static if s not in used]
    return layout


def _attr(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str, np.integer, np.floating)):
        return value
    return json.dumps(value)


def _write_file(path: Path, file: TrajectoryFile, split: str, static: list[str], moments: dict | None,
                bar: tqdm) -> None:
    m, n = file.meta, file.splits[split]
    layout = field_layout(m, static)
    index = {c: i for i, c in enumerate(m.field_names)}
    assert m.x is not None and m.y is not None  # a 2-D file: export_well checks the spatial dims
    h, w = len(m.x), len(m.y)
    scales = np.array([m.field_scales.get(name, 1.0) for name in m.field_names], np.float32)[:, None, None]
    with writing(path) as f:
        numeric = sorted(k for k, v in m.parameters.items() if isinstance(v, (int, float)) and k not in _RESERVED)
        f.attrs.update(dataset_name=m.dataset_name, grid_type="cartesian", n_spatial_dims=2, n_trajectories=n,
                       problem=m.problem, simulation_parameters=np.array(numeric, dtype=h5py.string_dtype()))
        for key, value in m.parameters.items():
            if key not in _RESERVED:
                f.attrs[key] = _attr(value)
        scalars = f.create_group("scalars")
        scalars.attrs["field_names"] = np.array(numeric, dtype=h5py.string_dtype())
        for key in numeric:
            d = scalars.create_dataset(key, data=np.asarray(m.parameters[key]))  # shape (): The Well's scalars
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
        groups = {g: f.create_group(g) for g in GROUPS}
        for g in GROUPS:
            names = [spec.name for spec in layout if spec.group == g]
            groups[g].attrs["field_names"] = np.array(names, dtype=h5py.string_dtype())
        chunk_t = int(np.clip((1 << 20) // (4 * h * w), 1, m.frames))
        for spec in layout:
            components = [2] * GROUPS.index(spec.group)
            timed = (m.frames,) if spec.time_varying else ()
            d = groups[spec.group].create_dataset(spec.name, (n, *timed, h, w, *components), "f4",
                                                  chunks=(1, *(chunk_t,) * len(timed), h, w, *components))
            d.attrs.update(dim_varying=np.array([True, True]), sample_varying=True, time_varying=spec.time_varying)
        rows = max(1, BLOCK_BYTES // (4 * m.frames * m.channels * h * w))
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            values = file.read(split, slice(start, stop)) * scales  # [rows, T, C, H, W], physical units
            extra = {name: file.read_static(split, name, slice(start, stop)).astype(np.float32) for name in static}
            for spec in layout:
                if spec.time_varying:
                    part = np.moveaxis(values[:, :, [index[c] for c in spec.channels]], 2, -1)  # [rows, T, H, W, k]
                else:
                    part = np.stack([extra[c] for c in spec.channels], axis=-1)  # [rows, H, W, k]
                shape = groups[spec.group][spec.name].shape[1:]
                groups[spec.group][spec.name][start:stop] = part.reshape(len(part), *shape)
            if moments is not None:
                moments["fields"].add(values, 2)
                moments["delta"].add(np.diff(values, axis=1), 2)
                for name, array in extra.items():
                    moments[name].add(array[:, None], 1)
            bar.update(stop - start)


def well_stats(layout: list[FieldSpec], channels: list[str], moments: dict[str, Moments]) -> dict[str, dict]:
    """stats.yaml's mean, std (every field) and mean_delta, std_delta (time-varying ones): a number per scalar
    field, a list per component for vectors and tensors, as The Well writes them."""
    stats: dict[str, dict] = {"mean": {}, "std": {}, "mean_delta": {}, "std_delta": {}}
    for spec in layout:
        if spec.time_varying:
            k = [channels.index(c) for c in spec.channels]
            parts = {"mean": moments["fields"].mean[k], "std": moments["fields"].std[k],
                     "mean_delta": moments["delta"].mean[k], "std_delta": moments["delta"].std[k]}
        else:
            parts = {key: np.array([getattr(moments[c], key)[0] for c in spec.channels]) for key in ("mean", "std")}
        for key, values in parts.items():
            stats[key][spec.name] = float(values[0]) if len(spec.channels) == 1 else values.tolist()
    return stats


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
    refuse_overwriting_inputs([out], [src])
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
        stats = well_stats(field_layout(file.meta, static), list(file.meta.field_names), moments)
        if not all(np.isfinite(v).all() for part in stats.values() for v in part.values()):
            raise StochliftError(f"{src}: the statistics are not finite (NaN or Inf in the data?)")
        header = f"# statistics of split(s) {trained} of {src.name}, written by stochlift data export-well\n"
        (tmp / "stats.yaml").write_text(header + yaml.safe_dump(stats, sort_keys=False))
    return out
