"""Algorithm 1: fit F(window, xi) ~ next frame by plain regression on pairs with fixed random labels.

`_train` is the loop, top to bottom on one screen (as DiT's and nanoGPT's): per step, draw a batch (a
function of seed and step), perturb it, compute the loss, update, average, log, validate and checkpoint
now and then. Its pieces live beside it: the method's training noise (lifting/generator.py), EMA and mixed
precision (lifting/training.py), input noise and pushforward (lifting/perturbations.py), the validation
score (lifting/validation.py). Everything that varies between steps is either in the checkpoint or a pure
function of (seed, step), so `resume=True` continues exactly.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from stochlift.config import ANCHORED, METHODS, RunConfig, save_config
from stochlift.data.trajectories import TrajectoryFile
from stochlift.data.well import WellSource, is_well_path
from stochlift.errors import StochliftError
from stochlift.io import exclusive, write_json
from stochlift.lifting import distributed
from stochlift.lifting.checkpoint import (
    CHECKPOINT_NAME,
    TrainingState,
    load_optimizer,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)
from stochlift.lifting.generator import Generator, TrainingNoise, build_model
from stochlift.lifting.loader import StepBatches, step_loader
from stochlift.lifting.pairs import FileSource, FrameSource, PairSet
from stochlift.lifting.perturbations import InputNoise, Perturbation, Pushforward
from stochlift.lifting.runs import run_finished
from stochlift.lifting.training import EMA, Batch, MixedPrecision, learning_rate, set_learning_rate
from stochlift.lifting.validation import Validation
from stochlift.models import BACKBONES

CHECK_BYTES = 8 << 20  # the start-up NaN/Inf check reads the data in blocks of at most this many bytes
# config keys that may differ on resume: they change neither the sequence of batches nor the model
RESUMABLE_CHANGES = ("checkpoint_every", "log_every", "workers", "device", "validate_every", "validation_trajectories")


@dataclass
class TrainResult:
    model: Generator  # weights used for sampling (the EMA weights when EMA is on)
    config: RunConfig  # fully resolved
    history: list[dict[str, float]]
    run_dir: Path


def open_source(config: RunConfig, ctx: distributed.DistContext | None = None) -> tuple[FrameSource, bool]:
    """The training split named in the config, and whether its domain is periodic.

    The data are checked for NaN/Inf block by block (bounded memory); under data parallelism each rank
    checks its share of the blocks and all ranks fail together.
    """
    if not config.data.path:
        raise StochliftError("no training data: pass --data FILE (or set data.path in the config)")
    if is_well_path(config.data.path):  # The Well's HDF5 files, read as they are (stochlift.data.well)
        well, ctx = WellSource(config.data.path, config.data.split), ctx or distributed.DistContext()
        found = well.find_nonfinite(CHECK_BYTES, part=ctx.rank, parts=ctx.world_size)
        if ctx.any(found is not None):
            raise StochliftError(found or f"{config.data.path}: NaN or Inf in the data (found by another rank)")
        return well, well.periodic
    file = TrajectoryFile(config.data.path)
    source = FileSource(file, config.data.split, limit=config.data.trajectories)
    _check_finite(file, config.data.split, ctx or distributed.DistContext())
    return source, file.meta.periodic


def _check_finite(file: TrajectoryFile, split: str, ctx: distributed.DistContext) -> None:
    """`TrajectoryFile.check_finite`, its blocks shared between the ranks, which all fail together."""
    per = max(1, CHECK_BYTES // (4 * file.meta.frames * math.prod(file.meta.frame_shape)))
    try:
        file.check_finite(split, per, part=ctx.rank, parts=ctx.world_size)
        found = None
    except StochliftError as error:
        found = error
    if ctx.any(found is not None):
        raise found or StochliftError(f"{file.path}: split {split!r} contains NaN or Inf (found by another rank)")


def resolve_config(config: RunConfig, pairs: PairSet, periodic: bool) -> RunConfig:
    """Fill in what the data decide: the data's absolute path, the frame shape, periodic padding (for a
    backbone that has it), the residual scale, and the method's own data-derived values.

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
    if BACKBONES.get(model.backbone).periodic:
        model.options.setdefault("periodic", periodic)
    if model.output in ANCHORED and model.residual_scale is None:
        model.residual_scale = pairs.increment_scale(model.output, seed=config.train.seed)
    METHODS.get(model.method).resolve_from_data(model, pairs, config.train.seed)
    return config


def _check_resume(run_dir: Path, config: RunConfig) -> tuple[dict, TrainingState, list]:
    tensors, state, groups = read_checkpoint(run_dir / CHECKPOINT_NAME)
    saved = RunConfig.from_dict(state.config).to_dict()
    current = config.to_dict()
    for section in ("data", "model", "train"):
        for key in set(saved[section]) | set(current[section]):
            if key not in RESUMABLE_CHANGES and saved[section].get(key) != current[section].get(key):
                raise StochliftError(
                    f"cannot resume {run_dir}: its checkpoint has {section}.{key}={saved[section].get(key)!r}, "
                    f"this config has {current[section].get(key)!r}"
                )
    return tensors, state, groups


class _Loss(nn.Module):
    """The training loss as a module's forward, which is what DistributedDataParallel synchronises."""

    def __init__(self, model: Generator) -> None:
        super().__init__()
        self.model = model

    def forward(self, window: torch.Tensor, target: torch.Tensor, **noise: torch.Tensor) -> torch.Tensor:
        return self.model.loss(window, target, **noise)


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
    """Train a model (the config's method); writes run_dir/config.yaml and run_dir/checkpoint.safetensors.

    `source` overrides config.data (e.g. an in-memory ArraySource); `stop_after` ends the run early at
    that step (as if interrupted) and is what the resume tests use. Launched by torchrun, every process
    trains its shard of each global batch with gradients all-reduced (DDP); rank 0 alone writes.
    """
    config = RunConfig.from_dict(config.to_dict())  # a private, validated copy
    ctx = distributed.setup(config.train.device)
    run = _setup(config, Path(run_dir), ctx, source, periodic, resume)
    return _train(run, progress, stop_after)


def _train(run: _Run, progress: bool, stop_after: int | None) -> TrainResult:
    config, t, model, state, ctx = run.config, run.config.train, run.model, run.state, run.ctx
    last = min(t.steps, stop_after) if stop_after is not None else t.steps
    batches = step_loader(run.dataset, state.step, last, workers=t.workers, pin_memory=ctx.device.type == "cuda")
    bar = tqdm(range(state.step, last), initial=state.step, total=t.steps, desc="train",
               disable=not (progress and ctx.is_main))
    started, first_step, running = time.perf_counter(), state.step, state.running_loss
    model.train()
    for step, item in zip(bar, batches):
        batch = run.batch(step, item)
        set_learning_rate(run.optimizer, learning_rate(config, step))
        run.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=ctx.device)
        for k, part in enumerate(batch.parts(t.grad_accum)):  # DDP all-reduces after the last micro-batch
            with run.trainer.no_sync() if ctx.enabled and k < t.grad_accum - 1 else contextlib.nullcontext():
                with run.amp.autocast():
                    window = part.window.to(ctx.device, non_blocking=True)
                    for perturbation in run.perturbations:
                        window = perturbation.apply(window, part)
                    target, noise = part.to(ctx.device)
                    loss = run.trainer(window, target, **noise)
                run.amp.backward(loss / t.grad_accum if t.grad_accum > 1 else loss)
            total += loss.detach()
        loss = ctx.mean(total / t.grad_accum if t.grad_accum > 1 else total)  # the global batch's mean loss
        if not torch.isfinite(loss):
            raise StochliftError(f"the loss became {loss.item()} at step {step}; lower train.lr or check the data")
        run.amp.step(run.optimizer, model, t.grad_clip)
        run.ema.update(model)
        running += loss.item()
        state.step, entry = step + 1, {}
        if state.step % t.log_every == 0 or state.step == t.steps:
            n = t.log_every if state.step % t.log_every == 0 else state.step % t.log_every
            entry, running = {"loss": running / n, "lr": learning_rate(config, step)}, 0.0
        if run.validation is not None and run.validation_due(state.step):
            entry.update(run.validation.score(model, run.ema))
        if entry:
            state.history.append({"step": state.step, **entry})
            bar.set_postfix(_shown(entry, (state.step - first_step) * t.batch_size / (time.perf_counter() - started)))
        if state.step % t.checkpoint_every == 0 or state.step == last:
            state.running_loss = running
            if ctx.is_main:
                save_checkpoint(run.checkpoint_path, model, run.optimizer, state, run.ema.weights, run.amp.state())
            ctx.barrier()
    bar.close()
    if ctx.is_main:
        write_json(run.run_dir / "train_log.json", {"history": state.history, "step": state.step, "steps": t.steps})
    run.ema.copy_to(model)
    model.eval()
    return TrainResult(model=model, config=config, history=state.history, run_dir=run.run_dir)


def _shown(entry: dict[str, float], pairs_per_s: float) -> dict[str, str]:
    """A history entry as the progress bar shows it."""
    shown = {"loss": f"{entry['loss']:.4g}"} if "loss" in entry else {}
    if "val_energy_score" in entry:
        shown["val_energy"] = f"{entry['val_energy_score']:.4g}"
    return {**shown, "pairs_per_s": f"{pairs_per_s:.0f}"}


@dataclass
class _Run:
    """What the loop works with, built by `_setup`: the resolved config, the model and its optimizer, and
    the objects of each training feature."""

    config: RunConfig
    run_dir: Path
    ctx: distributed.DistContext
    model: Generator
    trainer: nn.Module
    optimizer: torch.optim.Optimizer
    amp: MixedPrecision
    ema: EMA
    noise: TrainingNoise
    dataset: StepBatches
    state: TrainingState
    rows: slice  # this rank's shard of each global batch
    perturbations: list[Perturbation] = field(default_factory=list)
    validation: Validation | None = None

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def batch(self, step: int, item: dict[str, torch.Tensor]) -> Batch:
        """This rank's rows of the step's batch, with the method's noise and the perturbations' extras."""
        global_index = self.dataset.global_batch(step)  # the same on every rank
        index = global_index[self.rows]
        if not np.array_equal(index, item["index"].numpy()):
            raise StochliftError(f"the data loader handed out step {int(item['step'])} for step {step}")
        noise = {k: v[self.rows] for k, v in self.noise.batch(global_index, step).items()}
        batch = Batch(step, index, item["window"], item["target"], noise,
                      {"start": item["start"]} if "start" in item else {})
        for perturbation in self.perturbations:
            perturbation.prepare(batch)
        return batch

    def validation_due(self, step: int) -> bool:
        every = self.config.train.validate_every
        return every > 0 and (step % every == 0 or step == self.config.train.steps)


def _setup(config: RunConfig, run_dir: Path, ctx: distributed.DistContext, source: FrameSource | None,
           periodic: bool, resume: bool) -> _Run:
    """Data, resolved config, model, optimizer, training noise and features; resumed state when asked."""
    t = config.train
    micro = distributed.check_batch(t.batch_size, ctx.world_size, t.grad_accum)  # rows per micro-batch
    amp = MixedPrecision(distributed.autocast_dtype(t.precision, ctx.device, explicit_device=t.device != "auto"),
                         ctx.device)
    if source is None:
        source, periodic = open_source(config, ctx)
    pairs = PairSet(source, config.model.window, config.model.history_padding)
    checkpoint_path = run_dir / CHECKPOINT_NAME
    if checkpoint_path.exists() and not resume:
        raise StochliftError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    if resume and not checkpoint_path.exists():
        raise StochliftError(f"nothing to resume: no {CHECKPOINT_NAME} in {run_dir}")
    config = resolve_config(config, pairs, periodic)
    resumed = _check_resume(run_dir, config) if resume else None
    ctx.barrier()  # every rank has looked at (and read) run_dir before rank 0 writes to it

    torch.manual_seed(t.seed)
    model = build_model(config.model)
    noise = model.training_noise(pairs.n_pairs, t.seed)  # the same on every rank
    state = TrainingState(config=config.to_dict())
    if resumed is not None:
        tensors, state, groups = resumed
        load_weights(model, tensors)
    model.to(ctx.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    ema = EMA(model, t.ema_decay)
    if resumed is not None:
        load_optimizer(optimizer, tensors, groups)
        ema.load(tensors, ctx.device)
        amp.load(tensors)
    trainer: nn.Module = _Loss(model)
    if ctx.enabled:
        trainer = torch.nn.parallel.DistributedDataParallel(
            trainer, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None, forward_sync_buffers=False
        )
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        for name, content in source.run_files().items():  # e.g. The Well's normalisation, for sampling to undo
            write_json(run_dir / name, content)
    rows = slice(ctx.rank * micro * t.grad_accum, (ctx.rank + 1) * micro * t.grad_accum)
    perturbations: list[Perturbation] = []
    if t.unroll:  # the last frames come from the model's own rollout
        perturbations.append(Pushforward(model, pairs, noise, t.unroll))
    if t.input_noise:
        perturbations.append(InputNoise(float(t.input_noise * model.residual_scale), t.input_noise_length, t.seed,
                                        t.batch_size, rows))
    dataset = StepBatches(pairs, t.batch_size, t.seed, t.steps, rank=ctx.rank, world_size=ctx.world_size,
                          unroll=t.unroll, start_weight=t.start_weight)
    return _Run(config, run_dir, ctx, model, trainer, optimizer, amp, ema, noise, dataset, state, rows,
                perturbations, Validation.from_config(config, source) if ctx.is_main else None)


def train_or_resume(config: RunConfig, run_dir: str | os.PathLike, *, progress: bool = True) -> Path:
    """Train the run in run_dir, resume it from its checkpoint, or leave it when finished: under its lock
    (stochlift.io.exclusive), so two processes asked for the same run train it once."""
    run_dir = Path(run_dir)
    with exclusive(run_dir):
        if not run_finished(run_dir):  # another process may have finished it while this one waited
            train(config, run_dir, resume=(run_dir / CHECKPOINT_NAME).exists(), progress=progress)
    return run_dir


