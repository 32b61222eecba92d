"""Sampling holds a bounded number of frames whatever --frames is (issue 21, case 7).

The memory itself is measured by benchmarks/sampling_memory.py (peak RSS at 50 / 500 / 5,000 frames); these
tests pin the mechanism: the rollout reaches the file in pieces of at most STREAM_FRAMES frames, written as
whole HDF5 chunks, and the writer's bookkeeping is one number per row, not one flag per frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_config, tiny_meta
from stochlift.data.trajectories import TrajectoryFile, TrajectoryWriter, _Coverage
from stochlift.errors import StochliftError
from stochlift.lifting import rollout as rollout_module
from stochlift.lifting.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_long_rollout_reaches_the_file_in_bounded_pieces(tmp_path: Path, tiny_data: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    train(tiny_config(tiny_data, "train.steps=1"), tmp_path / "run", progress=False)
    pieces, real = [], TrajectoryWriter.write

    def spy(self, split, start, fields, static=None, *, frame_start=None):
        pieces.append((start, frame_start, next(iter(fields.values())).shape[1], self.time_chunk))
        return real(self, split, start, fields, static, frame_start=frame_start)

    monkeypatch.setattr(TrajectoryWriter, "write", spy)
    frames = 3 * rollout_module.STREAM_FRAMES + 5
    out = rollout_module.sample_to_file(tmp_path / "run", tmp_path / "s.h5", trajectories=6, frames=frames,
                                        batch_size=4, progress=False)
    assert max(t for _, _, t, _ in pieces) == rollout_module.STREAM_FRAMES  # not all `frames` at once
    assert sum(t for row, _, t, _ in pieces if row == 0) == frames
    assert all(first % chunk == 0 and (t % chunk == 0 or first + t == frames) for _, first, t, chunk in pieces)
    generated = TrajectoryFile(out).read("generated")
    assert generated.shape[:2] == (6, frames) and np.isfinite(generated).all()


def test_the_writers_bookkeeping_is_per_row_and_takes_writes_in_any_order(tmp_path: Path) -> None:
    coverage = _Coverage(rows=3, frames=10)
    coverage.add(slice(0, 3), 0, 4)
    coverage.add(slice(0, 2), 7, 10)  # ahead of a gap
    assert coverage.incomplete_rows() == 3 and coverage.prefix.tolist() == [4, 4, 4]
    coverage.add(slice(0, 2), 4, 7)  # fills the gap: rows 0 and 1 complete
    assert coverage.prefix.tolist() == [10, 10, 4] and coverage.ahead == {}
    coverage.add(slice(2, 3), 4, 10)
    assert coverage.incomplete_rows() == 0
    meta = tiny_meta(frames=10)
    with pytest.raises(StochliftError, match="rows missing: {'test': 1}"):
        with TrajectoryWriter(tmp_path / "t.h5", meta, {"test": 2}, time_chunk=4) as writer:
            values = np.zeros((2, 4, 8, 8), np.float32)
            writer.write("test", 0, {"u": values}, frame_start=0)
            writer.write("test", 0, {"u": values[:1]}, frame_start=4)
            writer.write("test", 0, {"u": values[:, :2]}, frame_start=8)
    assert not (tmp_path / "t.h5").exists()
