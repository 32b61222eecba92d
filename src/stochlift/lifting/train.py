"""Algorithm 1: fit F(window, xi) ~ next frame by plain regression on pairs with fixed random labels.

`_train` is the loop, top to bottom on one screen (as DiT's and nanoGPT's): per step, draw a batch (a
function of seed and step), perturb it, compute the loss, update, average, log, validate and checkpoint
now and then. Its pieces live beside it: the method's training noise (lifting/generator.py), EMA and mixed
precision (lifting/training.py), input noise and pushforward (lifting/perturbations.py), the validation
score (lifting/validation.py), the run's log (lifting/run_log.py: CSV, TensorBoard, the console).
Everything that varies between steps is either in the checkpoint or a pure function of (seed, step), so
`resume=True` continues exactly.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from stochlift.config import ANCHORED, METHODS, RunConfig, save_config
from stochlift.data.trajectories import TrajectoryFile
from stochlift.data.well import WellSource, is_well_path
from stochlift.errors import StochliftError
from stochlift.io import exclusive, refuse_overwriting_inputs, write_json
from stochlift.lifting import distributed
from stochlift.lifting.checkpoint import (
    CHECKPOINT_NAME,
    TrainingState,
    load_optimizer,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)
from stochlift.lifting.fingerprint import array_fingerprint, data_identity, file_blocks, scan, well_blocks
from stochlift.lifting.generator import Generator, TrainingNoise, as_module, build_model
from stochlift.lifting.loader import StepBatches, step_loader
from stochlift.lifting.pairs import FileSource, FrameSource, PairSet
from stochlift.lifting.perturbations import InputNoise, Perturbation, Pushforward
from stochlift.lifting.run_log import RunLog
from stochlift.lifting.runs import run_files, run_finished
from stochlift.lifting.training import EMA, Batch, MixedPrecision, learning_rate, set_learning_rate
from stochlift.lifting.validation import Validation
from stochlift.models import BACKBONES

# config keys that may differ on resume: they change neither the sequence of batches nor the model
RESUMABLE_CHANGES = ("checkpoint_every", "log_every", "workers", "device", "validate_every", "validation_trajectories")


@dataclass
class TrainResult:
    model: Generator  # weights used for sampling (the EMA weights when EMA is on)
    config: RunConfig  # fully resolved
    history: list[dict[str, float]]
    run_dir: Path


@dataclass
class TrainingData:
    """The training split as a FrameSource, whether its domain is periodic, and what the run records about it
    (stochlift.lifting.fingerprint.data_identity: the content fingerprint, problem, fields)."""

    source: FrameSource
    periodic: bool
    identity: dict


def open_training_data(config: RunConfig, ctx: distributed.DistContext | None = None) -> TrainingData:
    """The training split named in the config, checked and fingerprinted.

    The data are read once, block by block (bounded memory): NaN/Inf are refused and the content
    fingerprint is computed in the same pass; under data parallelism each rank reads its share of the
    blocks and all ranks fail together.
    """
    ctx = ctx or distributed.DistContext()
    if not config.data.path:
        raise StochliftError("no training data: pass --data FILE (or set data.path in the config)")
    path, split = str(Path(config.data.path).resolve()), config.data.split
    if is_well_path(config.data.path):  # The Well's HDF5 files, read as they are (stochlift.data.well)
        well = WellSource(config.data.path, split)
        fingerprint = scan(well_blocks(well), ctx)
        identity = data_identity(well.meta(), fingerprint, path=path, split=split, rows=well.n_trajectories)
        return TrainingData(well, well.periodic, identity)
    file = TrajectoryFile(config.data.path)
    source = FileSource(file, split, limit=config.data.trajectories)
    fingerprint = scan(file_blocks(file, split, source.n_trajectories), ctx)
    identity = data_identity(file.meta, fingerprint, path=path, split=split, rows=source.n_trajectories)
    return TrainingData(source, file.meta.periodic, identity)


def open_source(config: RunConfig, ctx: distributed.DistContext | None = None) -> tuple[FrameSource, bool]:
    """The training split named in the config, and whether its domain is periodic (`open_training_data`)."""
    data = open_training_data(config, ctx)
    return data.source, data.periodic


def given_data(source: FrameSource, periodic: bool, ctx: distributed.DistContext) -> TrainingData:
    """A source handed to `train` directly: its fingerprint where it can be read (a split of a file, arrays)."""
    if isinstance(source, FileSource):
        fingerprint: str | None = scan(file_blocks(source.file, source.split, source.n_trajectories), ctx)
        identity = data_identity(source.file.meta, fingerprint, path=str(source.file.path.resolve()),
                                 split=source.split, rows=source.n_trajectories)
    else:
        data = getattr(source, "data", None)
        fingerprint = array_fingerprint(data) if isinstance(data, np.ndarray) else None
        identity = data_identity(None, fingerprint, path=None, split="", rows=source.n_trajectories)
    return TrainingData(source, periodic, identity)


@contextlib.contextmanager
def run_lock(run_dir: Path, ctx: distributed.DistContext):
    """Hold the run directory's lock while training (rank 0 takes it): a second training of the same run
    fails at once, naming the process that holds it, instead of mixing its files with the first one's."""
    lock = contextlib.ExitStack()
    busy = None
    if ctx.is_main:
        try:
            lock.enter_context(exclusive(run_dir, wait=False))
        except StochliftError as error:
            busy = error
    if ctx.any(busy is not None):
        raise busy or StochliftError(f"{run_dir} is being trained by another process")
    with lock:
        yield


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


def _check_resume(run_dir: Path, config: RunConfig, identity: dict) -> tuple[dict, TrainingState, list]:
    """The checkpoint to resume from, if this config and these data are the run's: the same settings
    (but RESUMABLE_CHANGES), and data with the fingerprint the run recorded, wherever they are now."""
    tensors, state, groups = read_checkpoint(run_dir / CHECKPOINT_NAME)
    saved = RunConfig.from_dict(state.config).to_dict()
    current = config.to_dict()
    recorded, found = state.data.get("fingerprint"), identity.get("fingerprint")
    if recorded is not None and found is not None and recorded != found:
        raise StochliftError(
            f"cannot resume {run_dir}: the data at {identity.get('path') or 'the given source'} are not the data it "
            f"was trained on ({state.data.get('path')}; fingerprints {found[:19]}... and {recorded[:19]}...); "
            "pass the original data with --data")
    moved = recorded is not None and recorded == found  # the same data, maybe at another path
    for section in ("data", "model", "train"):
        for key in set(saved[section]) | set(current[section]):
            if moved and (section, key) == ("data", "path"):
                continue
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
    files: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train a model (the config's method); writes run_dir/config.yaml and run_dir/checkpoint.safetensors.

    `source` overrides config.data (e.g. an in-memory ArraySource); `files` are JSON files (name -> content)
    written beside config.yaml once training starts, such as the automatic recipe's recipe.json (so a run
    that fails to start leaves none behind); `stop_after` ends the run early at that step (as if
    interrupted) and is what the resume tests use. Launched by torchrun, every process
    trains its shard of each global batch with gradients all-reduced (DDP); rank 0 alone writes.
    """
    config = RunConfig.from_dict(config.to_dict())  # a private, validated copy
    ctx = distributed.setup(config.train.device)
    run_dir = Path(run_dir)
    with run_lock(run_dir, ctx):
        run = _setup(config, run_dir, ctx, source, periodic, resume, files or {})
        with RunLog(run.run_dir, first_step=run.state.step, total=config.train.steps,
                    batch_size=config.train.batch_size, enabled=ctx.is_main, progress=progress) as log:
            return _train(run, log, stop_after)


def _train(run: _Run, log: RunLog, stop_after: int | None) -> TrainResult:
    config, t, model, state, ctx = run.config, run.config.train, run.model, run.state, run.ctx
    last = min(t.steps, stop_after) if stop_after is not None else t.steps
    batches = step_loader(run.dataset, state.step, last, workers=t.workers, pin_memory=ctx.device.type == "cuda")
    running = state.running_loss
    model.train()
    for step, item in zip(range(state.step, last), batches):
        batch = run.batch(step, item)
        set_learning_rate(run.optimizer, learning_rate(config, step))
        run.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=ctx.device)
        for k, part in enumerate(batch.parts(t.grad_accum)):  # DDP all-reduces after the last micro-batch
            # ctx.enabled: the trainer is the DistributedDataParallel wrapper (see _setup)
            ddp = cast(torch.nn.parallel.DistributedDataParallel, run.trainer)
            with ddp.no_sync() if ctx.enabled and k < t.grad_accum - 1 else contextlib.nullcontext():
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
        run.amp.step(run.optimizer, as_module(model), t.grad_clip)
        run.ema.update(as_module(model))
        running += loss.item()
        state.step, entry = step + 1, {}
        log.step()
        if state.step % t.log_every == 0 or state.step == t.steps:
            n = t.log_every if state.step % t.log_every == 0 else state.step % t.log_every
            entry, running = {"loss": running / n, "lr": learning_rate(config, step)}, 0.0
        if run.validation is not None and run.validation_due(state.step):
            scores, generated = run.validation.evaluate(model, run.ema)
            entry.update(scores)
            log.rollouts(state.step, run.validation.truth, generated, run.validation.display)
        if entry:
            state.history.append({"step": state.step, **entry})
            log.entry(state.step, entry)
        if state.step % t.checkpoint_every == 0 or state.step == last:
            state.running_loss = running
            if ctx.is_main:
                save_checkpoint(run.checkpoint_path, as_module(model), run.optimizer, state, run.ema.weights,
                                run.amp.state())
            ctx.barrier()
    if ctx.is_main:
        write_json(run.run_dir / "train_log.json", {"history": state.history, "step": state.step, "steps": t.steps})
    run.ema.copy_to(as_module(model))
    model.eval()
    return TrainResult(model=model, config=config, history=state.history, run_dir=run.run_dir)


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
           periodic: bool, resume: bool, files: Mapping[str, Any]) -> _Run:
    """Data, resolved config, model, optimizer, training noise and features; resumed state when asked."""
    t = config.train
    micro = distributed.check_batch(t.batch_size, ctx.world_size, t.grad_accum)  # rows per micro-batch
    amp = MixedPrecision(distributed.autocast_dtype(t.precision, ctx.device, explicit_device=t.device != "auto"),
                         ctx.device)
    checkpoint_path = run_dir / CHECKPOINT_NAME
    if checkpoint_path.exists() and not resume:
        raise StochliftError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    if resume and not checkpoint_path.exists():
        raise StochliftError(f"nothing to resume: no {CHECKPOINT_NAME} in {run_dir}")
    if source is None:
        refuse_overwriting_inputs(run_files(run_dir), [config.data.path])
        data = open_training_data(config, ctx)
    else:
        data = given_data(source, periodic, ctx)
    pairs = PairSet(data.source, config.model.window, config.model.history_padding)
    config = resolve_config(config, pairs, data.periodic)
    resumed = _check_resume(run_dir, config, data.identity) if resume else None
    ctx.barrier()  # every rank has looked at (and read) run_dir before rank 0 writes to it

    torch.manual_seed(t.seed)
    model = build_model(config.model)
    noise = model.training_noise(pairs.n_pairs, t.seed)  # the same on every rank
    state = TrainingState(config=config.to_dict(), data=data.identity)
    if resumed is not None:
        tensors, state, groups = resumed
        state.config, state.data = config.to_dict(), data.identity  # the data's path may have moved
        load_weights(as_module(model), tensors)
    model.to(ctx.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    ema = EMA(as_module(model), t.ema_decay)
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
        for name, content in {**data.source.run_metadata(), **files}.items():  # e.g. The Well's normalisation
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
                perturbations, Validation.from_config(config, data.source) if ctx.is_main else None)


def train_or_resume(config: RunConfig, run_dir: str | os.PathLike, *, progress: bool = True) -> Path:
    """Train the run in run_dir, resume it from its checkpoint, or leave it when finished: under its lock
    (stochlift.io.exclusive), so two processes asked for the same run train it once."""
    run_dir = Path(run_dir)
    with exclusive(run_dir):
        if not run_finished(run_dir):  # another process may have finished it while this one waited
            train(config, run_dir, resume=(run_dir / CHECKPOINT_NAME).exists(), progress=progress)
    return run_dir


