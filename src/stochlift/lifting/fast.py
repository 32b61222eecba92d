"""The fast inner loop of Algorithm 2: one network call per frame and as little else as possible.

Per frame the loop copies that frame's labels into a fixed buffer, calls the network on a fixed window
buffer, and shifts the window by writing [window[1:], next] into a second preallocated buffer, then swaps
the two (ping-pong). No tensor is allocated per frame outside the network, and autograd is off
(inference mode).

Why a ping-pong pair and not a ring buffer indexed modulo m: the first convolution wants the window as
one contiguous [B, m * C, H, W] tensor, oldest frame first. A ring would hand it rotated frames (which
changes the order of its sums, so the samples would no longer be bit-identical to the plain loop) or
would need a gather copy before the convolution anyway. Shifting m frames costs m frame copies, which
next to a U-Net call is noise; what matters is that nothing is allocated per frame and, on a GPU, that
the whole update can be captured once as a CUDA graph with static buffers.

Options (all off by default where they could change results):
    device        "auto" (CUDA when available), "cpu", "cuda", or None (wherever the model already is)
    autocast      "bf16" | "fp16": the network runs in reduced precision (GPU only); the state stays fp32
    channels_last NHWC weights and activations (4-D frames only)
    compile       torch.compile the model: True (inductor's default mode) or a mode name (COMPILE_MODES);
                  the modes with their own CUDA graphs ("reduce-overhead", "max-autotune") exclude cuda_graph
    cuda_graph    capture the one-step update (network + window shift) as a CUDA graph (GPU only)
    labels        "host": each frame's labels are drawn on the CPU by the caller (the same numbers on every
                  device); "device": the stepper draws them itself, on its device, from a per-batch generator
                  (`Stepper.reseed`), inside the CUDA graph when there is one. On the CPU both give the same
                  numbers; on a GPU "device" uses CUDA's Philox generator, so the samples differ from the
                  host-label ones (same distribution, reproducible per seed and batch size), and no frame
                  waits for the CPU.
    cudnn_benchmark  let cuDNN time its convolution algorithms for the fixed shapes (GPU only; the chosen
                  algorithm, hence the rounding, may differ from run to run)
With the defaults, samples on the CPU are bit-identical to the straightforward loop.

Host labels on a GPU go through a ring of pinned staging buffers: a copy from pageable memory may make the
CPU wait for the GPU at every frame (CUDA may synchronise to stage pageable memory); from pinned memory it
is asynchronous, and the CPU only waits before reusing a slot whose copy is still queued.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from stochlift.errors import StochliftError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
GRAPHED_COMPILE_MODES = ("reduce-overhead", "max-autotune")  # inductor captures CUDA graphs itself
LABEL_SOURCES = ("host", "device")
STAGING_BYTES = 64 << 20  # pinned host-label staging per stepper (at least two slots whatever their size)
MAX_STAGING_SLOTS = 64
CPU_AUTO_BATCH = 256  # rollout_batches' default batch; the CPU gains nothing from larger ones
GPU_MEMORY_FRACTION = 0.85  # of the free memory that an automatic batch may fill


def resolve_device(device: str | torch.device | None, model: nn.Module | None = None) -> torch.device:
    """None: the model's own device (CPU without a model); "auto": CUDA when available, else the CPU."""
    if device is None:
        param = next(model.parameters(), None) if model is not None else None
        return param.device if param is not None else torch.device("cpu")
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise StochliftError(f"unknown device {device!r}; use auto, cpu or cuda") from None
    if resolved.type not in ("cpu", "cuda"):
        raise StochliftError(f"device must be auto, cpu or cuda, got {device!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise StochliftError("device cuda asked for, but this machine has no CUDA GPU (use --device cpu or auto)")
    return resolved


@dataclass(frozen=True)
class FastOptions:
    """How to run the one-step update; see the module docstring."""

    device: str | torch.device | None = None  # as resolve_device takes it
    autocast: str | None = None
    channels_last: bool = False
    compile: bool | str = False
    cuda_graph: bool = False
    labels: str = "host"
    cudnn_benchmark: bool = False

    @property
    def compile_mode(self) -> str | None:
        """The torch.compile mode, or None when the model is not compiled."""
        if self.compile is True:
            return "default"
        return self.compile or None

    def check(self, device: torch.device) -> None:
        if self.autocast is not None and self.autocast not in AUTOCAST_DTYPES:
            raise StochliftError(f"autocast must be one of {sorted(AUTOCAST_DTYPES)}, got {self.autocast!r}")
        if self.autocast is not None and device.type != "cuda":
            raise StochliftError(f"autocast {self.autocast} is for GPUs; this rollout runs on {device.type}")
        if self.cuda_graph and device.type != "cuda":
            raise StochliftError(f"cuda_graph needs a CUDA device; this rollout runs on {device.type}")
        if self.cudnn_benchmark and device.type != "cuda":
            raise StochliftError(f"cudnn_benchmark needs a CUDA device; this rollout runs on {device.type}")
        if self.labels not in LABEL_SOURCES:
            raise StochliftError(f"labels must be one of {list(LABEL_SOURCES)}, got {self.labels!r}")
        mode = self.compile_mode
        if mode is not None and mode not in COMPILE_MODES:
            raise StochliftError(f"compile mode must be one of {list(COMPILE_MODES)}, got {mode!r}")
        if mode in GRAPHED_COMPILE_MODES and self.cuda_graph:
            raise StochliftError(f"compile mode {mode} captures its own CUDA graphs; drop cuda_graph or use "
                                 "max-autotune-no-cudagraphs")


def prepare_model(model: nn.Module, device: torch.device, options: FastOptions) -> nn.Module:
    """The network to call: the model itself when nothing changes, else a moved/converted copy (the
    caller's model is never modified), optionally compiled."""
    current = resolve_device(None, model)
    net = model
    if current != device or options.channels_last:
        net = copy.deepcopy(model).to(device)
        if options.channels_last:
            net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack it
    net.eval()
    mode = options.compile_mode
    if mode is not None:
        net = cast(nn.Module, torch.compile(net, dynamic=False, mode=None if mode == "default" else mode))
    return net


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool):
    """cuDNN's algorithm search on for the block (and restored after it), so the setting stays local."""
    if not enabled:
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


class _PinnedStaging:
    """A ring of pinned host buffers that host labels pass through on their way to the GPU.

    From pageable memory, an H2D copy may make the CPU wait until the GPU has caught up, at every frame;
    from pinned memory it is queued and the CPU moves on. A slot is refilled only after its previous copy ran
    (its event), so the CPU can run up to len(ring) frames ahead of the GPU.
    """

    def __init__(self, like: torch.Tensor) -> None:
        slot_bytes = max(like.numel() * like.element_size(), 1)
        slots = int(min(MAX_STAGING_SLOTS, max(2, STAGING_BYTES // slot_bytes)))
        self.buffers = [torch.empty(like.shape, dtype=like.dtype, pin_memory=True) for _ in range(slots)]
        self.events = [torch.cuda.Event() for _ in range(slots)]
        self.used = [False] * slots
        self.next = 0

    @staticmethod
    def fits(like: torch.Tensor) -> bool:
        """Whether two slots fit STAGING_BYTES (an ARDM's per-frame noise at a large batch does not)."""
        return 2 * like.numel() * like.element_size() <= STAGING_BYTES

    def copy(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        i = self.next
        self.next = (i + 1) % len(self.buffers)
        if self.used[i]:
            self.events[i].synchronize()  # that slot's previous copy has run
        self.buffers[i].copy_(src)
        dst.copy_(self.buffers[i], non_blocking=True)
        self.events[i].record()
        self.used[i] = True


class Stepper:
    """The one-step update of a fixed batch size on preallocated buffers.

    `load(window)` sets the history, then each `step(xi)` returns the next frame [B, *frame] (valid until
    the following step) and shifts the window. `xi` is the frame's randomness, [B, *noise_shape]: the
    lifting label, or an ARDM's diffusion noises. With labels="device" the stepper draws xi itself, on its
    device, from its own generator: `reseed(seed)` starts a batch's stream and `step(None)` draws (inside
    the CUDA graph when there is one; on the CPU the same numbers as torch.randn with that generator).
    A `constraint` (stochlift.problems.constraint_for) maps (last frame, network output) to the next
    frame, in fp32, inside the step (and its CUDA graph).
    """

    def __init__(
        self,
        net: nn.Module,
        window: int,
        noise_shape: tuple[int, ...],
        batch: int,
        frame_shape: tuple[int, ...],
        device: torch.device,
        *,
        autocast: str | None = None,
        cuda_graph: bool = False,
        constraint: nn.Module | None = None,
        labels: str = "host",
        cudnn_benchmark: bool = False,
        mark_steps: bool = False,
    ) -> None:
        self.net, self.device, self.constraint = net, device, constraint
        self.dtype = AUTOCAST_DTYPES.get(autocast) if autocast else None
        self.window = torch.zeros(batch, window, *frame_shape, device=device)
        self.spare = torch.empty_like(self.window)
        self.xi = torch.zeros(batch, *noise_shape, device=device) if noise_shape else None
        draws = labels == "device" and self.xi is not None
        self.generator = torch.Generator(device=device) if draws else None
        staged = self.xi is not None and not draws and device.type == "cuda" and _PinnedStaging.fits(self.xi)
        self._staging = _PinnedStaging(cast(torch.Tensor, self.xi)) if staged else None  # staged: xi is a tensor
        self._benchmark = cudnn_benchmark
        self._mark_steps = mark_steps  # compiled with inductor's own CUDA graphs: one new "step" per call
        self.graph: torch.cuda.CUDAGraph | None = None
        self._next: torch.Tensor | None = None
        if cuda_graph:
            self._capture()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        # no weight-cast cache: a cache would hold tensors from outside a captured graph's memory pool
        return torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=False)

    def _call(self) -> torch.Tensor:
        if self.generator is not None:  # drawn on the device: xi is a tensor
            cast(torch.Tensor, self.xi).normal_(generator=self.generator)
        if self._mark_steps:
            torch.compiler.cudagraph_mark_step_begin()
        with self._autocast(), cudnn_benchmark(self._benchmark):
            nxt = self.net(self.window, self.xi)
        nxt = nxt if nxt.dtype == torch.float32 else nxt.float()
        return nxt if self.constraint is None else self.constraint(self.window[:, -1], nxt)

    @torch.no_grad()  # the captured cat(out=...) and copy_ must not record autograd history
    def _capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up (lazy initialisation, cuDNN autotuning) off the graph
            for _ in range(3):
                self._call()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        if self.generator is not None:  # replays then advance this generator, not the default one
            self.graph.register_generator_state(self.generator)
        with torch.cuda.graph(self.graph):
            nxt = self._call()
            torch.cat([self.window[:, 1:], nxt[:, None]], dim=1, out=self.spare)
            self.window.copy_(self.spare)  # one fixed input buffer: the graph reads the same addresses
        self._next = nxt

    def load(self, window: torch.Tensor) -> None:
        self.window.copy_(window)

    def reseed(self, seed: int) -> None:
        """Start the label stream of a batch (device labels; nothing to do when the caller draws them)."""
        if self.generator is not None:
            self.generator.manual_seed(seed)

    @torch.no_grad()
    def step(self, xi: torch.Tensor | None = None) -> torch.Tensor:
        if self.generator is not None:
            if xi is not None:
                raise StochliftError("this stepper draws its labels on the device (labels='device'): call step()")
        elif self.xi is not None:
            if xi is None:
                raise StochliftError("this stepper takes each frame's labels from the caller: call step(xi)")
            if self._staging is not None and xi.device.type == "cpu":
                self._staging.copy(self.xi, xi)
            else:
                self.xi.copy_(xi, non_blocking=True)
        if self.graph is not None:
            self.graph.replay()
            return cast(torch.Tensor, self._next)  # set with the graph (_capture)
        nxt = self._call()
        torch.cat([self.window[:, 1:], nxt[:, None]], dim=1, out=self.spare)
        self.window, self.spare = self.spare, self.window
        return nxt


class FastRollout:
    """A model prepared for rollouts on one device, with one Stepper per batch size met (and the
    rollout's constraint on each generated frame, if any)."""

    def __init__(self, model: nn.Module, frame_shape: tuple[int, ...], options: FastOptions | None = None,
                 constraint: nn.Module | None = None) -> None:
        self.options = options or FastOptions()
        self.device = resolve_device(self.options.device, model)
        self.options.check(self.device)
        if self.options.channels_last and len(frame_shape) != 3:
            raise StochliftError(f"channels_last needs [C, H, W] frames, got frames of shape {tuple(frame_shape)}")
        generator = cast(Any, model)  # a Generator (stochlift.lifting.generator)
        self.window, self.noise_shape = int(generator.window), tuple(generator.noise_shape)
        self.frame_shape = tuple(frame_shape)
        model.eval()
        self.net = prepare_model(model, self.device, self.options)
        self.constraint = constraint.to(self.device) if constraint is not None else None
        self._steppers: dict[int, Stepper] = {}

    def stepper(self, batch: int) -> Stepper:
        if batch not in self._steppers:
            self._steppers[batch] = self._new_stepper(batch, cuda_graph=self.options.cuda_graph)
        return self._steppers[batch]

    def release(self, batch: int) -> None:
        """Forget the stepper of a batch size (its buffers and CUDA graph, with the graph's memory pool)."""
        self._steppers.pop(batch, None)

    def _new_stepper(self, batch: int, cuda_graph: bool) -> Stepper:
        o = self.options
        return Stepper(
            self.net, self.window, self.noise_shape, batch, self.frame_shape, self.device,
            autocast=o.autocast, cuda_graph=cuda_graph, constraint=self.constraint, labels=o.labels,
            cudnn_benchmark=o.cudnn_benchmark, mark_steps=o.compile_mode in GRAPHED_COMPILE_MODES,
        )

    @property
    def draws_labels(self) -> bool:
        """Whether the steppers draw each frame's labels themselves (labels="device")."""
        return self.options.labels == "device" and bool(self.noise_shape)

    def output(self, batch: int, frames: int) -> torch.Tensor:
        """A host buffer for the trajectories of a batch (pinned on CUDA, so frame copies are asynchronous)."""
        return torch.empty(batch, frames, *self.frame_shape, pin_memory=self.device.type == "cuda")

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def mark(self) -> torch.cuda.Event | None:
        """An event after the work queued so far (None on the CPU, where work is done once queued)."""
        if self.device.type != "cuda":
            return None
        event = torch.cuda.Event()
        event.record()
        return event

    @staticmethod
    def collect(row: int, frame: int, out: torch.Tensor, done: torch.cuda.Event | None) -> tuple[int, int, np.ndarray]:
        """A finished piece of output as numpy, once the copies into it (queued before `done`) have run."""
        if done is not None:
            done.synchronize()
        return row, frame, out.numpy()

    def auto_batch_size(self, limit: int | None = None) -> int:
        """The CPU's default batch, or on a GPU the largest batch whose one-step update fits in memory."""
        if self.device.type != "cuda":
            return min(CPU_AUTO_BATCH, limit) if limit else CPU_AUTO_BATCH
        return largest_batch(self._probe, limit)

    def _probe(self, batch: int) -> int:
        """Peak bytes allocated by one step of a fresh stepper of this batch (no graph)."""
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        stepper = self._new_stepper(batch, cuda_graph=False)
        xi = torch.zeros(batch, *self.noise_shape, device=self.device) if self.noise_shape else None
        stepper.step(None if self.draws_labels else xi)
        torch.cuda.synchronize(self.device)
        peak = torch.cuda.max_memory_allocated(self.device) - base
        del stepper, xi
        torch.cuda.empty_cache()
        return peak


def largest_batch(probe, limit: int | None = None, start: int = 4) -> int:
    """Fit peak memory = fixed + per_sample * batch on two probes, fill GPU_MEMORY_FRACTION of the free
    memory, then back off by 15% per out-of-memory error until one step runs."""
    try:
        small, large = probe(start), probe(2 * start)
    except torch.cuda.OutOfMemoryError:
        return 1
    per_sample = max((large - small) / start, 1.0)
    fixed = max(small - per_sample * start, 0.0)
    free, _ = torch.cuda.mem_get_info()
    batch = max(1, int((GPU_MEMORY_FRACTION * free - fixed) / per_sample))
    if limit:
        batch = min(batch, limit)
    while batch > 1:
        try:
            probe(batch)
            return batch
        except torch.cuda.OutOfMemoryError:
            batch = int(batch * 0.85)
    return 1
