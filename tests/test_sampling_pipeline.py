"""The sampling pipeline (stochlift.lifting.sampling): built once from a run, called for arrays in memory and
for a file, and both agree with `sample_to_file` (its one-call form) for the same seed and batch size."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import stochlift
from conftest import tiny_config, write_tiny
from stochlift.data.trajectories import TrajectoryFile
from stochlift.errors import StochliftError
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.sampling import SamplingPipeline
from stochlift.lifting.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ASK = {"trajectories": 5, "frames": 9, "seed": 3, "batch_size": 2}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path) -> Path:
    out = tmp_path_factory.mktemp("pipeline") / "run"
    train(tiny_config(tiny_data, "train.steps=2"), out, progress=False)
    return out


def test_one_pipeline_samples_in_memory_and_to_a_file_as_sample_to_file_does(run: Path, tmp_path: Path,
                                                                            tiny_data: Path) -> None:
    assert stochlift.SamplingPipeline is SamplingPipeline  # exported lazily
    pipe = SamplingPipeline.from_run(run)
    reference = sample_to_file(run, tmp_path / "reference.h5", progress=False, **ASK)
    expected = TrajectoryFile(reference).read("generated")
    in_memory = pipe(ASK["trajectories"], ASK["frames"], seed=ASK["seed"], batch_size=ASK["batch_size"])
    assert in_memory.shape == (5, 9, 1, 8, 8) and np.array_equal(in_memory, expected)
    written = pipe.to_file(tmp_path / "pipe.h5", progress=False, **ASK)
    with h5py.File(reference, "r") as a, h5py.File(written, "r") as b:
        assert np.array_equal(a["generated/t0_fields/u"][()], b["generated/t0_fields/u"][()])
    assert TrajectoryFile(written).meta.parameters == TrajectoryFile(reference).meta.parameters
    # given frames as an array (the data's units) roll out as the same frames read from the file do
    given = TrajectoryFile(tiny_data).read("test", slice(None), slice(0, 1))[np.arange(5) % 2]
    assert np.array_equal(pipe(initial=given, frames=9, seed=3, batch_size=2), expected)


def test_a_wrong_initial_shape_is_a_one_line_error(run: Path, tmp_path: Path) -> None:
    pipe = SamplingPipeline.from_run(run)
    with pytest.raises(StochliftError, match=r"initial frames of shape \[2, 1, 1, 6, 6\] given; the model expects "
                                             r"\[N, k, 1, 8, 8\]") as caught:
        pipe(initial=np.zeros((2, 1, 1, 6, 6), np.float32), frames=4)
    assert "\n" not in str(caught.value)
    other = write_tiny(tmp_path / "big.h5", size=12)
    with pytest.raises(StochliftError, match=r"initial frames of shape \[1, 12, 12\] do not fit the model's "
                                             r"\[1, 8, 8\]") as caught:
        SamplingPipeline.from_run(run, initial=other)
    assert "\n" not in str(caught.value)


def test_a_batch_size_of_zero_is_one_line() -> None:
    from stochlift.lifting.sampling import check_request

    with pytest.raises(StochliftError, match=r"--batch-size must be > 0 \(or auto\), got 0"):
        check_request(4, 0, 0)
    check_request(4, 0, "auto")  # accepted
