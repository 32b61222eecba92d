"""The paper's speed on one GPU, in one resumable command with its own time budget.

    python benchmarks/gpu_suite.py [--budget 480] [--out benchmarks/results] [--only 'paper-128/*'] [--profile]
                                   [--smoke]

Writes OUT/speed_gpu.{json,md} (GPU, driver, torch, date, command) from OUT/speed_gpu.jsonl, where every
measurement is appended as it finishes. A rerun skips finished items (done, or failed: e.g. out of memory;
--retry-failed runs those again) and runs the rest: items skipped for the budget, interrupted by it, or
waiting on another. Before each item the suite compares its estimate with the time left and skips what
would not fit (saying so); at the deadline it stops the running item (SIGALRM) and still writes the report.

Items (`items()` gives the order: what the goals need first, torch.compile and single options later):
    env, matmul/{bf16,tf32,fp32}   the machine; dense rates (the better of torch.mm and a 1x1 convolution)
    P/flops, P/batch               P = paper-128, paper-480: FLOPs per frame; the "all" variant at a few
                                   batches (up to the largest whose fp32 step fits): the best per-video time
                                   picks THE batch, at which every variant of P is then measured
    P/<variant>                    seconds per step (steady state: median of 3 passes of ~0.5 s), per
                                   video = s/step x frames / batch, the fraction of the dense rate of the
                                   variant's dtype (bf16, or TF32: cuDNN's fp32 convolutions) and of bf16's,
                                   peak memory, the first call's time (graph capture, compilation)
    P/ardm                         ARDM with S = 40 at the same batch, options "all" without the CUDA graph
                                   (its noises drawn on the device), against SL's "all-nograph"
    paper-128/profile              torch.profiler of the step, with and without its CUDA graph (summary
                                   in the results; Chrome traces beside them)
    train/paper-128/<variant>      training pairs/s of the Medium U-Net at 128x128: fp32 AdamW; bf16 +
                                   channels_last + fused AdamW; the same with torch.compile
    P/full                         the sampling API end to end (rollout_chunks: engine set-up, labels,
                                   asynchronous copies to pinned host memory) over all frames at the batch
Variants: "all" (bf16 autocast, channels_last, CUDA graph, device labels, cuDNN benchmark), "all-nograph",
each option alone, "fp32" (none; cuDNN still uses TF32), and torch.compile: "all+compile" (default mode,
inside our graph), "compile" alone, "all+max-autotune" (no inductor graphs, inside ours),
"all+reduce-overhead" (inductor's graphs in place of ours).

--smoke runs the same code on the CPU at tiny shapes in seconds (options that need CUDA are reported as
skipped; compile too, unless --with-compile) and writes speed_gpu_smoke.* instead.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import gc
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stochlift.apps.bench import (
    PeakMemory,
    ardm_model,
    count_flops,
    machine,
    matmul_rates,
    model_config,
    release_memory,
    time_rollout,
    time_steps,
    time_training,
)
from stochlift.apps.bench_profile import format_profile, profile_steps
from stochlift.errors import StochliftError
from stochlift.io import atomic_path, write_json
from stochlift.lifting.fast import FastOptions, FastRollout, resolve_device
from stochlift.lifting.generator import build_model
from stochlift.lifting.rollout import rollout_chunks, stream_chunk

RESULTS = Path(__file__).resolve().parent / "results"
EAGER_ALL = {"autocast": "bf16", "channels_last": True, "cuda_graph": True, "labels": "device", "cudnn_benchmark": True}
VARIANTS: dict[str, dict[str, Any]] = {
    "all": EAGER_ALL,
    "all-nograph": {**EAGER_ALL, "cuda_graph": False},
    "fp32": {},
    "bf16": {"autocast": "bf16"},
    "channels_last": {"channels_last": True},
    "cuda_graph": {"cuda_graph": True},
    "device_labels": {"labels": "device"},
    "cudnn_benchmark": {"cudnn_benchmark": True},
    "all+compile": {**EAGER_ALL, "compile": "default"},
    "compile": {"compile": "default"},
    "all+max-autotune": {**EAGER_ALL, "compile": "max-autotune-no-cudagraphs"},
    "all+reduce-overhead": {**EAGER_ALL, "cuda_graph": False, "compile": "reduce-overhead"},
}
TRAIN_VARIANTS = {
    "fp32": {"dtype": None, "channels_last": False, "fused": False, "compile": False},
    "bf16+fused": {"dtype": torch.bfloat16, "channels_last": True, "fused": True, "compile": False},
    "bf16+fused+compile": {"dtype": torch.bfloat16, "channels_last": True, "fused": True, "compile": "default"},
}
BATCHES = {"paper-128": [16, 32, 64, 128, 256, 512], "paper-480": [2, 4, 8, 16, 32]}
SMOKE_MODEL = {"depths": [8, 16, 32], "embed_width": 16, "groups": 4}
TARGETS = {"paper-128": 0.14, "paper-480": 0.48}  # s per video: half the paper's 0.28 s and 0.96 s
ROOFLINE_TARGET = 0.40  # of the measured bf16 dense rate, on paper-128


class Skip(Exception):
    """An item that cannot run here (no CUDA, a missing dependency): not finished, retried next time."""


class BudgetSpent(BaseException):
    """Raised by SIGALRM at the deadline (a BaseException, so measurement code cannot swallow it)."""


@dataclass
class Suite:
    device: torch.device
    smoke: bool
    out: Path
    step_seconds: float
    ardm_steps: int
    with_compile: bool
    records: dict[str, dict] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return "speed_gpu_smoke" if self.smoke else "speed_gpu"

    def result(self, name: str) -> dict:
        record = self.records.get(name)
        if record is None or record["status"] != "done":
            raise Skip(f"needs {name}, which has not finished")
        return record["result"]

    # ---------------------------------------------------------------- models
    def config(self, preset: str):
        cfg, spec = model_config(preset, None, [3, 16, 16] if self.smoke else None)
        if self.smoke:
            depths = SMOKE_MODEL["depths"] + ([64] if preset == "paper-480" else [])
            cfg.options.update(SMOKE_MODEL, depths=depths)
        frames = (6 if preset == "paper-128" else 4) if self.smoke else spec.frames
        return cfg, spec, frames

    def model(self, preset: str, ardm: bool = False):
        cfg, _, _ = self.config(preset)
        torch.manual_seed(0)
        return ardm_model(cfg, self.ardm_steps) if ardm else build_model(cfg)

    def options(self, variant: dict) -> FastOptions:
        options = FastOptions(device=str(self.device), **variant)
        try:
            options.check(self.device)
        except StochliftError as exc:
            raise Skip(str(exc)) from None
        if options.compile and self.smoke and not self.with_compile:
            raise Skip("torch.compile takes minutes on a CPU: not in --smoke unless --with-compile")
        return options

    def rate(self, variant: dict) -> tuple[str, float | None]:
        """The dense rate a variant's convolutions can reach: bf16, TF32 (cuDNN's fp32 default) or fp32."""
        name = "bf16" if variant.get("autocast") == "bf16" else "tf32" if self.device.type == "cuda" else "fp32"
        record = self.records.get(f"matmul/{name}", {})
        return name, record.get("result", {}).get("best")


# -------------------------------------------------------------------- measurements


def item_env(s: Suite) -> dict:
    return {"machine": machine(), "device": str(s.device), "cudnn_tf32_default": torch.backends.cudnn.allow_tf32}


def item_matmul(s: Suite, kind: str) -> dict:
    if kind == "tf32" and s.device.type != "cuda":
        raise Skip("TF32 is a CUDA tensor-core mode")
    dtype = torch.bfloat16 if kind == "bf16" else torch.float32
    tf32 = None if s.device.type != "cuda" or kind == "bf16" else kind == "tf32"
    return matmul_rates(s.device, dtype, n=128 if s.smoke else None, tf32=tf32)


def measure(s: Suite, preset: str, variant: dict, batch: int, engine: FastRollout | None = None) -> dict:
    """One variant at one batch: steady-state step time, per-video time, fractions of the rates, memory."""
    _, _, frames = s.config(preset)
    engine = engine or FastRollout(s.model(preset), tuple(s.config(preset)[0].frame_shape), s.options(variant))
    with PeakMemory(s.device) as memory:
        timed = time_steps(engine, batch, seconds=s.step_seconds)
    step = timed["seconds_per_step"]
    flops = s.result(f"{preset}/flops")["flops_per_frame"]
    dtype, rate = s.rate(variant)
    bf16 = s.records.get("matmul/bf16", {}).get("result", {}).get("best")
    achieved = flops * batch / step
    return {**timed, "batch": batch, "frames": frames, "seconds_per_video": step * frames / batch,
            "frames_per_s": batch / step, "achieved_flops_per_s": achieved, "rate_dtype": dtype,
            "fraction_of_rate": achieved / rate if rate else None,
            "fraction_of_bf16": achieved / bf16 if bf16 else None,
            "peak_memory_bytes": memory.bytes, "options": variant}


def item_flops(s: Suite, preset: str) -> dict:
    cfg, spec, frames = s.config(preset)
    shape = tuple(cfg.frame_shape)
    return {"flops_per_frame": count_flops(lambda: build_model(cfg), shape), "frames": frames,
            "frame_shape": list(shape), "options": cfg.options,
            "ardm_flops_per_frame": count_flops(lambda: ardm_model(cfg, s.ardm_steps), shape),
            "paper_seconds_per_video": spec.paper_seconds_per_video}


def item_batch(s: Suite, preset: str) -> dict:
    """Per-video time of "all" at a few batches; the fastest picks the batch every variant then uses. The
    batches stop at the largest whose fp32 eager step fits (the most memory any variant needs)."""
    cfg, spec, _ = s.config(preset)
    shape = tuple(cfg.frame_shape)
    if s.smoke:
        candidates, cap = [1, 2], None
    elif s.device.type != "cuda":
        candidates, cap = [spec.cpu_batch], None
    else:
        fp32 = FastRollout(s.model(preset), shape, FastOptions(device=str(s.device)))
        cap = fp32.auto_batch_size()
        del fp32
        release_memory(s.device)
        candidates = [b for b in BATCHES[preset] if b <= cap] or [cap]
    variant = VARIANTS["all"] if s.device.type == "cuda" else {}
    engine = FastRollout(s.model(preset), shape, s.options(variant))
    sweep, stopped = [], None
    for b in candidates:
        try:
            sweep.append(measure(s, preset, variant, b, engine))
        except torch.cuda.OutOfMemoryError:
            stopped = f"out of memory at batch {b}"  # larger batches would not fit either
            break
        finally:
            engine.release(b)  # its graph's memory pool goes before the next batch's is made
            release_memory(s.device)
        print(f"    batch {b}: {sweep[-1]['seconds_per_video']:.4g} s/video", flush=True)
    if not sweep:
        raise StochliftError(f"no batch could be timed ({stopped})")
    best = min(sweep, key=lambda r: r["seconds_per_video"])
    return {"best_batch": best["batch"], "largest_fp32_batch": cap, "sweep": sweep, "stopped": stopped}


def item_variant(s: Suite, preset: str, name: str) -> dict:
    batch = s.result(f"{preset}/batch")["best_batch"]
    return measure(s, preset, VARIANTS[name], batch)


def item_ardm(s: Suite, preset: str) -> dict:
    """ARDM (S backbone calls per frame, its noises drawn on the device) against SL at the same batch and
    options: "all" without the CUDA graph (capturing S calls costs S x 4 steps; at these batches the graph
    saves little), one warm-up and one timed frame."""
    cuda = s.device.type == "cuda"
    reference = "all-nograph" if cuda else "fp32"  # on the CPU: the default options
    variant = VARIANTS[reference]
    sl = s.result(f"{preset}/{reference}")
    cfg, _, frames = s.config(preset)
    engine = FastRollout(s.model(preset, ardm=True), tuple(cfg.frame_shape), s.options(variant))
    per_frame = time_rollout(engine, sl["batch"], 1, repeats=1, warmup=1)["seconds"]
    return {"steps": s.ardm_steps, "batch": sl["batch"], "options": variant, "seconds_per_frame": per_frame,
            "seconds_per_video": per_frame * frames / sl["batch"], "ratio_to_sl": per_frame / sl["seconds_per_step"],
            "sl_variant": reference}


def item_profile(s: Suite, preset: str) -> dict:
    """torch.profiler summaries of the step: the "all" options with their CUDA graph, and without it (eager
    kernels and launches visible one by one). On the CPU: the default options."""
    batch = s.result(f"{preset}/batch")["best_batch"]
    cfg, _, _ = s.config(preset)
    variants = {"graph": VARIANTS["all"], "eager": {**VARIANTS["all"], "cuda_graph": False}} \
        if s.device.type == "cuda" else {"eager": {}}
    def profiled(label: str, variant: dict) -> dict:
        engine = FastRollout(s.model(preset), tuple(cfg.frame_shape), s.options(variant))
        stepper = engine.stepper(batch)
        stepper.load(torch.randn(batch, engine.window, *engine.frame_shape, device=s.device))
        stepper.reseed(0)
        xi = None if engine.draws_labels else torch.randn(batch, *engine.noise_shape)
        trace = s.out / f"profile_{preset}_{label}.json.gz" if preset == "paper-128" and not s.smoke else None
        return profile_steps(lambda: stepper.step(xi), 3 if s.smoke else 5, s.device, trace=trace)

    found = {}
    for label, variant in variants.items():
        found[label] = profiled(label, variant)
        release_memory(s.device)  # the engine (and its graph's memory pool) went with profiled()
    return {"batch": batch, **found}


def item_train(s: Suite, name: str) -> dict:
    v = TRAIN_VARIANTS[name]
    if v["dtype"] is not None and s.device.type != "cuda":
        raise Skip("bf16 mixed-precision training is a GPU feature here (train.precision)")
    if v["compile"] and s.smoke and not s.with_compile:
        raise Skip("torch.compile takes minutes on a CPU: not in --smoke unless --with-compile")
    cfg, spec, _ = s.config("paper-128")
    batch = 2 if s.smoke else spec.train_batch
    steps = 2 if s.smoke else 10
    with PeakMemory(s.device) as memory:
        per_s = time_training(s.model("paper-128"), tuple(cfg.frame_shape), batch, steps, s.device, v["dtype"],
                              v["channels_last"], fused=v["fused"], compile=v["compile"],
                              warmup=3 if v["compile"] else 2)
    return {"batch": batch, "steps_timed": steps, "steps_per_s": per_s, "pairs_per_s": per_s * batch,
            "peak_memory_bytes": memory.bytes, "options": {**v, "dtype": str(v["dtype"])}}


def item_full(s: Suite, preset: str) -> dict:
    """The sampling API end to end: one rollout_chunks call (engine set-up and graph capture included) over
    all frames at the best batch; frames reach pinned host memory in chunks, as sample_to_file streams them."""
    variant = VARIANTS["all"] if s.device.type == "cuda" else {}
    batch = s.result(f"{preset}/batch")["best_batch"]
    cfg, _, frames = s.config(preset)
    options = s.options(variant)
    start = torch.randn(batch, 1, *cfg.frame_shape, generator=torch.Generator().manual_seed(0)).numpy()
    chunk = stream_chunk(batch, tuple(cfg.frame_shape), frames)
    began, first_piece, finite = time.perf_counter(), None, True
    for _, _, piece in rollout_chunks(s.model(preset), start, frames, chunk_frames=chunk, batch_size=batch,
                                      **options.__dict__):
        first_piece = first_piece or time.perf_counter() - began
        finite = finite and bool(np.isfinite(piece[:, -1]).all())
    seconds = time.perf_counter() - began
    return {"batch": batch, "frames": frames, "chunk_frames": chunk, "seconds_per_batch": seconds,
            "seconds_per_video": seconds / batch, "first_chunk_seconds": first_piece, "finite": finite,
            "options": variant}


@dataclass
class Item:
    name: str
    run: Callable[[Suite], dict]
    estimate: Callable[[Suite], float]  # seconds, on a GPU


def items() -> list[Item]:
    """Every item, in the order they run: what the goals need first, torch.compile and the rest after."""
    def fixed(seconds: float) -> Callable[[Suite], float]:
        return lambda s: 1.0 if s.smoke else seconds

    def steps_of(preset: str, variant: str, steps: Callable[[Suite], float], extra: float) -> Callable[[Suite], float]:
        def estimate(s: Suite) -> float:  # from the measured step time, or a guess before it is known
            step = s.records.get(f"{preset}/{variant}", {}).get("result", {}).get("seconds_per_step")
            return 1.0 if s.smoke else extra + (1.3 * step * steps(s) if step else 90.0)
        return estimate

    def variant(preset: str, name: str, seconds: float = 10) -> Item:
        return Item(f"{preset}/{name}", lambda s: item_variant(s, preset, name), fixed(seconds))

    def core(preset: str) -> list[Item]:
        return [Item(f"{preset}/flops", lambda s: item_flops(s, preset), fixed(3)),
                Item(f"{preset}/batch", lambda s: item_batch(s, preset), fixed(45)),
                variant(preset, "all"), variant(preset, "all-nograph"), variant(preset, "fp32", 15),
                Item(f"{preset}/ardm", lambda s: item_ardm(s, preset),
                     steps_of(preset, "all-nograph", lambda s: 2 * s.ardm_steps, 10))]

    def full(preset: str) -> Item:
        return Item(f"{preset}/full", lambda s: item_full(s, preset),
                    steps_of(preset, "all", lambda s: s.config(preset)[2], 20))

    def train(name: str, seconds: float) -> Item:
        return Item(f"train/paper-128/{name}", lambda s: item_train(s, name), fixed(seconds))

    singles = ["bf16", "channels_last", "cuda_graph", "device_labels", "cudnn_benchmark"]
    return [
        Item("env", item_env, fixed(2)),
        *(Item(f"matmul/{k}", lambda s, k=k: item_matmul(s, k), fixed(6)) for k in ("bf16", "tf32", "fp32")),
        *core("paper-128"), *core("paper-480"),
        train("fp32", 20), train("bf16+fused", 20),
        Item("paper-128/profile", lambda s: item_profile(s, "paper-128"), fixed(20)),
        variant("paper-128", "all+compile", 150), full("paper-128"),
        *(variant("paper-128", name) for name in singles),
        variant("paper-480", "all+compile", 150), train("bf16+fused+compile", 150), full("paper-480"),
        *(variant("paper-480", name) for name in singles),
        variant("paper-128", "compile", 150), variant("paper-128", "all+reduce-overhead", 150),
        variant("paper-128", "all+max-autotune", 400),
        Item("paper-480/profile", lambda s: item_profile(s, "paper-480"), fixed(30)),
    ]


# -------------------------------------------------------------------- the runner


def load_records(path: Path, header: dict) -> tuple[dict[str, dict], list[dict]]:
    """The latest record of every item, and the calls so far, from a previous JSONL (which must be of the
    same kind of run: mode and device)."""
    records: dict[str, dict] = {}
    calls: list[dict] = []
    if not path.is_file():
        return records, calls
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if record["name"] == "#header":
            mismatch = {k: (record.get(k), v) for k, v in header.items() if record.get(k) != v}
            if mismatch:
                raise StochliftError(f"{path} holds another kind of run ({mismatch}); pass another --out or remove it")
        elif record["name"] == "#call":
            calls.append(record)
        else:
            records[record["name"]] = record
    return records, calls


def append(path: Path, record: dict) -> None:
    with open(path, "a") as log:  # one line per finished item: a killed run loses only the item in flight
        log.write(json.dumps(record) + "\n")


def run(suite: Suite, chosen: list[Item], budget: float, retry_failed: bool, log: Path) -> None:
    """Run the unfinished items that fit the time left, each recorded as it ends. At the deadline the
    alarm stops the item in flight (recorded "interrupted"); between items it only ends the loop."""
    deadline = time.monotonic() + budget
    state = {"in_item": False, "expired": False}

    def alarm(signum, frame):
        state["expired"] = True
        if state["in_item"]:
            raise BudgetSpent

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, max(budget, 1e-3))
    try:
        for item in chosen:
            old = suite.records.get(item.name, {})
            if old.get("status") == "done" or (old.get("status") == "failed" and not retry_failed):
                print(f"  = {item.name}: {old['status']} in an earlier call", flush=True)
                continue
            left = deadline - time.monotonic()
            estimate = max(item.estimate(suite), old.get("elapsed_s", 0.0) if old.get("status") == "interrupted" else 0)
            record = {"name": item.name, "date": _now()}
            if state["expired"] or estimate > left:
                record.update(status="skipped", reason=f"would not fit the budget: needs ~{estimate:.0f} s, "
                                                      f"{max(left, 0):.0f} s left")
            else:
                record.update(measure_item(suite, item, state))
            suite.records[item.name] = record
            append(log, record)
            print(f"  {'+' if record['status'] == 'done' else '-'} {item.name}: {describe(record)}", flush=True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def measure_item(suite: Suite, item: Item, state: dict) -> dict:
    """One item's outcome: done with its result, skipped, interrupted by the deadline, or failed."""
    began = time.monotonic()
    try:
        state["in_item"] = True
        try:
            outcome = {"status": "done", "result": item.run(suite)}
        finally:
            state["in_item"] = False
    except Skip as exc:
        outcome = {"status": "skipped", "reason": str(exc)}
    except BudgetSpent:
        outcome = {"status": "interrupted", "reason": "the budget ran out during this item"}
    except torch.cuda.OutOfMemoryError as exc:
        outcome = {"status": "failed", "reason": f"out of GPU memory: {str(exc).splitlines()[0]}"}
    except Exception as exc:  # a broken item is a result too; the others still run
        outcome = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:500],
                   "traceback": traceback.format_exc()[-3000:]}
    outcome["elapsed_s"] = time.monotonic() - began
    forget_compiled()
    release_memory(suite.device)
    return outcome


def forget_compiled() -> None:
    """Drop dynamo's compiled code between items: every compiled variant is a new module, and past
    torch._dynamo's recompile limit (8 per function) it would fall back to eager without saying so."""
    if "torch._dynamo" in sys.modules:
        torch._dynamo.reset()
    gc.collect()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def describe(record: dict) -> str:
    r = record.get("result") or {}
    if record["status"] != "done":
        return f"{record['status']} ({record.get('reason')})"
    if "seconds_per_video" in r and "fraction_of_rate" in r:
        frac = r["fraction_of_rate"]
        return (f"{r['seconds_per_video']:.4g} s/video at batch {r['batch']}, {r['seconds_per_step'] * 1e3:.3g} ms/step"
                + (f", {100 * frac:.1f}% of the {r['rate_dtype']} rate" if frac else ""))
    if "best_batch" in r:
        return f"best batch {r['best_batch']}"
    if "ratio_to_sl" in r:
        return f"ARDM S={r['steps']} / SL = {r['ratio_to_sl']:.1f} per frame"
    if "pairs_per_s" in r:
        return f"{r['pairs_per_s']:.1f} pairs/s"
    if "best" in r:
        return f"{r['best'] / 1e12:.3g} TFLOP/s"
    return f"done in {record['elapsed_s']:.1f} s"


# -------------------------------------------------------------------- the report


def summarise(suite: Suite) -> dict[str, Any]:
    """Per preset: the fastest finished variant against the goal, the roofline fractions, ARDM / SL, the
    full sampling loop; and training pairs/s."""
    r = {name: rec["result"] for name, rec in suite.records.items() if rec["status"] == "done"}
    summary: dict[str, Any] = {}
    for preset, goal in TARGETS.items():
        variants = {name.split("/", 1)[1]: res for name, res in r.items()
                    if name.startswith(preset + "/") and "fraction_of_rate" in res}
        if not variants:
            continue
        best_name, best = min(variants.items(), key=lambda kv: kv[1]["seconds_per_video"])
        entry = {"best_variant": best_name, "batch": best["batch"], "seconds_per_video": best["seconds_per_video"],
                 "goal_seconds_per_video": goal, "meets_goal": best["seconds_per_video"] <= goal,
                 "paper_seconds_per_video": r.get(f"{preset}/flops", {}).get("paper_seconds_per_video"),
                 "fraction_of_bf16": best["fraction_of_bf16"], "fraction_of_rate": best["fraction_of_rate"],
                 "rate_dtype": best["rate_dtype"], "peak_memory_bytes": best["peak_memory_bytes"]}
        if f"{preset}/ardm" in r:
            entry["ardm_ratio_to_sl"] = r[f"{preset}/ardm"]["ratio_to_sl"]
        if f"{preset}/full" in r:
            entry["full_seconds_per_video"] = r[f"{preset}/full"]["seconds_per_video"]
        if preset == "paper-128" and best["fraction_of_bf16"] is not None:
            entry["roofline_goal"] = ROOFLINE_TARGET
            entry["meets_roofline_goal"] = best["fraction_of_bf16"] >= ROOFLINE_TARGET
        summary[preset] = entry
    train = {name.rsplit("/", 1)[1]: res["pairs_per_s"] for name, res in r.items() if name.startswith("train/")}
    if train:
        summary["train_paper-128_pairs_per_s"] = train
    return summary


def report(suite: Suite, calls: list[dict], chosen: list[Item]) -> dict[str, Any]:
    env = suite.records.get("env", {}).get("result") or {"machine": machine(), "device": str(suite.device)}
    order = {item.name: i for i, item in enumerate(items())}
    records = sorted(suite.records.values(), key=lambda rec: order.get(rec["name"], len(order)))
    return {"command": calls[-1]["command"] if calls else None, "date": _now(), "calls": calls,
            "machine": env["machine"], "device": env["device"], "smoke": suite.smoke,
            "summary": summarise(suite), "items": records,
            "not_finished": [rec["name"] for rec in records if rec["status"] not in ("done", "failed")]
                            + [item.name for item in chosen if item.name not in suite.records]}


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1e3 * seconds:.4g}"


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def markdown(rep: dict[str, Any]) -> str:
    m, summary = rep["machine"], rep["summary"]
    gpu = m.get("gpu") or f"no GPU ({m['cpu']})"
    lines = [f"# Speed on {gpu}{' (smoke run: tiny shapes on the CPU, not a measurement)' if rep['smoke'] else ''}", "",
             f"Command: `{rep['command']}`  ",
             f"Date: {rep['date']} ({len(rep['calls'])} call(s): " + ", ".join(c['date'] for c in rep['calls']) + ")  ",
             f"Machine: {gpu}, driver {m.get('driver')}, CUDA {m.get('cuda')}, cuDNN {m.get('cudnn')}; {m['cpu']} "
             f"({m['cpu_count']} cores); torch {m['torch']}; Python {m['python']}", ""]
    lines += ["## Goals", "", "| preset | fastest variant | batch | s/video | goal | paper | of bf16 rate | ARDM / SL "
              "| full loop s/video |", "|---|---|---|---|---|---|---|---|---|"]
    for preset in TARGETS:
        e = summary.get(preset)
        if e is None:
            lines.append(f"| {preset} | not measured | | | | | | | |")
            continue
        mark = "met" if e["meets_goal"] else "missed"
        met_roofline = "met" if e.get("meets_roofline_goal") else "missed"
        roofline = f" (goal >= 40%: {met_roofline})" if "roofline_goal" in e else ""
        lines.append(f"| {preset} | {e['best_variant']} | {e['batch']} | {e['seconds_per_video']:.4g} "
                     f"| <= {e['goal_seconds_per_video']} ({mark}) | {e['paper_seconds_per_video']} "
                     f"| {_pct(e['fraction_of_bf16'])}{roofline} | {_num(e.get('ardm_ratio_to_sl'), '.1f')} "
                     f"| {_num(e.get('full_seconds_per_video'), '.4g')} |")
    items_by_name = {rec["name"]: rec for rec in rep["items"]}
    rates = [(k, items_by_name.get(f"matmul/{k}")) for k in ("bf16", "tf32", "fp32")]
    lines += ["", "## Dense matmul rates (the better of torch.mm and a 1x1 convolution)", "",
              "| dtype | mm TFLOP/s | 1x1 conv TFLOP/s | best |", "|---|---|---|---|"]
    for k, rec in rates:
        if rec and rec["status"] == "done":
            x = rec["result"]
            lines.append(f"| {k} | {x['mm'] / 1e12:.4g} | {x['conv1x1'] / 1e12:.4g} | {x['best'] / 1e12:.4g} |")
        else:
            lines.append(f"| {k} | {rec['status'] + ': ' + str(rec.get('reason')) if rec else 'not run'} | | |")
    for preset in TARGETS:
        rows = [rec for rec in rep["items"] if rec["name"].startswith(preset + "/")
                and (rec["status"] != "done" or "fraction_of_rate" in rec["result"])]
        if not rows:
            continue
        lines += ["", f"## {preset}: each option alone and together", "",
                  "| variant | batch | ms/step | s/video | frames/s | TFLOP/s | of its rate | of bf16 | peak GiB "
                  "| first call s |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for rec in rows:
            name = rec["name"].split("/", 1)[1]
            if rec["status"] != "done":
                lines.append(f"| {name} | {rec['status']}: {rec.get('reason')} | | | | | | | | |")
                continue
            x = rec["result"]
            lines.append(f"| {name} | {x['batch']} | {_ms(x['seconds_per_step'])} | {x['seconds_per_video']:.4g} "
                         f"| {x['frames_per_s']:.1f} | {x['achieved_flops_per_s'] / 1e12:.4g} "
                         f"| {_pct(x['fraction_of_rate'])} ({x['rate_dtype']}) | {_pct(x['fraction_of_bf16'])} "
                         f"| {x['peak_memory_bytes'] / 2**30:.3g} | {x['first_call_seconds']:.1f} |")
        batch = items_by_name.get(f"{preset}/batch")
        if batch and batch["status"] == "done":
            sweep = ", ".join(f"{x['batch']}: {x['seconds_per_video']:.4g}" for x in batch["result"]["sweep"])
            lines += ["", f"Batch sweep of `all` (s/video): {sweep}; largest fp32 batch that fits: "
                          f"{batch['result']['largest_fp32_batch']}."]
        full = items_by_name.get(f"{preset}/full")
        if full and full["status"] == "done":
            x = full["result"]
            lines += ["", "Full sampling loop (`rollout_chunks`, set-up included, frames copied to pinned host memory "
                          f"in chunks of {x['chunk_frames']}): {x['seconds_per_batch']:.3g} s for {x['batch']} "
                          f"videos of {x['frames']} frames, {x['seconds_per_video']:.4g} s/video; first chunk after "
                          f"{x['first_chunk_seconds']:.3g} s."]
    train = [rec for rec in rep["items"] if rec["name"].startswith("train/")]
    if train:
        lines += ["", "## Training the Medium U-Net at 128x128", "",
                  "| variant | batch | steps/s | pairs/s | peak GiB |", "|---|---|---|---|---|"]
        for rec in train:
            name = rec["name"].rsplit("/", 1)[1]
            if rec["status"] == "done":
                x = rec["result"]
                lines.append(f"| {name} | {x['batch']} | {x['steps_per_s']:.3g} | {x['pairs_per_s']:.1f} "
                             f"| {x['peak_memory_bytes'] / 2**30:.3g} |")
            else:
                lines.append(f"| {name} | {rec['status']}: {rec.get('reason')} | | | |")
    for rec in rep["items"]:
        if rec["name"].endswith("/profile") and rec["status"] == "done":
            lines += ["", f"## Profile: {rec['name']} (batch {rec['result']['batch']})", ""]
            for label in ("graph", "eager"):
                if label in rec["result"]:
                    lines += format_profile(rec["result"][label], f"{label}")
    if rep["not_finished"]:
        lines += ["", "## Not finished (a rerun of the same command continues with these)", ""]
        lines += [f"- {name}: {items_by_name[name]['status']} ({items_by_name[name].get('reason')})"
                  if name in items_by_name else f"- {name}: not reached" for name in dict.fromkeys(rep["not_finished"])]
    failed = [rec for rec in rep["items"] if rec["status"] == "failed"]
    if failed:
        lines += ["", "## Failed (rerun with --retry-failed)", ""]
        lines += [f"- {rec['name']}: {rec['reason']}" for rec in failed]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, help="Seconds this call may take (default 480; --smoke 120).")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Folder of the JSONL, JSON, MD and traces.")
    parser.add_argument("--only", action="append", help="Run only items matching this pattern (fnmatch; repeatable).")
    parser.add_argument("--profile", action="store_true",
                        help="Only the profiles (and the batch sweeps they need): --only env --only '*/flops' "
                             "--only '*/batch' --only '*/profile'.")
    parser.add_argument("--smoke", action="store_true", help="Tiny shapes on the CPU, in seconds (a test).")
    parser.add_argument("--with-compile", action="store_true", help="With --smoke: run the torch.compile items too.")
    parser.add_argument("--retry-failed", action="store_true", help="Run failed items again.")
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu (--smoke: cpu).")
    parser.add_argument("--step-seconds", type=float, help="Seconds per timed pass (default 0.5; --smoke 0.02).")
    parser.add_argument("--ardm-steps", type=int, help="S of the ARDM comparison (default 40; --smoke 3).")
    args = parser.parse_args(argv)
    device = torch.device("cpu") if args.smoke else resolve_device(args.device)
    if args.smoke:
        torch.set_num_threads(1)  # tiny shapes: more threads only fight over a shared CPU
    suite = Suite(device=device, smoke=args.smoke, out=args.out, with_compile=args.with_compile,
                  step_seconds=args.step_seconds or (0.02 if args.smoke else 0.5),
                  ardm_steps=args.ardm_steps or (3 if args.smoke else 40))
    budget = args.budget or (120.0 if args.smoke else 480.0)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / f"{suite.stem}.jsonl"
    header = {"mode": "smoke" if args.smoke else "full",
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    suite.records, calls = load_records(log, header)
    if not log.is_file():
        append(log, {"name": "#header", **header})
    command = " ".join(["python", *([Path(sys.argv[0]).name] if argv is None else ["gpu_suite.py"]),
                        *(sys.argv[1:] if argv is None else argv)])
    call = {"name": "#call", "date": _now(), "command": command, "budget_s": budget, "load_before": os.getloadavg()}
    patterns = (args.only or []) + (["env", "*/flops", "*/batch", "*/profile"] if args.profile else [])
    chosen = [item for item in items() if not patterns or any(fnmatch.fnmatch(item.name, pat) for pat in patterns)]
    print(f"gpu_suite: {len(chosen)} items on {header['device']}, budget {budget:.0f} s; results in {log}", flush=True)
    began = time.monotonic()
    run(suite, chosen, budget, args.retry_failed, log)
    call.update(seconds=time.monotonic() - began, load_after=os.getloadavg())
    append(log, call)
    rep = report(suite, [*calls, call], chosen)
    write_json(args.out / f"{suite.stem}.json", rep)
    text = markdown(rep)
    with atomic_path(args.out / f"{suite.stem}.md") as tmp:
        tmp.write_text(text)
    print(text, flush=True)
    print(f"wrote {args.out / suite.stem}.json and .md", flush=True)
    return rep


if __name__ == "__main__":
    main()
