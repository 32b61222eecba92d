"""Splits are never silently empty or surprising: a video folder too small for its fractions is refused, a data
command says how it split, and sampling from a file without a test split says where it starts."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_OVERRIDES, tiny_config, tiny_meta
from stochlift.data.trajectories import TrajectoryFile, write_trajectories
from stochlift.data.video import import_video_folder
from stochlift.errors import StochliftError
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _videos(folder: Path, count: int) -> Path:
    import imageio.v3 as iio

    folder.mkdir()
    for i in range(count):
        frames = np.broadcast_to((10 * np.arange(4) + i)[:, None, None, None], (4, 8, 8, 3)).astype(np.uint8)
        iio.imwrite(folder / f"v{i}.gif", frames, duration=50)
    return folder


def test_a_video_folder_too_small_for_its_split_is_refused(tmp_path: Path) -> None:
    src = _videos(tmp_path / "three", 3)
    with pytest.raises(StochliftError, match=r"3 videos are too few for --split-fractions 0.8,0.1,0.1: split valid "
                                             r"would be empty; import at least 10"):
        import_video_folder(src, tmp_path / "v.h5", size=8, clip_length=2, progress=False)
    assert not (tmp_path / "v.h5").exists()
    import_video_folder(src, tmp_path / "v.h5", size=8, clip_length=2, split=(0.34, 0.33, 0.33), progress=False)
    assert TrajectoryFile(tmp_path / "v.h5").splits == {"train": 2, "valid": 2, "test": 2}  # 2 clips per video


def test_data_commands_say_how_they_split(tmp_path: Path, run_cli_inprocess) -> None:
    result = run_cli_inprocess("data", "wave", "--out", tmp_path / "w.h5", "--trajectories", 48, "--frames", 4,
                               "--size", 8, "--quiet")
    assert result.returncode == 0, result.stderr
    assert f"wrote {tmp_path / 'w.h5'} (train 14, valid 4, test 30 trajectories)" in result.stdout
    assert TrajectoryFile(tmp_path / "w.h5").splits == {"train": 14, "valid": 4, "test": 30}


def test_sampling_from_a_file_without_a_test_split_says_so(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(4, 6, 1, 8, 8)).astype(np.float32)
    write_trajectories(tmp_path / "train_only.h5", tiny_meta(), {"train": data})
    train(tiny_config(tmp_path / "train_only.h5", *TINY_OVERRIDES), tmp_path / "run", progress=False)
    with pytest.warns(UserWarning, match="has no test split: rollouts start from its 'train' split, the data the "
                                         "model trained on"):
        sample_to_file(tmp_path / "run", tmp_path / "s.h5", trajectories=2, progress=False)
    write_trajectories(tmp_path / "both.h5", tiny_meta(), {"train": data[:2], "test": data[2:]})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        sample_to_file(tmp_path / "run", tmp_path / "t.h5", trajectories=2, initial=tmp_path / "both.h5",
                       progress=False)
    assert not [w for w in record if "no test split" in str(w.message)]
