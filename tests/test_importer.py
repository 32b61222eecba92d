"""`stochlift data import`: every layout and format round-trips exactly, the splits, and one-line errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from stochlift.data import importer
from stochlift.data.import_sources import Layout, open_source
from stochlift.data.importer import import_trajectories, split_members
from stochlift.data.trajectories import TrajectoryFile
from stochlift.errors import StochliftError
from test_cli_errors import assert_one_line_error

SIZES = {"N": 10, "T": 3, "C": 2, "D": 2, "X": 8, "Y": 4, "H": 8, "W": 4}  # distinct sizes catch a swapped axis


def _array(layout: str, dtype=np.float32) -> np.ndarray:
    """Distinct integer values (exact in float32), of the sizes SIZES gives the layout's letters."""
    shape = [SIZES[a] for a in layout.split(",")]
    return np.arange(np.prod(shape)).reshape(shape).astype(dtype)


def _expected(values: np.ndarray, layout: str) -> np.ndarray:
    """The array as [n, T, C, *spatial], written independently of the importer: axis letters to positions."""
    letters = layout.split(",")
    if "N" not in letters:
        values, letters = values[None], ["N", *letters]
    if "C" not in letters and "D" not in letters:
        values, letters = values[..., None], [*letters, "C"]
    channel = "C" if "C" in letters else "D"
    spatial = [a for a in ("X", "Y", "H", "W") if a in letters]  # x first: X before Y, H before W
    order = [letters.index(a) for a in ("N", "T", channel, *spatial)]
    return np.transpose(values, order)


def _read_all(path: Path, n: int, fractions, seed: int = 0) -> np.ndarray:
    """The imported file's splits put back in source order with the documented split rule."""
    f = TrajectoryFile(path)
    members = split_members(n, fractions, seed)
    out = np.empty((n, *f.read(next(iter(f.splits)), 0).shape), np.float32)
    for split, rows in members.items():
        out[rows] = f.read(split)
    assert f.splits == {s: len(r) for s, r in members.items()}
    return out


def _save(tmp_path: Path, values: np.ndarray, fmt: str) -> tuple[Path, dict]:
    if fmt == "npy":
        np.save(tmp_path / "a.npy", values)
        return tmp_path / "a.npy", {}
    if fmt in ("npz", "npz-compressed"):
        (np.savez if fmt == "npz" else np.savez_compressed)(tmp_path / "a.npz", paths=values, other=np.zeros(2))
        return tmp_path / "a.npz", {"array": "paths"}
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("group/paths", data=values, chunks=True)
        f.create_dataset("other", data=np.zeros(2))
    return tmp_path / "a.h5", {"dataset": "group/paths"}


@pytest.mark.parametrize("layout", ["N,T,D", "N,T,X", "N,T,H,W", "N,T,H,W,C", "N,T,C,H,W", "N,T,C,X", "T,N,D",
                                    "T,X,N", "C,W,H,T,N", "N,T,Y,X", "X,Y,T,C,N"])
def test_each_layout_round_trips_exactly(tmp_path: Path, layout: str) -> None:
    values = _array(layout)
    np.save(tmp_path / "a.npy", values)
    import_trajectories(tmp_path / "out.h5", tmp_path / "a.npy", layout=layout)
    got = _read_all(tmp_path / "out.h5", SIZES["N"], importer.DEFAULT_FRACTIONS)
    np.testing.assert_array_equal(got, _expected(values, layout))
    meta = TrajectoryFile(tmp_path / "out.h5").meta
    spatial = [a for a in layout.split(",") if a in "XYHW"]
    assert meta.spatial_dims == ("x", "y")[: len(spatial)] and meta.problem == "generic"


@pytest.mark.parametrize("fmt", ["npy", "npz", "npz-compressed", "hdf5"])
@pytest.mark.parametrize("layout,dtype", [("T,N,C,X", np.float64), ("N,T,H,W,C", np.float32), ("N,D,T", np.int16)])
def test_each_format_round_trips_exactly_in_small_blocks(tmp_path: Path, monkeypatch, fmt: str, layout: str,
                                                         dtype) -> None:
    values = _array(layout, dtype)
    src, options = _save(tmp_path, values, fmt)
    row_bytes = 4 * int(np.prod(values.shape)) // SIZES["N"]
    monkeypatch.setattr(importer, "BLOCK_BYTES", 3 * row_bytes)  # blocks of 3 trajectories: 4 blocks
    import_trajectories(tmp_path / "out.h5", src, layout=layout, fractions=(0.5, 0.2, 0.3), seed=4, **options)
    got = _read_all(tmp_path / "out.h5", SIZES["N"], (0.5, 0.2, 0.3), seed=4)
    np.testing.assert_array_equal(got, _expected(values, layout).astype(np.float32))


def test_large_inputs_are_memory_mapped_not_loaded(tmp_path: Path) -> None:
    values = _array("N,T,X")
    from contextlib import ExitStack

    for fmt in ("npy", "npz"):
        src, options = _save(tmp_path, values, fmt)
        with ExitStack() as stack:
            source = open_source(src, stack, layout="N,T,X", **options)
            assert isinstance(source.array, np.memmap)
            np.testing.assert_array_equal(source.read(2, 5), values[2:5, :, None])


def test_splits_are_a_seeded_shuffle_that_covers_every_trajectory_once() -> None:
    members = split_members(100, (0.7, 0.2, 0.1), seed=1)
    assert {s: len(r) for s, r in members.items()} == {"train": 70, "valid": 20, "test": 10}
    rows = np.concatenate(list(members.values()))
    assert sorted(rows.tolist()) == list(range(100)) and all((np.diff(r) > 0).all() for r in members.values())
    assert not np.array_equal(members["test"], split_members(100, (0.7, 0.2, 0.1), seed=2)["test"])
    assert np.array_equal(members["test"], split_members(100, (0.7, 0.2, 0.1), seed=1)["test"])
    assert list(split_members(5, (1.0, 0.0, 0.0), seed=0)) == ["train"]  # a zero fraction: no such split


@pytest.mark.parametrize("fractions,fragment", [
    ((0.8, 0.3, -0.1), "non-negative"), ((0.5, 0.2, 0.2), "sum to 1"), ((0.5, 0.5), "three"),
    ((0.98, 0.01, 0.01), "10 trajectories are too few"),
])
def test_bad_split_fractions_are_refused(tmp_path: Path, fractions, fragment: str) -> None:
    np.save(tmp_path / "a.npy", _array("N,T,D"))
    with pytest.raises(StochliftError, match=fragment):
        import_trajectories(tmp_path / "out.h5", tmp_path / "a.npy", layout="N,T,D", fractions=fractions)
    assert not (tmp_path / "out.h5").exists()


def test_one_file_per_split_and_a_single_trajectory(tmp_path: Path) -> None:
    train, test = _array("N,T,X"), _array("N,T,X")[:4] + 0.5
    np.save(tmp_path / "train.npy", train)
    np.save(tmp_path / "test.npy", test)
    np.save(tmp_path / "one.npy", _array("T,X"))
    import_trajectories(tmp_path / "out.h5",
                        split_files={"train": tmp_path / "train.npy", "test": tmp_path / "test.npy"}, layout="N,T,X")
    f = TrajectoryFile(tmp_path / "out.h5")
    np.testing.assert_array_equal(f.read("train"), train[:, :, None])
    np.testing.assert_array_equal(f.read("test"), test[:, :, None])
    import_trajectories(tmp_path / "one.h5", split_files={"test": tmp_path / "one.npy"}, layout="T,X")
    np.testing.assert_array_equal(TrajectoryFile(tmp_path / "one.h5").read("test"), _array("T,X")[None, :, None])
    np.save(tmp_path / "other.npy", _array("N,T,X")[:, :2])
    with pytest.raises(StochliftError, match="every split needs the same"):
        import_trajectories(tmp_path / "bad.h5", split_files={"train": tmp_path / "train.npy",
                                                               "test": tmp_path / "other.npy"}, layout="N,T,X")


def test_fields_time_and_boundaries(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", _array("N,T,C,H,W"))
    np.save(tmp_path / "t.npy", np.array([0.0, 0.5, 2.0]))
    import_trajectories(tmp_path / "out.h5", tmp_path / "a.npy", layout="N,T,C,H,W", fields=["rho", "e"],
                        periodic=["W"], time=tmp_path / "t.npy", name="mine")
    meta = TrajectoryFile(tmp_path / "out.h5").meta
    assert meta.field_names == ("rho", "e") and meta.bc_types == ("WALL", "PERIODIC") and not meta.periodic
    assert meta.time.tolist() == [0.0, 0.5, 2.0] and meta.dataset_name == "mine"
    assert meta.x.tolist() == list(range(8)) and meta.y.tolist() == list(range(4))
    assert meta.parameters["import_layout"] == "N,T,C,H,W" and meta.parameters["import_split_seed"] == 0
    assert importer.parse_time("dt=0.25", 3).tolist() == [0.0, 0.25, 0.5]
    assert importer.parse_time("1:2", 3).tolist() == [1.0, 1.5, 2.0]
    assert importer.boundaries(2, ["all"]) == ("PERIODIC", "PERIODIC")
    assert importer.boundaries(1, ["x"]) == ("PERIODIC",) and importer.boundaries(0) is None


def test_the_wells_folder_and_files(tmp_path: Path, run_cli_inprocess) -> None:
    np.save(tmp_path / "a.npy", _array("N,T,H,W"))
    import_trajectories(tmp_path / "ours.h5", tmp_path / "a.npy", layout="N,T,H,W", periodic=["x", "y"])
    from stochlift.data.well_export import export_well

    export_well(tmp_path / "ours.h5", tmp_path / "well")
    result = run_cli_inprocess("data", "import", tmp_path / "well", "--out", tmp_path / "back.h5", "--quiet")
    assert result.returncode == 0, result.stderr
    ours, back = TrajectoryFile(tmp_path / "ours.h5"), TrajectoryFile(tmp_path / "back.h5")
    assert back.splits == ours.splits and back.meta.field_names == ours.meta.field_names and back.meta.periodic
    for split in ours.splits:  # the Well's own splits, kept
        np.testing.assert_array_equal(back.read(split), ours.read(split))
    one = tmp_path / "well" / "data" / "train" / "a.hdf5"  # named after the data set, "a"
    import_trajectories(tmp_path / "file.h5", one, fractions=(0.0, 0.0, 1.0))
    np.testing.assert_array_equal(TrajectoryFile(tmp_path / "file.h5").read("test"), ours.read("train"))


@pytest.fixture
def arrays(tmp_path: Path) -> Path:
    np.save(tmp_path / "vec.npy", _array("N,T,D"))
    bad = _array("N,T,X", np.float64)
    bad[7, 2, 5] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    bad[7, 2, 5], bad[3, 1, 6] = 1.0, -np.inf
    np.save(tmp_path / "inf.npy", bad)
    bad[3, 1, 6] = 1e40
    np.save(tmp_path / "huge.npy", bad)
    np.save(tmp_path / "complex.npy", np.ones((4, 3, 2), np.complex64))
    np.save(tmp_path / "short.npy", np.ones((4, 1, 2)))
    np.savez(tmp_path / "two.npz", a=np.ones((4, 3, 2)), b=np.ones((4, 3, 2)))
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["u"], f["g/v"] = np.ones((4, 3, 2)), np.ones((4, 3, 2))
    (tmp_path / "data.csv").write_text("1,2\n")
    return tmp_path


@pytest.mark.parametrize("args,fragments", [
    (["vec.npy"], ["name the axes", "--layout", "N,T,D"]),
    (["vec.npy", "--layout", "N,T"], ["names 2 axes but the array has 3", "[10, 3, 2]"]),
    (["vec.npy", "--layout", "N,T,Q"], ["unknown axis 'Q'"]),
    (["vec.npy", "--layout", "N,C,D"], ["axis C named twice"]),
    (["vec.npy", "--layout", "N,X,D"], ["no time axis T"]),
    (["vec.npy", "--layout", "N,T,H"], ["spatial axes H are not X"]),
    (["short.npy", "--layout", "N,T,D"], ["T >= 2"]),
    (["nan.npy", "--layout", "N,T,X"], ["NaN in trajectory 7, frame 2, field 0, point (5,)"]),
    (["inf.npy", "--layout", "N,T,X"], ["Inf in trajectory 3, frame 1, field 0, point (6,)"]),
    (["huge.npy", "--layout", "N,T,X"], ["1e+40, beyond float32's range", "trajectory 3"]),
    (["complex.npy", "--layout", "N,T,D"], ["complex values", "real and imaginary parts"]),
    (["two.npz", "--layout", "N,T,D"], ["holds arrays ['a', 'b']: pick one with --array"]),
    (["two.npz", "--layout", "N,T,D", "--array", "c"], ["no array 'c'"]),
    (["two.h5", "--layout", "N,T,D"], ["pick one with --dataset"]),
    (["data.csv", "--layout", "N,T,D"], ["unknown format"]),
    (["missing.npy", "--layout", "N,T,D"], ["no such file"]),
    (["vec.npy", "--layout", "N,T,D", "--fields", "a,b,c"], ["names 3 fields but the data have 2"]),
    (["vec.npy", "--layout", "N,T,D", "--fields", "a,a"], ["unique"]),
    (["vec.npy", "--layout", "N,T,D", "--time", "0:1:2"], ["--time STOP must be a number, got '1:2'"]),
    (["vec.npy", "--layout", "N,T,D", "--time", "soon"], ["START:STOP or dt=STEP"]),
    (["vec.npy", "--layout", "N,T,D", "--periodic", "x"], ["spatial axes are none (vectors)"]),
    (["nan.npy", "--layout", "N,T,X", "--periodic", "y"], ["spatial axes are ['x']"]),
    (["nan.npy", "--layout", "N,T,X", "--periodic", "x", "--wall", "x"], ["both --periodic and --wall"]),
    (["vec.npy", "--layout", "N,T,D", "--split", "0.5,0.6,-0.1"], ["non-negative", "sum to 1"]),
    (["vec.npy", "--layout", "N,T,D", "--train", "vec.npy"], ["not both"]),
])
def test_bad_inputs_get_one_line_errors(run_cli_inprocess, arrays: Path, args, fragments) -> None:
    out = arrays / "out.h5"
    result = run_cli_inprocess("data", "import", *[str(arrays / a) if a.endswith((".npy", ".npz", ".h5", ".csv"))
                                                   else a for a in args], "--out", out)
    assert_one_line_error(result, *fragments)
    assert not out.exists()


def test_the_output_never_replaces_an_input(run_cli_inprocess, arrays: Path) -> None:
    before = (arrays / "vec.npy").read_bytes()
    result = run_cli_inprocess("data", "import", arrays / "vec.npy", "--layout", "N,T,D", "--out", arrays / "vec.npy")
    assert_one_line_error(result, "is an input")
    assert (arrays / "vec.npy").read_bytes() == before


def test_cli_imports_vectors(run_cli_inprocess, arrays: Path) -> None:
    result = run_cli_inprocess("data", "import", arrays / "vec.npy", "--layout", "N,T,D", "--fields", "a,b",
                               "--time", "dt=0.1", "--split", "0.6,0.2,0.2", "--seed", "3", "--out", arrays / "v.h5")
    assert result.returncode == 0, result.stderr
    f = TrajectoryFile(arrays / "v.h5")
    assert f.meta.frame_shape == (2,) and f.meta.field_names == ("a", "b") and f.meta.spatial_dims == ()
    assert f.splits == {"train": 6, "valid": 2, "test": 2} and f.meta.time.tolist() == pytest.approx([0, 0.1, 0.2])
    np.testing.assert_array_equal(f.read("test"), _array("N,T,D")[split_members(10, (0.6, 0.2, 0.2), 3)["test"]])


def test_layout_parsing_maps_letters_to_our_axes() -> None:
    layout = Layout.parse("W,T,N,H,D", (4, 3, 10, 8, 2))
    assert (layout.trajectories, layout.time, layout.channels, layout.spatial) == (2, 1, 4, (3, 0))
    assert layout.sizes((4, 3, 10, 8, 2)) == (10, 3, 2, (8, 4))
    assert Layout.parse("t,x", (3, 8)).trajectories is None  # lower case, one trajectory


def test_stored_npz_members_are_located_inside_the_zip(tmp_path: Path) -> None:
    # a zip64 archive (numpy writes large members so) with a long member name: the offset must still be right
    values = _array("N,T,X")
    with zipfile.ZipFile(tmp_path / "z.npz", "w", compression=zipfile.ZIP_STORED) as archive, \
            archive.open("a_rather_long_member_name.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array(member, values)
    import_trajectories(tmp_path / "out.h5", tmp_path / "z.npz", layout="N,T,X", fractions=(1.0, 0.0, 0.0))
    np.testing.assert_array_equal(TrajectoryFile(tmp_path / "out.h5").read("train"), values[:, :, None])
