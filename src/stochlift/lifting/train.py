"""Algorithm 1: fit F(window, xi) ~ next frame by plain regression on pairs with fixed random labels.

One linear loop, top to bottom: build data, model and labels; then per step draw a batch (a function of
seed and step), compute the loss, update, and checkpoint now and then. Everything that varies between
steps is either in the checkpoint or a pure function of (seed, step), so `resume=True` continues exactly.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from stochlift.config import RunConfig, save_config
from stochlift.data.trajectories import TrajectoryFile
from stochlift.errors import StochliftError
from stochlift.io import write_json
from stochlift.lifting.checkpoint import (
    CHECKPOINT_NAME,
    TrainingState,
    load_optimizer,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)
from stochlift.lifting.labels import batch_indices, stream_seed, training_labels
from stochlift.lifting.model import LiftedModel, build_model
from stochlift.lifting.pairs import FileSource, FrameSource, PairSet


@dataclass
class TrainResult:
    model: LiftedModel  # weights used for sampling (the EMA weights when EMA is on)
    config: RunConfig  # fully resolved
    history: list[dict[str, float]]
    run_dir: Path


def learning_rate(config: RunConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to zero (Table 3) or constant."""
    t = config.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    if t.schedule == "constant":
        return t.lr
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    return t.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def perturbation(window: torch.Tensor, std: float | torch.Tensor, seed: int, step: int) -> torch.Tensor:
    """Input noise of one step: one Gaussian field per sample, repeated over the window's frames.

    The same field on every frame shifts the state but keeps its frame-to-frame changes; drawn from
    (seed, step) alone so a resumed run sees the same noise.
    """
    generator = torch.Generator().manual_seed(stream_seed(seed, "input_noise", step))
    noise = torch.randn(window.shape[0], 1, *window.shape[2:], generator=generator) * std
    return noise.expand_as(window)


def open_source(config: RunConfig) -> tuple[FrameSource, bool]:
    """The training split named in the config, and whether its domain is periodic."""
    if not config.data.path:
        raise StochliftError("no training data: pass --data FILE (or set data.path in the config)")
    file = TrajectoryFile(config.data.path)
    source = FileSource(file, config.data.split)
    file.check_finite(config.data.split)
    return source, file.meta.periodic


def resolve_config(config: RunConfig, pairs: PairSet, periodic: bool) -> RunConfig:
    """Fill in what the data decides: its absolute path, the frame shape, periodic padding, the residual scale.

    Each is a deterministic function of the data and the seed, so resolving again on resume gives the
    same values.
    """
    if config.data.path:  # absolute, so the run finds its data from any working directory
        config.data.path = str(Path(config.data.path).resolve())
    model = config.model
    shape = list(pairs.source.frame_shape)
    if model.frame_shape is not None and list(model.frame_shape) != shape:
        raise StochliftError(f"config says model.frame_shape={model.frame_shape}, the data has frames of {shape}")
    model.frame_shape = shape
    if model.backbone == "unet":
        model.options.setdefault("periodic", periodic)
    if model.output == "residual" and model.residual_scale is None:
        model.residual_scale = pairs.increment_scale(seed=config.train.seed)
    return config


def _check_resume(run_dir: Path, config: RunConfig) -> tuple[dict, TrainingState, list]:
    tensors, state, groups = read_checkpoint(run_dir / CHECKPOINT_NAME)
    saved = RunConfig.from_dict(state.config).to_dict()
    current = config.to_dict()
    for section in ("data", "model", "train"):
        for key in set(saved[section]) | set(current[section]):
            if key not in ("checkpoint_every", "log_every") and saved[section].get(key) != current[section].get(key):
                raise StochliftError(
                    f"cannot resume {run_dir}: its checkpoint has {section}.{key}={saved[section].get(key)!r}, "
                    f"this config has {current[section].get(key)!r}"
                )
    return tensors, state, groups


def train(
    config: RunConfig,
    run_dir: str | os.PathLike,
    *,
    source: FrameSource | None = None,
    periodic: bool = False,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train a lifted model; writes run_dir/config.yaml and run_dir/checkpoint.safetensors.

    `source` overrides config.data (e.g. an in-memory ArraySource); `stop_after` ends the run early at
    that step (as if interrupted) and is what the resume tests use.
    """
    config = RunConfig.from_dict(config.to_dict())  # a private, validated copy
    run_dir = Path(run_dir)
    if source is None:
        source, periodic = open_source(config)
    pairs = PairSet(source, config.model.window)
    checkpoint_path = run_dir / CHECKPOINT_NAME
    if checkpoint_path.exists() and not resume:
        raise StochliftError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    if resume and not checkpoint_path.exists():
        raise StochliftError(f"nothing to resume: no {CHECKPOINT_NAME} in {run_dir}")
    config = resolve_config(config, pairs, periodic)
    resumed = _check_resume(run_dir, config) if resume else None
    t = config.train

    torch.manual_seed(t.seed)
    model = build_model(config.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    labels = training_labels(pairs.n_pairs, config.model.label_dim, t.seed)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()} if t.ema_decay else None
    state = TrainingState(config=config.to_dict())
    if resumed is not None:
        tensors, state, groups = resumed
        load_weights(model, tensors)
        load_optimizer(optimizer, tensors, groups)
        if ema is not None:
            ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")

    last = min(t.steps, stop_after) if stop_after is not None else t.steps
    bar = tqdm(range(state.step, last), initial=state.step, total=t.steps, desc="train", disable=not progress)
    started, first_step, running = time.perf_counter(), state.step, state.running_loss
    model.train()
    for step in bar:
        index = batch_indices(pairs.n_pairs, t.batch_size, t.seed, step)
        window, target = pairs.batch(index)
        if t.input_noise:
            window = window + perturbation(window, t.input_noise * model.residual_scale, t.seed, step)
        xi = labels[torch.from_numpy(index)] if config.model.label_dim else None
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        loss = model.loss(window, xi, target)
        if not torch.isfinite(loss):
            raise StochliftError(f"the loss became {loss.item()} at step {step}; lower train.lr or check the data")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        if ema is not None:
            with torch.no_grad():
                for k, v in model.state_dict().items():
                    ema[k].lerp_(v, 1 - t.ema_decay)
        running += loss.item()
        state.step = step + 1
        if state.step % t.log_every == 0 or state.step == t.steps:
            n = t.log_every if state.step % t.log_every == 0 else state.step % t.log_every
            state.history.append({"step": state.step, "loss": running / n, "lr": learning_rate(config, step)})
            running = 0.0
            rate = (state.step - first_step) * t.batch_size / (time.perf_counter() - started)
            bar.set_postfix(loss=f"{state.history[-1]['loss']:.4g}", pairs_per_s=f"{rate:.0f}")
        if state.step % t.checkpoint_every == 0 or state.step == last:
            state.running_loss = running
            save_checkpoint(checkpoint_path, model, optimizer, state, ema)
    bar.close()
    write_json(run_dir / "train_log.json", {"history": state.history, "step": state.step, "steps": t.steps})
    if ema is not None:
        model.load_state_dict(ema)
    model.eval()
    return TrainResult(model=model, config=config, history=state.history, run_dir=run_dir)


def load_run(run_dir: str | os.PathLike) -> tuple[LiftedModel, RunConfig, TrajectoryFile | None]:
    """The trained model of a run directory (EMA weights if the run kept them), its config and its data file."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT_NAME).is_file():
        raise StochliftError(f"{run_dir} is not a training run (no {CHECKPOINT_NAME}); train one with `stochlift train`")
    tensors, state, _ = read_checkpoint(run_dir / CHECKPOINT_NAME)
    config = RunConfig.from_dict(state.config)
    data = TrajectoryFile(config.data.path) if config.data.path and Path(config.data.path).is_file() else None
    model = build_model(config.model)
    has_ema = any(k.startswith("ema.") for k in tensors)
    load_weights(model, tensors, prefix="ema." if has_ema else "model.")
    model.eval()
    return model, config, data
