"""The Well's files read like our trajectory files, so `evaluate` and `report` take them as they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stochlift.data.readers import WellTrajectories, open_trajectories
from stochlift.data.trajectories import TrajectoryFile, write_trajectories
from stochlift.data.well import WellSource
from stochlift.evaluation.evaluate import evaluate_files
from test_well import expected_frames, write_well_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def well(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("readers") / "tiny_well"
    return root, write_well_dataset(root)  # train: a.hdf5 (3) + b.hdf5 (2); test: c.hdf5 (2); stats.yaml


def _physical(arrays: list[dict]) -> np.ndarray:
    """Every trajectory of a split's files, in file order, as [n, T, 3, x, y] physical values."""
    return np.stack([expected_frames(a, row)[0] for a in arrays for row in range(len(a["density"]))])


def test_a_well_root_reads_like_our_file(well) -> None:
    root, arrays = well
    reader = open_trajectories(root)
    assert isinstance(reader, WellTrajectories) and reader.splits == {"train": 5, "test": 2}
    assert reader.default_split("test") == "test" and reader.meta.field_names == ("density", "velocity_x", "velocity_y")
    assert reader.meta.frame_shape == (3, 8, 6) and reader.meta.periodic and reader.meta.problem == "generic"
    train = _physical(arrays["train"])  # raw values, not the normalised ones training sees
    np.testing.assert_allclose(reader.read("train"), train, rtol=0, atol=0)
    np.testing.assert_array_equal(reader.read("train", slice(2, 4), slice(1, 3)), train[2:4, 1:3])  # across files
    np.testing.assert_array_equal(reader.read("train", 3), train[3])
    np.testing.assert_array_equal(reader.read("train", -1), train[-1])
    np.testing.assert_array_equal(np.concatenate(list(reader.iter_chunks("train", 2))), train)
    assert reader.read("train", slice(4, 2)).shape == (0, 6, 3, 8, 6)
    with pytest.raises(Exception, match="no split 'valid'"):
        reader.read("valid")
    reader.close()


def test_folders_and_files_are_one_split_named_after_their_folder(well, tmp_path: Path) -> None:
    root, arrays = well
    assert open_trajectories(root / "data" / "test").splits == {"test": 2}
    assert open_trajectories(root / "data" / "train" / "b.hdf5").splits == {"train": 2}
    other = tmp_path / "mine"
    other.mkdir()
    (other / "c.hdf5").write_bytes((root / "data" / "test" / "c.hdf5").read_bytes())
    reader = open_trajectories(other)
    assert reader.splits == {"all": 2} and reader.default_split("generated") == "all"
    np.testing.assert_array_equal(reader.read("all"), _physical(arrays["test"]))
    ours = TrajectoryFile.__new__(TrajectoryFile)
    assert open_trajectories(ours) is ours and open_trajectories(reader) is reader


def test_evaluate_scores_well_files_as_our_files_with_the_same_values(well, tmp_path: Path) -> None:
    root, arrays = well
    meta = WellSource(root, "test", normalize=False).meta()
    # generic data are scored against a floor from two halves of the truth: the 5 train trajectories
    write_trajectories(tmp_path / "ref.h5", meta, {"train": _physical(arrays["train"])})
    write_trajectories(tmp_path / "gen.h5", meta, {"generated": _physical(arrays["test"])})
    from_well, _ = evaluate_files(root / "data" / "train", root / "data" / "test")
    from_ours, _ = evaluate_files(tmp_path / "ref.h5", tmp_path / "gen.h5")
    for key in ("reference", "generated", "generated_split"):
        from_well.pop(key), from_ours.pop(key)
    for report in (from_well, from_ours):  # the Well folder's split is named "test", ours "generated"
        report["field_scores"]["options"].pop("generated_split")
    assert from_well.keys() == from_ours.keys() and from_well["reference_split"] == "train"
    for key, value in from_ours.items():  # the same numbers: only float rounding of the reads may differ
        if isinstance(value, (float, list)):
            np.testing.assert_allclose(from_well[key], value, rtol=1e-6)
        elif isinstance(value, dict):
            assert _close(from_well[key], value), key
        else:
            assert from_well[key] == value, key


def _close(a: object, b: object) -> bool:
    """Nested records equal up to float rounding of the reads."""
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in b)
    if isinstance(b, list):
        return isinstance(a, list) and len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(b, float):
        return isinstance(a, float) and bool(np.isclose(a, b, rtol=1e-6))
    return a == b


def test_report_takes_well_files_as_reference_and_generated(well, tmp_path: Path, run_cli_inprocess) -> None:
    from conftest import TINY_OVERRIDES

    root, _ = well
    run = tmp_path / "run"
    assert run_cli_inprocess("train", "--data", root / "data" / "train", "--out", run, "--quiet",
                             *TINY_OVERRIDES).returncode == 0
    result = run_cli_inprocess("report", "--run", run, "--out", tmp_path / "r.html", "--reference", root,
                               "--generated", root / "data" / "train", "--forecast-trajectories", "0", "--quiet")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "r.html").read_text()
    assert "tiny_well" in text and "5 generated trajectories" in text and "density" in text
    result = run_cli_inprocess("evaluate", "--reference", root / "data" / "train", "--generated",
                               root / "data" / "test", "--out", tmp_path / "m.json")
    assert result.returncode == 0, result.stderr


def test_sampling_a_run_of_our_file_starts_from_well_frames(well, tmp_path: Path) -> None:
    from conftest import tiny_config
    from stochlift.lifting.rollout import sample_to_file
    from stochlift.lifting.train import train

    root, arrays = well
    write_trajectories(tmp_path / "ours.h5", WellSource(root, "test", normalize=False).meta(),
                       {"train": _physical(arrays["train"])})
    train(tiny_config(tmp_path / "ours.h5"), tmp_path / "run", progress=False)
    out = sample_to_file(tmp_path / "run", tmp_path / "s.h5", trajectories=3, initial=root, initial_split="test",
                         progress=False)
    starts = TrajectoryFile(out).read("generated", slice(None), slice(0, 1))[:, 0]
    np.testing.assert_array_equal(starts, _physical(arrays["test"])[[0, 1, 0], 0])
