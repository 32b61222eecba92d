"""CPU speed of Stochastic Lifting against the machine's matmul roofline, with a profile of what limits it.

    python benchmarks/speed.py [--preset cpu-quick] [--quick]

Runs `stochlift.apps.bench.run_bench` on the CPU for a few option sets (the defaults, 1 vs all threads,
channels_last, the old F.pad circular padding for comparison), profiles the fastest one's step with
torch.profiler (stochlift.apps.bench_profile), times the sampling loop around the steps (rollout_chunks: labels,
window, output copies) against the bare steps, and writes benchmarks/results/speed_cpu.{json,md} with the
command, machine, date and the load average before and after (the machine is shared). GPUs:
benchmarks/gpu_suite.py.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from stochlift.apps.bench import BenchOptions, machine, model_config, run_bench, time_rollout
from stochlift.apps.bench_profile import profile_steps
from stochlift.io import atomic_path, write_json
from stochlift.lifting.fast import FastOptions, FastRollout
from stochlift.lifting.generator import build_model
from stochlift.lifting.rollout import rollout_chunks
from stochlift.models import unet

RESULTS = Path(__file__).resolve().parent / "results"
# measured separately on this machine (2026-11-22), cpu-quick, batch 128 unless said, frames/s:
NOTES = """\
- torch.compile (inductor, CPU) was slower, not faster: 1 thread 243 frames/s compiled vs 295 eager
  (defaults) and 497 eager channels_last; at batch 32, compile + channels_last 276 vs 424 eager. It also
  costs ~80 s of compilation per shape. It stays an option (`--compile`) for GPUs.
- Batch: 1 thread, channels_last: 410 (32), 409 (64), 448 (128), 332 (256) frames/s; 2 threads: 619, 761,
  788, 504. Batch 128 is the CPU's best (activations of larger batches leave the caches); the preset uses it.
- Threads: 2 threads give 1.5-2x the frames/s of 1 when the second core is free, but a lower roofline
  fraction: the dense rate scales better than the small convolutions and memory-bound ops do.
- With zero padding (non-periodic data) the padding copies disappear (the conv pads internally).
- Peak memory on the CPU is the growth of the peak resident set during the rollout. The variants run in
  one process, so later rows reuse memory the allocator already holds (down to 0.0 MiB); the first row also
  carries torch's one-time initialisation.
- The ARDM column is the ARDM baseline (stochlift.baselines.ardm, untrained): the same U-Net with one more
  input frame and a sinusoidal time embedding, S = 40 calls per frame of the DDPM sampler."""
QUIET_REFERENCE = ("On the quiet machine (2026-11-22, the previous version of this page; the ARDM column was "
                   "then an estimate) the same variants ran at 657.9, 285.7, 376.1, 483.3 and 734.6 frames/s, "
                   "with dense rates of 202 (2 threads) and 92 GFLOP/s (1 thread).")
CONV_KERNELS = ("aten::mkldnn_convolution", "aten::cudnn_convolution", "aten::_slow_conv2d_forward",
                "aten::thnn_conv2d", "aten::_nnpack_spatial_convolution")


@contextlib.contextmanager
def fpad_circular():
    """The padding as it was: F.pad(mode="circular"), which returns NCHW whatever the input layout."""
    original = unet.pad_circular
    unet.pad_circular = lambda x, pad: F.pad(x, [pad] * 4, mode="circular")
    try:
        yield
    finally:
        unet.pad_circular = original


def variants(threads_all: int) -> list[tuple[str, dict, contextlib.AbstractContextManager | None]]:
    return [
        (f"defaults, {threads_all} threads", {"threads": threads_all}, None),
        ("defaults, 1 thread", {"threads": 1}, None),
        ("channels_last, 1 thread, old F.pad padding", {"threads": 1, "channels_last": True}, fpad_circular()),
        ("channels_last, 1 thread", {"threads": 1, "channels_last": True}, None),
        (f"channels_last, {threads_all} threads", {"threads": threads_all, "channels_last": True}, None),
    ]


def profile_step(preset: str, batch: int, options: FastOptions, threads: int, steps: int = 5) -> dict:
    """Self time by op over `steps` one-step updates, and the convolutions' own FLOP rate."""
    torch.set_num_threads(threads)
    cfg, _ = model_config(preset, None, None)
    engine = FastRollout(build_model(cfg), tuple(cfg.frame_shape), options)
    stepper = engine.stepper(batch)
    stepper.load(torch.randn(batch, cfg.window, *cfg.frame_shape).to(engine.device))
    xi = torch.randn(batch, cfg.label_dim)
    summary = profile_steps(lambda: stepper.step(xi), steps, engine.device, warmup=3, with_flops=True)
    self_ms = summary["self_ms_per_step"]
    total = sum(self_ms.values())
    conv_ms = sum(self_ms.get(k, 0.0) for k in CONV_KERNELS)
    conv_flops = summary["flops_per_step"].get("aten::conv2d", 0.0)
    return {"batch": batch, "threads": threads, "ms_per_step": total, "top_ops": summary["ops"],
            "conv_share": conv_ms / total, "conv_gflops_per_s": conv_flops / conv_ms / 1e6 if conv_ms else None}


def loop_overhead(preset: str, batch: int, frames: int, options: FastOptions, threads: int) -> dict:
    """The sampling loop (rollout_chunks: labels drawn per frame, the window, copies into the output) against
    the same number of bare steps of its engine (time_rollout): what the loop adds around the network."""
    torch.set_num_threads(threads)
    cfg, _ = model_config(preset, None, None)
    torch.manual_seed(0)
    model = build_model(cfg)
    steps = time_rollout(FastRollout(model, tuple(cfg.frame_shape), options), batch, frames, repeats=2)["seconds"]
    start = np.random.default_rng(0).normal(size=(batch, 1, *cfg.frame_shape)).astype(np.float32)
    loops = []
    for _ in range(2):
        began = time.perf_counter()
        for _ in rollout_chunks(model, start, frames + 1, batch_size=batch, **vars(options)):
            pass
        loops.append(time.perf_counter() - began)
    return {"batch": batch, "frames": frames, "threads": threads, "steps_seconds": steps, "loop_seconds": min(loops),
            "overhead_fraction": min(loops) / steps - 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu-quick")
    parser.add_argument("--quick", action="store_true", help="Fewer repeats and frames (a smoke run).")
    args = parser.parse_args()
    load_before = os.getloadavg()
    threads_all = torch.get_num_threads()
    base = BenchOptions(device="cpu", repeats=1 if args.quick else 2, train_steps=1 if args.quick else 5)
    runs = []
    for label, extra, ctx in variants(threads_all):
        print(f"--- {label}", flush=True)
        options = BenchOptions(**{**base.__dict__, **extra})
        with ctx or contextlib.nullcontext():
            report = run_bench(args.preset, options=options, frames=16 if args.quick else None,
                               command=" ".join([sys.executable.split("/")[-1], *sys.argv]))
        report["variant"] = label
        runs.append(report)
    best = max(runs, key=lambda r: r["sl"]["frames_per_s"])
    fast = FastOptions(device="cpu", channels_last=best["options"]["channels_last"])
    prof = profile_step(args.preset, best["batch"], fast, best["options"]["torch_threads"])
    one = FastOptions(device="cpu", channels_last=True)
    prof_after = profile_step(args.preset, best["batch"], one, 1)
    with fpad_circular():
        prof_before = profile_step(args.preset, best["batch"], one, 1)
    loop = loop_overhead(args.preset, best["batch"], 16 if args.quick else 64, fast, best["options"]["torch_threads"])
    result = {
        "command": " ".join(["python", *sys.argv]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "runs": runs,
        "best": best["variant"],
        "profile": prof,
        "profile_channels_last_1_thread": prof_after,
        "profile_channels_last_1_thread_old_padding": prof_before,
        "loop_overhead": loop,
    }
    write_json(RESULTS / "speed_cpu.json", result)
    with atomic_path(RESULTS / "speed_cpu.md") as tmp:
        tmp.write_text(markdown(result))
    print(f"wrote {RESULTS / 'speed_cpu'}.json and .md")


def markdown(r: dict) -> str:
    m = r["machine"]
    load = " / ".join(", ".join(f"{x:.1f}" for x in r[k]) for k in ("load_average_before", "load_average_after"))
    lines = [
        f"# Speed on {m['cpu']} ({m['cpu_count']} cores)",
        "",
        f"Command: `{r['command']}`  ",
        f"Date: {r['date']}  ",
        f"Machine: {m['cpu']}, {m['cpu_count']} cores; torch {m['torch']}; Python {m['python']}  ",
        f"Load average (1, 5, 15 min) before / after: {load}. The machine is shared: other sessions' processes "
        "may have been running during the measurements, and their timings move by tens of percent between runs.",
        "",
    ]
    busiest = max(r["load_average_before"][0], r["load_average_after"][0])
    if busiest > m["cpu_count"]:
        lines += [f"**This run shared the {m['cpu_count']} cores with other jobs (load average up to {busiest:.0f}):** "
                  "its timings are far below a quiet machine's, two-thread runs most (their threads wait for each "
                  "other), and the load changed during the run, so rows compare only roughly. "
                  f"{QUIET_REFERENCE}", ""]
    lines += [
        "| variant | device | config | batch x frames | SL frames/s | ms/video | GFLOP/frame | matmul GFLOP/s "
        "| roofline | ARDM S=40 / SL | train steps/s | peak memory |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in r["runs"]:
        train = x["train"]["steps_per_s"]
        lines.append(
            f"| {x.get('variant', x['preset'])} | {x['device']} | {x['preset']} | {x['batch']} x {x['frames']} "
            f"| {x['sl']['frames_per_s']:.1f} | {1e3 * x['sl']['seconds_per_video']:.1f} "
            f"| {x['flops_per_frame'] / 1e9:.4g} | {x['matmul_flops_per_s'] / 1e9:.1f} "
            f"| {100 * x['roofline_fraction']:.1f}% | {x['ardm']['ratio_to_sl']:.1f} "
            f"| {'-' if train is None else f'{train:.2f}'} | {x['peak_memory_bytes'] / 2**20:.1f} MiB |"
        )
    p, a, q = r["profile"], r["profile_channels_last_1_thread"], r["profile_channels_last_1_thread_old_padding"]
    best_rate = next(x["matmul_flops_per_s"] for x in r["runs"] if x["variant"] == r["best"]) / 1e9
    memory_bound = ("aten::copy_", "aten::native_group_norm", "aten::gelu", "aten::add", "aten::mul", "aten::cat",
                    "aten::upsample_nearest2d")
    other = sum(o["share"] for o in p["top_ops"] if o["op"] in memory_bound)
    lines += [
        "",
        f"ARDM: {r['runs'][0]['ardm']['label']}, the same untrained U-Net called S times per frame.",
        "",
        f"## Profile of the fastest variant ({r['best']}; batch {p['batch']}, {p['threads']} "
        f"thread{'s' if p['threads'] > 1 else ''}, "
        f"{p['ms_per_step']:.1f} ms per step)",
        "",
        "| op | share of self time | ms per step | calls per step |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{o['op']}` | {100 * o['share']:.1f}% | {o['ms_per_step']:.2f} | {o['calls_per_step']:.0f} |"
              for o in p["top_ops"]]
    lines += [
        "",
        "## What stops the rollout at this fraction of the roofline",
        "",
        f"- The convolutions (all the counted FLOPs) take {100 * p['conv_share']:.0f}% of the step and run at "
        f"{p['conv_gflops_per_s'] or 0:.1f} GFLOP/s inside oneDNN "
        f"({100 * (p['conv_gflops_per_s'] or 0) / best_rate:.0f}% "
        f"of the {best_rate:.1f} GFLOP/s dense rate this variant measured); the U-Net's small widths (16-64 "
        "channels, a 3-channel stem, a 1-channel output conv) keep them from reaching it.",
        f"- {100 * other:.0f}% of the step goes to memory-bound ops that do no counted FLOPs: GroupNorm, GELU, the "
        "periodic-padding copies (`copy_`: one padded copy of the input per 3x3 conv), FiLM `mul`/`add`, skip "
        "`add`, `cat` of the skips, nearest upsampling. Only fusing them into the convolutions would remove "
        "them (torch.compile does not, on this CPU; see the notes).",
        f"- Padding fix (measured here, 1 thread, channels_last, batch {a['batch']}): F.pad(mode='circular') "
        f"returned NCHW, so every conv converted layouts twice: {q['ms_per_step']:.1f} ms per step, `copy_` "
        f"{100 * next((o['share'] for o in q['top_ops'] if o['op'] == 'aten::copy_'), 0):.0f}% of it; "
        f"pad_circular keeps channels_last: {a['ms_per_step']:.1f} ms per step, `copy_` "
        f"{100 * next((o['share'] for o in a['top_ops'] if o['op'] == 'aten::copy_'), 0):.0f}%. "
        "Profiler timings carry its overhead; the table above is without it.",
        f"- The sampling loop around the steps (`rollout_chunks`: labels drawn per frame, window shift, copies into "
        f"the output; {r['loop_overhead']['frames']} frames at batch {r['loop_overhead']['batch']}) took "
        f"{r['loop_overhead']['loop_seconds']:.2f} s against {r['loop_overhead']['steps_seconds']:.2f} s "
        "for the bare steps "
        f"({100 * r['loop_overhead']['overhead_fraction']:+.0f}%, engine set-up included; differences of a few "
        "percent are within this shared machine's noise): on the CPU the loop costs little next to the network.",
        "- The machine is shared with other jobs: timings vary by up to ~30% between runs (the matmul rate is "
        "the best of 5, the rollout the median of its passes).",
        "",
        "## Notes",
        "",
        NOTES,
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
