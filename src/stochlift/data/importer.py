"""Import a user's own trajectories (`stochlift data import`): arrays (.npy, .npz, HDF5) or The Well's files.

An array names its axes with a layout, one letter per axis in the array's order, e.g. "N,T,D" (vectors),
"N,T,X" (1-D fields), "N,T,H,W", "N,T,H,W,C" or "N,T,C,H,W" (2-D fields), in any order:

    N  trajectories (left out: the array is one trajectory)
    T  time (frames; at least 2)
    C  fields, also written D for the components of vectors (left out: one field)
    X  the one spatial axis of a 1-D field; X,Y (or H,W) the two of a 2-D field, first = our x (H), second = y (W)

The output is our trajectory file (stochlift.data.trajectories) with frames [C, *spatial] and problem
"generic". Splits are either fractions of one source (each trajectory goes to a split by a seeded shuffle;
within a split the source's order is kept) or one source per split. A Well data set root with
data/{train,valid,test}/ keeps its own splits. Values are read, checked and written in blocks of about
BLOCK_BYTES (stochlift.data.import_sources), so no large array is ever held twice.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from stochlift.config import _number  # the one parser of numbers in options
from stochlift.data.import_sources import Source, load_npy, open_source
from stochlift.data.trajectories import SPATIAL_DIMS, TrajectoryMeta, TrajectoryWriter
from stochlift.data.video import SPLIT_NAMES, check_split_counts, split_counts
from stochlift.data.well import split_folders
from stochlift.errors import StochliftError
from stochlift.progress import tqdm

BLOCK_BYTES = 64 << 20  # float32 bytes of trajectories read, checked and written at once
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


# ------------------------------------------------------------------------------------------ options


def parse_time(spec: str | os.PathLike | np.ndarray | None, frames: int) -> np.ndarray:
    """Times of the frames: None (0, 1, 2, ...), an array or a .npy file of T values, "START:STOP" (evenly,
    both ends included) or "dt=STEP" (0, STEP, 2 STEP, ...)."""
    if spec is None:
        return np.arange(frames, dtype=np.float64)
    if isinstance(spec, np.ndarray):
        time = spec
    elif str(spec).startswith("dt="):
        time = _number("--time dt=STEP", float, str(spec)[3:]) * np.arange(frames, dtype=np.float64)
    elif str(spec).lower().endswith(".npy"):
        time = load_npy(Path(spec))
    elif ":" in str(spec):
        start, _, stop = str(spec).partition(":")
        time = np.linspace(_number("--time START", float, start), _number("--time STOP", float, stop), frames)
    else:
        raise StochliftError(f"--time {spec}: give a .npy file of {frames} times, START:STOP or dt=STEP")
    time = np.asarray(time, dtype=np.float64)
    if time.shape != (frames,):
        raise StochliftError(f"--time gives {list(time.shape)} times; the trajectories have {frames} frames")
    if not np.isfinite(time).all() or (np.diff(time) <= 0).any():
        raise StochliftError("--time values must be finite and strictly increasing")
    return time


def field_names(given: Sequence[str] | None, channels: int, default: Sequence[str] | None = None) -> tuple[str, ...]:
    """--fields names (one per field, unique, no '/'), or the source's own, or u / u0, u1, ..."""
    if given is None:
        return tuple(default) if default else ("u",) if channels == 1 else tuple(f"u{i}" for i in range(channels))
    names = tuple(n.strip() for n in given)
    if len(names) != channels:
        raise StochliftError(f"--fields names {len(names)} fields but the data have {channels}: give {channels} names")
    if len(set(names)) != len(names) or any(not n or "/" in n for n in names):
        raise StochliftError(f"--fields {','.join(names)}: names must be unique, non-empty and without '/'")
    return names


def boundaries(rank: int, periodic: Sequence[str] = (), wall: Sequence[str] = (),
               default: Sequence[str] | None = None) -> tuple[str, ...] | None:
    """Per spatial dim (x, y) its bc_type: named in --periodic or --wall (as x/y, the layout's X/Y/H/W, or
    "all"), else the source's own, else WALL. None for vectors."""
    dims = SPATIAL_DIMS[:rank]
    alias = [{}, {"x": "x"}, {"x": "x", "y": "y", "h": "x", "w": "y"}][rank]

    def resolve(names: Sequence[str], option: str) -> set[str]:
        out: set[str] = set()
        for name in (n.strip().lower() for n in names if n.strip()):
            if name == "all":
                out |= set(dims)
            elif name in alias:
                out.add(alias[name])
            else:
                raise StochliftError(f"{option} {name}: the data's spatial axes are {list(dims) or 'none (vectors)'}")
        return out

    periodic_dims, wall_dims = resolve(periodic, "--periodic"), resolve(wall, "--wall")
    if periodic_dims & wall_dims:
        raise StochliftError(f"axis {sorted(periodic_dims & wall_dims)} given as both --periodic and --wall")
    if not rank:
        return None
    base = list(default or ("WALL",) * rank)
    return tuple("PERIODIC" if d in periodic_dims else "WALL" if d in wall_dims else base[i]
                 for i, d in enumerate(dims))


def split_members(n: int, fractions: Sequence[float], seed: int) -> dict[str, np.ndarray]:
    """Trajectory indices of each split (train, valid, test), drawn by a seeded shuffle; each sorted."""
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or not np.isfinite(f).all() or (f < 0).any() or abs(f.sum() - 1) > 1e-6:
        raise StochliftError(f"--split-fractions must be three non-negative numbers train,valid,test that sum to 1, "
                             f"got {','.join(map(str, np.atleast_1d(f).tolist()))}")
    counts = split_counts(n, f)
    check_split_counts(counts, f, "trajectories")
    labels = np.empty(n, dtype=object)
    labels[np.random.default_rng(seed).permutation(n)] = np.repeat(np.array(SPLIT_NAMES, dtype=object), counts)
    return {s: np.flatnonzero(labels == s) for s, c in zip(SPLIT_NAMES, counts) if c}


# ------------------------------------------------------------------------------------------ import


@dataclass
class _Plan:
    """Which source rows go to which split of the output."""

    parts: list[tuple[Source, dict[str, np.ndarray]]] = field(default_factory=list)  # source -> split -> rows
    fractions: tuple[float, ...] | None = None  # the split of one source by a seeded shuffle

    @property
    def sizes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, members in self.parts:
            for split, rows in members.items():
                out[split] = out.get(split, 0) + len(rows)
        return out


def import_trajectories(
    out: str | os.PathLike,
    src: str | os.PathLike | None = None,
    *,
    split_files: Mapping[str, str | os.PathLike] | None = None,
    layout: str | None = None,
    array: str | None = None,
    dataset: str | None = None,
    fractions: Sequence[float] | None = None,
    seed: int = 0,
    fields: Sequence[str] | None = None,
    periodic: Sequence[str] = (),
    wall: Sequence[str] = (),
    time: str | os.PathLike | np.ndarray | None = None,
    name: str | None = None,
    progress: bool = False,
) -> Path:
    """Write trajectories from `src` (split by `fractions`, default 0.8,0.1,0.1) or from one file per split
    (`split_files`, e.g. {"train": a, "test": b}) as a trajectory file at `out`; see the module docstring."""
    if (src is None) == (not split_files):
        raise StochliftError("give one source (SRC, split by --split) or one file per split (--train/--valid/--test), "
                             "not both and not neither")
    inputs = [Path(p) for p in ([src] if src is not None else cast(dict, split_files).values())]  # one is given
    if any(Path(out).resolve() == p.resolve() for p in inputs):
        raise StochliftError(f"--out {out} is an input; choose another output file")
    with ExitStack() as stack:
        plan = _plan(stack, src, split_files or {}, layout, array, dataset, fractions, seed)
        first = plan.parts[0][0]
        for source, _ in plan.parts[1:]:
            if (source.frames, source.channels, source.spatial) != (first.frames, first.channels, first.spatial):
                raise StochliftError(f"{source.path} has trajectories of {source.frames} frames x "
                                     f"{[source.channels, *source.spatial]}, {first.path} of {first.frames} x "
                                     f"{[first.channels, *first.spatial]}; every split needs the same")
        meta = _meta(first, Path(src) if src is not None else first.path, fields, periodic, wall, time, name,
                     layout, plan.fractions, seed)
        # shown after 2 s only, so a bad value found in the first blocks leaves just its one-line error
        bar = tqdm(total=sum(plan.sizes.values()), desc="import", unit="traj", disable=not progress, delay=2)
        # a Well data set's constant fields stay with their trajectories (when every source has the same ones)
        static = first.static_names if all(s.static_names == first.static_names for s, _ in plan.parts) else ()
        with TrajectoryWriter(out, meta, plan.sizes, static_fields=static) as writer, bar:
            written = dict.fromkeys(plan.sizes, 0)
            for source, members in plan.parts:
                for split, values, constants in _routed_blocks(source, members, bool(static)):
                    writer.write(split, written[split], {n: values[:, :, c] for c, n in enumerate(meta.field_names)},
                                 static=constants or None)
                    written[split] += len(values)
                    bar.update(len(values))
    return Path(out)


def _plan(stack: ExitStack, src, split_files: Mapping, layout, array, dataset, fractions, seed) -> _Plan:
    plan = _Plan()
    if src is None:
        unknown = sorted(set(split_files) - set(SPLIT_NAMES))
        if unknown:
            raise StochliftError(f"unknown split {unknown[0]!r}; the splits are {list(SPLIT_NAMES)}")
        if fractions is not None:
            raise StochliftError("--split-fractions divides one source; with one file per split leave it out")
        for split, path in split_files.items():
            source = open_source(path, stack, array=array, dataset=dataset, layout=layout, split=split)
            plan.parts.append((_checked(source), {split: np.arange(source.n)}))
        return plan
    own = split_folders(src) if dataset is None else []
    if own:
        if fractions is not None:
            raise StochliftError(f"{src} is a Well data set with its own splits {own}; leave out --split")
        for split in own:
            source = open_source(src, stack, layout=layout, array=array, split=split)
            plan.parts.append((_checked(source), {split: np.arange(source.n)}))
        return plan
    source = _checked(open_source(src, stack, array=array, dataset=dataset, layout=layout))
    plan.fractions = tuple(float(f) for f in (fractions or DEFAULT_FRACTIONS))
    plan.parts.append((source, split_members(source.n, plan.fractions, seed)))
    return plan


def _checked(source: Source) -> Source:
    if source.frames < 2:
        raise StochliftError(f"{source.path}: trajectories of {source.frames} frame(s); a model learns steps from "
                             "frame to frame, so T >= 2 (is --layout's T the time axis?)")
    if source.n < 1 or source.channels < 1 or 0 in source.spatial:
        raise StochliftError(f"{source.path}: the array is empty along an axis "
                             f"({source.n} trajectories, {source.channels} fields, spatial {list(source.spatial)})")
    return source


def _meta(source: Source, src: Path, fields, periodic, wall, time, name, layout, fractions, seed) -> TrajectoryMeta:
    own = source.meta
    rank = len(source.spatial)
    coords = own.coords if own is not None else tuple(np.arange(n, dtype=np.float64) for n in source.spatial)
    parameters: dict[str, Any] = {"imported_from": str(src.resolve()), "import_layout": layout or "the_well"}
    if fractions is not None:
        parameters.update(import_split_fractions=[float(f) for f in fractions], import_split_seed=int(seed))
    if own is not None:
        parameters.update({k: v for k, v in own.parameters.items() if k not in parameters})
    return TrajectoryMeta(
        dataset_name=name or (own.dataset_name if own is not None else re.sub(r"\.(npy|npz|h5|hdf5)$", "", src.name)),
        problem="generic",
        field_names=field_names(fields, source.channels, own.field_names if own is not None else None),
        time=parse_time(time, source.frames) if time is not None or own is None else own.time,
        x=coords[0] if rank else None,
        y=coords[1] if rank > 1 else None,
        boundaries=boundaries(rank, periodic, wall, own.bc_types if own is not None else None),
        parameters=parameters,
    )


def _routed_blocks(source: Source, members: dict[str, np.ndarray],
                   static: bool = False) -> Iterator[tuple[str, np.ndarray, dict[str, np.ndarray]]]:
    """(split, values [n, T, C, *spatial] float32, static fields {name: [n, *spatial]}) per block: the source
    read in order, each block's rows of each split contiguous in that split (each split's rows are sorted)."""
    per_row = 4 * source.frames * source.channels * math.prod(source.spatial)
    rows = max(1, BLOCK_BYTES // per_row)
    destination = np.full(source.n, -1)
    names = list(members)
    for i, split in enumerate(names):
        destination[members[split]] = i
    for start in range(0, source.n, rows):
        stop = min(start + rows, source.n)
        values = _float32(source, source.read(start, stop), start)
        constants = source.read_static(start, stop) if static else {}
        for i, split in enumerate(names):
            picked = np.flatnonzero(destination[start:stop] == i)
            if len(picked):
                yield split, values[picked], {k: v[picked] for k, v in constants.items()}


def _float32(source: Source, block: np.ndarray, start: int) -> np.ndarray:
    """The block as float32; NaN, Inf and values beyond float32's range are refused with their place.
    Integers beyond 2^24 are not all exact in float32: a warning says so (counts of that size are still data)."""
    if block.dtype.kind in "iu" and block.size and max(abs(int(block.max())), abs(int(block.min()))) > 2**24:
        warnings.warn(f"{source.path}: integers up to {max(abs(int(block.max())), abs(int(block.min())))} are "
                      "rounded to float32's 24 bits (rescale them if every unit matters)", stacklevel=2)
    with np.errstate(over="ignore", invalid="ignore"):
        values = block.astype(np.float32, copy=False)
    bad = ~np.isfinite(values)
    if bad.any():
        n, t, c, *where = (int(i) for i in np.argwhere(bad)[0])
        original = block[(n, t, c, *where)]
        what = "NaN" if np.isnan(original) else "Inf" if np.isinf(original) else \
            f"{original:.4g}, beyond float32's range (+-{_FLOAT32_MAX:.3g}; rescale the data)"
        place = f", point {tuple(where)}" if where else ""
        raise StochliftError(f"{source.path}: {what} in trajectory {start + n}, frame {t}, field {c}{place} "
                             f"({int(bad.sum())} bad value(s) in trajectories {start}..{start + len(block) - 1}); "
                             "clean or drop those trajectories before importing")
    return values
