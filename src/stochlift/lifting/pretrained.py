"""Pretrained quick models shipped inside the package: sample, score and look without training first.

    stochlift/pretrained/NAME.safetensors   the weights only (the run's EMA weights when it kept them, else its
                                            final ones; no optimizer state), the first frames of the test split,
                                            and as metadata: the resolved config, the data set's record (grid,
                                            time, parameters, how to make it again) and the training record
    stochlift/pretrained/NAME.md            its model card: data, recipe, steps, seed, scores, limits

`load_pretrained(NAME)` gives the model ready to roll out; "pretrained:NAME" works wherever a run directory
does for sampling (`load_run`, `sample_to_file`, `stochlift sample --run pretrained:NAME`): without a data file,
rollouts start from the shipped first frames of the quick data set's test split (as the demo starts them);
`--initial FILE` starts them from anything else. `unpack_pretrained` writes an ordinary run directory (the demo's
`--pretrained`). `pack_pretrained` makes such a file from a finished run (benchmarks/pretrained.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from stochlift.config import RunConfig, save_config
from stochlift.data.trajectories import TrajectoryFile, TrajectoryMeta
from stochlift.errors import StochliftError
from stochlift.io import atomic_dir, atomic_path, write_json
from stochlift.lifting.checkpoint import CHECKPOINT_NAME, TrainingState, load_weights, read_checkpoint, save_checkpoint
from stochlift.lifting.generator import Generator, as_module, build_model
from stochlift.lifting.training import EMA

PREFIX = "pretrained:"
FORMAT = "stochlift-pretrained-1"
INITIAL = "initial_frames"  # the tensor of the test split's first frames
WEIGHTS = "model."  # prefix of the weight tensors


def pretrained_folder() -> Path:
    """The package's folder of pretrained files (package data: it travels in the wheel)."""
    return Path(str(resources.files("stochlift") / "pretrained"))


def pretrained_names() -> list[str]:
    folder = pretrained_folder()
    return sorted(p.stem for p in folder.glob("*.safetensors")) if folder.is_dir() else []


def is_pretrained(run: str | os.PathLike | None) -> bool:
    """Whether `run` names a shipped model ("pretrained:NAME") rather than a run directory."""
    return isinstance(run, str) and run.startswith(PREFIX)


def pretrained_path(name: str) -> Path:
    name = name.removeprefix(PREFIX)
    path = pretrained_folder() / f"{name}.safetensors"
    if not path.is_file():
        known = ", ".join(pretrained_names()) or "none in this installation"
        raise StochliftError(f"no pretrained model {name!r}; the shipped ones: {known}")
    return path


@dataclass
class Pretrained:
    """A shipped model, loaded: roll it out with `stochlift.rollout(p.model, p.initial_frames(n), frames)`."""

    name: str
    model: Generator
    config: RunConfig  # resolved; data.path is the file it was trained on, which need not exist here
    meta: TrajectoryMeta  # of its data set: grid, time, parameters (what generated files record)
    initial: np.ndarray  # [N, k, *frame]: the first k frames of the N test trajectories (rollouts start here)
    record: dict[str, Any] = field(default_factory=dict)  # "data", "training", "initial": how it was made

    def initial_frames(self, n: int) -> np.ndarray:
        """n initial windows, cycling through the test trajectories as `stochlift sample` does."""
        return self.initial[np.arange(n) % len(self.initial)]

    @property
    def card(self) -> str:
        """The model card (markdown)."""
        path = pretrained_path(self.name).with_suffix(".md")
        return path.read_text() if path.is_file() else ""

    def start(self) -> PretrainedStart:
        return PretrainedStart(self.name, self.meta, self.initial, self.record.get("data", {}).get("remake", ""))


class PretrainedStart:
    """The shipped first frames read like the test split of a TrajectoryFile (`meta`, `splits`, `read`,
    `default_split`, `close`): what `sample_to_file` starts rollouts from when no --initial file is given."""

    def __init__(self, name: str, meta: TrajectoryMeta, initial: np.ndarray, remake: str = "") -> None:
        self.name, self.meta, self._initial, self.remake = name, meta, initial, remake
        self.splits = {"test": len(initial)}

    def default_split(self, preferred: str = "test") -> str:
        return "test"

    def read(self, split: str, rows: slice | int = slice(None), frames: slice = slice(None)) -> np.ndarray:
        if split != "test":
            raise StochliftError(f"pretrained:{self.name} ships the first frames of its test split only, not "
                                 f"{split!r}; pass --initial FILE")
        start, stop, _ = frames.indices(self.meta.frames)
        if stop > self._initial.shape[1]:
            raise StochliftError(f"pretrained:{self.name} ships the first {self._initial.shape[1]} frame(s) of its "
                                 f"test trajectories; for more, make its data set (`{self.remake}`) and pass it "
                                 "as --initial")
        return self._initial[rows, start:stop]

    def close(self) -> None:
        pass


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise StochliftError(f"{path} is not a readable safetensors file ({exc})") from None
    if metadata.get("format") != FORMAT:
        raise StochliftError(f"{path} is not a stochlift pretrained model (format {metadata.get('format')!r})")
    return tensors, {k: json.loads(v) for k, v in metadata.items() if k != "format"}


def load_pretrained(name: str) -> Pretrained:
    """The shipped model NAME ("wave-quick", "flow-quick", "digits-quick"; `pretrained_names()`), in eval mode."""
    name = name.removeprefix(PREFIX)
    tensors, record = _read(pretrained_path(name))
    config = RunConfig.from_dict(record["config"])
    model = build_model(config.model)
    load_weights(as_module(model), tensors, prefix=WEIGHTS)
    model.eval()
    initial = tensors[INITIAL].numpy()
    meta = meta_from_record(record["data"]["meta"])
    if initial.dtype == np.uint8:  # video frames are stored as bytes, read as values in [0, 1]
        initial = initial.astype(np.float32) / np.float32(255.0)
    return Pretrained(name, model, config, meta, initial.astype(np.float32), record)


def unpack_pretrained(name: str, run_dir: str | os.PathLike, data: str | os.PathLike) -> Path:
    """Write the shipped model NAME as an ordinary, finished run directory on `data` (config.yaml, checkpoint,
    train_log.json with the recorded loss history), for the tools that want one (the demo, the report)."""
    pretrained = load_pretrained(name)
    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT_NAME).is_file():
        return run_dir
    config = RunConfig.from_dict(pretrained.config.to_dict())
    config.data.path = str(data)
    training = pretrained.record.get("training", {})
    state = TrainingState(step=config.train.steps, history=training.get("history", []), config=config.to_dict())
    with atomic_dir(run_dir) as tmp:
        save_config(config, tmp / "config.yaml")
        save_checkpoint(tmp / CHECKPOINT_NAME, as_module(pretrained.model), None, state)
        write_json(tmp / "train_log.json", {"history": state.history, "step": state.step, "steps": state.step,
                                            "pretrained": name})
    return run_dir


# ---------------------------------------------------------------------------------------------- packing


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def meta_record(meta: TrajectoryMeta) -> dict[str, Any]:
    return _jsonable({
        "dataset_name": meta.dataset_name, "problem": meta.problem, "field_names": meta.field_names,
        "time": meta.time, "x": meta.x, "y": meta.y, "periodic": meta.periodic, "field_scales": meta.field_scales,
        "parameters": meta.parameters, "dtype": meta.dtype, "boundaries": meta.boundaries,
    })


def meta_from_record(raw: dict[str, Any]) -> TrajectoryMeta:
    arrays = {k: None if raw.get(k) is None else np.asarray(raw[k], dtype=np.float64) for k in ("time", "x", "y")}
    if arrays["time"] is None:
        raise StochliftError("a pretrained file's data record has no time axis")
    return TrajectoryMeta(
        dataset_name=raw["dataset_name"], problem=raw["problem"], field_names=tuple(raw["field_names"]),
        time=arrays["time"], x=arrays["x"], y=arrays["y"], periodic=bool(raw["periodic"]),
        field_scales=dict(raw.get("field_scales") or {}), parameters=dict(raw.get("parameters") or {}),
        dtype=raw.get("dtype", "float32"),
        boundaries=tuple(raw["boundaries"]) if raw.get("boundaries") else None,
    )


def pack_pretrained(run_dir: str | os.PathLike, out: str | os.PathLike, *, remake: str, initial_frames: int = 1,
                    training: dict[str, Any] | None = None) -> Path:
    """Pack a finished run into a pretrained file `out`: its sampling weights, its config (data.path kept as a
    record), its data set's metadata with `remake` (the command that makes the data set again), and the first
    `initial_frames` frames of every test trajectory. `training`: more of its record (seed, selection, ...)."""
    run_dir = Path(run_dir)
    tensors, state, _ = read_checkpoint(run_dir / CHECKPOINT_NAME)
    config = RunConfig.from_dict(state.config)
    if state.step != config.train.steps:
        raise StochliftError(f"{run_dir} has trained {state.step} of {config.train.steps} steps; finish it first")
    data_path, config.data.path = config.data.path, None  # the data set is recorded by `remake`, not a local path
    if data_path is None:
        raise StochliftError(f"{run_dir} records no data file to take the first test frames from")
    prefix = EMA.PREFIX if any(k.startswith(EMA.PREFIX) for k in tensors) else "model."
    weights = {WEIGHTS + k[len(prefix):]: v.contiguous() for k, v in tensors.items() if k.startswith(prefix)}
    with TrajectoryFile(data_path) as data:
        start = data.read("test", slice(None), slice(0, initial_frames))
        meta = data.meta
        splits = dict(data.splits)
    stored = np.round(start * 255).astype(np.uint8) if meta.dtype == "uint8" else start.astype(np.float32)
    record = {
        "config": config.to_dict(),
        "data": {"meta": meta_record(meta), "splits": splits, "remake": remake},
        "initial": {"split": "test", "frames": initial_frames, "trajectories": len(start)},
        "training": {"steps": state.step, "weights": "ema" if prefix == EMA.PREFIX else "final",
                     "final_loss": state.history[-1]["loss"] if state.history else None,
                     "history": state.history, **_jsonable(training or {})},
    }
    metadata = {"format": FORMAT, **{k: json.dumps(v) for k, v in record.items()}}
    with atomic_path(out) as tmp:
        save_file({**weights, INITIAL: torch.from_numpy(np.ascontiguousarray(stored))}, str(tmp), metadata=metadata)
    return Path(out)
