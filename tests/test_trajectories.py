"""The trajectory file: round trips, slicing, streaming, atomic writing, clear errors and The Well's layout."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import smooth_trajectories, tiny_meta
from stochlift.data.trajectories import TrajectoryFile, TrajectoryMeta, TrajectoryWriter, write_trajectories
from stochlift.errors import StochliftError

PARAMETERS = {
    "seed": 7,
    "dt": 0.125,
    "name": "bump",
    "flag": True,
    "speeds": [0.5, 1.0, 1.5],
    "counts": [1, 2, 3],
    "names": ["a", "b"],
    "speed_range": (0.0, 1.0),
    "nested": {"a": 1, "b": [1, 2], "c": {"d": "e", "f": None}},
    "empty": [],
    "mixed": [1, "a"],
    "nothing": None,
}


def _two_field_meta(frames: int = 5, size: int = 8) -> TrajectoryMeta:
    # field order deliberately not alphabetical, so a reader that sorts names would be caught
    meta = tiny_meta(frames=frames, size=size, field_names=("v", "u"), **PARAMETERS)
    meta.field_scales = {"v": 3.0, "u": 0.5}
    meta.time = np.linspace(0.25, 2.0, frames)
    meta.x = np.linspace(0.0, 1.0, size)
    meta.y = np.linspace(-1.0, 1.0, size)
    return meta


@pytest.fixture
def two_field_file(
    tmp_path: Path,
) -> tuple[Path, TrajectoryMeta, dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    meta = _two_field_meta()
    data = smooth_trajectories(7, frames=5, channels=2, size=8, seed=3)
    splits = {"train": data[:4], "valid": data[4:5], "test": data[5:]}
    rng = np.random.default_rng(0)
    static = {s: {"wave_speed": rng.uniform(size=(len(a), 8, 8)).astype(np.float32)} for s, a in splits.items()}
    path = tmp_path / "two.h5"
    write_trajectories(path, meta, splits, static)
    return path, meta, splits, static


def _assert_nothing_written(directory: Path) -> None:
    leftovers = sorted(p.name for p in directory.iterdir())  # includes the hidden .<name>.*.tmp files
    assert leftovers == [], f"a failed write left files behind: {leftovers}"


# ------------------------------------------------------------------------------------------ round trip


def test_round_trip_values_grids_and_metadata(two_field_file) -> None:
    path, meta, splits, static = two_field_file
    f = TrajectoryFile(path)
    assert f.meta.field_names == ("v", "u")
    assert f.splits == {"train": 4, "valid": 1, "test": 2}
    for split, values in splits.items():
        got = f.read(split)
        assert got.dtype == np.float32 and got.shape == values.shape
        np.testing.assert_array_equal(got, values)
        np.testing.assert_array_equal(f.read_static(split, "wave_speed"), static[split]["wave_speed"])
    np.testing.assert_array_equal(f.meta.time, meta.time)
    np.testing.assert_array_equal(f.meta.x, meta.x)
    np.testing.assert_array_equal(f.meta.y, meta.y)
    assert f.meta.frames == 5 and f.meta.channels == 2 and f.meta.frame_shape == (2, 8, 8)
    assert f.meta.periodic is True
    assert f.meta.field_scales == {"v": 3.0, "u": 0.5}
    assert f.meta.dataset_name == "wave-tiny" and f.meta.problem == "wave"


def test_round_trip_parameters(two_field_file) -> None:
    path, meta, _, _ = two_field_file
    params = TrajectoryFile(path).meta.parameters
    expected = {**meta.parameters, "speed_range": [0.0, 1.0]}  # tuples come back as lists
    assert params == expected
    assert type(params["seed"]) is int and type(params["dt"]) is float and params["flag"] is True
    assert all(type(v) is int for v in params["counts"])
    assert all(type(v) is str for v in params["names"])


def test_round_trip_nested_numeric_lists(tmp_path: Path) -> None:
    meta = tiny_meta(matrix=[[1, 2], [3, 4]], ragged=[[1], [2, 3]])
    write_trajectories(tmp_path / "p.h5", meta, {"train": smooth_trajectories(1)})
    params = TrajectoryFile(tmp_path / "p.h5").meta.parameters
    assert params["matrix"] == [[1, 2], [3, 4]] and params["ragged"] == [[1], [2, 3]]


def test_wall_boundaries_and_no_static_fields(tmp_path: Path) -> None:
    meta = tiny_meta()
    meta.periodic = False
    write_trajectories(tmp_path / "w.h5", meta, {"train": smooth_trajectories(2)})
    f = TrajectoryFile(tmp_path / "w.h5")
    assert f.meta.periodic is False
    assert f.splits == {"train": 2}
    assert f.default_split() == "train"
    with pytest.raises(StochliftError, match="no static field"):
        f.read_static("train", "wave_speed")
    with pytest.raises(StochliftError, match="no split 'test'"):
        f.read("test")


# ------------------------------------------------------------------------------------- slicing, chunks


def test_read_rows_and_frames(two_field_file) -> None:
    path, _, splits, _ = two_field_file
    f = TrajectoryFile(path)
    train = splits["train"]
    np.testing.assert_array_equal(f.read("train", slice(1, 3)), train[1:3])
    np.testing.assert_array_equal(f.read("train", slice(1, 3), slice(2, 4)), train[1:3, 2:4])
    np.testing.assert_array_equal(f.read("train", slice(None), slice(0, 1)), train[:, :1])
    one = f.read("train", 2)
    assert one.shape == (5, 2, 8, 8)
    np.testing.assert_array_equal(one, train[2])
    np.testing.assert_array_equal(f.read("train", 3, slice(1, 4)), train[3, 1:4])
    np.testing.assert_array_equal(f.read_static("test", "wave_speed", slice(1, 2)).shape, (1, 8, 8))


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 64])
def test_iter_chunks_covers_every_row_once(tmp_path: Path, chunk_size: int) -> None:
    data = smooth_trajectories(10, frames=3, size=8, seed=1)
    data += np.arange(10, dtype=np.float32)[:, None, None, None, None] * 10  # rows tell apart by value
    write_trajectories(tmp_path / "c.h5", tiny_meta(frames=3), {"train": data})
    f = TrajectoryFile(tmp_path / "c.h5")
    chunks = list(f.iter_chunks("train", chunk_size))
    assert all(1 <= len(c) <= chunk_size for c in chunks)
    assert len(chunks) == -(-10 // chunk_size)
    np.testing.assert_array_equal(np.concatenate(chunks), data)


# ------------------------------------------------------------------------------------- atomic writing


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_writer_refuses_non_finite_and_leaves_nothing(tmp_path: Path, bad: float) -> None:
    data = smooth_trajectories(3)
    data[1, 2, 0, 3, 4] = bad
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(StochliftError, match="NaN or Inf"):
        write_trajectories(out / "bad.h5", tiny_meta(), {"train": data[:1], "test": data[1:]})
    _assert_nothing_written(out)


def test_writer_refuses_non_finite_static_field(tmp_path: Path) -> None:
    speed = np.ones((2, 8, 8), np.float32)
    speed[0, 0, 0] = np.nan
    with pytest.raises(StochliftError, match="wave_speed"):
        write_trajectories(tmp_path / "bad.h5", tiny_meta(), {"train": smooth_trajectories(2)},
                           {"train": {"wave_speed": speed}})
    _assert_nothing_written(tmp_path)


def test_incomplete_writer_leaves_no_file(tmp_path: Path) -> None:
    data = smooth_trajectories(4)
    with pytest.raises(StochliftError, match="incomplete.*train"):
        with TrajectoryWriter(tmp_path / "part.h5", tiny_meta(), {"train": 4, "test": 1}) as w:
            w.write("train", 0, {"u": data[:2, :, 0]})
            w.write("test", 0, {"u": data[:1, :, 0]})
    _assert_nothing_written(tmp_path)


def test_exception_inside_writer_block_leaves_no_file(tmp_path: Path) -> None:
    data = smooth_trajectories(2)
    with pytest.raises(RuntimeError, match="boom"):
        with TrajectoryWriter(tmp_path / "x.h5", tiny_meta(), {"train": 2}) as w:
            w.write("train", 0, {"u": data[:, :, 0]})
            raise RuntimeError("boom")
    _assert_nothing_written(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with TrajectoryWriter(tmp_path / "x.h5", tiny_meta(), {"train": 2}) as w:
            raise KeyboardInterrupt
    _assert_nothing_written(tmp_path)


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "keep.h5"
    good = smooth_trajectories(2)
    write_trajectories(path, tiny_meta(), {"train": good})
    bad = good.copy()
    bad[0, 0, 0, 0, 0] = np.nan
    with pytest.raises(StochliftError):
        write_trajectories(path, tiny_meta(), {"train": bad})
    np.testing.assert_array_equal(TrajectoryFile(path).read("train"), good)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.h5"]


def test_writer_rejects_bad_requests(tmp_path: Path) -> None:
    data = smooth_trajectories(2)
    with pytest.raises(StochliftError, match="at least one trajectory"):
        TrajectoryWriter(tmp_path / "e.h5", tiny_meta(), {"train": 0})
    with pytest.raises(StochliftError):
        with TrajectoryWriter(tmp_path / "e.h5", tiny_meta(), {"train": 2}) as w:
            w.write("valid", 0, {"u": data[:, :, 0]})
    with pytest.raises(StochliftError, match="expected fields"):
        with TrajectoryWriter(tmp_path / "e.h5", tiny_meta(), {"train": 2}) as w:
            w.write("train", 0, {"v": data[:, :, 0]})
    with pytest.raises(StochliftError, match="shape"):
        with TrajectoryWriter(tmp_path / "e.h5", tiny_meta(), {"train": 2}) as w:
            w.write("train", 0, {"u": data[:, :3, 0]})
    _assert_nothing_written(tmp_path)


# ---------------------------------------------------------------------------------------------- errors


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StochliftError, match="no such file") as info:
        TrajectoryFile(tmp_path / "nope.h5")
    assert "nope.h5" in str(info.value)


def test_non_hdf5_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.h5"
    path.write_text("this is not HDF5\n")
    with pytest.raises(StochliftError, match="not a readable HDF5 file") as info:
        TrajectoryFile(path)
    assert "notes.h5" in str(info.value)


def test_wrong_layout_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("random", data=np.random.default_rng(0).normal(size=(4, 4)))
    with pytest.raises(StochliftError, match="not a stochlift trajectory file") as info:
        TrajectoryFile(path)
    assert "other.h5" in str(info.value)


def test_layout_without_splits_or_with_wrong_shapes_is_a_clear_error(tiny_data_copy: Path) -> None:
    with h5py.File(tiny_data_copy, "r+") as f:
        del f["train/t0_fields/u"]
        f.create_dataset("train/t0_fields/u", data=np.zeros((4, 3, 8, 8), np.float32))  # 3 frames, not 6
    with pytest.raises(StochliftError, match="shape"):
        TrajectoryFile(tiny_data_copy)
    with h5py.File(tiny_data_copy, "r+") as f:
        for split in ("train", "valid", "test"):
            del f[split]
    with pytest.raises(StochliftError, match="no split group"):
        TrajectoryFile(tiny_data_copy)


# ---------------------------------------------------------------------------------- pickling, handles


def test_reader_survives_pickling(two_field_file) -> None:
    path, _, splits, _ = two_field_file
    f = TrajectoryFile(path)
    before = f.read("train", slice(0, 2))  # opens the handle
    g = pickle.loads(pickle.dumps(f))
    assert g._handle is None  # the handle is not pickled; it is re-opened lazily
    np.testing.assert_array_equal(g.read("train", slice(0, 2)), before)
    np.testing.assert_array_equal(g.read("test"), splits["test"])
    assert g.meta.field_names == f.meta.field_names and g.splits == f.splits
    g.close()
    f.close()
    np.testing.assert_array_equal(f.read("valid"), splits["valid"])  # re-opens after close
    f.close()


def test_reader_context_manager_closes(tiny_data: Path) -> None:
    with TrajectoryFile(tiny_data) as f:
        f.read("train", 0)
        assert f._handle is not None
    assert f._handle is None


# ------------------------------------------------------------------------------------ The Well layout


def test_layout_follows_the_well(two_field_file) -> None:
    path, meta, splits, _ = two_field_file
    with h5py.File(path, "r") as f:
        assert f.attrs["dataset_name"] == "wave-tiny"
        assert f.attrs["grid_type"] == "cartesian"
        assert f.attrs["n_spatial_dims"] == 2
        assert f.attrs["n_trajectories"] == 7
        assert list(f.attrs["field_names"]) == ["v", "u"]
        assert set(PARAMETERS) <= set(f.attrs["simulation_parameters"])
        assert f.attrs["seed"] == 7  # one root attr per parameter
        assert list(f["dimensions"].attrs["spatial_dims"]) == ["x", "y"]
        np.testing.assert_array_equal(f["dimensions/time"][()], meta.time)
        np.testing.assert_array_equal(f["dimensions/x"][()], meta.x)
        np.testing.assert_array_equal(f["dimensions/y"][()], meta.y)
        assert f["dimensions/time"].attrs["time_varying"]
        bcs = f["boundary_conditions"]
        assert len(bcs) == 2
        for group in bcs.values():
            assert group.attrs["bc_type"] == "PERIODIC"
            assert "mask" in group
        assert sorted(tuple(g.attrs["associated_dims"]) for g in bcs.values()) == [("x",), ("y",)]
        for split, values in splits.items():
            fields = f[f"{split}/t0_fields"]
            assert f[split].attrs["n_trajectories"] == len(values)
            for c, name in enumerate(("v", "u")):
                d = fields[name]
                assert d.dtype == np.float32 and d.shape == (len(values), 5, 8, 8)
                assert d.attrs["time_varying"] and d.attrs["sample_varying"]
                assert d.attrs["normalization_scale"] == meta.field_scales[name]
                np.testing.assert_array_equal(d[()], values[:, :, c])
            static = fields["wave_speed"]
            assert static.shape == (len(values), 8, 8)
            assert not static.attrs["time_varying"] and static.attrs["sample_varying"]


def test_wall_boundary_type(tmp_path: Path) -> None:
    meta = tiny_meta()
    meta.periodic = False
    write_trajectories(tmp_path / "w.h5", meta, {"train": smooth_trajectories(1)})
    with h5py.File(tmp_path / "w.h5", "r") as f:
        assert {g.attrs["bc_type"] for g in f["boundary_conditions"].values()} == {"WALL"}


# -------------------------------------------------------------------------------------- check_finite


def test_check_finite_flags_nan_written_behind_the_writers_back(tiny_data_copy: Path) -> None:
    TrajectoryFile(tiny_data_copy).check_finite("test")  # clean
    with h5py.File(tiny_data_copy, "r+") as f:
        f["test/t0_fields/u"][1, 3, 2, 2] = np.nan
        f["valid/t0_fields/u"][0, 0, 0, 0] = np.inf
    file = TrajectoryFile(tiny_data_copy)
    file.check_finite("train")  # untouched split stays clean
    with pytest.raises(StochliftError, match=r"'test' contains NaN or Inf \(in trajectories 1\.\.1\)"):
        file.check_finite("test", chunk_size=1)
    with pytest.raises(StochliftError, match=r"'test' contains NaN or Inf \(in trajectories 0\.\.1\)"):
        file.check_finite("test")
    with pytest.raises(StochliftError, match="'valid' contains NaN or Inf"):
        file.check_finite("valid")
