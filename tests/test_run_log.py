"""The run log (lifting/run_log.py): TensorBoard's own reader finds the loss, the CSV holds one row per logged
step, a resumed run continues both without a step twice, and outside a terminal no bar redraws are written."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import TINY_OVERRIDES, tiny_config
from stochlift.lifting.loader import StepBatches
from stochlift.lifting.run_log import CSV_NAME, rollout_picture, training_seconds
from stochlift.lifting.train import train
from stochlift.progress import tqdm

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LOGGED = ("train.steps=8", "train.log_every=2", "train.validate_every=4", "train.validation_trajectories=2",
          "train.checkpoint_every=4")


def events(run: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def csv_rows(run: Path) -> list[dict[str, str]]:
    with open(run / CSV_NAME, newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path, one_torch_thread) -> tuple[Path, list]:
    run = tmp_path_factory.mktemp("logged") / "run"
    result = train(tiny_config(tiny_data, *LOGGED), run, progress=False)
    return run, result.history


def test_tensorboard_reader_finds_the_loss_and_the_validation_score(logged_run) -> None:
    run, history = logged_run
    accumulator = events(run)
    losses = {e.step: e.value for e in accumulator.Scalars("train/loss")}
    assert losses.keys() == {h["step"] for h in history if "loss" in h} == {2, 4, 6, 8}
    for entry in history:
        assert losses[entry["step"]] == pytest.approx(entry["loss"], rel=1e-6)
    assert [e.step for e in accumulator.Scalars("valid/energy_score")] == [4, 8]
    assert {"train/lr", "train/pairs_per_s", "valid/spread_skill"} <= set(accumulator.Tags()["scalars"])
    pictures = accumulator.Images("valid/rollouts")
    assert [p.step for p in pictures] == [4, 8] and pictures[0].width > 0 and pictures[0].height > 0


def test_csv_has_one_row_per_logged_step(logged_run) -> None:
    run, history = logged_run
    rows = csv_rows(run)
    assert [int(r["step"]) for r in rows] == [h["step"] for h in history]
    for row, entry in zip(rows, history):
        assert float(row["loss"]) == pytest.approx(entry["loss"], rel=1e-5)
        assert float(row["pairs_per_s"]) > 0
        assert (row["val_energy_score"] != "") == ("val_energy_score" in entry)


def test_a_crashed_and_resumed_run_logs_every_step_once(tmp_path: Path, tiny_data: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash after step 6 loses steps 5-6 (checkpoint at 4); their rows and events go, the resume rewrites them."""
    config, run = tiny_config(tiny_data, *LOGGED, "train.log_every=1"), tmp_path / "run"
    real = StepBatches.global_batch

    def crashing(self, step):
        if step == 6:
            raise KeyboardInterrupt
        return real(self, step)

    monkeypatch.setattr(StepBatches, "global_batch", crashing)
    with pytest.raises(KeyboardInterrupt):
        train(config, run, progress=False)
    assert [int(r["step"]) for r in csv_rows(run)] == [1, 2, 3, 4, 5, 6]
    monkeypatch.setattr(StepBatches, "global_batch", real)
    result = train(config, run, resume=True, progress=False)
    assert [int(r["step"]) for r in csv_rows(run)] == list(range(1, 9))
    losses = events(run).Scalars("train/loss")
    assert [e.step for e in losses] == list(range(1, 9))
    for event, entry in zip(losses, result.history):
        assert event.value == pytest.approx(entry["loss"], rel=1e-6)


def test_cli_train_outside_a_terminal_writes_lines_not_redraws(run_cli, tmp_path: Path, tiny_data: Path) -> None:
    result = run_cli("train", "--data", tiny_data, "--out", tmp_path / "run", *TINY_OVERRIDES, "train.steps=20",
                     "train.validate_every=10", "train.validation_trajectories=2")
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    progress = [line for line in result.stderr_lines if line.startswith("train:")]
    assert progress and "20/20" in progress[-1] and len(progress) <= 6, result.stderr
    assert any("val_energy=" in line and "10/20" in line for line in progress), result.stderr  # validation line
    assert f"tensorboard --logdir {tmp_path / 'run'}" in result.stdout
    assert "stochlift sample --run" in result.stdout and "stochlift report --run" in result.stdout


def test_a_bar_in_a_log_file_is_a_few_plain_lines() -> None:
    class LogFile(io.StringIO):
        def isatty(self) -> bool:
            return False

    log = LogFile()
    for _ in tqdm(range(5000), desc="work", file=log):
        pass
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert 1 <= len(lines) <= 3 and "5000/5000" in lines[-1]


def test_rollout_pictures_by_frame_rank() -> None:
    rng = np.random.default_rng(0)
    display = {"cmap": "RdBu_r", "vmax": 1.0}
    fields_2d = rollout_picture(rng.normal(size=(2, 10, 1, 8, 8)), rng.normal(size=(2, 10, 1, 8, 8)), display)
    assert fields_2d.dtype == np.uint8 and fields_2d.shape[2] == 3
    assert fields_2d.shape[0] > fields_2d.shape[1] / 6 * 2  # three rows (truth + 2 generated) of six frames
    fields_1d = rollout_picture(rng.normal(size=(4, 20, 1, 16)), rng.normal(size=(4, 20, 1, 16)), display)
    assert fields_1d.shape[2] == 3 and fields_1d.shape[1] > fields_1d.shape[0]  # four space-time images side by side
    video = rng.uniform(size=(2, 5, 3, 8, 8))
    rgb = rollout_picture(video, video, {"cmap": "viridis", "value_range": (0.0, 1.0)})
    cell = rgb[: rgb.shape[0] // 3 - 1, : rgb.shape[1] // 5 - 1]  # the first true frame, enlarged
    assert np.abs(cell[0, 0].astype(float) - video[0, 0, :, 0, 0] * 255).max() <= 1
    assert rollout_picture(rng.normal(size=(2, 10, 3)), rng.normal(size=(2, 10, 3)), display) is None  # vectors


def test_training_seconds_adds_each_segment_of_a_resumed_log(tmp_path: Path) -> None:
    """Two segments (a resume at step 100): each interval's pairs over its row's pairs/s, summed."""
    (tmp_path / CSV_NAME).write_text("step,loss,lr,pairs_per_s,val_energy_score,val_spread_skill\n"
                                     "50,1,1,100,,\n100,1,1,80,,\n150,1,1,400,,\n200,1,1,400,,\n")
    # batch 4: 50 steps = 200 pairs per interval -> 2 + 2.5 + 0.5 + 0.5 seconds
    assert training_seconds(tmp_path, batch_size=4) == pytest.approx(5.5)
    assert training_seconds(tmp_path / "missing", batch_size=4) is None
