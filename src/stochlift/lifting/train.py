"""Algorithm 1: fit F(window, xi) ~ next frame by plain regression on pairs with fixed random labels.

One linear loop, top to bottom: build data, model and labels; then per step draw a batch (a function of
seed and step), compute the loss, update, and checkpoint now and then. Everything that varies between
steps is either in the checkpoint or a pure function of (seed, step), so `resume=True` continues exactly.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from stochlift.config import ModelConfig, RunConfig, save_config
from stochlift.data.trajectories import TrajectoryFile
from stochlift.data.well import WellSource, is_well_path
from stochlift.errors import StochliftError
from stochlift.io import exclusive, refuse_overwriting_inputs, write_json
from stochlift.lifting import distributed
from stochlift.lifting.checkpoint import (
    CHECKPOINT_NAME,
    TrainingState,
    checkpoint_data,
    load_optimizer,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)
from stochlift.lifting.fingerprint import (
    array_fingerprint,
    check_same_kind,
    data_identity,
    file_blocks,
    scan,
    well_blocks,
)
from stochlift.lifting.labels import stream_seed, training_labels
from stochlift.lifting.loader import StepBatches, step_loader
from stochlift.lifting.model import LiftedModel, build_model
from stochlift.lifting.outputs import ANCHORED, anchor
from stochlift.lifting.pairs import FileSource, FrameSource, PairSet

# config keys that may differ on resume: they change neither the sequence of batches nor the model
RESUMABLE_CHANGES = ("checkpoint_every", "log_every", "workers", "device")


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


def smooth_field(noise: torch.Tensor, length: float) -> torch.Tensor:
    """White noise [..., H, W] filtered by a periodic Gaussian of std `length` pixels, rescaled to unit
    variance per pixel (exactly, in expectation); vectors and length 0 pass unchanged."""
    if length <= 0 or noise.dim() < 4:
        return noise
    h, w = noise.shape[-2:]
    fy, fx = torch.fft.fftfreq(h), torch.fft.rfftfreq(w)
    gain = torch.exp(-2 * (math.pi * length) ** 2 * (fy[:, None] ** 2 + fx[None, :] ** 2))
    power = torch.fft.irfft2(gain**2, s=(h, w))[0, 0]  # variance of the filtered field per unit white variance
    return torch.fft.irfft2(torch.fft.rfft2(noise) * gain, s=(h, w)) / power.sqrt()


def perturbation(
    window: torch.Tensor, std: float | torch.Tensor, seed: int, step: int, *, rows: slice | None = None,
    global_batch: int | None = None, length: float = 0.0,
) -> torch.Tensor:
    """Input noise of one step: one Gaussian field per sample (white, or smooth over `length` pixels),
    repeated over the window's frames.

    The same field on every frame shifts the state but keeps its frame-to-frame changes; drawn from
    (seed, step) alone so a resumed run sees the same noise. Under data parallelism the noise of the whole
    global batch (`global_batch` windows) is drawn and `rows` of it taken, so every rank perturbs its shard
    exactly as a single process would.
    """
    generator = torch.Generator().manual_seed(stream_seed(seed, "input_noise", step))
    noise = smooth_field(torch.randn(global_batch or window.shape[0], 1, *window.shape[2:], generator=generator), length)
    if rows is not None:
        noise = noise[rows]
    return (noise * std).expand_as(window)


@torch.no_grad()
def pushed_window(
    model: LiftedModel, pairs: PairSet, index: np.ndarray, labels: torch.Tensor | None, unroll: int,
    start: torch.Tensor | None = None,
) -> torch.Tensor:
    """Input windows whose last frames come from the model's own rollout (the pushforward trick).

    Each pair is reached by rolling up to `unroll` steps from an earlier window of its trajectory, every
    step with that earlier pair's fixed training label; pairs near the start unroll only as far as the
    trajectory allows. The loss then teaches the model to pull its own errors back, not only white noise.
    `start` holds those earlier windows when they were read already (the DataLoader does); the rollout
    runs on the model's device.
    """
    steps = np.minimum(unroll, pairs.target_frames(index) - 1)
    window = pairs.batch(index - steps)[0] if start is None else start.clone()
    device = model.residual_scale.device
    window = window.to(device)
    for to_go in range(unroll, 0, -1):
        active = torch.from_numpy(steps >= to_go)
        if not active.any():
            continue
        active = active.to(device)
        current = window[active]
        xi = labels[torch.from_numpy(index - to_go)[active.cpu()]].to(device) if labels is not None else None
        window[active] = torch.cat([current[:, 1:], model(current, xi)[:, None].to(window.dtype)], dim=1)
    return window


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
        fingerprint = scan(file_blocks(source.file, source.split, source.n_trajectories), ctx)
        identity = data_identity(source.file.meta, fingerprint, path=str(source.file.path.resolve()),
                                 split=source.split, rows=source.n_trajectories)
    else:
        data = getattr(source, "data", None)
        fingerprint = array_fingerprint(data) if isinstance(data, np.ndarray) else None
        identity = data_identity(None, fingerprint, path=None, split="", rows=source.n_trajectories)
    return TrainingData(source, periodic, identity)


def run_files(run_dir: str | os.PathLike) -> list[Path]:
    """The files a run directory holds for its run (what training writes, and sampling reads)."""
    from stochlift.lifting.well_sampling import NORMALIZATION_FILE

    return [Path(run_dir) / name for name in ("config.yaml", CHECKPOINT_NAME, "train_log.json", NORMALIZATION_FILE)]


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
    if model.output in ANCHORED and model.residual_scale is None:
        model.residual_scale = pairs.increment_scale(model.output, seed=config.train.seed)
    if model.method == "ardm" and model.frame_scale is None:
        model.frame_scale = pairs.frame_scale(seed=config.train.seed)
    if model.method == "ardm" and model.clip_denoised is None:
        model.clip_denoised = ardm_clip_bound(model, pairs, config.train.seed)
    return config


def ardm_clip_bound(model: ModelConfig, pairs: PairSet, seed: int) -> float:
    """The largest |z| of the quantity an ARDM diffuses (normalised increment or frame) in the training data."""
    if model.output in ANCHORED:
        return pairs.largest(lambda w, t: (t - anchor(w, model.output)) / model.residual_scale, seed=seed)
    return pairs.largest(lambda w, t: t / model.frame_scale, seed=seed)


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


class _Loss(torch.nn.Module):
    """The training loss as a module's forward, which is what DistributedDataParallel synchronises."""

    def __init__(self, model: LiftedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, window: torch.Tensor, xi: torch.Tensor | None, target: torch.Tensor) -> torch.Tensor:
        return self.model.loss(window, xi, target)


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
    that step (as if interrupted) and is what the resume tests use. Launched by torchrun, every process
    trains its shard of each global batch with gradients all-reduced (DDP); rank 0 alone writes.
    """
    config = RunConfig.from_dict(config.to_dict())  # a private, validated copy
    t = config.train
    ctx = distributed.setup(t.device)
    run_dir = Path(run_dir)
    with run_lock(run_dir, ctx):
        return _train(config, run_dir, ctx, source, periodic, resume, progress, stop_after)


def _train(
    config: RunConfig, run_dir: Path, ctx: distributed.DistContext, source: FrameSource | None, periodic: bool,
    resume: bool, progress: bool, stop_after: int | None,
) -> TrainResult:
    t = config.train
    micro = distributed.check_batch(t.batch_size, ctx.world_size, t.grad_accum)  # rows per micro-batch
    amp = distributed.autocast_dtype(t.precision, ctx.device, explicit_device=t.device != "auto")
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
    labels = training_labels(pairs.n_pairs, config.model.label_dim, t.seed)  # the same bank on every rank
    state = TrainingState(config=config.to_dict(), data=data.identity)
    if resumed is not None:
        tensors, state, groups = resumed
        state.config, state.data = config.to_dict(), data.identity  # the data's path may have moved
        load_weights(model, tensors)
    model.to(ctx.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=amp == torch.float16)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()} if t.ema_decay else None
    if resumed is not None:
        load_optimizer(optimizer, tensors, groups)
        if ema is not None:
            ema = {k[4:]: v.to(ctx.device) for k, v in tensors.items() if k.startswith("ema.")}
        if scaler.is_enabled() and "scaler.scale" in tensors:
            scaler.load_state_dict({**scaler.state_dict(), "scale": tensors["scaler.scale"].item(),
                                    "_growth_tracker": int(tensors["scaler.growth_tracker"].item())})
    trainer = _Loss(model)
    if ctx.enabled:
        trainer = torch.nn.parallel.DistributedDataParallel(
            trainer, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None, forward_sync_buffers=False
        )
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        if hasattr(data.source, "normalization"):  # The Well's files: what the model sees, for sampling to undo
            from stochlift.lifting.well_sampling import NORMALIZATION_FILE

            write_json(run_dir / NORMALIZATION_FILE, data.source.normalization())

    last = min(t.steps, stop_after) if stop_after is not None else t.steps
    dataset = StepBatches(pairs, t.batch_size, t.seed, t.steps, rank=ctx.rank, world_size=ctx.world_size,
                          unroll=t.unroll, start_weight=t.start_weight)
    batches = step_loader(dataset, state.step, last, workers=t.workers, pin_memory=ctx.device.type == "cuda")
    bar = tqdm(range(state.step, last), initial=state.step, total=t.steps, desc="train",
               disable=not (progress and ctx.is_main))
    started, first_step, running = time.perf_counter(), state.step, state.running_loss
    rows = slice(ctx.rank * micro * t.grad_accum, (ctx.rank + 1) * micro * t.grad_accum)  # this rank's shard
    autocast = torch.autocast(ctx.device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
    noise_std = float(t.input_noise * model.residual_scale)
    model.train()
    for step, item in zip(bar, batches):
        global_index = dataset.global_batch(step)  # the same on every rank
        index = global_index[rows]
        if not np.array_equal(index, item["index"].numpy()):
            raise StochliftError(f"the data loader handed out step {int(item['step'])} for step {step}")
        window, target = item["window"], item["target"]
        noise = perturbation(window, noise_std, t.seed, step, rows=rows, global_batch=t.batch_size,
                             length=t.input_noise_length) if t.input_noise else None
        xi = model.step_inputs(labels, global_index, t.seed, step)  # fixed labels (an ARDM: fresh noise)
        xi = xi[rows] if xi is not None else None
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=ctx.device)
        for k in range(t.grad_accum):  # micro-batches; DDP all-reduces the gradients after the last one
            part = slice(k * micro, (k + 1) * micro)
            with trainer.no_sync() if ctx.enabled and k < t.grad_accum - 1 else contextlib.nullcontext():
                with autocast:
                    if t.unroll:  # the last frames come from the model's own rollout
                        w = pushed_window(model, pairs, index[part], labels if config.model.label_dim else None,
                                          t.unroll, start=item["start"][part])
                    else:
                        w = window[part].to(ctx.device, non_blocking=True)
                    if noise is not None:
                        w = w + noise[part].to(ctx.device, non_blocking=True)
                    loss = trainer(w, xi[part].to(ctx.device) if xi is not None else None,
                                   target[part].to(ctx.device, non_blocking=True))
                scaler.scale(loss / t.grad_accum if t.grad_accum > 1 else loss).backward()
            total += loss.detach()
        loss = ctx.mean(total / t.grad_accum if t.grad_accum > 1 else total)  # the global batch's mean loss
        if not torch.isfinite(loss):
            raise StochliftError(f"the loss became {loss.item()} at step {step}; lower train.lr or check the data")
        if t.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        scaler.step(optimizer)
        scaler.update()
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
            if ctx.is_main:
                extra = {"scaler.scale": scaler.get_scale() * torch.ones(1),
                         "scaler.growth_tracker": torch.tensor([scaler.state_dict()["_growth_tracker"]])} \
                    if scaler.is_enabled() else None
                save_checkpoint(checkpoint_path, model, optimizer, state, ema, extra)
            ctx.barrier()
    bar.close()
    if ctx.is_main:
        write_json(run_dir / "train_log.json", {"history": state.history, "step": state.step, "steps": t.steps})
    if ema is not None:
        model.load_state_dict(ema)
    model.eval()
    return TrainResult(model=model, config=config, history=state.history, run_dir=run_dir)


def run_finished(run_dir: str | os.PathLike) -> bool:
    """Whether the run in run_dir trained all its steps (train_log.json is written at the end)."""
    log = Path(run_dir) / "train_log.json"
    if not log.is_file():
        return False
    saved = json.loads(log.read_text())
    return saved.get("step") == saved.get("steps")


def train_or_resume(config: RunConfig, run_dir: str | os.PathLike, *, progress: bool = True) -> Path:
    """Train the run in run_dir, resume it from its checkpoint, or leave it when finished: under its lock
    (stochlift.io.exclusive), so two processes asked for the same run train it once."""
    run_dir = Path(run_dir)
    with exclusive(run_dir):
        if not run_finished(run_dir):  # another process may have finished it while this one waited
            train(config, run_dir, resume=(run_dir / CHECKPOINT_NAME).exists(), progress=progress)
    return run_dir


def run_data(run_dir: str | os.PathLike) -> dict:
    """What the run in run_dir recorded about its training data (problem, fields, fingerprint, path); for a
    run from before that was recorded, the problem and fields of its data file if that is still there."""
    recorded = checkpoint_data(Path(run_dir) / CHECKPOINT_NAME)
    if recorded:
        return recorded
    _, config, data = load_run(run_dir)
    if data is None:
        return {}
    return data_identity(data.meta, None, path=str(data.path), split=config.data.split,
                         rows=data.splits.get(config.data.split, 0))


def check_run_inputs(run_dir: str | os.PathLike, file: TrajectoryFile, what: str) -> None:
    """Refuse a trajectory file from another problem, or with other fields, than the run trained on, even
    when its frames have the model's shape (a Wave model is not started from Flow or digit frames)."""
    check_same_kind(run_data(run_dir), file.meta, f"{what} {file.path}")


def load_run(run_dir: str | os.PathLike) -> tuple[LiftedModel, RunConfig, TrajectoryFile | None]:
    """The trained model of a run directory (EMA weights if the run kept them), its config and its data file."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT_NAME).is_file():
        raise StochliftError(f"{run_dir} is not a training run (no {CHECKPOINT_NAME}); train one with `stochlift train`")
    tensors, state, _ = read_checkpoint(run_dir / CHECKPOINT_NAME)
    config = RunConfig.from_dict(state.config)
    path = config.data.path
    data = TrajectoryFile(path) if path and Path(path).is_file() and not is_well_path(path) else None
    model = build_model(config.model)
    has_ema = any(k.startswith("ema.") for k in tensors)
    load_weights(model, tensors, prefix="ema." if has_ema else "model.")
    model.eval()
    return model, config, data
