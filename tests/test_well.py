"""The Well interop: training and sampling on The Well's HDF5 files as they are, and `data export-well`.

The files here are written by hand to The Well's documented schema (docs/data_format.md of
PolymathicAI/the_well): root attributes, /dimensions, /boundary_conditions, /scalars and the
t0/t1/t2_fields groups, in <dataset>/data/<split>/*.hdf5 with <dataset>/stats.yaml. Grids are 8 (x) by 6
(y), not square, so a mix-up of the two spatial axes shows.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from conftest import TINY_OVERRIDES, CliResult, tiny_config, write_tiny
from stochlift.data.trajectories import TrajectoryFile, TrajectoryMeta, write_trajectories
from stochlift.data.well import STD_FLOOR, WellSource, is_well_path
from stochlift.data.well_export import export_well
from stochlift.errors import StochliftError
from stochlift.lifting.train import open_source

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NX, NY, T = 8, 6, 6
STATS = {
    "mean": {"density": 1.5, "velocity": [0.1, -0.2], "viscosity": 0.3},
    "std": {"density": 2.0, "velocity": [0.5, 0.25], "viscosity": 0.1},
    "mean_delta": {"density": 0.0, "velocity": [0.0, 0.0]},
    "std_delta": {"density": 0.1, "velocity": [0.05, 0.05]},
}


def _strings(values) -> np.ndarray:
    return np.array(list(values), dtype=h5py.string_dtype())


def write_well_file(path: Path, *, n: int = 3, nx: int = NX, ny: int = NY, frames: int = T, seed: int = 0,
                    bc: tuple[str, str] = ("PERIODIC", "PERIODIC"), groups: tuple[str, ...] = ("t0", "t1", "t2"),
                    ) -> dict[str, np.ndarray]:
    """One file in The Well's schema: scalar `density`, vector `velocity`, constant `viscosity`; returns the arrays."""
    rng = np.random.default_rng(seed)
    data = {
        "density": (1.5 + 2.0 * rng.normal(size=(n, frames, nx, ny))).astype(np.float32),
        "velocity": rng.normal(size=(n, frames, nx, ny, 2)).astype(np.float32),
        "viscosity": rng.uniform(0.2, 0.4, size=(n, nx, ny)).astype(np.float32),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs.update(dataset_name="tiny_well", grid_type="cartesian", n_spatial_dims=2, n_trajectories=n,
                       simulation_parameters=_strings(["Re"]), Re=100.0)
        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = _strings(["x", "y"])
        dims.create_dataset("time", data=np.linspace(0, 1, frames, dtype=np.float32)).attrs.update(
            sample_varying=False, time_varying=True)
        for name, size in (("x", nx), ("y", ny)):
            dims.create_dataset(name, data=np.linspace(0, 1, size, endpoint=False, dtype=np.float32)).attrs.update(
                sample_varying=False, time_varying=False)
        bcs = f.create_group("boundary_conditions")
        for dim, size, kind in (("x", nx, bc[0]), ("y", ny, bc[1])):
            g = bcs.create_group(f"{dim}_{kind.lower()}")
            g.attrs.update(associated_dims=_strings([dim]), associated_fields=_strings([]), bc_type=kind,
                           sample_varying=False, time_varying=False)
            mask = np.zeros(size, dtype=bool)
            mask[[0, -1]] = True
            g.create_dataset("mask", data=mask)
            g.create_dataset("values", data=np.zeros(2, dtype=np.float32))
        scalars = f.create_group("scalars")
        scalars.attrs["field_names"] = _strings(["Re"])
        scalars.create_dataset("Re", data=np.array(100.0, dtype=np.float32)).attrs.update(  # shape (), as The Well
            sample_varying=False, time_varying=False)
        content = {"t0": {"density": data["density"], "viscosity": data["viscosity"]},
                   "t1": {"velocity": data["velocity"]}, "t2": {}}
        for order in groups:
            g = f.create_group(f"{order}_fields")
            g.attrs["field_names"] = _strings(content[order])
            for name, values in content[order].items():
                d = g.create_dataset(name, data=values)
                d.attrs.update(dim_varying=np.array([True, True]), sample_varying=True,
                               time_varying=name != "viscosity")
    return data


def write_well_dataset(root: Path, *, stats: dict | None = STATS, **kwargs) -> dict[str, list[dict]]:
    """<root>/data/train (two files, 3 + 2 trajectories), <root>/data/test (one file), <root>/stats.yaml."""
    arrays = {
        "train": [write_well_file(root / "data/train/a.hdf5", n=3, seed=1, **kwargs),
                  write_well_file(root / "data/train/b.hdf5", n=2, seed=2, **kwargs)],
        "test": [write_well_file(root / "data/test/c.hdf5", n=2, seed=3, **kwargs)],
    }
    if stats is not None:
        (root / "stats.yaml").write_text(yaml.safe_dump(stats))
    return arrays


def expected_frames(arrays: dict[str, np.ndarray], row: int, stats: dict = STATS) -> tuple[np.ndarray, np.ndarray]:
    """(physical, normalised) [T, 3, x, y] of one trajectory, channels density, velocity_x, velocity_y."""
    raw = np.concatenate([arrays["density"][row][:, None], np.moveaxis(arrays["velocity"][row], -1, 1)], axis=1)
    mean = np.array([stats["mean"]["density"], *stats["mean"]["velocity"]], np.float32)[:, None, None]
    std = np.array([stats["std"]["density"], *stats["std"]["velocity"]], np.float32)[:, None, None]
    return raw, (raw - mean) / std


def assert_one_line_error(result: CliResult, *fragments: str) -> None:
    assert result.returncode == 2, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr and len(result.stderr_lines) == 1, result.stderr
    assert result.stderr_lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr_lines[0], result.stderr_lines[0]


@pytest.fixture(scope="module")
def well(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("well") / "tiny_well"
    return root, write_well_dataset(root)


# ------------------------------------------------------------------------------------------- reading


def test_fields_become_channels_normalised_per_field(well) -> None:
    root, arrays = well
    source = WellSource(root / "data" / "train")
    assert source.channels == ("density", "velocity_x", "velocity_y")
    assert source.static_fields == ("viscosity",)  # time_varying=False: not part of the state
    constants = source.read_constants(2, 4)  # rows across the two files
    np.testing.assert_array_equal(constants["viscosity"], np.concatenate([arrays["train"][0]["viscosity"][2:],
                                                                         arrays["train"][1]["viscosity"][:1]]))
    assert [f["name"] for f in source.meta().parameters["well_fields"]] == ["density", "velocity", "viscosity"]
    assert (source.n_trajectories, source.frames, source.frame_shape) == (5, T, (3, NX, NY))
    assert source.stats_path == root / "stats.yaml" and source.parameters == {"Re": 100.0}
    np.testing.assert_allclose(source.time, np.linspace(0, 1, T), rtol=1e-6)
    for trajectory, (file, row) in enumerate([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]):
        raw, normalised = expected_frames(arrays["train"][file], row)
        np.testing.assert_array_equal(source.read_raw(trajectory, 0, T), raw)
        np.testing.assert_allclose(source.read(trajectory, 0, T), normalised, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(source.read(4, 2, 5), expected_frames(arrays["train"][1], 1)[1][2:5],
                               rtol=1e-6, atol=1e-6)
    frames = source.read(0, 1, 3)
    assert frames.dtype == np.float32 and frames.shape == (2, 3, NX, NY)
    np.testing.assert_allclose(source.denormalize(frames), source.read_raw(0, 1, 3), rtol=1e-6, atol=1e-6)
    # the same data through the dataset root (data.split picks data/<split>/) and through one file
    assert WellSource(root, "test").n_trajectories == 2
    one = WellSource(root / "data" / "train" / "b.hdf5")
    assert one.n_trajectories == 2 and one.stats_path == root / "stats.yaml"
    np.testing.assert_array_equal(one.read(1, 0, T), source.read(4, 0, T))


def test_open_source_dispatches_to_well_files(well) -> None:
    root, _ = well
    for path in (root / "data" / "train", root / "data" / "train" / "a.hdf5", root):
        assert is_well_path(path)
        source, periodic = open_source(tiny_config(path))
        assert isinstance(source, WellSource) and periodic and source.frame_shape == (3, NX, NY)
    assert not is_well_path(write_tiny(root.parent / "ours.h5"))  # our own trajectory files stay ours


def test_periodic_only_when_every_dim_is(tmp_path: Path) -> None:
    write_well_file(tmp_path / "p/data/train/a.hdf5")
    write_well_file(tmp_path / "w/data/train/a.hdf5", bc=("PERIODIC", "WALL"))
    write_well_file(tmp_path / "o/data/train/a.hdf5", bc=("OPEN", "OPEN"))
    with pytest.warns(UserWarning, match="no stats.yaml"):
        sources = {k: WellSource(tmp_path / k / "data/train") for k in "pwo"}
    assert [sources[k].periodic for k in "pwo"] == [True, False, False]
    assert sources["w"].boundaries == {"x": ("PERIODIC", "PERIODIC"), "y": ("WALL", "WALL")}
    assert sources["w"].meta().boundaries == ("PERIODIC", "WALL")
    raw = sources["p"].read_raw(0, 0, 2)
    np.testing.assert_array_equal(sources["p"].read(0, 0, 2), raw)  # no stats.yaml: raw values


@pytest.mark.parametrize("mask_x, expected_x, periodic", [
    ([False] * NX, ("OPEN", "OPEN"), False),  # the_well's dummy data: bc_type PERIODIC, mask set nowhere
    ([True] + [False] * (NX - 1), ("PERIODIC", "OPEN"), False),  # one end only
    ([True] + [False] * (NX - 2) + [True], ("PERIODIC", "PERIODIC"), True),
])
def test_periodicity_follows_the_bc_mask_as_the_well_reads_it(tmp_path: Path, mask_x, expected_x, periodic) -> None:
    write_well_file(tmp_path / "data/train/a.hdf5")
    with h5py.File(tmp_path / "data/train/a.hdf5", "r+") as f:
        f["boundary_conditions/x_periodic/mask"][...] = np.array(mask_x)
    with pytest.warns(UserWarning, match="no stats.yaml"):
        source = WellSource(tmp_path / "data/train")
    assert source.boundaries["x"] == expected_x and source.boundaries["y"] == ("PERIODIC", "PERIODIC")
    assert source.periodic == periodic and source.meta().periodic == periodic


def test_std_floor_and_missing_stats_entry(tmp_path: Path) -> None:
    stats = {**STATS, "std": {**STATS["std"], "density": 0.0}}
    write_well_dataset(tmp_path / "a", stats=stats)
    assert WellSource(tmp_path / "a" / "data" / "train").std[0] == np.float32(STD_FLOOR)
    write_well_dataset(tmp_path / "b", stats={"mean": {"density": 0.0}, "std": {"density": 1.0}})
    with pytest.raises(StochliftError, match="no mean for field 'velocity'"):
        WellSource(tmp_path / "b" / "data" / "train")


def test_handles_are_lazy_bounded_and_not_pickled(well) -> None:
    root, _ = well
    source = WellSource(root / "data" / "train", max_open=1)
    assert not source._handles  # nothing is open until something is read
    source.read(0, 0, 1)
    source.read(4, 0, 1)  # the second file: the first is closed
    assert list(source._handles) == [1]
    copy = pickle.loads(pickle.dumps(source))
    assert not copy._handles
    np.testing.assert_array_equal(copy.read(3, 0, 2), source.read(3, 0, 2))
    source.close()


def test_nonfinite_check_is_blockwise(tmp_path: Path) -> None:
    write_well_dataset(tmp_path / "nan")
    with h5py.File(tmp_path / "nan/data/train/b.hdf5", "r+") as f:
        f["t1_fields/velocity"][1, 4, 2, 3, 0] = np.nan
    source = WellSource(tmp_path / "nan" / "data" / "train")
    assert len(source.blocks(4 * 3 * NX * NY * 2)) == 5 * 3  # two frames per block
    message = source.find_nonfinite(4 * 3 * NX * NY * 2)
    assert "b.hdf5" in message and "trajectories 1..1" in message and "frames 4..5" in message
    hits = [source.find_nonfinite(4 * 3 * NX * NY * 2, part=p, parts=3) for p in range(3)]
    assert sum(h is not None for h in hits) == 1  # ranks share the blocks


# ------------------------------------------------------------------------------------------- errors


def test_bad_layouts_are_one_line_errors(tmp_path: Path, run_cli_inprocess) -> None:
    def train(data: Path) -> CliResult:
        return run_cli_inprocess("train", "--data", data, "--out", tmp_path / "run", "--quiet", *TINY_OVERRIDES)

    write_well_file(tmp_path / "nofields/data/train/a.hdf5", groups=())
    assert_one_line_error(train(tmp_path / "nofields/data/train"), "a.hdf5", "no t0_fields or t1_fields group")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(train(tmp_path / "empty"), "no HDF5 files", "empty")
    write_well_file(tmp_path / "mixed/a.hdf5")
    write_well_file(tmp_path / "mixed/b.hdf5", ny=4)
    assert_one_line_error(train(tmp_path / "mixed"), "inconsistent Well files", "a.hdf5", "b.hdf5",
                          "[3, 8, 6]", "[3, 8, 4]")
    write_well_file(tmp_path / "steps/a.hdf5")
    write_well_file(tmp_path / "steps/b.hdf5", frames=T + 1)
    assert_one_line_error(train(tmp_path / "steps"), "inconsistent Well files", "time steps")
    write_well_file(tmp_path / "shape/a.hdf5")
    with h5py.File(tmp_path / "shape/a.hdf5", "r+") as f:
        del f["t1_fields/velocity"]
        f["t1_fields"].create_dataset("velocity", data=np.zeros((3, T, NX, NY), np.float32))
    assert_one_line_error(train(tmp_path / "shape"), "t1_fields/velocity", "expected [n_traj, 6, 8, 6, 2]")
    write_well_dataset(tmp_path / "nosplit")
    result = run_cli_inprocess("train", "--data", tmp_path / "nosplit", "--out", tmp_path / "run", "--quiet",
                               "data.split=valid", *TINY_OVERRIDES)
    assert_one_line_error(result, "no split 'valid'", "['test', 'train']")
    write_well_dataset(tmp_path / "nan")
    with h5py.File(tmp_path / "nan/data/train/a.hdf5", "r+") as f:
        f["t0_fields/density"][2, 1, 0, 0] = np.inf
    assert_one_line_error(train(tmp_path / "nan"), "a.hdf5", "NaN or Inf", "trajectories 0..2")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ train and sample (CLI)


@pytest.mark.parametrize("data", ["data/train", "data/train/a.hdf5"])
def test_train_and_sample_through_the_cli(well, tmp_path: Path, run_cli_inprocess, data: str) -> None:
    root, arrays = well
    run, samples = tmp_path / "run", tmp_path / "samples.h5"
    result = run_cli_inprocess("train", "--data", root / data, "--out", run, "--quiet", *TINY_OVERRIDES)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["frame_shape"] == [3, NX, NY] and config["model"]["options"]["periodic"] is True
    record = json.loads((run / "well_normalization.json").read_text())
    assert record["channels"] == ["density", "velocity_x", "velocity_y"]
    assert record["mean"] == pytest.approx([1.5, 0.1, -0.2]) and record["std"] == pytest.approx([2.0, 0.5, 0.25])
    result = run_cli_inprocess("sample", "--run", run, "--out", samples, "--trajectories", "3", "--frames", "8",
                               "--quiet")
    assert result.returncode == 0, result.stderr
    generated = TrajectoryFile(samples)
    assert generated.meta.field_names == ("density", "velocity_x", "velocity_y")
    assert generated.splits == {"generated": 3} and generated.meta.frames == 8 and generated.meta.periodic
    assert generated.meta.parameters["well_denormalized"] is True
    assert generated.meta.parameters["well_normalization"]["std"] == pytest.approx([2.0, 0.5, 0.25])
    values = generated.read("generated")
    assert np.isfinite(values).all()
    # rollouts start from the test split's first frames (rows cycled), written back in physical units
    starts = [expected_frames(arrays["test"][0], row)[0][0] for row in (0, 1, 0)]
    np.testing.assert_allclose(values[:, 0], np.stack(starts), rtol=1e-5, atol=1e-5)
    result = run_cli_inprocess("sample", "--run", run, "--out", tmp_path / "s2.h5", "--trajectories", "2",
                               "--initial", root / "data" / "train" / "b.hdf5", "--quiet")
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(TrajectoryFile(tmp_path / "s2.h5").read("generated")[:, 0],
                               np.stack([expected_frames(arrays["train"][1], r)[0][0] for r in (0, 1)]),
                               rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------- export-well


def test_export_round_trip(tmp_path: Path, run_cli_inprocess) -> None:
    ours = write_tiny(tmp_path / "ours.h5", size=8)  # field 'u', normalization_scale 2, splits train/valid/test
    out = tmp_path / "exported"
    result = run_cli_inprocess("data", "export-well", ours, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "data/test/wave-tiny.hdf5", "data/train/wave-tiny.hdf5", "data/valid/wave-tiny.hdf5", "stats.yaml"]
    file = TrajectoryFile(ours)
    physical = file.read("train") * np.float32(2.0)
    stats = yaml.safe_load((out / "stats.yaml").read_text())
    assert set(stats) == {"mean", "std", "mean_delta", "std_delta"}
    assert stats["mean"]["u"] == pytest.approx(float(physical.astype(np.float64).mean()), abs=1e-7)
    assert stats["std"]["u"] == pytest.approx(float(physical.astype(np.float64).std()), rel=1e-6)
    assert stats["std_delta"]["u"] == pytest.approx(float(np.diff(physical.astype(np.float64), axis=1).std()), rel=1e-6)
    with h5py.File(out / "data/train/wave-tiny.hdf5", "r") as f:  # The Well's schema
        assert f.attrs["grid_type"] == "cartesian" and f.attrs["n_spatial_dims"] == 2 and f.attrs["n_trajectories"] == 4
        assert {"dimensions", "boundary_conditions", "scalars", "t0_fields", "t1_fields", "t2_fields"} <= set(f)
        assert list(f["dimensions"].attrs["spatial_dims"]) == ["x", "y"]
        assert f["t0_fields/u"].shape == (4, 6, 8, 8) and f["t0_fields/u"].dtype == np.float32
        assert list(f["t0_fields/u"].attrs["dim_varying"]) == [True, True]
        assert {g.attrs["bc_type"] for g in f["boundary_conditions"].values()} == {"PERIODIC"}
        assert "qoi_ring_width" in list(f.attrs["simulation_parameters"])
    # read back: the same frames in physical units, and normalised exactly as stats.yaml says
    for split in ("train", "valid", "test"):
        source = WellSource(out / "data" / split)
        assert source.periodic and source.channels == ("u",) and source.meta().problem == "wave"
        back = np.stack([source.read_raw(i, 0, 6) for i in range(source.n_trajectories)])
        np.testing.assert_array_equal(back, file.read(split) * np.float32(2.0))
        mean, std = np.float32(stats["mean"]["u"]), np.float32(stats["std"]["u"])
        np.testing.assert_array_equal(source.read(1, 0, 6), (back[1] - mean) / std)
        np.testing.assert_allclose(source.time, file.meta.time, rtol=1e-6)
        np.testing.assert_allclose(source.x, file.meta.x, rtol=1e-6)
    source, periodic = open_source(tiny_config(out))  # the dataset root: data.split 'train'
    assert periodic and source.n_trajectories == 4 and source.frame_shape == (1, 8, 8)


def test_export_non_square_static_fields_and_split_mapping(tmp_path: Path) -> None:
    meta = TrajectoryMeta(dataset_name="my set", problem="generic", field_names=("a", "b"), time=np.arange(4.0),
                          x=np.arange(NX, dtype=float), y=np.arange(NY, dtype=float), periodic=False)
    rng = np.random.default_rng(0)
    splits = {"generated": rng.normal(size=(3, 4, 2, NX, NY)).astype(np.float32),
              "val": rng.normal(size=(2, 4, 2, NX, NY)).astype(np.float32)}
    static = {s: {"k": rng.uniform(size=(len(v), NX, NY)).astype(np.float32)} for s, v in splits.items()}
    write_trajectories(tmp_path / "g.h5", meta, splits, static)
    with pytest.raises(StochliftError,
                       match=r"split\(s\) \['generated'\] have no counterpart.*--split-map generated=test"):
        export_well(tmp_path / "g.h5", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written
    export_well(tmp_path / "g.h5", tmp_path / "out", splits={"generated": "train"})
    source = WellSource(tmp_path / "out" / "data" / "train")
    assert not source.periodic and source.static_fields == ("k",) and source.frame_shape == (2, NX, NY)
    np.testing.assert_array_equal(source.read_raw(2, 0, 4), splits["generated"][2])  # x = H, y = W both ways
    with h5py.File(tmp_path / "out/data/train/my_set.hdf5", "r") as f:
        np.testing.assert_array_equal(f["t0_fields/k"][()], static["generated"]["k"])
        assert f["t0_fields/k"].attrs["time_varying"] == False  # noqa: E712 (numpy bool)
    assert (tmp_path / "out/data/valid/my_set.hdf5").is_file()
    with pytest.raises(StochliftError, match="already exists"):
        export_well(tmp_path / "g.h5", tmp_path / "out", splits={"generated": "train"})
    export_well(tmp_path / "g.h5", tmp_path / "out", splits={"generated": "test"}, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "out" / "data").iterdir()) == ["test", "valid"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.h5", "out"]  # no temporary leftovers


def test_export_errors_through_the_cli(tmp_path: Path, run_cli_inprocess) -> None:
    ours = write_tiny(tmp_path / "ours.h5")
    assert_one_line_error(run_cli_inprocess("data", "export-well", ours, "--out", tmp_path / "o",
                                            "--split", "test=holdout"),
                          "The Well's splits are ['train', 'valid', 'test']")
    assert_one_line_error(run_cli_inprocess("data", "export-well", tmp_path / "missing.h5", "--out", tmp_path / "o"),
                          "no such file")
    bad = run_cli_inprocess("data", "export-well", ours, "--out", tmp_path / "o", "--split", "nonsense")
    assert bad.returncode == 2 and "OURS=WELL" in bad.stderr
    assert not (tmp_path / "o").exists()


def _import_and_export(root: Path, tmp_path: Path, run_cli_inprocess) -> Path:
    ours, out = tmp_path / "imported.h5", tmp_path / "exported"
    assert run_cli_inprocess("data", "import", root, "--out", ours, "--quiet").returncode == 0
    assert run_cli_inprocess("data", "export-well", ours, "--out", out, "--quiet").returncode == 0
    return out


def test_well_round_trip_keeps_vectors_constant_fields_and_scalar_shapes(well, tmp_path: Path,
                                                                         run_cli_inprocess) -> None:
    """The Well -> data import -> export-well -> The Well: the vector is one t1 field again, the constant field
    comes along, scalars have The Well's shape ()."""
    root, arrays = well
    imported = TrajectoryFile(_import_and_export(root, tmp_path, run_cli_inprocess).parent / "imported.h5")
    assert imported.meta.field_names == ("density", "velocity_x", "velocity_y")
    np.testing.assert_array_equal(imported.read_static("test", "viscosity"), arrays["test"][0]["viscosity"])
    out = tmp_path / "exported"
    with h5py.File(out / "data/test/tiny_well.hdf5", "r") as f, h5py.File(root / "data/test/c.hdf5", "r") as g:
        for group in ("t0_fields", "t1_fields"):
            assert list(f[group].attrs["field_names"]) == list(g[group].attrs["field_names"])
            for name in f[group]:
                np.testing.assert_array_equal(f[group][name][()], g[group][name][()])
                assert f[group][name].attrs["time_varying"] == g[group][name].attrs["time_varying"]
        assert f["t1_fields/velocity"].shape == (2, T, NX, NY, 2) and f["scalars/Re"].shape == ()
    stats = yaml.safe_load((out / "stats.yaml").read_text())
    train = np.concatenate([a["velocity"] for a in arrays["train"]]).astype(np.float64)
    np.testing.assert_allclose(stats["mean"]["velocity"], train.mean(axis=(0, 1, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(stats["std_delta"]["velocity"], np.diff(train, axis=1).std(axis=(0, 1, 2, 3)), rtol=1e-5)
    assert set(stats["std"]) == {"density", "velocity", "viscosity"} and "viscosity" not in stats["std_delta"]


def test_the_wells_own_loader_reads_our_exports(well, tmp_path: Path, run_cli_inprocess) -> None:
    """the_well.data.WellDataset (optional test dependency `the-well`) on what `data export-well` writes."""
    pytest.importorskip("the_well")
    from the_well.data import WellDataset

    root, _arrays = well
    out = _import_and_export(root, tmp_path, run_cli_inprocess)
    # raw values: the fixture's stats.yaml is made up, ours is measured (normalisation is checked below)
    theirs = WellDataset(path=str(root), well_split_name="test", n_steps_input=2, n_steps_output=1)
    ours = WellDataset(path=str(out), well_split_name="test", n_steps_input=2, n_steps_output=1)
    assert ours.metadata.field_names == theirs.metadata.field_names == {0: ["density"], 1: ["velocity_x", "velocity_y"],
                                                                        2: []}
    assert ours.metadata.constant_field_names == theirs.metadata.constant_field_names
    assert ours.metadata.constant_scalar_names == ["Re"] and len(ours) == len(theirs)
    for index in (0, len(ours) - 1):
        a, b = ours[index], theirs[index]
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].shape == b[key].shape, key
            torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=0, check_dtype=False)  # Re: float64
    assert ours[0]["constant_scalars"].shape == (1,)  # one per constant scalar name, as The Well's metadata says
    ours_wave = _export_wave(tmp_path, run_cli_inprocess)
    from the_well.data.normalization import ZScoreNormalization

    wave = WellDataset(path=str(ours_wave), well_split_name="train", use_normalization=True,
                       normalization_type=ZScoreNormalization)
    item = wave[0]
    assert item["constant_scalars"].shape == (len(wave.metadata.constant_scalar_names),)
    assert item["boundary_conditions"].tolist() == [[2.0, 2.0], [2.0, 2.0]]  # PERIODIC both ends of x and y
    expected = TrajectoryFile(tmp_path / "ours.h5").read("train", 0, slice(0, 1))[0, 0] * 2.0  # physical units
    stats = yaml.safe_load((ours_wave / "stats.yaml").read_text())
    normalised = (expected - stats["mean"]["u"]) / stats["std"]["u"]
    np.testing.assert_allclose(item["input_fields"][0, :, :, 0].numpy(), normalised, rtol=1e-5, atol=1e-5)


def _export_wave(tmp_path: Path, run_cli_inprocess) -> Path:
    ours = write_tiny(tmp_path / "ours.h5", size=8)
    assert run_cli_inprocess("data", "export-well", ours, "--out", tmp_path / "wave_well", "--quiet").returncode == 0
    return tmp_path / "wave_well"
