"""What a torch.profiler trace of a few one-step updates shows: where the time goes, and what keeps the
device waiting.

`profile_steps(step, steps, device)` runs `step()` under the profiler and summarises:
    ops       the top operators by self time on the host (on the CPU, that is where the time goes);
    kernels   (CUDA) the top device kernels by total time, and their share of the device's busy time;
    device    (CUDA) busy time (the union of kernel, memcpy and memset intervals) against the span from the
              first to the last of them, and the gaps between them: a gap is the device waiting for the host
              (launch latency, Python, a sync), so idle time per step is what the host costs;
    syncs     host-blocking CUDA runtime calls (cudaStreamSynchronize, cudaDeviceSynchronize,
              cudaEventSynchronize, synchronous cudaMemcpy) per step, and the time spent in them;
    launches  kernel and graph launches per step (cudaLaunchKernel, cuLaunchKernel, cudaGraphLaunch, ...).
The numbers come from the trace's own events (torch's Chrome-trace export), which every torch version
writes the same way; the profiler's overhead inflates host times, so time steps without it.
"""

from __future__ import annotations

import gzip
import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

DEVICE_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")
SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy",
              "cuStreamSynchronize", "cuCtxSynchronize", "cuEventSynchronize", "cuMemcpyDtoH_v2", "cuMemcpyHtoD_v2")
LAUNCH_PREFIXES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaGraphLaunch", "cuGraphLaunch",
                   "cudaLaunchCooperativeKernel")
GAP_US = 5.0  # device gaps shorter than this are scheduling noise, not waiting


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile_steps(step: Callable[[], Any], steps: int, device: torch.device, *, warmup: int = 2, top: int = 12,
                  trace: str | Path | None = None, with_flops: bool = False) -> dict[str, Any]:
    """Profile `steps` calls of `step` (after `warmup` unprofiled ones) and summarise them (module
    docstring; also every op's self time and, `with_flops`, the FLOPs of the ops that have a formula);
    `trace` also keeps the Chrome trace (gzip-compressed JSON, for chrome://tracing or Perfetto)."""
    with torch.inference_mode():
        for _ in range(warmup):
            step()
        _sync(device)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities, with_flops=with_flops) as prof:
            began = time.perf_counter()
            for _ in range(steps):
                step()
            _sync(device)
            wall = time.perf_counter() - began
    events = _trace_events(prof, trace)
    averages = prof.key_averages()
    summary: dict[str, Any] = {"steps": steps, "ms_per_step_profiled": 1e3 * wall / steps,
                               "ops": top_ops(prof, steps, top),
                               "self_ms_per_step": {e.key: e.self_cpu_time_total / 1e3 / steps for e in averages},
                               "flops_per_step": {e.key: e.flops / steps for e in averages if e.flops}}
    if device.type == "cuda":
        summary.update(device_timeline(events, steps, top))
    summary.update(runtime_calls(events, steps))
    return summary


def _trace_events(prof: profile, keep: str | Path | None) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        text = path.read_text()
    if keep is not None:
        Path(keep).parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(keep, "wt") as f:
            f.write(text)
    return [e for e in json.loads(text).get("traceEvents", []) if e.get("ph") == "X"]


def top_ops(prof: profile, steps: int, top: int) -> list[dict[str, Any]]:
    """Operators by self time on the host: share, ms and calls per step."""
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [{"op": e.key, "share": e.self_cpu_time_total / total, "ms_per_step": e.self_cpu_time_total / 1e3 / steps,
             "calls_per_step": e.count / steps} for e in rows]


def device_timeline(events: list[dict], steps: int, top: int = 12) -> dict[str, Any]:
    """Top kernels, busy and idle time, and the gaps of the device's timeline (times in µs in the trace)."""
    spans = sorted((float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0.0)), e) for e in events
                   if e.get("cat") in DEVICE_CATEGORIES)
    if not spans:
        return {"kernels": [], "device": {"note": "no device activity in the trace (CUPTI unavailable?)"}}
    by_name: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for start, end, event in spans:
        entry = by_name[event.get("name", "?")]
        entry[0] += end - start
        entry[1] += 1
    total_kernel = sum(v[0] for v in by_name.values()) or 1.0
    kernels = [{"name": name[:160], "share": t / total_kernel, "ms_per_step": t / 1e3 / steps,
                "calls_per_step": n / steps}
               for name, (t, n) in sorted(by_name.items(), key=lambda kv: kv[1][0], reverse=True)[:top]]
    busy, gaps, end_so_far = 0.0, [], spans[0][0]
    for start, end, _ in spans:
        if start > end_so_far:
            gaps.append(start - end_so_far)
        busy += max(0.0, end - max(start, end_so_far))
        end_so_far = max(end_so_far, end)
    span = end_so_far - spans[0][0]
    waits = sorted((g for g in gaps if g >= GAP_US), reverse=True)
    return {
        "kernels": kernels,
        "device": {
            "busy_fraction": busy / span if span else 1.0,
            "busy_ms_per_step": busy / 1e3 / steps,
            "idle_ms_per_step": (span - busy) / 1e3 / steps,
            "activities_per_step": len(spans) / steps,
            "gaps_per_step": len(waits) / steps,
            "gap_ms_per_step": sum(waits) / 1e3 / steps,
            "largest_gaps_us": [round(g, 1) for g in waits[:5]],
        },
    }


def runtime_calls(events: list[dict], steps: int) -> dict[str, Any]:
    """Host-blocking syncs and launches among the CUDA runtime/driver calls, per step."""
    syncs: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    launches = 0
    for e in events:
        if e.get("cat") not in ("cuda_runtime", "cuda_driver"):
            continue
        name = e.get("name", "")
        if name in SYNC_CALLS:
            syncs[name][0] += 1
            syncs[name][1] += float(e.get("dur", 0.0))
        elif name.startswith(LAUNCH_PREFIXES):
            launches += 1
    return {
        "syncs": {name: {"per_step": n / steps, "ms_per_step": t / 1e3 / steps} for name, (n, t) in syncs.items()},
        "launches_per_step": launches / steps,
    }


def format_profile(summary: dict[str, Any], title: str) -> list[str]:
    """Markdown lines: the device's busy/idle split, syncs and launches, and the top kernels (or host ops)."""
    lines = [f"### {title}", "", f"{summary['steps']} steps profiled, {summary['ms_per_step_profiled']:.2f} ms per "
             "step under the profiler.", ""]
    device = summary.get("device", {})
    if "busy_fraction" in device:
        lines.append(f"- device busy {100 * device['busy_fraction']:.1f}% of the span: "
                     f"{device['busy_ms_per_step']:.2f} ms busy, {device['idle_ms_per_step']:.2f} ms idle per step; "
                     f"{device['gaps_per_step']:.1f} gaps "
                     f">= {GAP_US:g} µs per step (largest {device['largest_gaps_us']} µs); "
                     f"{device['activities_per_step']:.0f} device activities per step")
    elif device:
        lines.append(f"- {device.get('note')}")
    syncs = ", ".join(f"`{k}` {v['per_step']:.1f}/step ({v['ms_per_step']:.2f} ms)"
                      for k, v in summary["syncs"].items())
    lines.append(f"- host syncs: {syncs or 'none'}; launches per step: {summary['launches_per_step']:.1f}")
    rows = summary.get("kernels") or summary["ops"]
    key = "name" if summary.get("kernels") else "op"
    lines += ["", f"| {'kernel' if key == 'name' else 'host op (self time)'} | share | ms/step | calls/step |",
              "|---|---|---|---|"]
    lines += [f"| `{r[key][:90]}` | {100 * r['share']:.1f}% | {r['ms_per_step']:.3f} | {r['calls_per_step']:.1f} |"
              for r in rows]
    return [*lines, ""]
