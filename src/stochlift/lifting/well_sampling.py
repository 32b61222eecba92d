"""Sampling from a run trained on The Well's files (stochlift.data.well), used by stochlift.lifting.sampling.

The model saw normalised values, (value - mean) / std per channel. Sampling normalises the initial frames
the same way, rolls out, and de-normalises the generated frames to physical units before writing them in
our trajectory format (the channel names as field names). The normalisation is the run's record
(RUN/well_normalization.json, written by `stochlift train`), else what the data set says now (its
stats.yaml); the generated file records it in its `well_normalization` parameter.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from stochlift.config import RunConfig
from stochlift.data.trajectories import TrajectoryFile, TrajectoryMeta
from stochlift.data.well import NORMALIZATION_FILE, WellSource, dataset_root, is_well_path, resolve_files
from stochlift.errors import StochliftError
from stochlift.lifting.runs import load_run


def run_data_path(run_dir: str | os.PathLike) -> str | None:
    """data.path of a run, from its config.yaml (None when there is none)."""
    path = Path(run_dir) / "config.yaml"
    try:
        raw = yaml.safe_load(path.read_text()) if path.is_file() else None
    except yaml.YAMLError:
        return None
    return ((raw or {}).get("data") or {}).get("path") if isinstance(raw, dict) else None


def _data_path(config: RunConfig, then: str) -> str:
    if config.data.path is None:
        raise StochliftError(f"the run records no data file; {then}")
    return config.data.path


def run_normalization(run_dir: str | os.PathLike, config: RunConfig) -> dict[str, Any]:
    path = Path(run_dir) / NORMALIZATION_FILE
    if path.is_file():
        return json.loads(path.read_text())
    return WellSource(_data_path(config, f"its {NORMALIZATION_FILE} is missing too"), config.data.split).normalization()


def _initial_source(config: RunConfig, initial: str | os.PathLike | None, split: str | None) -> Any:
    """Where initial frames come from: --initial (a Well path or our file), else the run's data set, its
    test split when it has one (like our own files), else the training files."""
    if initial is not None:
        if is_well_path(initial):
            return WellSource(initial, split or "test", normalize=False)
        return TrajectoryFile(initial)
    data_path = _data_path(config, "pass --initial FILE")
    _, directory = resolve_files(data_path, config.data.split)
    root = dataset_root(directory)
    if (root / "data").is_dir():
        for name in ([split] if split else ["test"]):
            if (root / "data" / name).is_dir():
                return WellSource(root / "data" / name, normalize=False)
        if split:
            raise StochliftError(f"the run's data set {root} has no split {split!r} (no data/{split}/)")
    return WellSource(data_path, config.data.split, normalize=False)


@dataclass
class WellStart:
    """Everything sampling needs from a Well-trained run (stochlift.lifting.sampling): the model, the output
    metadata, the normalisation both ways, and where its initial frames are read (per call, for n rows)."""

    model: Any
    config: RunConfig
    meta: TrajectoryMeta  # of the output: physical units, channel names, the data's grid
    mean: np.ndarray
    std: np.ndarray
    source: Any  # WellSource or TrajectoryFile: where initial frames are read
    split: str | None
    count: int

    def denormalize(self, batch: np.ndarray) -> np.ndarray:
        return (batch * self.std[:, None, None] + self.mean[:, None, None]).astype(np.float32)

    def normalize(self, raw: np.ndarray) -> np.ndarray:
        """Physical frames [..., C, H, W] as the model saw them in training."""
        return ((raw - self.mean[:, None, None]) / self.std[:, None, None]).astype(np.float32)

    def frames(self, n: int) -> np.ndarray:
        """[n, count, C, H, W] initial frames, normalised as in training (rows cycled when the source has fewer)."""
        source, count = self.source, self.count
        if isinstance(source, WellSource):
            rows = min(n, source.n_trajectories)
            raw = np.stack([source.read_raw(i, 0, count) for i in range(rows)])
        else:
            part = self.split or source.default_split()
            channels = self.meta.field_names
            scales = np.array([source.meta.field_scales.get(c, 1.0) for c in channels], np.float32)[:, None, None]
            raw = source.read(part, slice(0, min(n, source.splits[part])), slice(0, count)) * scales
            source.close()
        return self.normalize(raw)[np.arange(n) % len(raw)]


def well_start(run_dir: str | os.PathLike, *, initial: str | os.PathLike | None = None, split: str | None = None,
               count: int = 1) -> WellStart | None:
    """The model, normalisation, initial frames' source and output metadata of a run trained on The Well's
    files; None for any other run. The channels and the number of given frames are checked here, before any
    frame is read."""
    if not (Path(run_dir) / NORMALIZATION_FILE).is_file() and not is_well_path(run_data_path(run_dir)):
        return None
    model, config, _ = load_run(run_dir)
    record = run_normalization(run_dir, config)
    mean, std = (np.asarray(record[k], dtype=np.float32) for k in ("mean", "std"))
    source = _initial_source(config, initial, split)
    if isinstance(source, WellSource):
        channels, total, meta = list(source.channels), source.frames, source.meta()
    else:
        channels, total, meta = list(source.meta.field_names), source.meta.frames, source.meta
    if channels != list(record["channels"]):
        raise StochliftError(f"initial frames have channels {channels}; the run was trained on {record['channels']}")
    if not 1 <= count <= total:
        raise StochliftError(f"initial frames must be between 1 and {total}, got {count}")
    meta = TrajectoryMeta(
        dataset_name=meta.dataset_name, problem=meta.problem, field_names=tuple(channels), time=meta.time, x=meta.x,
        y=meta.y, periodic=meta.periodic, boundaries=meta.boundaries,
        parameters={**meta.parameters, "well_normalization": record, "well_denormalized": True},
    )
    return WellStart(model, config, meta, mean, std, source, split, count)
