"""The two numbers of one generated frame: FLOPs and the bytes every operator must move, per operator kind.

    python benchmarks/step_traffic.py

For the paper presets (batch 1, on the meta device: no memory, no time), one network call is run under a
dispatch mode that records, for every aten operator, its FLOPs (torch.utils.flop_counter's formulas) and
the bytes of its tensor inputs and outputs (views move nothing; weights are counted on every call, so at
large batches the convolutions' share of the bytes is a little lower). Bytes are counted at 4 bytes per element
(fp32) and halved for bf16. With the H200's measured rates (KINDS.md: bf16 dense ~790 TFLOP/s, device copy
~4.3 TB/s) this gives floors per frame: convolutions at the bf16 rate, and everything else (GroupNorm, GELU,
FiLM, adds, padding, concatenation, upsampling) at the memory bandwidth, as an unfused eager step runs it.
Writes benchmarks/results/step_traffic.json; the plan in gpu_profile_plan.md quotes it.
"""

from __future__ import annotations

import datetime
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from stochlift.apps.bench import machine, model_config
from stochlift.io import write_json
from stochlift.lifting.generator import build_model

RESULTS = Path(__file__).resolve().parent / "results"
H200_BF16_FLOPS = 790e12  # measured on this workplace's H200 (KINDS.md), random data, 8192^3 bf16 mm
H200_BYTES_PER_S = 4.3e12  # device-to-device copy, bytes read + written (KINDS.md)
MATMUL_KINDS = ("conv2d", "convolution", "linear", "addmm", "mm", "bmm")  # all of the counted FLOPs


class Traffic(TorchDispatchMode):
    """Bytes of tensor inputs and outputs per operator (aliasing views excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if not func._schema.is_mutable and any(a.alias_info for a in func._schema.returns):
            return out  # a view: no data moves
        tensors = [t for t in tree_flatten((args, kwargs or {}, out))[0] if isinstance(t, torch.Tensor)]
        self.bytes[name] += sum(t.numel() * 4 for t in tensors)
        self.calls[name] += 1
        return out


def frame_traffic(preset: str) -> dict:
    cfg, _ = model_config(preset, None, None)
    with torch.device("meta"):
        model = build_model(cfg)
        window = torch.zeros(1, model.window, *cfg.frame_shape)
        xi = torch.zeros(1, *model.noise_shape)
    with torch.inference_mode(), FlopCounterMode(display=False) as flops, Traffic() as traffic:
        model(window, xi)
    rows = {name: {"calls": traffic.calls[name], "bytes_fp32": traffic.bytes[name]} for name in traffic.bytes}
    matmul_flops = int(flops.get_total_flops())
    matmul_bytes = sum(r["bytes_fp32"] for n, r in rows.items() if n in MATMUL_KINDS)
    other_bytes = sum(r["bytes_fp32"] for n, r in rows.items() if n not in MATMUL_KINDS)
    compute_s = matmul_flops / H200_BF16_FLOPS
    return {
        "preset": preset, "frame_shape": cfg.frame_shape, "flops_per_frame": matmul_flops,
        "conv_bytes_fp32": matmul_bytes, "other_bytes_fp32": other_bytes, "ops": rows,
        "floor_ms_per_frame": {
            "convolutions_bf16_at_790_tflops": 1e3 * compute_s,
            "conv_operands_bf16_at_4.3_tbs": 1e3 * matmul_bytes / 2 / H200_BYTES_PER_S,
            "other_ops_bf16_at_4.3_tbs": 1e3 * other_bytes / 2 / H200_BYTES_PER_S,
            "other_ops_fp32_at_4.3_tbs": 1e3 * other_bytes / H200_BYTES_PER_S,
        },
    }


def main() -> None:
    result = {"command": " ".join(["python", *sys.argv]), "machine": machine(),
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "assumed": {"bf16_flops_per_s": H200_BF16_FLOPS, "bytes_per_s": H200_BYTES_PER_S},
              "presets": [frame_traffic(p) for p in ("paper-128", "paper-480")]}
    for r in result["presets"]:
        f = r["floor_ms_per_frame"]
        print(f"{r['preset']}: {r['flops_per_frame'] / 1e9:.1f} GFLOP, "
              f"conv operands {r['conv_bytes_fp32'] / 2**20:.0f} MiB "
              f"and other ops {r['other_bytes_fp32'] / 2**20:.0f} MiB per frame (fp32); floors per frame: convs "
              f"{f['convolutions_bf16_at_790_tflops']:.3f} ms, "
              f"other ops {f['other_ops_bf16_at_4.3_tbs']:.3f} ms (bf16)")
        for name, row in sorted(r["ops"].items(), key=lambda kv: kv[1]["bytes_fp32"], reverse=True)[:10]:
            print(f"    {name:28s} {row['calls']:4d} calls {row['bytes_fp32'] / 2**20:8.1f} MiB (fp32)")
    write_json(RESULTS / "step_traffic.json", result)
    print(f"wrote {RESULTS / 'step_traffic.json'}")


if __name__ == "__main__":
    main()
