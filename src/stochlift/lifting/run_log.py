"""What a training run shows while it trains, and the log it leaves in its directory to watch it by.

- `train_log.csv`: one row per logged step: loss, learning rate, pairs/s and, at validation steps, the
  validation scores (lifting/validation.py); a spreadsheet or pandas reads it while the run goes on.
- TensorBoard event files (`tensorboard --logdir RUN`): the same scalars and, at each validation, a picture
  of a few rollouts beside a true trajectory (2-D fields: frames over time; 1-D fields: space-time images;
  vectors: none).
- The console: a progress bar with the latest loss and validation score; outside a terminal (a log file,
  CI) a plain line now and then and at each validation instead of bar redraws (stochlift.progress).

Only rank 0 writes. A resumed run continues both files from its checkpoint's step: CSV rows after that step
(written before a crash, lost with it) are dropped, and TensorBoard hides the later events of earlier files
(SummaryWriter's purge_step), so no step appears twice.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from stochlift.io import atomic_path
from stochlift.progress import tqdm

log = logging.getLogger(__name__)

CSV_NAME = "train_log.csv"
COLUMNS = ("step", "loss", "lr", "pairs_per_s", "val_energy_score", "val_spread_skill")
TENSORBOARD_TAGS = {"loss": "train/loss", "lr": "train/lr", "pairs_per_s": "train/pairs_per_s",
                    "val_energy_score": "valid/energy_score", "val_spread_skill": "valid/spread_skill"}
SHOWN_TRAJECTORIES, SHOWN_FRAMES, CELL_PIXELS = 3, 6, 64  # the rollout picture: rows, columns, cell size


class RunLog:
    """Called by the training loop once per step (`step`) and once per history entry (`entry`)."""

    def __init__(self, run_dir: Path, *, first_step: int, total: int, batch_size: int, enabled: bool = True,
                 progress: bool = True) -> None:
        self.first_step, self.batch_size, self.enabled = first_step, batch_size, enabled
        self.run_dir, self.total = run_dir, total
        self.csv: Any = None
        self._writer: Any = None  # opened with the first event, so a run with nothing left to train adds no file
        if enabled:
            self.csv = _continue_csv(run_dir / CSV_NAME, first_step)
            continued = f", continued from step {first_step}" if first_step else ""
        if enabled and progress:  # quiet runs print nothing but errors
            log.info(f"run log: {run_dir / CSV_NAME} and TensorBoard (tensorboard --logdir {run_dir}){continued}")
        self.started = time.perf_counter()
        self.bar = tqdm(total=total, initial=first_step, desc="train", disable=not (enabled and progress))

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def step(self) -> None:
        self.bar.update(1)

    def entry(self, step: int, entry: dict[str, float]) -> None:
        """A history entry (loss, lr, validation scores) of `step`: to the CSV, TensorBoard and the console."""
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.started
        row = {**entry, "pairs_per_s": (step - self.first_step) * self.batch_size / max(elapsed, 1e-9)}
        self.csv.writerow({"step": step, **{k: _cell(row.get(k)) for k in COLUMNS[1:]}})
        self.csv.file.flush()
        if self.writer is not None:
            for key, value in row.items():
                if key in TENSORBOARD_TAGS and math.isfinite(value):
                    self.writer.add_scalar(TENSORBOARD_TAGS[key], value, step)
            self.writer.flush()
        # a validation score gets a line of its own in a log file (the last step's comes when the bar closes)
        self.bar.set_postfix(_shown(row), refresh="val_energy_score" in row and step < self.total)

    def rollouts(self, step: int, truth: np.ndarray, generated: np.ndarray, display: dict[str, Any]) -> None:
        """A picture of a few validation rollouts [n, T, *frame] under their true trajectories (TensorBoard)."""
        if self.writer is None:
            return
        picture = rollout_picture(truth, generated, display)
        if picture is not None:
            self.writer.add_image("valid/rollouts", picture, step, dataformats="HWC")
            self.writer.flush()

    @property
    def writer(self) -> Any:
        """The TensorBoard SummaryWriter (None where tensorboard is missing or this rank does not write)."""
        if self._writer is None and self.enabled:
            self._writer = _tensorboard(self.run_dir, self.first_step) or False
        return self._writer or None

    def close(self) -> None:
        self.bar.close()
        if self.csv is not None:
            self.csv.file.close()
            self.csv = None
        if self._writer:
            self._writer.close()
        self._writer = None


class _CsvRows(csv.DictWriter):
    def __init__(self, file: Any) -> None:
        super().__init__(file, fieldnames=COLUMNS)
        self.file = file


def _continue_csv(path: Path, first_step: int) -> _CsvRows:
    """The CSV opened for appending, holding exactly the rows of steps up to `first_step` (a resumed run's
    checkpoint step; rows written after it died with the run that wrote them)."""
    kept = []
    if first_step > 0 and path.is_file():
        with open(path, newline="") as file:
            for row in csv.DictReader(file):
                step = row.get("step") or ""
                if step.isdigit() and int(step) <= first_step and None not in row.values():
                    kept.append({k: row.get(k, "") for k in COLUMNS})
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(kept)
    return _CsvRows(open(path, "a", newline=""))


def _tensorboard(run_dir: Path, first_step: int) -> Any:
    """A SummaryWriter into the run directory; steps after `first_step` in earlier event files are hidden."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("no TensorBoard event files: the tensorboard package is not installed (pip install tensorboard)")
        return None
    return SummaryWriter(log_dir=os.fspath(run_dir), purge_step=first_step + 1)


def _cell(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.6g}"


def _shown(row: dict[str, float]) -> dict[str, str]:
    """A row as the progress bar shows it."""
    shown = {"loss": f"{row['loss']:.4g}"} if "loss" in row else {}
    if "val_energy_score" in row:
        shown["val_energy"] = f"{row['val_energy_score']:.4g}"
    return {**shown, "pairs_per_s": f"{row['pairs_per_s']:.0f}"}


def rollout_picture(truth: np.ndarray, generated: np.ndarray, display: dict[str, Any]) -> np.ndarray | None:
    """uint8 RGB [H, W, 3]: the first true trajectory above a few generated ones, coloured as the problem shows
    its fields (`Problem.display`). 2-D fields [n, T, C, H, W]: a row of frames evenly spaced in time per
    trajectory; 1-D fields [n, T, C, X]: one space-time image (time down) per trajectory, side by side;
    vectors: None."""
    rank = truth.ndim - 2
    if rank not in (2, 3):
        return None
    shown = np.concatenate([truth[:1], generated[:SHOWN_TRAJECTORIES]]).astype(np.float32)
    rgb = rank == 3 and shown.shape[2] == 3 and "value_range" in display
    low, high = _limits(truth, display)
    values = np.clip((shown - low) / (high - low), 0.0, 1.0)
    if rank == 3:
        times = np.unique(np.linspace(0, shown.shape[1] - 1, SHOWN_FRAMES).round().astype(int))
        cells = values[:, times]  # [k, t, C, H, W]
        cells = np.moveaxis(cells, 2, -1) if rgb else _coloured(cells[:, :, 0], display)  # [k, t, H, W, 3]
        cells = _enlarge(cells, max(cells.shape[2:4]))
        return _tile([[cell for cell in row] for row in cells])
    images = _enlarge(_coloured(values[:, :, 0], display)[:, None], max(values.shape[1], values.shape[3]))[:, 0]
    return _tile([list(images)])


def _limits(truth: np.ndarray, display: dict[str, Any]) -> tuple[float, float]:
    if display.get("value_range"):
        low, high = display["value_range"]
    elif display.get("vmax"):
        low, high = -display["vmax"], display["vmax"]
    else:
        low, high = float(np.min(truth)), float(np.max(truth))
    return float(low), (float(high) if high > low else float(low) + 1.0)


def _coloured(values: np.ndarray, display: dict[str, Any]) -> np.ndarray:
    """Values in [0, 1] -> RGB floats through the display's colour map."""
    from matplotlib import colormaps

    return colormaps[display.get("cmap", "viridis")](values)[..., :3]


def _enlarge(cells: np.ndarray, side: int) -> np.ndarray:
    """Cells [..., h, w, 3] repeated to about CELL_PIXELS pixels on their longer side."""
    factor = max(1, CELL_PIXELS // max(side, 1))
    return cells.repeat(factor, axis=-3).repeat(factor, axis=-2)


def _tile(rows: list[list[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Equal cells [h, w, 3] laid out in rows with white gaps, as uint8."""
    h, w = rows[0][0].shape[:2]
    out = np.ones((len(rows) * (h + gap) - gap, len(rows[0]) * (w + gap) - gap, 3), dtype=np.float32)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            out[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = cell
    return (out * 255).round().astype(np.uint8)


def where_to_look(run_dir: str | os.PathLike, logdir: str | os.PathLike | None = None) -> list[str]:
    """What to tell a user when a run is done: where its logs are (`logdir`: a folder of several runs, such
    as the seeds of --best-of) and what to run next."""
    run = Path(run_dir)
    return [
        f"its log:    tensorboard --logdir {logdir or run}   (or {run / CSV_NAME}: one row per logged step)",
        f"next:       stochlift sample --run {run} --out {run / 'samples.h5'}",
        f"            stochlift report --run {run} --out {run / 'report.html'}",
    ]


def training_seconds(run_dir: Path, batch_size: int) -> float | None:
    """Wall seconds a run spent training, read back from its `train_log.csv` (None without one): each logged
    interval's pairs over the pairs/s of its row, so a resumed run's segments add up and idle time between
    them does not count."""
    path = Path(run_dir) / CSV_NAME
    if not path.is_file():
        return None
    total, previous = 0.0, 0
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            step, rate = int(row["step"]), float(row["pairs_per_s"] or "nan")
            if step > previous and rate > 0:
                total += (step - previous) * batch_size / rate
            previous = step
    return total
