"""The stochlift trajectory file: one self-describing HDF5 layout for data, samples and metrics.

The layout follows The Well (PolymathicAI) where it fits, so tools that know that schema feel at home:

    /                          attrs: dataset_name, problem, grid_type, n_spatial_dims, n_trajectories,
                                      simulation_parameters (names), one attr per parameter,
                                      field_names (channel order), stochlift_format
    /dimensions                attrs: spatial_dims = ["x", "y"] (2-D), ["x"] (1-D) or [] (vectors);
                               datasets: time [T], and one coordinate array per spatial dim: x [H], y [W]
    /boundary_conditions/<d>_<type>  one group per spatial dim d: attrs bc_type ("PERIODIC" | "WALL" | "OPEN"),
                               associated_dims = [d]; dataset: mask (True at the two ends)
    /<split>/t0_fields/<name>  float32 [n_traj, T, *spatial]  scalar fields that vary in time (the channels)
    /<split>/t0_fields/<name>  float32 [n_traj, *spatial]     static per-trajectory fields (time_varying=False)

A frame is [C, *spatial]: [C, H, W] on a 2-D grid, [C, X] on a 1-D grid (n_spatial_dims 1), or a vector [C]
(n_spatial_dims 0: C named scalars, e.g. the variables of an SDE). Files written before 1-D and vector data
existed are 2-D files with exactly this layout, and read as they always did. Each spatial dim has its own
boundary condition (TrajectoryMeta.boundaries); `periodic` says whether every one is PERIODIC (what the
U-Nets' circular padding needs).

Splits (train/valid/test, or one split of generated samples) are groups holding The Well's per-file field
groups. Every time-varying field carries `normalization_scale`: physical value = stored value * scale.
Arrays handed out are [n, T, C, *spatial] with the channels in `field_names` order.

Storage dtype (`TrajectoryMeta.dtype`, attr `storage_dtype` on each time-varying field): "float32" (the
default, physics) or "uint8" (video). A uint8 field holds round(255 * v) of values v in [0, 1]; the writer
takes either uint8 arrays (stored as they are) or floats in [0, 1] (quantised), and the reader hands out
float32 in [0, 1] (stored / 255), so training code sees the same [0, 1] floats as from a float32 file;
`read(..., raw=True)` gives the stored integers. uint8 fields are gzip-compressed (level 1, any HDF5 tool
reads them) and chunked by (1 trajectory, at most 8 frames, H, W) so reading a few frames of one video
stays cheap. Video is stored channels-first like every other field: one field per colour channel,
("r", "g", "b") for RGB and ("gray",) for one channel, read back as [n, T, 3 or 1, H, W].

HDF5 handles are opened lazily and re-opened after a fork, so a reader can be passed to DataLoader workers.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import h5py
import numpy as np

from stochlift.data.h5write import discard, finish, open_for_writing
from stochlift.errors import StochliftError
from stochlift.io import atomic_path

FORMAT_VERSION = 1
_CHUNK_BYTES = 1 << 20  # target size of one HDF5 chunk
_MIN_CHUNK_BYTES = 64 << 10  # small trajectories (vectors, short lines) share chunks up to about this size
SPATIAL_DIMS = ("x", "y")  # the names of the spatial dims, in order; a frame has the first 0, 1 or 2 of them
BC_TYPES = ("PERIODIC", "WALL", "OPEN")  # The Well's boundary condition types


@dataclass
class TrajectoryMeta:
    """Everything about a trajectory set except the field values.

    The spatial dims are those whose coordinates are given: x and y (frames [C, H, W]), x alone (1-D fields
    [C, X]) or neither (vectors [C]). Boundary conditions: `periodic` alone says every dim is PERIODIC (else
    WALL); `boundaries` gives one bc_type per dim where they differ (or one is OPEN) and then decides
    `periodic` (True only when every dim is PERIODIC). `bc_types` is the per-dim answer either way.
    """

    dataset_name: str
    problem: str  # tells evaluation which quantities of interest apply ("wave", "flow", "generic", ...)
    field_names: tuple[str, ...]
    time: np.ndarray  # [T] physical times
    x: np.ndarray | None = None  # [H] (or [X]) grid coordinates of the first spatial dim; None for vectors
    y: np.ndarray | None = None  # [W] grid coordinates of the second spatial dim; None for 1-D fields and vectors
    periodic: bool = False  # every spatial dim periodic
    field_scales: dict[str, float] = field(default_factory=dict)  # physical = stored * scale
    parameters: dict[str, Any] = field(default_factory=dict)  # generator parameters, seed, ...
    dtype: str = "float32"  # storage of the time-varying fields: "float32" or "uint8" (values in [0, 1], video)
    boundaries: tuple[str, ...] | None = None  # per spatial dim "PERIODIC", "WALL" or "OPEN"; None: from `periodic`

    def __post_init__(self) -> None:
        if self.y is not None and self.x is None:
            raise StochliftError("a second spatial dim (y) needs a first one (x)")
        rank = len(self.spatial_dims)
        if self.boundaries is None:
            if self.periodic and not rank:
                raise StochliftError("vectors have no spatial dims to be periodic; leave periodic False")
            return
        self.boundaries = tuple(str(b).upper() for b in self.boundaries)
        unknown = sorted(set(self.boundaries) - set(BC_TYPES))
        if len(self.boundaries) != rank or unknown:
            raise StochliftError(f"boundaries must be one of {list(BC_TYPES)} per spatial dim "
                                 f"{list(self.spatial_dims)}, got {list(self.boundaries)}")
        every = rank > 0 and all(b == "PERIODIC" for b in self.boundaries)
        if self.periodic and not every:
            raise StochliftError(f"periodic=True but the boundaries are {list(self.boundaries)}")
        self.periodic = every

    @property
    def frames(self) -> int:
        return len(self.time)

    @property
    def channels(self) -> int:
        return len(self.field_names)

    @property
    def spatial_dims(self) -> tuple[str, ...]:
        """The names of the spatial dims: ("x", "y"), ("x",) or () for vectors."""
        return SPATIAL_DIMS[: (self.x is not None) + (self.y is not None)]

    @property
    def coords(self) -> tuple[np.ndarray, ...]:
        """The grid coordinates of each spatial dim, in order."""
        return tuple(c for c in (self.x, self.y) if c is not None)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.coords)

    @property
    def bc_types(self) -> tuple[str, ...]:
        """Per spatial dim, its boundary condition: "PERIODIC", "WALL" or "OPEN"."""
        if self.boundaries is not None:
            return tuple(self.boundaries)
        return ("PERIODIC" if self.periodic else "WALL",) * len(self.spatial_dims)

    @property
    def axis_periodic(self) -> tuple[bool, ...]:
        """Per spatial dim, whether it is periodic."""
        return tuple(b == "PERIODIC" for b in self.bc_types)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """[C, H, W], [C, X] or [C]."""
        return (self.channels, *self.spatial_shape)


STORAGE_DTYPES = ("float32", "uint8")
_UINT8_CHUNK_FRAMES = 8  # frames per chunk of a uint8 (video) field


def _attr_value(value: Any) -> Any:
    """HDF5 attributes hold scalars, strings and arrays; everything else goes in as JSON text."""
    if isinstance(value, (bool, int, float, str, np.integer, np.floating, np.bool_)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value) and value:
        return list(value)
    if isinstance(value, np.ndarray):
        if value.ndim == 1 and value.size and value.dtype.kind in "iuf":
            return value
        value = value.tolist()
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) for v in value
    ):
        return np.asarray(value)
    return "json:" + json.dumps(value)


def _from_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value.startswith("json:"):
        return json.loads(value[5:])
    if isinstance(value, np.ndarray):
        return [v.decode() if isinstance(v, bytes) else v.item() if isinstance(v, np.generic) else v for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class TrajectoryWriter:
    """Write a trajectory file piece by piece; the file appears (atomically) only when every row is written.

        with TrajectoryWriter(path, meta, {"train": 512, "test": 256}, static_fields=["wave_speed"]) as w:
            w.write("train", 0, {"u": u_batch}, static={"wave_speed": c_batch})
    """

    def __init__(
        self,
        path: str | os.PathLike,
        meta: TrajectoryMeta,
        split_sizes: dict[str, int],
        *,
        static_fields: tuple[str, ...] | list[str] = (),
        time_chunk: int | None = None,
    ) -> None:
        """`time_chunk`: at most this many frames per HDF5 chunk, for a writer that writes frame ranges of
        that length (a write of part of a chunk reads it back from disk)."""
        if not split_sizes or any(n <= 0 for n in split_sizes.values()):
            raise StochliftError(f"every split needs at least one trajectory, got {split_sizes}")
        if meta.dtype not in STORAGE_DTYPES:
            raise StochliftError(f"storage dtype must be one of {list(STORAGE_DTYPES)}, got {meta.dtype!r}")
        self.path = Path(path)
        self.meta = meta
        self.split_sizes = dict(split_sizes)
        self.static_fields = tuple(static_fields)
        # per split, the frames written so far (rows may be written whole or frame range by frame range)
        self._written = {split: _Coverage(n, meta.frames) for split, n in split_sizes.items()}
        self._atomic = atomic_path(self.path)
        self._file: h5py.File | None = None
        self.time_chunk = time_chunk_frames(meta, time_chunk)  # frames per HDF5 chunk

    def __enter__(self) -> TrajectoryWriter:
        tmp = self._atomic.__enter__()
        try:
            self._file = open_for_writing(tmp)
            self._write_header()
        except BaseException as exc:
            self._abort(exc)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            missing = {s: w.incomplete_rows() for s, w in self._written.items() if w.incomplete_rows()}
            if missing:
                exc = StochliftError(f"trajectory file {self.path} left incomplete; rows missing: {missing}")
        if exc is not None:
            self._abort(exc)
            if exc_type is None:
                raise exc
            return
        assert self._file is not None
        try:
            finish(self._file)
        except BaseException as error:
            self._atomic.__exit__(type(error), error, error.__traceback__)
            raise
        self._atomic.__exit__(None, None, None)

    def _abort(self, exc: BaseException) -> None:
        if self._file is not None:
            discard(self._file)
        self._atomic.__exit__(type(exc), exc, exc.__traceback__)

    def _write_header(self) -> None:
        f, m = self._file, self.meta
        assert f is not None
        f.attrs.update(
            stochlift_format=FORMAT_VERSION,
            dataset_name=m.dataset_name,
            problem=m.problem,
            grid_type="cartesian",
            n_spatial_dims=len(m.spatial_dims),
            n_trajectories=sum(self.split_sizes.values()),
            field_names=list(m.field_names),
            simulation_parameters=sorted(m.parameters) or "json:[]",
        )
        clash = set(f.attrs) & set(m.parameters)
        if clash:
            raise StochliftError(f"parameter names {sorted(clash)} clash with the file's own attributes")
        for name, value in m.parameters.items():
            f.attrs[name] = _attr_value(value)
        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = list(m.spatial_dims) or np.array([], dtype=h5py.string_dtype())
        for name, values in (("time", m.time), *zip(m.spatial_dims, m.coords)):
            d = dims.create_dataset(name, data=np.asarray(values, dtype=np.float64))
            d.attrs.update(sample_varying=False, time_varying=name == "time")
        bc = f.create_group("boundary_conditions")
        for dim, n, kind in zip(m.spatial_dims, m.spatial_shape, m.bc_types):
            g = bc.create_group(f"{dim}_{kind.lower()}")
            g.attrs.update(
                bc_type=kind,
                associated_dims=[dim],
                associated_fields=list(m.field_names),
                sample_varying=False,
                time_varying=False,
            )
            mask = np.zeros(n, dtype=bool)
            mask[[0, -1]] = True
            g.create_dataset("mask", data=mask)
        f.create_group("scalars")
        spatial, points = m.spatial_shape, math.prod(m.spatial_shape)
        if m.dtype == "uint8":
            storage = {"dtype": "u1", "compression": "gzip", "compression_opts": 1}
        else:
            storage = {"dtype": "f4"}
        chunk_t = self.time_chunk  # frames per HDF5 chunk: time-chunked writes are cheapest in multiples of it
        # whole small trajectories (vectors, short lines) share a chunk, so a split is not thousands of tiny chunks
        rows = max(1, _MIN_CHUNK_BYTES // (4 * m.frames * points)) if chunk_t == m.frames and m.dtype != "uint8" else 1
        for split, n in self.split_sizes.items():
            fields = f.create_group(f"{split}/t0_fields")
            f[split].attrs["n_trajectories"] = n
            for name in m.field_names:
                d = fields.create_dataset(name, (n, m.frames, *spatial), chunks=(min(rows, n), chunk_t, *spatial),
                                          **storage)
                d.attrs.update(
                    sample_varying=True,
                    time_varying=True,
                    dim_varying=np.ones(len(spatial), dtype=bool),
                    normalization_scale=float(m.field_scales.get(name, 1.0)),
                    storage_dtype=m.dtype,
                )
            for name in self.static_fields:
                d = fields.create_dataset(name, (n, *spatial), "f4", chunks=(1, *spatial))
                d.attrs.update(sample_varying=True, time_varying=False, dim_varying=np.ones(len(spatial), dtype=bool))

    def write(
        self,
        split: str,
        start: int,
        fields: dict[str, np.ndarray],
        static: dict[str, np.ndarray] | None = None,
        *,
        frame_start: int | None = None,
    ) -> None:
        """Write rows [start, start + n) of `split`. Refuses NaN/Inf so no broken data set is ever made.

        Time-varying fields are [n, T, *spatial], whole rows; with `frame_start` given they may be [n, t, *spatial],
        frames [frame_start, frame_start + t) of those rows, so a long rollout can be written time chunk by
        time chunk (the file is complete once every frame of every row is written).
        For a uint8 file, time-varying fields may be uint8 (stored as given) or floats in [0, 1] (stored as
        round(255 * v)); floats outside [0, 1] are refused.
        """
        if split not in self.split_sizes:
            raise StochliftError(f"unknown split {split!r}; this file has {list(self.split_sizes)}")
        if set(fields) != set(self.meta.field_names):
            raise StochliftError(f"expected fields {list(self.meta.field_names)}, got {list(fields)}")
        assert self._file is not None, "use TrajectoryWriter as a context manager"
        for name, values in list(fields.items()) + list((static or {}).items()):
            if np.iscomplexobj(values):
                raise StochliftError(f"field {name!r} is complex; store its real and imaginary parts as two fields")
            if self.meta.dtype == "uint8" and name in fields:
                values = self._to_uint8(name, values)
            else:
                values = np.asarray(values, dtype=np.float32)
                if not np.isfinite(values).all():
                    raise StochliftError(f"field {name!r} contains NaN or Inf; refusing to write {self.path}")
            dataset = self._file[f"{split}/t0_fields/{name}"]
            timed = name in fields and values.ndim == dataset.ndim and frame_start is not None
            t = values.shape[1] if timed else dataset.shape[1] if name in fields else 0  # frames (static: none)
            expected = (t, *dataset.shape[2:]) if timed else dataset.shape[1:]
            if values.shape[1:] != expected or (timed and not 0 <= cast(int, frame_start) <= self.meta.frames - t):
                raise StochliftError(f"field {name!r}: rows of shape {values.shape[1:]} from frame {frame_start}, "
                                     f"file expects {dataset.shape[1:]}")
            rows = slice(start, start + len(values))
            dataset[(rows, slice(frame_start, cast(int, frame_start) + t)) if timed else rows] = values  # timed: an int
            if name in fields:
                n, first, frames = len(values), frame_start or 0, t
        self._written[split].add(slice(start, start + n), first, first + frames)

    def _to_uint8(self, name: str, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values)
        if values.dtype == np.uint8:
            return values
        values = values.astype(np.float32)
        if not np.isfinite(values).all():
            raise StochliftError(f"field {name!r} contains NaN or Inf; refusing to write {self.path}")
        if values.size and (values.min() < -1e-6 or values.max() > 1 + 1e-6):
            raise StochliftError(
                f"field {name!r} has values in [{values.min():.4g}, {values.max():.4g}]; a uint8 file stores [0, 1]"
            )
        return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def time_chunk_frames(meta: TrajectoryMeta, limit: int | None = None) -> int:
    """Frames per HDF5 chunk of a time-varying field: about _CHUNK_BYTES (video: at most 8 frames), at most
    `limit`."""
    points = math.prod(meta.spatial_shape)
    if meta.dtype == "uint8":
        chunk_t = int(np.clip(_CHUNK_BYTES // points, 1, min(meta.frames, _UINT8_CHUNK_FRAMES)))
    else:
        chunk_t = int(np.clip(_CHUNK_BYTES // (4 * points), 1, meta.frames))
    return chunk_t if limit is None else max(1, min(chunk_t, int(limit)))


class _Coverage:
    """Which frames of each row of a split are written: per row the frames written from frame 0 on, plus
    ranges written ahead of a gap, kept until the gap is filled. One integer per row, whatever the number
    of frames, for writes that come in order (a rollout streamed frame range by frame range)."""

    def __init__(self, rows: int, frames: int) -> None:
        self.frames = frames
        self.prefix = np.zeros(rows, dtype=np.int64)  # frames [0, prefix) of each row are written
        self.ahead: dict[int, list[tuple[int, int]]] = {}  # row -> written ranges beyond a gap

    def add(self, rows: slice, first: int, stop: int) -> None:
        prefix = self.prefix[rows]  # a view
        joins = prefix >= first
        prefix[joins] = np.maximum(prefix[joins], stop)
        for row in (np.flatnonzero(~joins) + rows.start).tolist():
            self.ahead.setdefault(row, []).append((first, stop))
        for row in [r for r in range(rows.start, rows.stop) if r in self.ahead]:
            pending = sorted(self.ahead.pop(row))
            while pending and pending[0][0] <= self.prefix[row]:
                self.prefix[row] = max(self.prefix[row], pending.pop(0)[1])
            if pending:
                self.ahead[row] = pending

    def incomplete_rows(self) -> int:
        return int((self.prefix < self.frames).sum())


def write_trajectories(
    path: str | os.PathLike,
    meta: TrajectoryMeta,
    splits: dict[str, np.ndarray],
    static: dict[str, dict[str, np.ndarray]] | None = None,
) -> None:
    """Write whole splits at once; `splits[name]` is [n, T, C, *spatial] with channels in field order."""
    static = static or {}
    static_names = sorted({name for fields in static.values() for name in fields})
    if static and any(set(static.get(split, {})) != set(static_names) for split in splits):
        raise StochliftError(f"static fields {static_names} must be given for every split")
    with TrajectoryWriter(path, meta, {s: len(a) for s, a in splits.items()}, static_fields=static_names) as w:
        for split, values in splits.items():
            fields = {name: values[:, :, c] for c, name in enumerate(meta.field_names)}
            w.write(split, 0, fields, static.get(split))


def _boundaries(f: h5py.File, spatial: tuple[str, ...]) -> tuple[str, ...]:
    """Each spatial dim's bc_type from /boundary_conditions (PERIODIC if any of its groups says so; WALL if none)."""
    found: dict[str, list[str]] = {d: [] for d in spatial}
    for group in f.get("boundary_conditions", {}).values():
        kind = str(_from_attr(group.attrs.get("bc_type", ""))).upper()
        associated = _from_attr(group.attrs.get("associated_dims", []))
        for d in [associated] if isinstance(associated, str) else associated or []:
            if d in found and kind in BC_TYPES:
                found[d].append(kind)
    return tuple("PERIODIC" if "PERIODIC" in kinds else kinds[0] if kinds else "WALL" for kinds in found.values())


def _boundary_fields(kinds: tuple[str, ...]) -> dict[str, Any]:
    """TrajectoryMeta's periodic/boundaries for per-dim bc types: the one flag when every dim is alike (PERIODIC
    or WALL, as in every file written before per-dim boundaries existed), else the per-dim types."""
    if set(kinds) <= {"PERIODIC"} or set(kinds) == {"WALL"}:
        return {"periodic": "PERIODIC" in kinds, "boundaries": None}
    return {"periodic": False, "boundaries": kinds}


class TrajectoryFile:
    """Lazy, streaming reader of a trajectory file; reads hyperslabs, never the whole file."""

    # h5py's chunk cache per opened dataset (one per field): a few of the <= 1 MiB chunks, so reads sorted
    # by (trajectory, frame) that cross a chunk boundary keep both; bounds the reader's memory per field
    CHUNK_CACHE_BYTES = 4 << 20

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StochliftError(f"no such file: {self.path}")
        self._handle: h5py.File | None = None
        self._pid: int | None = None
        self._fields: dict[str, list[h5py.Dataset]] = {}  # per split, the channel datasets (lookups are slow)
        try:
            self.meta, self.splits = self._read_header()
        finally:
            self.close()  # handles are opened lazily, in the process that reads

    # -- handle management: one handle per process, opened on first use ---------------------------
    @property
    def h5(self) -> h5py.File:
        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r", rdcc_nbytes=self.CHUNK_CACHE_BYTES)
            self._pid = os.getpid()
            self._fields = {}
        return self._handle

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle, self._fields = None, {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handle": None, "_pid": None, "_fields": {}}

    def __enter__(self) -> TrajectoryFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- header ------------------------------------------------------------------------------------
    def _read_header(self) -> tuple[TrajectoryMeta, dict[str, int]]:
        try:
            f = self.h5
        except OSError as exc:
            raise StochliftError(f"{self.path} is not a readable HDF5 file ({exc})") from None
        bad = f"{self.path} is not a stochlift trajectory file"
        if "field_names" not in f.attrs or "dimensions" not in f:
            raise StochliftError(f"{bad}: missing root attribute 'field_names' or group /dimensions")
        names = tuple(_from_attr(f.attrs["field_names"]))
        dims = f["dimensions"]
        spatial = tuple(_from_attr(dims.attrs["spatial_dims"])) if "spatial_dims" in dims.attrs else SPATIAL_DIMS
        if spatial not in [SPATIAL_DIMS[:rank] for rank in range(len(SPATIAL_DIMS) + 1)]:
            raise StochliftError(f"{bad}: spatial dims {list(spatial)}; stochlift reads [], ['x'] or ['x', 'y']")
        for key in ("time", *spatial):
            if key not in dims:
                raise StochliftError(f"{bad}: missing /dimensions/{key}")
        time, coords = dims["time"][()], [dims[d][()] for d in spatial]
        expected = (len(time), *(len(c) for c in coords))
        splits: dict[str, int] = {}
        for split, group in f.items():
            if not (isinstance(group, h5py.Group) and "t0_fields" in group):
                continue
            for name in names:
                if name not in group["t0_fields"]:
                    raise StochliftError(f"{bad}: split {split!r} lacks field {name!r}")
                shape = group["t0_fields"][name].shape
                if group["t0_fields"][name].dtype.kind not in "fiub":
                    raise StochliftError(f"{bad}: field {split}/{name} holds {group['t0_fields'][name].dtype} "
                                         "values; fields must be real numbers")
                if shape[1:] != expected:
                    raise StochliftError(f"{bad}: field {split}/{name} has shape {shape}, expected "
                                         f"[n, {', '.join(map(str, expected))}]")
            splits[split] = group["t0_fields"][names[0]].shape[0]
        if not splits:
            raise StochliftError(f"{bad}: it holds no split group with t0_fields")
        params = {k: _from_attr(f.attrs[k]) for k in _from_attr(f.attrs.get("simulation_parameters", "json:[]"))}
        first = f[next(iter(splits))]["t0_fields"]
        meta = TrajectoryMeta(
            dataset_name=str(_from_attr(f.attrs.get("dataset_name", self.path.stem))),
            problem=str(_from_attr(f.attrs.get("problem", "generic"))),
            field_names=names,
            time=time,
            x=coords[0] if coords else None,
            y=coords[1] if len(coords) > 1 else None,
            **_boundary_fields(_boundaries(f, spatial)),
            field_scales={n: float(first[n].attrs.get("normalization_scale", 1.0)) for n in names},
            parameters=params,
            dtype="uint8" if first[names[0]].dtype == np.uint8 else "float32",
        )
        return meta, splits

    # -- data --------------------------------------------------------------------------------------
    def _split(self, split: str) -> h5py.Group:
        if split not in self.splits:
            raise StochliftError(f"{self.path} has no split {split!r}; it has {list(self.splits)}")
        return self.h5[split]["t0_fields"]

    def default_split(self, preferred: str = "test") -> str:
        """The split to evaluate: the only one if there is one, else `preferred`."""
        if len(self.splits) == 1:
            return next(iter(self.splits))
        if preferred not in self.splits:
            raise StochliftError(f"{self.path} has splits {list(self.splits)}; name one explicitly")
        return preferred

    def read(
        self, split: str, rows: slice | int = slice(None), frames: slice = slice(None), *, raw: bool = False
    ) -> np.ndarray:
        """Rows of a split as [n, t, C, *spatial] float32 (an int row gives [t, C, *spatial]).

        uint8 (video) files give float32 in [0, 1]; `raw=True` gives the stored values (uint8 there).
        """
        channel_axis = -1 - len(self.meta.spatial_dims)  # just after the time axis
        values = np.stack([dataset[rows, frames] for dataset in self._channel_datasets(split)], axis=channel_axis)
        if values.dtype == np.uint8 and not raw:
            return np.divide(values, 255.0, dtype=np.float32)
        return values

    def _channel_datasets(self, split: str) -> list[h5py.Dataset]:
        """The split's time-varying field datasets in channel order, looked up once per process."""
        _ = self.h5  # (re)opens the handle in a new process, which empties the cache
        if split not in self._fields:
            group = self._split(split)
            self._fields[split] = [group[name] for name in self.meta.field_names]
        return self._fields[split]

    def static_field_names(self, split: str) -> list[str]:
        """The split's static per-trajectory fields (e.g. Wave's wave_speed, Flow's log_permeability), sorted."""
        return sorted(set(self._split(split)) - set(self.meta.field_names))

    def read_static(self, split: str, name: str, rows: slice | int = slice(None)) -> np.ndarray:
        fields = self._split(split)
        if name not in fields:
            raise StochliftError(f"{self.path} has no static field {name!r}")
        return fields[name][rows]

    def iter_chunks(self, split: str, chunk_size: int = 64) -> Iterator[np.ndarray]:
        """Stream a split in chunks of trajectories, [n <= chunk_size, T, C, *spatial] each."""
        self._split(split)
        n = self.splits[split]
        for start in range(0, n, chunk_size):
            yield self.read(split, slice(start, min(start + chunk_size, n)))

    def check_finite(self, split: str, chunk_size: int = 64, *, part: int = 0, parts: int = 1) -> None:
        """Raise StochliftError if any value of the split is NaN or Inf (streams, bounded memory).

        With `parts` > 1 only chunks part, part + parts, ... are read, so processes can share the scan.
        uint8 (video) values are finite by construction and are not read.
        """
        self._split(split)
        if self.meta.dtype == "uint8":
            return
        n = self.splits[split]
        for i, start in enumerate(range(0, n, chunk_size)):
            if i % parts == part and not np.isfinite(self.read(split, slice(start, min(start + chunk_size, n)))).all():
                raise StochliftError(
                    f"{self.path}: split {split!r} contains NaN or Inf (in trajectories "
                    f"{start}..{min(start + chunk_size, n) - 1})"
                )
