"""Train and sample directly on The Well's HDF5 files (PolymathicAI's physics data sets), no conversion.

The Well's layout: <dataset>/data/{train,valid,test}/*.hdf5 (or *.h5) and <dataset>/stats.yaml. Each file
holds /dimensions (time, one coordinate array per name in its `spatial_dims`), /boundary_conditions/<name>
(bc_type PERIODIC | WALL | OPEN on `associated_dims`), /scalars, and the field groups t0_fields (scalars,
[n_traj, T, x, y]), t1_fields (vectors, [..., D]) and t2_fields (tensors, [..., D, D]). Only 2-D grids.

How a file becomes our frames [C, H, W] (the same convention as our own trajectory files, both ways):
  - channels: every time-varying field, in the file's t0, t1, t2 order and each group's `field_names`
    order; a scalar gives one channel `name`, a vector D channels `name_x`, `name_y`, a tensor D*D channels
    `name_xx`, `name_xy`, ... (the suffixes are `spatial_dims`; The Well's own channel names). Fields with
    time_varying=False (constant coefficients) are not part of the state (`WellSource.static_fields` lists
    them, `read_constants` reads them; `stochlift data import` keeps them as static fields); fields with
    sample_varying=False or some dim_varying=False are broadcast over the trajectories or that axis. Which
    channels came from which field is recorded in our metadata (parameter WELL_FIELDS), so that
    `stochlift data export-well` writes a vector back as one t1 field, not as two scalars.
  - space: H is the first spatial dim (x), W the second (y): frame[c, i, j] = field[traj, t, i, j(, comp)],
    no transpose. `stochlift data export-well` writes our [C, H, W] back as [n, T, x=H, y=W].
  - periodic: True when both ends of every spatial dim are PERIODIC (the U-Net then pads circularly);
    otherwise zero padding. An end's condition is read as The Well's loader reads it: a boundary group's
    bc_type holds at an end of its associated dim where its `mask` is set there (WALL: all of that end;
    OPEN, PERIODIC: any of it), and an end no group covers is OPEN. `WellSource.boundaries` has the
    (low, high) types per dim.
  - normalisation: what the model sees is (value - mean) / std per channel, with mean and std of the
    field (per component for vectors and tensors) from stats.yaml, std clipped below at 1e-4 as The Well
    does. No stats.yaml: raw values, with a warning. Samples of a run trained this way are written in
    physical units again (`stochlift sample` de-normalises; see lifting/well_sampling.py).

HDF5 handles are opened lazily, in the process that reads (DataLoader workers open their own), and at
most MAX_OPEN files are held open at once (least recently used closed first), each with a small chunk
cache, so many large files never pile up open handles and caches.
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

from stochlift.data.trajectories import BC_TYPES, TrajectoryMeta
from stochlift.errors import StochliftError

FIELD_GROUPS = ("t0_fields", "t1_fields", "t2_fields")
SUFFIXES = (".hdf5", ".h5")
STD_FLOOR = 1e-4  # The Well's normalisation clips std at this value
MAX_OPEN = 4  # HDF5 files a reader keeps open at once (per process)
CHUNK_CACHE_BYTES = 4 << 20  # h5py chunk cache per open file
NORMALIZATION_FILE = "well_normalization.json"  # in a run trained on The Well's files: what the model saw
WELL_FIELDS = "well_fields"  # our metadata parameter: the Well fields our channels (and static fields) came from


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _names(value: Any) -> list[str]:
    """A string-list attribute (str, bytes, or an array of either) as a list of str."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        return [_text(value)]
    return [_text(v) for v in np.asarray(value).reshape(-1)]


def _simple(value: Any) -> Any:
    """An attribute as a plain int/float/bool/str, or None when it is anything else (arrays, ...)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, (np.generic, bytes)):
        value = value.decode() if isinstance(value, bytes) else value.item()
    return value if isinstance(value, (bool, int, float, str)) else None


def is_well_file(path: str | os.PathLike) -> bool:
    """An HDF5 file with The Well's t0_fields or t1_fields group at its root."""
    try:
        with h5py.File(path, "r") as f:
            return any(isinstance(f.get(g), h5py.Group) for g in FIELD_GROUPS[:2])
    except OSError:
        return False


def is_well_path(path: str | os.PathLike | None) -> bool:
    """Training data in The Well's layout: a directory (of HDF5 files, or a dataset root) or a Well file."""
    if not path:
        return False
    path = Path(path)
    return path.is_dir() or (path.is_file() and is_well_file(path))


def _hdf5_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def dataset_root(directory: Path) -> Path:
    """<dataset> of <dataset>/data/<split>; a directory not in that layout is its own root."""
    return directory.parent.parent if directory.parent.name == "data" else directory


def resolve_files(path: str | os.PathLike, split: str = "train") -> tuple[list[Path], Path]:
    """The HDF5 files a Well path names and the directory holding them.

    `path` is one file, a directory of files, or a dataset root (a directory with data/<split>/ and no
    files of its own), where `split` picks the sub-directory.
    """
    path = Path(path)
    if path.is_file():
        return [path], path.parent
    if not path.is_dir():
        raise StochliftError(f"no such file or directory: {path}")
    directory = path
    if not _hdf5_files(path) and (path / "data").is_dir():
        directory = path / "data" / split
        if not directory.is_dir():
            have = sorted(p.name for p in (path / "data").iterdir() if p.is_dir())
            raise StochliftError(f"{path} has no split {split!r} (no data/{split}/); it has {have}")
    files = _hdf5_files(directory)
    if not files:
        raise StochliftError(f"no HDF5 files (*.hdf5, *.h5) in {directory}; expected The Well's data/<split>/*.hdf5")
    return files, directory


def split_folders(path: str | os.PathLike) -> list[str]:
    """The splits of a Well data set root (<root>/data/{train,valid,test}/ and no HDF5 files of its own), in
    The Well's order; [] for a file, a folder of files, or anything else."""
    path = Path(path)
    if not path.is_dir() or _hdf5_files(path) or not (path / "data").is_dir():
        return []
    return [s for s in ("train", "valid", "test") if (path / "data" / s).is_dir()]


def find_stats(directory: Path) -> Path | None:
    """stats.yaml of the data set: in <dataset>/ for <dataset>/data/<split>/, else beside the files."""
    for candidate in (dataset_root(directory) / "stats.yaml", directory / "stats.yaml"):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class FieldSpec:
    """One field of a Well file and the channels it becomes."""

    group: str  # t0_fields, t1_fields or t2_fields
    name: str
    channels: tuple[str, ...]
    sample_varying: bool
    dim_varying: tuple[bool, ...]
    time_varying: bool = True

    def record(self) -> dict[str, Any]:
        """What our metadata keeps of it (WELL_FIELDS), for the export to write the field back whole."""
        return {"group": self.group, "name": self.name, "channels": list(self.channels),
                "time_varying": self.time_varying}


@dataclass
class WellHeader:
    """What one Well file says about itself (everything but the field values)."""

    path: Path
    n_trajectories: int
    time: np.ndarray
    coords: dict[str, np.ndarray]
    spatial_dims: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    constant_fields: tuple[FieldSpec, ...]  # time_varying=False
    boundaries: dict[str, tuple[str, str]]  # spatial dim -> bc type at its (low, high) end (upper case)
    dataset_name: str
    problem: str
    parameters: dict[str, Any]

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(c for spec in self.fields for c in spec.channels)

    @property
    def static_fields(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.constant_fields)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.channels), *(len(self.coords[d]) for d in self.spatial_dims))


def read_header(path: Path) -> WellHeader:
    """Check one file against The Well's schema and read its header; StochliftError says what is wrong."""
    bad = f"{path} is not in The Well's layout"
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise StochliftError(f"{path} is not a readable HDF5 file ({exc})") from None
    with f:
        if not any(isinstance(f.get(g), h5py.Group) for g in FIELD_GROUPS[:2]):
            raise StochliftError(f"{bad}: it has no t0_fields or t1_fields group (groups: {sorted(f)})")
        dims = f.get("dimensions")
        if not isinstance(dims, h5py.Group) or "spatial_dims" not in dims.attrs or "time" not in dims:
            raise StochliftError(f"{bad}: missing group /dimensions with attribute spatial_dims and dataset time")
        spatial = tuple(_names(dims.attrs["spatial_dims"]))
        if len(spatial) != 2:
            raise StochliftError(f"{path} has {len(spatial)} spatial dims {list(spatial)}; "
                                 "stochlift trains on 2-D grids")
        for d in spatial:
            if d not in dims:
                raise StochliftError(f"{bad}: /dimensions lacks the coordinates of spatial dim {d!r}")
        time = np.asarray(dims["time"][()], dtype=np.float64)
        time = time.reshape(-1, time.shape[-1])[0] if time.ndim else time.reshape(1)
        coords = {d: np.asarray(dims[d][()], dtype=np.float64) for d in spatial}
        coords = {d: c.reshape(-1, c.shape[-1])[0] if c.ndim else c.reshape(1) for d, c in coords.items()}
        sizes = [len(coords[d]) for d in spatial]
        fields: list[FieldSpec] = []
        constant: list[FieldSpec] = []
        n: int | None = None
        for order, group_name in enumerate(FIELD_GROUPS):
            group = f.get(group_name)
            if not isinstance(group, h5py.Group):
                continue
            names = _names(group.attrs["field_names"]) if "field_names" in group.attrs else list(group)
            for name in names:
                if name not in group:
                    raise StochliftError(f"{bad}: {group_name} lists field {name!r} but has no such dataset")
                ds = group[name]
                time_varying = bool(ds.attrs.get("time_varying", True))
                sample_varying = bool(ds.attrs.get("sample_varying", True))
                dim_varying = tuple(bool(v) for v in np.asarray(ds.attrs.get("dim_varying", [True, True])).reshape(-1))
                if len(dim_varying) != 2:
                    raise StochliftError(f"{bad}: field {name!r} has dim_varying {list(dim_varying)} "
                                         "for 2 spatial dims")
                suffixes = ["".join(p) for p in itertools.product(spatial, repeat=order)]
                expected = [len(time)] * time_varying + [s for s, v in zip(sizes, dim_varying) if v] + [2] * order
                if list(ds.shape[int(sample_varying):]) != expected:
                    want = ", ".join(map(str, [*["n_traj"] * sample_varying, *expected]))
                    raise StochliftError(f"{bad}: field {group_name}/{name} has shape {list(ds.shape)}, "
                                         f"expected [{want}]")
                if sample_varying:
                    if n is not None and ds.shape[0] != n:
                        raise StochliftError(f"{bad}: fields hold {n} and {ds.shape[0]} trajectories")
                    n = ds.shape[0]
                channels = tuple(f"{name}_{s}" if s else name for s in suffixes)
                spec = FieldSpec(group_name, name, channels, sample_varying, dim_varying, time_varying)
                (fields if time_varying else constant).append(spec)
        if not fields:
            raise StochliftError(f"{path} has no time-varying fields in t0_fields/t1_fields/t2_fields to train on")
        if n is None:
            n = int(_simple(f.attrs.get("n_trajectories", 1)) or 1)
        boundaries = read_boundaries(f.get("boundary_conditions"), spatial)
        scalars = f.get("scalars")
        parameters = {}
        for key in _names(f.attrs.get("simulation_parameters")):
            raw = f.attrs.get(key, scalars[key][()] if isinstance(scalars, h5py.Group) and key in scalars else None)
            if _simple(raw) is not None:
                parameters[key] = _simple(raw)
        return WellHeader(
            path=path, n_trajectories=int(n), time=time, coords=coords, spatial_dims=spatial, fields=tuple(fields),
            constant_fields=tuple(constant), boundaries=boundaries,
            dataset_name=str(_simple(f.attrs.get("dataset_name")) or path.stem),
            problem=str(_simple(f.attrs.get("problem")) or "generic"), parameters=parameters,
        )


def read_boundaries(group: Any, spatial: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """The bc type at the (low, high) end of each spatial dim, as The Well's own loader reads them
    (the_well.data.WellDataset._padding_bcs): a group's bc_type holds at an end of each of its associated dims
    where its mask is set there (for WALL on all of that end, for the others on any of it); an end no group
    covers is OPEN. A group without a mask covers both ends."""
    ends = {d: ["OPEN", "OPEN"] for d in spatial}
    for bc in group.values() if isinstance(group, h5py.Group) else []:
        kind = _text(bc.attrs.get("bc_type", "")).upper()
        dims = _names(bc.attrs.get("associated_dims"))
        mask = np.asarray(bc["mask"][()], dtype=bool) if isinstance(bc.get("mask"), h5py.Dataset) else None
        reduce = np.all if kind == "WALL" else np.any
        for axis, d in enumerate(dims):
            if d not in ends:
                continue
            for side, index in enumerate((0, -1)):
                if mask is None or mask.ndim != len(dims) or reduce(np.take(mask, index, axis=axis)):
                    ends[d][side] = kind
    return {d: (low, high) for d, (low, high) in ends.items()}


def _check_consistent(headers: list[WellHeader]) -> None:
    """Every file of a data set must give the same frames: channels, spatial dims, frame shape, time steps."""
    first = headers[0]
    for h in headers[1:]:
        for what, key in (("channels", lambda x: list(x.channels)), ("spatial dims", lambda x: list(x.spatial_dims)),
                          ("frames [C, H, W] of", lambda x: list(x.shape)), ("time steps:", lambda x: len(x.time))):
            if key(first) != key(h):
                raise StochliftError(f"inconsistent Well files: {first.path.name} has {what} {key(first)}, "
                                     f"{h.path.name} has {key(h)}")


def load_stats(path: Path, fields: tuple[FieldSpec, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean, std) float32 from a stats.yaml; std clipped below at STD_FLOOR."""
    try:
        stats = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise StochliftError(f"cannot read {path}: {exc}") from None
    if not isinstance(stats, dict) or not all(isinstance(stats.get(k), dict) for k in ("mean", "std")):
        raise StochliftError(f"{path} must map 'mean' and 'std' to {{field: value}} (The Well's stats.yaml)")
    out = []
    for key in ("mean", "std"):
        values = []
        for spec in fields:
            if spec.name not in stats[key]:
                raise StochliftError(f"{path} has no {key} for field {spec.name!r}")
            try:
                v = np.asarray(stats[key][spec.name], dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise StochliftError(f"{path}: {key} of {spec.name!r} is not a number or list of numbers") from None
            if v.size not in (1, len(spec.channels)) or not np.isfinite(v).all():
                raise StochliftError(f"{path}: {key} of {spec.name!r} must be 1 or {len(spec.channels)} finite "
                                     f"numbers, got {v.tolist()}")
            values.append(np.broadcast_to(v, (len(spec.channels),)))
        out.append(np.concatenate(values))
    return out[0].astype(np.float32), np.maximum(out[1], STD_FLOOR).astype(np.float32)


class WellSource:
    """The Well's files as a FrameSource: trajectory i of the files in order, frames [T, C, H, W] float32.

    `normalize` (default) hands out (value - mean) / std per channel (stats.yaml); `stats` takes
    (mean, std) from elsewhere (a run's record), `read_raw` gives physical values.
    """

    def __init__(self, path: str | os.PathLike, split: str = "train", *, normalize: bool = True,
                 stats: tuple[np.ndarray, np.ndarray] | None = None, max_open: int = MAX_OPEN) -> None:
        self.path = Path(path)
        self.files, self.directory = resolve_files(self.path, split)
        headers = [read_header(p) for p in self.files]
        _check_consistent(headers)
        first = headers[0]
        self.header = first
        self.fields, self.channels, self.static_fields = first.fields, first.channels, first.static_fields
        self.constant_fields = first.constant_fields
        self.spatial_dims, self.boundaries = first.spatial_dims, first.boundaries
        self.periodic = all(first.boundaries[d] == ("PERIODIC", "PERIODIC") for d in first.spatial_dims)
        self.time, self.x, self.y = first.time, first.coords[first.spatial_dims[0]], first.coords[first.spatial_dims[1]]
        self.offsets = np.cumsum([0] + [h.n_trajectories for h in headers])
        self.n_trajectories, self.frames, self.frame_shape = int(self.offsets[-1]), len(first.time), first.shape
        self.parameters = {k: v for k, v in first.parameters.items() if all(h.parameters.get(k) == v for h in headers)}
        self.stats_path = find_stats(self.directory) if normalize and stats is None else None
        if stats is not None:
            self.mean, self.std = (np.asarray(s, dtype=np.float32).reshape(-1) for s in stats)
            if self.mean.shape != (len(self.channels),) or self.std.shape != self.mean.shape:
                raise StochliftError(f"normalisation for {len(self.mean)} channels given; "
                                     f"{self.path} has {len(self.channels)}")
        elif self.stats_path is not None:
            self.mean, self.std = load_stats(self.stats_path, self.fields)
        else:
            if normalize:
                warnings.warn(f"no stats.yaml in {dataset_root(self.directory)} or {self.directory}: "
                              "the model sees raw (unnormalised) values", stacklevel=2)
            self.mean, self.std = np.zeros(len(self.channels), np.float32), np.ones(len(self.channels), np.float32)
        self.normalized = normalize or stats is not None
        self.max_open = max_open
        self._handles: OrderedDict[int, h5py.File] = OrderedDict()
        self._pid: int | None = None

    # -- handles: opened on first use in each process, at most max_open at once -------------------------
    def _file(self, index: int) -> h5py.File:
        if self._pid != os.getpid():
            self._handles, self._pid = OrderedDict(), os.getpid()  # a forked worker opens its own
        if index in self._handles:
            self._handles.move_to_end(index)
        else:
            while len(self._handles) >= self.max_open:
                self._handles.popitem(last=False)[1].close()
            self._handles[index] = h5py.File(self.files[index], "r", rdcc_nbytes=CHUNK_CACHE_BYTES)
        return self._handles[index]

    def close(self) -> None:
        if self._pid == os.getpid():
            for handle in self._handles.values():
                handle.close()
        self._handles = OrderedDict()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handles": OrderedDict(), "_pid": None}

    # -- data -----------------------------------------------------------------------------------------------
    def locate(self, trajectory: int) -> tuple[int, int]:
        """(file index, row in that file) of a trajectory."""
        if not 0 <= trajectory < self.n_trajectories:
            raise StochliftError(f"trajectory {trajectory} out of range: {self.path} holds {self.n_trajectories}")
        index = int(np.searchsorted(self.offsets, trajectory, side="right") - 1)
        return index, trajectory - int(self.offsets[index])

    def read_block(self, file: int, rows: slice, frames: slice, *, raw: bool = False) -> np.ndarray:
        """Rows and frames of one file as [n, t, C, H, W] float32 (normalised unless raw)."""
        f = self._file(file)
        n = len(range(*rows.indices(int(self.offsets[file + 1] - self.offsets[file]))))
        t = len(range(*frames.indices(self.frames)))
        parts = [self._field(f, spec, rows, frames, n, t) for spec in self.fields]
        out = np.concatenate(parts, axis=2)
        if not raw and self.normalized:
            out -= self.mean[:, None, None]
            out /= self.std[:, None, None]
        return out

    def _field(self, f: h5py.File, spec: FieldSpec, rows: slice, frames: slice, n: int, t: int) -> np.ndarray:
        """One field's rows as [n, t, k, H, W] float32 (a constant field: t = 1), broadcast where it does not vary."""
        _, h, w = self.frame_shape
        index = ((rows,) if spec.sample_varying else ()) + ((frames,) if spec.time_varying else ())
        data = np.asarray(f[spec.group][spec.name][index], np.float32)
        if not spec.sample_varying:
            data = data[None]
        if not spec.time_varying:
            data = data[:, None]
        for axis, varying in enumerate(spec.dim_varying):
            if not varying:
                data = np.expand_dims(data, 2 + axis)
        data = np.moveaxis(data.reshape(*data.shape[:4], -1), -1, 2)  # [n, t, k, H, W]
        return np.broadcast_to(data, (n, t if spec.time_varying else 1, len(spec.channels), h, w))

    def read_constants(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """The constant (time_varying=False) fields of trajectories [start, stop), per channel [n, H, W] float32 in
        physical units (a vector field gives name_x, name_y; broadcast where the field does not vary)."""
        out: dict[str, list[np.ndarray]] = {c: [] for spec in self.constant_fields for c in spec.channels}
        for file in range(len(self.files)):
            first, last = int(self.offsets[file]), int(self.offsets[file + 1])
            if max(start, first) < min(stop, last):
                rows = slice(max(start, first) - first, min(stop, last) - first)
                for spec in self.constant_fields:
                    values = self._field(self._file(file), spec, rows, slice(None), rows.stop - rows.start, 1)
                    for k, channel in enumerate(spec.channels):
                        out[channel].append(values[:, 0, k])
        return {c: np.concatenate(v) if v else np.zeros((0, *self.frame_shape[1:]), np.float32) for c, v in out.items()}

    def read_rows(self, start: int, stop: int, frames: slice = slice(None), *, raw: bool = False) -> np.ndarray:
        """Trajectories [start, stop) (across files) as [n, t, C, H, W] float32 (normalised unless raw)."""
        parts = []
        for file in range(len(self.files)):
            first, last = int(self.offsets[file]), int(self.offsets[file + 1])
            if max(start, first) < min(stop, last):
                rows = slice(max(start, first) - first, min(stop, last) - first)
                parts.append(self.read_block(file, rows, frames, raw=raw))
        if not parts:
            t = len(range(*frames.indices(self.frames)))
            return np.zeros((0, t, *self.frame_shape), np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def read(self, trajectory: int, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) of one trajectory as [stop - start, C, H, W] float32, normalised."""
        file, row = self.locate(trajectory)
        return self.read_block(file, slice(row, row + 1), slice(start, stop))[0]

    def read_raw(self, trajectory: int, start: int, stop: int) -> np.ndarray:
        """The same frames in physical units (as stored)."""
        file, row = self.locate(trajectory)
        return self.read_block(file, slice(row, row + 1), slice(start, stop), raw=True)[0]

    def normalize(self, frames: np.ndarray) -> np.ndarray:
        """Physical [..., C, H, W] -> what the model sees."""
        return ((np.asarray(frames, np.float32) - self.mean[:, None, None])
                / self.std[:, None, None]).astype(np.float32)

    def denormalize(self, frames: np.ndarray) -> np.ndarray:
        """What the model sees [..., C, H, W] -> physical units."""
        return (np.asarray(frames, np.float32) * self.std[:, None, None] + self.mean[:, None, None]).astype(np.float32)

    def blocks(self, block_bytes: int) -> list[tuple[int, slice, slice]]:
        """(file, rows, frames) blocks of at most about block_bytes each (at least one frame), in file order."""
        frame_bytes = 4 * math.prod(self.frame_shape)
        per_frames = max(1, min(self.frames, block_bytes // frame_bytes))
        per_rows = max(1, block_bytes // (frame_bytes * self.frames)) if per_frames == self.frames else 1
        out = []
        for file in range(len(self.files)):
            n = int(self.offsets[file + 1] - self.offsets[file])
            for row in range(0, n, per_rows):
                for t in range(0, self.frames, per_frames):
                    out.append((file, slice(row, min(row + per_rows, n)), slice(t, min(t + per_frames, self.frames))))
        return out

    def find_nonfinite(self, block_bytes: int = 8 << 20, *, part: int = 0, parts: int = 1) -> str | None:
        """A message naming the first block with NaN/Inf (as the model sees the values), or None.

        Streams blocks of at most about block_bytes; with parts > 1 only blocks part, part + parts, ... are read.
        """
        for i, (file, rows, frames) in enumerate(self.blocks(block_bytes)):
            if i % parts == part and not np.isfinite(self.read_block(file, rows, frames)).all():
                return self.describe_block(file, rows, frames)
        return None

    def run_metadata(self) -> dict[str, Any]:
        """What a run trained on these files keeps: the normalisation the model saw, for sampling to undo."""
        return {NORMALIZATION_FILE: self.normalization()}

    def describe_block(self, file: int, rows: slice, frames: slice) -> str:
        """The error naming a block with NaN/Inf."""
        return (f"{self.files[file]}: NaN or Inf in trajectories {rows.start}..{rows.stop - 1}, frames "
                f"{frames.start}..{frames.stop - 1}" + (" after normalisation" if self.normalized else ""))

    def normalization(self) -> dict[str, Any]:
        """The normalisation as a record for the run: channels, mean, std and where they came from."""
        return {"format": "the_well", "data": str(self.path.resolve()),
                "stats": str(self.stats_path) if self.stats_path else None,
                "channels": list(self.channels), "mean": self.mean.tolist(), "std": self.std.tolist(),
                "formula": "model value = (physical value - mean) / std, per channel"}

    def meta(self) -> TrajectoryMeta:
        """Our metadata for frames of this source (physical units; used to write generated samples)."""
        fields = [spec.record() for spec in (*self.fields, *self.constant_fields)]
        return TrajectoryMeta(
            dataset_name=self.header.dataset_name, problem=self.header.problem, field_names=self.channels,
            time=self.time, x=self.x, y=self.y, parameters={**self.parameters, WELL_FIELDS: fields},
            boundaries=tuple(_bc_type(self.boundaries[d]) for d in self.spatial_dims),
        )


def _bc_type(ends: tuple[str, str]) -> str:
    """One dim's boundary condition as our files hold it (one per dim): PERIODIC when both ends are, else WALL
    when an end is, else OPEN (an unknown type counts as WALL)."""
    kinds = [k if k in BC_TYPES else "WALL" for k in ends]
    return "PERIODIC" if kinds == ["PERIODIC", "PERIODIC"] else "WALL" if "WALL" in kinds else "OPEN"
