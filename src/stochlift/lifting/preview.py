"""A config as training will use it, without training: what `stochlift config show` prints.

Training fills some values from the data when it starts (lifting/train.py `resolve_config`): the frame
shape, the residual scale, periodic padding, the method's own scales. `filled_from_data` names the ones a
config leaves open and what decides each; `resolve_from_data` fills them from a data file exactly as
training would, and builds the model (a dry run: the data are read and checked, nothing is trained).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from stochlift.config import ANCHORED, METHODS, RunConfig, apply_overrides, config_text, load_config
from stochlift.lifting.generator import build_model
from stochlift.lifting.pairs import PairSet
from stochlift.lifting.train import open_source, resolve_config
from stochlift.models import BACKBONES


def filled_from_data(config: RunConfig) -> dict[str, str]:
    """The values that training takes from the data ("model.residual_scale" -> what decides it), for those
    the config leaves open."""
    model, notes = config.model, {}
    if not config.data.path:
        notes["data.path"] = "the training data: train --data FILE (kept as an absolute path)"
    if model.frame_shape is None:
        notes["model.frame_shape"] = "from the data: one frame's shape, [C, H, W], [C, X] or [D]"
    if model.output in ANCHORED and model.residual_scale is None:
        notes["model.residual_scale"] = "from the data: s, the std of x[t+1] - anchor over the training pairs"
    if BACKBONES.get(model.backbone).periodic and "periodic" not in model.options:
        notes["model.options.periodic"] = "from the data: circular padding when its domain is periodic"
    for key, note in getattr(METHODS.get(model.method), "filled_from_data", {}).items():
        if getattr(model, key) is None:
            notes[f"model.{key}"] = f"from the data: {note}"
    return notes


@dataclass
class DryRun:
    """A config resolved from its data, with what training would start from."""

    config: RunConfig
    trajectories: int  # in the training split
    pairs: int  # training pairs (window, next frame)
    parameters: int  # of the model


def resolve_from_data(config: RunConfig, data: str | os.PathLike | None = None) -> DryRun:
    """The config with every data-derived value filled from `data` (default: config.data.path), as training
    would fill it; the model is built (so bad options fail here), nothing is trained or written."""
    config = RunConfig.from_dict(config.to_dict())
    if data is not None:
        config.data.path = os.fspath(data)
    source, periodic = open_source(config)
    pairs = PairSet(source, config.model.window, config.model.history_padding)
    config = resolve_config(config, pairs, periodic)
    model = build_model(config.model)
    return DryRun(config, source.n_trajectories, pairs.n_pairs, sum(p.numel() for p in model.parameters()))


def show_config(name_or_path: str | os.PathLike | None, overrides: list[str] | tuple[str, ...] = (),
                data: str | os.PathLike | None = None) -> str:
    """A preset (or YAML file) with overrides, resolved, as commented YAML that `load_config` reads back.

    Without `data`, each value training takes from the data is marked with what decides it (and the backbone's
    options are checked); with `data`, they are filled from that file (a dry run) and the header says what
    training would start from.
    """
    config = apply_overrides(load_config(name_or_path), list(overrides))
    name = "the built-in defaults (no preset)" if name_or_path is None else str(name_or_path)
    header = [name + (f" with {' '.join(overrides)}" if overrides else "")]
    open_values = filled_from_data(config)
    if data is None:
        BACKBONES.get(config.model.backbone).check_options(config.model.backbone, config.model.options)
        header.append("values marked 'from the data' are filled when training starts; "
                      "`stochlift config show ... --data FILE` fills them now")
        return config_text(config, open_values, header)
    dry = resolve_from_data(config, data)
    header.append(f"resolved from {dry.config.data.path} (split {dry.config.data.split}: {dry.trajectories} "
                  f"trajectories, {dry.pairs:,} training pairs); the model has {dry.parameters:,} parameters")
    notes = {key: f"from the data ({note.removeprefix('from the data: ')})"
             for key, note in open_values.items() if key != "data.path"}
    return config_text(dry.config, notes, header)
