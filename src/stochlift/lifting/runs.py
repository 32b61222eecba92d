"""A training run directory, read back: its model, config and data, and whether it has finished.

    RUN/config.yaml               the fully resolved config
    RUN/checkpoint.safetensors    weights (and EMA weights), optimizer state, progress, the config again
    RUN/train_log.json            the loss history; written when training has finished
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import cast

from stochlift.config import RunConfig
from stochlift.data.readers import TrajectoryReader
from stochlift.data.trajectories import TrajectoryFile
from stochlift.data.well import NORMALIZATION_FILE, is_well_path
from stochlift.errors import StochliftError
from stochlift.lifting.checkpoint import CHECKPOINT_NAME, checkpoint_data, load_weights, read_checkpoint
from stochlift.lifting.fingerprint import check_same_kind, data_identity
from stochlift.lifting.generator import Generator, as_module, build_model
from stochlift.lifting.pretrained import PretrainedStart, is_pretrained, load_pretrained
from stochlift.lifting.training import EMA


def run_finished(run_dir: str | os.PathLike) -> bool:
    """Whether the run in run_dir trained all its steps (train_log.json is written at the end)."""
    log = Path(run_dir) / "train_log.json"
    if not log.is_file():
        return False
    saved = json.loads(log.read_text())
    return saved.get("step") == saved.get("steps")


def load_run(run_dir: str | os.PathLike) -> tuple[Generator, RunConfig, TrajectoryFile | PretrainedStart | None]:
    """The trained model of a run directory (EMA weights if the run kept them), its config and its data file.
    "pretrained:NAME" loads a shipped model; its data are the first frames of its test split (pretrained.py)."""
    if is_pretrained(run_dir):
        pretrained = load_pretrained(str(run_dir))
        return pretrained.model, pretrained.config, pretrained.start()
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT_NAME).is_file():
        raise StochliftError(f"{run_dir} is not a training run (no {CHECKPOINT_NAME}); "
                             "train one with `stochlift train`")
    tensors, state, _ = read_checkpoint(run_dir / CHECKPOINT_NAME)
    config = RunConfig.from_dict(state.config)
    path = config.data.path
    data = TrajectoryFile(path) if path and Path(path).is_file() and not is_well_path(path) else None
    model = build_model(config.model)
    has_ema = any(k.startswith(EMA.PREFIX) for k in tensors)
    load_weights(as_module(model), tensors, prefix=EMA.PREFIX if has_ema else "model.")
    model.eval()
    return model, config, data


def run_files(run_dir: str | os.PathLike) -> list[Path]:
    """The files a run directory holds for its run (what training writes, and sampling reads)."""
    return [Path(run_dir) / name for name in ("config.yaml", CHECKPOINT_NAME, "train_log.json", NORMALIZATION_FILE)]


def run_data(run_dir: str | os.PathLike) -> dict:
    """What the run in run_dir recorded about its training data (problem, fields, fingerprint, path); for a
    run from before that was recorded, the problem and fields of its data file if that is still there."""
    if is_pretrained(run_dir):  # a shipped model: what its data set's metadata says
        pretrained = load_pretrained(str(run_dir))
        return data_identity(pretrained.meta, None, path=None, split=pretrained.config.data.split, rows=0)
    recorded = checkpoint_data(Path(run_dir) / CHECKPOINT_NAME)
    if recorded:
        return recorded
    _, config, data = load_run(run_dir)
    if data is None:
        return {}
    data = cast(TrajectoryFile, data)  # not pretrained (returned above): load_run gives a TrajectoryFile or None
    return data_identity(data.meta, None, path=str(data.path), split=config.data.split,
                         rows=data.splits.get(config.data.split, 0))


def check_run_inputs(run_dir: str | os.PathLike, file: TrajectoryReader | PretrainedStart, what: str) -> None:
    """Refuse a trajectory file from another problem, or with other fields, than the run trained on, even
    when its frames have the model's shape (a Wave model is not started from Flow or digit frames)."""
    check_same_kind(run_data(run_dir), file.meta, f"{what} {getattr(file, 'path', '(shipped first frames)')}")
