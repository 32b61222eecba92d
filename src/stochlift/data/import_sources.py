"""The inputs of `stochlift data import` (stochlift.data.importer): an array's layout, and one file of
trajectories (.npy, .npz member, HDF5 dataset or The Well's files) read block by block as [n, T, C, *spatial].

.npy files and stored (uncompressed) .npz members are memory-mapped, HDF5 datasets read by slices; only a
compressed .npz member is read whole, since a zip stream cannot seek.
"""

from __future__ import annotations

import os
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from stochlift.data.trajectories import TrajectoryMeta
from stochlift.data.well import WellSource, is_well_path
from stochlift.errors import StochliftError

ARRAY_SUFFIXES = (".npy", ".npz", ".h5", ".hdf5")
SPATIAL_ORDERS = (("X",), ("X", "Y"), ("H", "W"))  # a layout's spatial letters, in our order (x first)


# ------------------------------------------------------------------------------------------ layout


@dataclass(frozen=True)
class Layout:
    """Where N, T, C and the spatial axes (in our order, x first) sit in the source array."""

    text: str
    trajectories: int | None
    time: int
    channels: int | None
    spatial: tuple[int, ...]

    @classmethod
    def parse(cls, text: str | None, shape: tuple[int, ...]) -> Layout:
        example = {1: "N,T,D", 2: "N,T,D", 3: "N,T,D (vectors) or N,T,X (1-D fields)", 4: "N,T,H,W or N,T,C,X",
                   5: "N,T,C,H,W or N,T,H,W,C"}.get(len(shape), "N,T,C,H,W")
        if not text:
            raise StochliftError(f"name the axes of the array of shape {list(shape)} with --layout, e.g. {example}")
        letters = [a.strip().upper() for a in text.replace(" ", "").split(",")]
        unknown = sorted({a for a in letters if a not in {"N", "T", "C", "D", "X", "Y", "H", "W"}})
        if unknown:
            raise StochliftError(f"--layout {text}: unknown axis {', '.join(map(repr, unknown))}; "
                                 "use N (trajectories), T (time), C or D (fields), X (a 1-D field's axis), "
                                 "X,Y or H,W (a 2-D field's)")
        if len(letters) != len(shape):
            raise StochliftError(f"--layout {text} names {len(letters)} axes but the array has {len(shape)} (shape "
                                 f"{list(shape)}); e.g. --layout {example}")
        letters = ["C" if a == "D" else a for a in letters]
        repeated = sorted({a for a in letters if letters.count(a) > 1})
        if repeated:
            raise StochliftError(f"--layout {text}: axis {', '.join(repeated)} named twice (D and C both mean fields)")
        if "T" not in letters:
            raise StochliftError(f"--layout {text} has no time axis T; every trajectory is a sequence of frames")
        spatial = tuple(a for a in letters if a in "XYHW")
        order = next((o for o in SPATIAL_ORDERS if sorted(o) == sorted(spatial)), None) if spatial else ()
        if order is None:
            raise StochliftError(f"--layout {text}: spatial axes {','.join(spatial)} are not X (1-D), X,Y or H,W (2-D)")
        find = {a: i for i, a in enumerate(letters)}
        return cls(text, find.get("N"), find["T"], find.get("C"), tuple(find[a] for a in order))

    def frames(self, block: np.ndarray) -> np.ndarray:
        """A block of the source array (sliced along N) as [n, T, C, *spatial]."""
        if self.trajectories is None:
            block = block[None]
        shift = int(self.trajectories is None)
        axes = [0 if self.trajectories is None else self.trajectories, self.time + shift]
        if self.channels is None:
            block = block[..., None]
            channel = block.ndim - 1
        else:
            channel = self.channels + shift
        return np.transpose(block, [*axes, channel, *(a + shift for a in self.spatial)])

    def sizes(self, shape: tuple[int, ...]) -> tuple[int, int, int, tuple[int, ...]]:
        """(n trajectories, frames, channels, spatial shape) of an array of this layout."""
        n = shape[self.trajectories] if self.trajectories is not None else 1
        c = shape[self.channels] if self.channels is not None else 1
        return n, shape[self.time], c, tuple(shape[a] for a in self.spatial)


# ------------------------------------------------------------------------------------------ sources


@dataclass
class Source:
    """One input of trajectories: a sliceable array (with its layout) or a Well reader."""

    path: Path
    n: int
    frames: int
    channels: int
    spatial: tuple[int, ...]
    array: Any = None  # np.ndarray / np.memmap / h5py.Dataset, sliced along the layout's N axis
    layout: Layout | None = None
    well: WellSource | None = None
    meta: TrajectoryMeta | None = None  # what a Well source says about itself

    def read(self, start: int, stop: int) -> np.ndarray:
        """Trajectories [start, stop) as [n, T, C, *spatial], in the source's dtype (Well: float32, physical)."""
        if self.well is not None:
            return self.well.read_rows(start, stop, raw=True)
        assert self.layout is not None  # an array source always has its layout (see `open_source`)
        index = [slice(None)] * self.array.ndim
        if self.layout.trajectories is not None:
            index[self.layout.trajectories] = slice(start, stop)
        return self.layout.frames(np.asarray(self.array[tuple(index)]))

    @property
    def static_names(self) -> tuple[str, ...]:
        """Fields that do not change in time (a Well file's constant fields, per channel), kept as static fields."""
        return tuple(c for spec in self.well.constant_fields for c in spec.channels) if self.well is not None else ()

    def read_static(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """The static fields of trajectories [start, stop), [n, *spatial] float32 each."""
        return self.well.read_constants(start, stop) if self.well is not None else {}


def open_source(path: str | os.PathLike, stack: ExitStack, *, array: str | None = None, dataset: str | None = None,
                layout: str | None = None, split: str = "train") -> Source:
    """An input file as a Source; files are closed when `stack` closes."""
    path = Path(path)
    if not path.exists():
        raise StochliftError(f"no such file or directory: {path}")
    suffix = path.suffix.lower()
    if is_well_path(path) and dataset is None:
        if layout is not None or array is not None:
            raise StochliftError(f"{path} is in The Well's layout, which names its own axes and fields: "
                                 "leave out --layout and --array")
        well = WellSource(path, split, normalize=False)
        stack.callback(well.close)
        return Source(path, well.n_trajectories, well.frames, well.frame_shape[0], tuple(well.frame_shape[1:]),
                      well=well, meta=well.meta())
    if suffix not in ARRAY_SUFFIXES:
        raise StochliftError(f"{path}: unknown format; import .npy, .npz (--array NAME), HDF5 .h5/.hdf5 "
                             "(--dataset PATH) or a folder of The Well's files")
    if suffix == ".npy":
        values = load_npy(path)
    elif suffix == ".npz":
        values = _npz_member(path, array, stack)
    else:
        values = _hdf5_dataset(path, dataset, stack)
    if values.dtype.kind == "c":
        raise StochliftError(f"{path} holds complex values ({values.dtype}); import real fields, e.g. the real and "
                             "imaginary parts as two fields: np.stack([a.real, a.imag], axis=-1) with a C axis")
    if values.dtype.kind not in "biuf":
        raise StochliftError(f"{path} holds {values.dtype} values; import an array of numbers")
    parsed = Layout.parse(layout, tuple(values.shape))
    n, frames, channels, spatial = parsed.sizes(tuple(values.shape))
    return Source(path, n, frames, channels, spatial, array=values, layout=parsed)


def load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise StochliftError(f"{path} is not a plain numeric .npy array ({exc})") from None


def _npz_member(path: Path, name: str | None, stack: ExitStack) -> np.ndarray:
    """A member of an .npz: memory-mapped when stored uncompressed, else read whole (zip cannot seek)."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise StochliftError(f"{path} is not a readable .npz archive") from None
    stack.callback(archive.close)
    names = [m[:-4] for m in archive.namelist() if m.endswith(".npy")]
    if name is None:
        if len(names) != 1:
            raise StochliftError(f"{path} holds arrays {names}: pick one with --array NAME")
        name = names[0]
    if name not in names:
        raise StochliftError(f"{path} has no array {name!r}; it has {names}")
    info = archive.getinfo(f"{name}.npy")
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if info.compress_type == zipfile.ZIP_STORED:
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version not in readers:  # a newer header version: read the member whole
                return _npz_whole(path, name)
            shape, fortran, dtype = readers[version](member)
            header = member.tell()
        if dtype.hasobject:
            raise StochliftError(f"{path}: array {name!r} holds Python objects; import an array of numbers")
        with open(path, "rb") as raw:  # the member's data starts after its local zip header
            raw.seek(info.header_offset + 26)
            name_len, extra_len = np.frombuffer(raw.read(4), dtype="<u2")
        offset = info.header_offset + 30 + int(name_len) + int(extra_len) + header
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    return _npz_whole(path, name)


def _npz_whole(path: Path, name: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)[name]
    except ValueError as exc:
        raise StochliftError(f"{path}: array {name!r} is not a plain numeric array ({exc})") from None


def _hdf5_dataset(path: Path, name: str | None, stack: ExitStack) -> h5py.Dataset:
    try:
        f = stack.enter_context(h5py.File(path, "r"))
    except OSError as exc:
        raise StochliftError(f"{path} is not a readable HDF5 file ({exc})") from None
    found: list[str] = []
    f.visititems(lambda key, obj: found.append(key) if isinstance(obj, h5py.Dataset) else None)
    if name is None:
        if len(found) != 1:
            raise StochliftError(f"{path} holds datasets {found[:8]}{' ...' if len(found) > 8 else ''}: pick one "
                                 "with --dataset PATH/IN/FILE")
        name = found[0]
    if not isinstance(f.get(name), h5py.Dataset):
        raise StochliftError(f"{path} has no dataset {name!r}; it has {found[:8]}")
    return f[name]
