"""`stochlift bench`: how fast Stochastic Lifting samples and trains on the device at hand, and how close
that is to what the device allows.

One run measures, for one model config and batch:
    (a) SL rollout: frames per second and seconds per video (batch time / batch size), one network call
        per frame through the fast path (lifting/fast.py) with the chosen options;
    (b) ARDM with S steps per frame (stochlift.baselines.ardm, untrained): the same backbone with one more
        input frame (the noisy next frame) and a sinusoidal diffusion-time embedding in place of the
        label, called S times per frame by the DDPM sampler;
    (c) FLOPs per frame, counted by torch.utils.flop_counter on the meta device (convolutions and matmuls),
        and the device's dense matmul rate in the rollout's dtype (the better of a large square torch.mm
        and the same product as a 1x1 convolution), giving the fraction of that roofline achieved;
    (d) peak memory of the rollout: CUDA max_memory_allocated, or on the CPU the growth of the peak
        resident set (VmHWM, reset through /proc/self/clear_refs; ru_maxrss where that is unavailable);
    (e) training steps per second (forward, backward, AdamW) on random data.
On a GPU the fp32 roofline is the TF32 rate: cuDNN runs fp32 convolutions on TF32 tensor cores unless
torch.backends.cudnn.allow_tf32 is off (it is on by default). benchmarks/gpu_suite.py runs all of this
for the paper presets and every speed option on one GPU, resumably.
Presets `paper-480` and `paper-128` are the paper's two headline timings; `cpu-quick` is the wave-quick
model on 32x32 frames.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from stochlift.config import ModelConfig, load_config
from stochlift.errors import StochliftError
from stochlift.io import refuse_overwriting_inputs, require_memory, write_json
from stochlift.lifting.fast import (
    AUTOCAST_DTYPES,
    GRAPHED_COMPILE_MODES,
    FastOptions,
    FastRollout,
    largest_batch,
    resolve_device,
)
from stochlift.lifting.generator import Generator, as_module, build_model
from stochlift.lifting.timing import time_training
from stochlift.models import BACKBONES
from stochlift.models.unet import DEPTH_PRESETS

if TYPE_CHECKING:
    from stochlift.baselines.ardm import ARDM

# the paper's U-Net options beside the depths (the configs/*-paper.yaml recipes)
_PAPER_OPTIONS = {"blocks_per_level": 1, "mid_blocks": 2, "embed_width": 512, "groups": 8}


@dataclass
class Preset:
    model: dict[str, Any]  # ModelConfig fields (frame_shape included)
    frames: int  # frames generated per video
    batch: int | str  # "auto": the largest batch that fits (GPU); cpu_batch on the CPU
    cpu_batch: int
    train_batch: int
    description: str
    paper_seconds_per_video: float | None = None
    config: str | None = None  # a config preset the model section comes from


PRESETS: dict[str, Preset] = {
    "paper-480": Preset(
        model={"window": 3, "label_dim": 64, "output": "direct", "frame_shape": [3, 480, 480],
               "options": {"depths": "large", **_PAPER_OPTIONS}},
        frames=32, batch="auto", cpu_batch=1, train_batch=4, paper_seconds_per_video=0.96,
        description="Large U-Net [128,256,512,1024], 480x480x3 video, 32 frames; per-video time = batch time / "
                    "batch size at the largest batch that fits",
    ),
    "paper-128": Preset(
        model={"window": 3, "label_dim": 64, "output": "direct", "frame_shape": [3, 128, 128],
               "options": {"depths": "medium", **_PAPER_OPTIONS}},
        frames=500, batch="auto", cpu_batch=1, train_batch=32, paper_seconds_per_video=0.28,
        description="Medium U-Net [128,256,512], 128x128x3, 500 frames; per-video time = batch time / batch size "
                    "at the largest batch that fits",
    ),
    "cpu-quick": Preset(
        model={"frame_shape": [1, 32, 32], "options": {"periodic": True}}, config="wave-quick",  # Wave is periodic
        frames=64, batch=128, cpu_batch=128, train_batch=32,  # 128: the CPU's best batch (caches; see speed_cpu.md)
        description="the configs/wave-quick.yaml model (U-Net [16,32,64], periodic) on 32x32x1 frames, 64 frames",
    ),
}


@dataclass
class BenchOptions:
    device: str = "auto"
    autocast: str | None = None
    channels_last: bool = False
    compile: bool | str = False  # True or a torch.compile mode (stochlift.lifting.fast.COMPILE_MODES)
    cuda_graph: bool = False
    labels: str = "host"  # "device": labels (ARDM: noises) drawn on the GPU inside the step
    cudnn_benchmark: bool = False
    threads: int | None = None  # torch CPU threads (None: torch's default)
    ardm_steps: int = 40
    ardm_frames: int = 1  # frames timed for ARDM (each is ardm_steps backbone calls)
    train_steps: int = 5  # 0 skips (e)
    repeats: int = 3  # SL timing: the median of this many timed passes
    matmul_size: int | None = None  # n of the n x n matmul (default 4096 on the CPU, 8192 on GPUs)
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ models


def model_config(preset: str | None, config: str | None, shape: list[int] | None) -> tuple[ModelConfig, Preset | None]:
    if preset is not None and preset not in PRESETS:
        raise StochliftError(f"unknown bench preset {preset!r}; presets: {sorted(PRESETS)}")
    spec = PRESETS.get(preset) if preset else None
    base = config or (spec.config if spec else None)
    raw = load_config(base).model.__dict__.copy() if base else {}
    if spec:
        raw = {**raw, **spec.model, "options": {**raw.get("options", {}), **spec.model.get("options", {})}}
    if shape is not None:
        raw["frame_shape"] = list(shape)
    if not raw.get("frame_shape"):
        raise StochliftError("the bench needs a frame shape: pass --shape C,H,W (or a preset)")
    raw["residual_scale"] = raw.get("residual_scale") or 1.0
    if BACKBONES.get(raw.get("backbone", "unet")).periodic:
        raw.setdefault("options", {}).setdefault("periodic", False)
    cfg = ModelConfig(**raw)
    cfg.validate()
    return cfg, spec


def _activation_bytes(config: ModelConfig, batch: int) -> int:
    """A lower bound of one forward pass's memory: the input window and four maps of the first width (a
    convolution's output, its normalisation and activation, the skip kept for the decoder), float32. The
    width is the first of the backbone's `depths` option when it has one (the U-Nets), else 1."""
    pixels = math.prod(config.frame_shape or ())
    depths = config.options.get("depths")
    width = (DEPTH_PRESETS.get(depths, [16]) if isinstance(depths, str) else depths)[0] if depths else 1
    return 4 * batch * pixels * (config.window + 4 * width)


def ardm_model(config: ModelConfig, steps: int) -> Generator:
    """The ARDM baseline on the same backbone as `config` (untrained: timing and FLOPs only)."""
    fields = {**config.__dict__, "method": "ardm", "label_dim": 0, "loss": "huber", "diffusion_steps": steps,
              "options": dict(config.options)}
    fields["options"].pop("label_embedding", None)
    return build_model(ModelConfig(**fields))


def count_flops(build: Callable[[], Generator], frame_shape: tuple[int, ...]) -> int:
    """FLOPs of one call (one generated frame) at batch 1, counted on the meta device (no memory, no time)."""
    with torch.device("meta"):
        net = build()
        x = torch.zeros(1, net.window, *frame_shape)
        xi = torch.zeros(1, *net.noise_shape) if net.noise_shape else None
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(x, xi)
    return int(counter.get_total_flops())


# ------------------------------------------------------------------------------------------ device


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as lines:
            for line in lines:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "python": sys.version.split()[0], "torch": torch.__version__}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        info.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                    gpu_capability=f"{props.major}.{props.minor}", gpu_memory_bytes=props.total_memory,
                    gpu_multiprocessors=props.multi_processor_count, driver=_nvidia_driver())
    return info


def _nvidia_driver() -> str | None:
    """The NVIDIA driver version from nvidia-smi (None where it is missing)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    return None


@contextlib.contextmanager
def tf32_mode(enabled: bool | None):
    """TF32 tensor-core math for fp32 matmuls and convolutions on (True), off (False) or as it is (None)."""
    if enabled is None:
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def release_memory(device: torch.device) -> None:
    """Hand freed GPU memory (CUDA-graph pools included) back, so the next measurement starts from empty."""
    if device.type == "cuda":
        gc.collect()  # a graph's pool is freed only with the graph, which may sit in a reference cycle
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_seconds(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    with torch.inference_mode():
        fn()
        _sync(device)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            _sync(device)
            best = min(best, time.perf_counter() - start)
    return best


def matmul_rates(device: torch.device, dtype: torch.dtype = torch.float32, repeats: int = 5,
                 n: int | None = None, *, tf32: bool | None = None) -> dict[str, float]:
    """Dense matmul FLOP/s of the device, two ways, each the best of `repeats`: a square torch.mm (BLAS:
    MKL on the CPU, cuBLAS on GPUs) and the same product as a 1x1 convolution in channels_last (oneDNN
    on the CPU, cuDNN on GPUs), the library the U-Net's convolutions run in. On AMD CPUs MKL's sgemm
    trails oneDNN, so the roofline is the larger of the two. `tf32` switches TF32 tensor-core math for
    fp32 on or off for both (CUDA; None leaves torch's settings: matmuls off, cuDNN convolutions on)."""
    if tf32 is not None and device.type != "cuda":
        raise StochliftError("TF32 is a CUDA tensor-core mode; measure fp32 on the CPU with tf32=None")
    with tf32_mode(tf32):
        return _matmul_rates(device, dtype, repeats, n)


def _matmul_rates(device: torch.device, dtype: torch.dtype, repeats: int, n: int | None) -> dict[str, float]:
    n = n or (8192 if device.type == "cuda" else 4096)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    mm = 2 * n**3 / _best_seconds(lambda: torch.mm(a, b), device, repeats)
    a = b = cast(torch.Tensor, None)  # free the operands before the convolution test (the cast: typing only)
    c, hw, batch = (1024, 64, 16) if device.type == "cuda" else (512, 32, 8)
    if n < c:  # a small test size: a small convolution too
        c, hw, batch = n, 8, 2
    x = torch.randn(batch, c, hw, hw, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c, 1, 1, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    conv = 2 * batch * c * c * hw * hw / _best_seconds(lambda: torch.nn.functional.conv2d(x, w), device, repeats)
    return {"mm": mm, "conv1x1": conv, "best": max(mm, conv)}


class PeakMemory:
    """Peak memory over a block: CUDA max_memory_allocated, or the CPU's peak-RSS growth (VmHWM)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.bytes, self.how = device, 0, ""

    @staticmethod
    def _status(key: str) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            with open("/proc/self/status") as lines:
                for line in lines:
                    if line.startswith(key + ":"):
                        return int(line.split()[1]) * 1024
        return None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        self._reset = False
        with contextlib.suppress(OSError):
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            self._reset = True
        self._base = (cast(int, self._status("VmRSS")) if self._reset  # VmRSS is there wherever clear_refs is (Linux)
                      else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device)
            self.how = "torch.cuda.max_memory_allocated (total, model included)"
        elif self._reset and self._status("VmHWM") is not None:
            self.bytes = max(0, cast(int, self._status("VmHWM")) - self._base)  # not None: just checked
            self.how = "growth of peak RSS (VmHWM after clear_refs) over the block"
        else:
            self.bytes = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self._base)
            self.how = "growth of ru_maxrss over the block (a lower bound)"


# ------------------------------------------------------------------------------------------ timings


def time_rollout(engine: FastRollout, batch: int, frames: int, repeats: int = 1, seed: int = 0,
                 warmup: int = 2) -> dict[str, Any]:
    """Seconds for `frames` one-step updates of a batch (labels drawn each frame on the CPU, as in
    rollout_batches, or by the stepper with labels="device"; frames stay on the device), after a warm-up;
    the median of `repeats` passes."""
    stepper = engine.stepper(batch)
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(batch, engine.window, *engine.frame_shape, generator=generator)
    shape = () if engine.draws_labels else engine.noise_shape
    stepper.reseed(seed)

    def run(n: int) -> float:
        stepper.load(start.to(engine.device))
        engine.synchronize()
        began = time.perf_counter()
        for _ in range(n):
            stepper.step(torch.randn(batch, *shape, generator=generator) if shape else None)
        engine.synchronize()
        return time.perf_counter() - began

    with torch.inference_mode():
        if warmup:
            run(warmup)  # lazy initialisation, autotuning, compilation
        times = sorted(run(frames) for _ in range(max(1, repeats)))
    return {"seconds": times[len(times) // 2], "seconds_all": times}


def time_steps(engine: FastRollout, batch: int, seconds: float = 1.0, max_steps: int = 500,
               repeats: int = 3) -> dict[str, float]:
    """Steady-state seconds per one-step update of a batch: a first short pass (one warm-up step and two
    timed ones, after the graph capture and compilation: `first_call_seconds`), then `repeats` passes of
    as many steps as fill about `seconds` (3 to max_steps), the median pass / steps. For a rollout of T
    frames, the batch's time is about T times that."""
    began = time.perf_counter()
    probe = time_rollout(engine, batch, 2, repeats=1, warmup=1)
    first_call = time.perf_counter() - began
    steps = int(min(max_steps, max(3, seconds / max(probe["seconds"] / 2, 1e-9))))
    timed = time_rollout(engine, batch, steps, repeats=repeats, warmup=0)
    return {"seconds_per_step": timed["seconds"] / steps, "steps_timed": steps, "repeats": repeats,
            "pass_seconds": timed["seconds_all"], "first_call_seconds": first_call}


# ------------------------------------------------------------------------------------------ the run


def run_bench(
    preset: str | None = "cpu-quick",
    config: str | None = None,
    *,
    shape: list[int] | None = None,
    batch: int | str | None = None,
    frames: int | None = None,
    train_batch: int | None = None,
    options: BenchOptions | None = None,
    out: str | os.PathLike | None = None,
    command: str | None = None,
    echo: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Measure (a)-(e) (see the module docstring), print a table, write JSON to `out`; returns the report."""
    o = options or BenchOptions()
    if out is not None:
        refuse_overwriting_inputs([out], [config])
    if o.threads:
        torch.set_num_threads(o.threads)
    cfg, spec = model_config(preset, config, shape)
    device = resolve_device(o.device)
    fast = FastOptions(device=str(device), autocast=o.autocast, channels_last=o.channels_last, compile=o.compile,
                       cuda_graph=o.cuda_graph, labels=o.labels, cudnn_benchmark=o.cudnn_benchmark)
    fast.check(device)
    assert cfg.frame_shape is not None  # model_config refuses a config without one
    frame_shape = tuple(cfg.frame_shape)
    frames = frames or (spec.frames if spec else 16)
    if frames < 1:
        raise StochliftError(f"--frames must be >= 1, got {frames}")
    torch.manual_seed(0)
    model = build_model(cfg)
    engine = FastRollout(as_module(model), frame_shape, fast)

    wanted = batch if batch is not None else (spec.batch if spec else 32)
    if wanted == "auto":
        wanted = largest_batch(engine._probe) if device.type == "cuda" else (spec.cpu_batch if spec else 32)
    if not isinstance(wanted, int) or wanted < 1:
        raise StochliftError(f"--batch-size must be a positive integer or auto, got {wanted!r}")
    b = wanted
    if device.type == "cpu":
        require_memory(_activation_bytes(cfg, max(b, train_batch or 1)),
                       f"the bench at batch {b} on frames of {list(frame_shape)}")

    # (c) FLOPs and the roofline's rate
    sl_flops = count_flops(lambda: build_model(cfg), frame_shape)
    dtype = AUTOCAST_DTYPES[o.autocast] if o.autocast else torch.float32
    tf32 = device.type == "cuda" and dtype == torch.float32 and torch.backends.cudnn.allow_tf32  # see the docstring
    rates = matmul_rates(device, dtype, n=o.matmul_size, tf32=True if tf32 else None)
    rate = rates["best"]

    # (a) + (d) SL rollout
    with PeakMemory(device) as memory:
        sl = time_rollout(engine, b, frames, repeats=o.repeats)
    sl_fps = b * frames / sl["seconds"]
    del engine  # its CUDA graph's memory pool, sized to fill the GPU at batch b, before the ARDM's is made
    release_memory(device)

    # (b) ARDM: S backbone calls per frame
    ardm_net, ardm_label = ardm_model(cfg, o.ardm_steps), f"ARDM (S={o.ardm_steps})"
    ardm_frames = o.ardm_frames
    ardm_fast = replace(fast, compile=False)
    if fast.compile_mode is not None:  # compile the backbone, not the S-step loop around it
        mode = fast.compile_mode
        if mode in GRAPHED_COMPILE_MODES:  # inductor's graphs per backbone call: capture the whole frame instead
            mode, ardm_fast = "default", replace(ardm_fast, cuda_graph=device.type == "cuda")
        ardm_module = cast(ARDM, ardm_net)  # ardm_model's method
        # (torch.compile of a module is a module, an OptimizedModule; its stubs say a callable)
        ardm_module.backbone = cast(nn.Module, torch.compile(ardm_module.backbone, dynamic=False,
                                                             mode=None if mode == "default" else mode))
    ardm_engine = FastRollout(as_module(ardm_net), frame_shape, ardm_fast)
    ardm_time = time_rollout(ardm_engine, b, ardm_frames, repeats=1)
    ardm_per_frame = ardm_time["seconds"] / ardm_frames
    ardm_flops = count_flops(lambda: ardm_model(cfg, o.ardm_steps), frame_shape)
    del ardm_engine, ardm_net
    release_memory(device)

    # (e) training
    train_b = train_batch or (spec.train_batch if spec else 32)
    steps_per_s = None
    if o.train_steps:
        steps_per_s = time_training(model, frame_shape, train_b, o.train_steps, device,
                                    AUTOCAST_DTYPES.get(o.autocast or ""), o.channels_last)

    sl_per_frame = sl["seconds"] / frames  # one batch-frame
    report = {
        "command": command or " ".join(sys.argv),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "device": str(device),
        "preset": preset,
        "config": config,
        "description": spec.description if spec else None,
        "model": {"frame_shape": list(frame_shape), "window": cfg.window, "label_dim": cfg.label_dim,
                  "options": cfg.options, "parameters": sum(p.numel() for p in model.parameters())},
        "options": {"autocast": o.autocast, "channels_last": o.channels_last, "compile": o.compile,
                    "cuda_graph": o.cuda_graph, "labels": o.labels if o.labels != "host" else None,
                    "cudnn_benchmark": o.cudnn_benchmark, "torch_threads": torch.get_num_threads()},
        "batch": b,
        "frames": frames,
        "sl": {
            "frames_per_s": sl_fps,
            "seconds_per_batch": sl["seconds"],
            "seconds_per_batch_all": sl["seconds_all"],
            "seconds_per_video": sl["seconds"] / b,
            "ms_per_frame_per_video": 1e3 * sl["seconds"] / (b * frames),
        },
        "ardm": {
            "label": ardm_label,
            "steps": o.ardm_steps,
            "frames_timed": ardm_frames,
            "seconds_per_batch_frame": ardm_per_frame,
            "seconds_per_video": ardm_per_frame * frames / b,
            "ratio_to_sl": ardm_per_frame / sl_per_frame,
            "flops_per_frame": ardm_flops,
        },
        "flops_per_frame": sl_flops,
        "matmul_flops_per_s": rate,
        "matmul_flops_per_s_by_kernel": rates,
        "matmul_dtype": "tf32" if tf32 else str(dtype).replace("torch.", ""),
        "achieved_flops_per_s": sl_flops * sl_fps,
        "roofline_fraction": sl_flops * sl_fps / rate,
        "peak_memory_bytes": memory.bytes,
        "peak_memory_how": memory.how,
        "train": {"batch": train_b, "steps": o.train_steps, "steps_per_s": steps_per_s},
    }
    if spec and spec.paper_seconds_per_video:
        report["paper_seconds_per_video"] = spec.paper_seconds_per_video
        report["goal_seconds_per_video"] = spec.paper_seconds_per_video / 2
    if echo is not None:
        echo(format_table(report))
    if out is not None:
        write_json(out, report)
    return report


def format_table(r: dict[str, Any]) -> str:
    """The report as a plain-text table."""
    gpu = r["machine"].get("gpu")
    rows = [
        ("device", f"{r['device']} ({gpu or r['machine']['cpu']}, {r['options']['torch_threads']} threads)"),
        ("config", f"{r['preset'] or r['config']}: {r['model']['frame_shape']}, "
                   f"{r['model']['parameters'] / 1e6:.2f}M params"),
        ("options", ", ".join(k for k, v in r["options"].items() if v and k != "torch_threads") or "defaults"),
        ("batch x frames", f"{r['batch']} x {r['frames']}"),
        ("SL frames/s", f"{r['sl']['frames_per_s']:.1f}"),
        ("SL s/video", f"{r['sl']['seconds_per_video']:.4g}"
         + (f"  (paper {r['paper_seconds_per_video']} s, goal <= {r['goal_seconds_per_video']} s)"
            if "paper_seconds_per_video" in r else "")),
        ("FLOPs/frame", f"{r['flops_per_frame'] / 1e9:.4g} GFLOP"),
        ("matmul rate", f"{r['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s ({r['matmul_dtype']}; mm "
                        f"{r['matmul_flops_per_s_by_kernel']['mm'] / 1e9:.1f}, 1x1 conv "
                        f"{r['matmul_flops_per_s_by_kernel']['conv1x1'] / 1e9:.1f})"),
        ("achieved", f"{r['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s"),
        ("roofline fraction", f"{100 * r['roofline_fraction']:.1f}%"),
        ("peak memory", f"{r['peak_memory_bytes'] / 2**20:.1f} MiB ({r['peak_memory_how']})"),
        (f"ARDM S={r['ardm']['steps']} s/frame", f"{r['ardm']['seconds_per_batch_frame']:.4g} "
                                                 f"({r['ardm']['label']})"),
        ("ARDM / SL time per frame", f"{r['ardm']['ratio_to_sl']:.1f}"),
        ("train steps/s", "skipped" if r["train"]["steps_per_s"] is None
         else f"{r['train']['steps_per_s']:.2f} (batch {r['train']['batch']})"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
