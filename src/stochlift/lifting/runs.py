"""A training run directory, read back: its model, config and data, and whether it has finished.

    RUN/config.yaml               the fully resolved config
    RUN/checkpoint.safetensors    weights (and EMA weights), optimizer state, progress, the config again
    RUN/train_log.json            the loss history; written when training has finished
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from stochlift.config import RunConfig
from stochlift.data.trajectories import TrajectoryFile
from stochlift.data.well import is_well_path
from stochlift.errors import StochliftError
from stochlift.lifting.checkpoint import CHECKPOINT_NAME, load_weights, read_checkpoint
from stochlift.lifting.generator import Generator, build_model
from stochlift.lifting.training import EMA


def run_finished(run_dir: str | os.PathLike) -> bool:
    """Whether the run in run_dir trained all its steps (train_log.json is written at the end)."""
    log = Path(run_dir) / "train_log.json"
    if not log.is_file():
        return False
    saved = json.loads(log.read_text())
    return saved.get("step") == saved.get("steps")


def load_run(run_dir: str | os.PathLike) -> tuple[Generator, RunConfig, TrajectoryFile | None]:
    """The trained model of a run directory (EMA weights if the run kept them), its config and its data file."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT_NAME).is_file():
        raise StochliftError(f"{run_dir} is not a training run (no {CHECKPOINT_NAME}); train one with `stochlift train`")
    tensors, state, _ = read_checkpoint(run_dir / CHECKPOINT_NAME)
    config = RunConfig.from_dict(state.config)
    path = config.data.path
    data = TrajectoryFile(path) if path and Path(path).is_file() and not is_well_path(path) else None
    model = build_model(config.model)
    has_ema = any(k.startswith(EMA.PREFIX) for k in tensors)
    load_weights(model, tensors, prefix=EMA.PREFIX if has_ema else "model.")
    model.eval()
    return model, config, data
