"""Checkpoints: one safetensors file per run holding weights, EMA weights, optimizer state and progress.

Tensors go in as safetensors (no pickle is ever loaded); the step, the loss history and the config ride
along as JSON in the file's metadata, so a checkpoint is one file, replaced atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from stochlift.errors import StochliftError
from stochlift.io import write_safetensors

CHECKPOINT_NAME = "checkpoint.safetensors"


@dataclass
class TrainingState:
    """Everything besides tensors that an exact resume needs."""

    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    running_loss: float = 0.0  # loss summed over the unfinished logging window
    # the training data: fingerprint, path, problem, fields (stochlift.lifting.fingerprint.data_identity)
    data: dict[str, Any] = field(default_factory=dict)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    state = optimizer.state_dict()
    tensors = {
        f"optim.{index}.{key}": value.detach().clone() if value.dim() else value.detach().reshape(1).clone()
        for index, slots in state["state"].items()
        for key, value in slots.items()
    }
    return tensors, state["param_groups"]


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    state: TrainingState,
    ema: dict[str, torch.Tensor] | None = None,
    extra: dict[str, torch.Tensor] | None = None,
) -> None:
    """`extra`: further named tensors (e.g. "scaler.scale" of fp16 training), stored as they are named."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    if ema:
        tensors.update({f"ema.{k}": v.detach().contiguous() for k, v in ema.items()})
    if extra:
        tensors.update({k: v.detach().contiguous() for k, v in extra.items()})
    groups: list[dict] = []
    if optimizer is not None:
        optim_tensors, groups = _optimizer_tensors(optimizer)
        tensors.update(optim_tensors)
    metadata = {
        "format": "stochlift-checkpoint-1",
        "step": str(state.step),
        "history": json.dumps(state.history),
        "config": json.dumps(state.config),
        "param_groups": json.dumps(groups),
        "running_loss": repr(float(state.running_loss)),
        "data": json.dumps(state.data),
    }
    write_safetensors(path, tensors, metadata)


def checkpoint_step(path: str | os.PathLike) -> int:
    """The step a checkpoint was saved at, from its header alone (0 when there is none yet)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return int((f.metadata() or {}).get("step", 0))
    except (SafetensorError, OSError, ValueError):
        return 0


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], TrainingState, list[dict]]:
    """(tensors, training state, optimizer param groups); a clear error for anything that is not ours."""
    path = Path(path)
    if not path.is_file():
        raise StochliftError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise StochliftError(f"{path} is not a readable safetensors checkpoint ({exc})") from None
    if metadata.get("format") != "stochlift-checkpoint-1":
        raise StochliftError(f"{path} is not a stochlift checkpoint (metadata format {metadata.get('format')!r})")
    state = TrainingState(
        step=int(metadata["step"]),
        history=json.loads(metadata["history"]),
        config=json.loads(metadata["config"]),
        running_loss=float(metadata.get("running_loss", 0.0)),
        data=json.loads(metadata.get("data", "{}")),
    )
    return tensors, state, json.loads(metadata["param_groups"])


def checkpoint_data(path: str | os.PathLike) -> dict[str, Any]:
    """What a run recorded about its training data (TrainingState.data), from the checkpoint's header alone;
    {} for a run from before it was recorded."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {}).get("data", "{}"))
    except (SafetensorError, OSError, ValueError):
        return {}


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str = "model.") -> None:
    """Load `prefix`-ed tensors into the model; a mismatch means the checkpoint belongs to another config."""
    weights = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise StochliftError(f"checkpoint weights do not fit this model's config ({first})") from None


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    template = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, slot = key.split(".", 2)
            state.setdefault(int(index), {})[slot] = value.reshape(()) if slot == "step" else value
    optimizer.load_state_dict({"state": state, "param_groups": groups or template["param_groups"]})
