"""`stochlift bench` on tiny settings: every measurement is there, finite, and written as JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from stochlift.apps.bench import PRESETS, BenchOptions, ardm_model, count_flops, model_config, run_bench
from stochlift.errors import StochliftError
from stochlift.lifting.generator import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUICK = BenchOptions(device="cpu", ardm_steps=3, train_steps=1, repeats=1, matmul_size=256)


def test_run_bench_reports_every_measurement(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    lines: list[str] = []
    report = run_bench("cpu-quick", batch=2, frames=3, train_batch=2, options=QUICK, out=out, echo=lines.append)
    saved = json.loads(out.read_text())
    assert saved["sl"]["frames_per_s"] == pytest.approx(report["sl"]["frames_per_s"])
    for key in ("command", "date", "machine", "device", "flops_per_frame", "matmul_flops_per_s", "roofline_fraction",
                "peak_memory_bytes"):
        assert key in saved, key
    assert saved["machine"]["torch"] == torch.__version__ and saved["machine"]["cpu"]
    assert saved["batch"] == 2 and saved["frames"] == 3
    assert saved["sl"]["seconds_per_video"] == pytest.approx(saved["sl"]["seconds_per_batch"] / 2)
    assert saved["roofline_fraction"] > 0 and math.isfinite(saved["roofline_fraction"])
    assert saved["ardm"]["label"] == "ARDM (S=3)"
    # S backbone calls on one more input frame: a little more than S times the FLOPs of one SL call
    assert 3 <= saved["ardm"]["flops_per_frame"] / saved["flops_per_frame"] < 3.5
    assert saved["train"]["steps_per_s"] > 0
    table = lines[0]
    for word in ("SL frames/s", "roofline fraction", "ARDM / SL time per frame", "train steps/s", "peak memory"):
        assert word in table


def test_flop_count_of_one_conv_layer_model() -> None:
    cfg, _ = model_config("cpu-quick", None, None)
    flops = count_flops(lambda: build_model(cfg), tuple(cfg.frame_shape))
    assert 0.9e8 < flops < 1.3e8  # ~0.109 GFLOP per 32x32 frame for the wave-quick U-Net
    ardm = count_flops(lambda: ardm_model(cfg, 2), tuple(cfg.frame_shape))
    assert 2 * flops < ardm < 2.3 * flops


def test_presets_fit_the_unet_and_the_paper() -> None:
    for name in PRESETS:
        cfg, _spec = model_config(name, None, None)
        with torch.device("meta"):
            build_model(cfg)  # divisibility of the frame size by 2^(levels - 1) is checked here
    assert PRESETS["paper-480"].paper_seconds_per_video == 0.96 and PRESETS["paper-128"].paper_seconds_per_video == 0.28
    with pytest.raises(StochliftError, match="unknown bench preset"):
        model_config("paper-1080", None, None)


def test_cli_bench_writes_json(run_cli_inprocess, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    result = run_cli_inprocess("bench", "--preset", "cpu-quick", "--batch", "1", "--frames", "2", "--ardm-steps", "2",
                               "--train-steps", "0", "--repeats", "1", "--matmul-size", "128", "--device", "cpu",
                               "--labels", "device", "--out", str(out))
    assert result.returncode == 0, result.stderr
    saved = json.loads(out.read_text())
    assert "roofline fraction" in result.stdout and saved["command"].startswith("stochlift bench")
    assert saved["options"]["labels"] == "device"
    refused = run_cli_inprocess("bench", "--device", "cpu", "--cudnn-benchmark", "--batch", "1")
    assert refused.returncode == 2 and "cudnn_benchmark needs a CUDA device" in refused.stderr
    bad = run_cli_inprocess("bench", "--batch", "many")
    assert bad.returncode == 2 and "--batch" in bad.stderr
