"""benchmarks/gpu_suite.py --smoke: the GPU suite's own code at tiny shapes on the CPU.

One smoke call measures what the CPU can (matmul rates, per-variant step times, ARDM / SL, training pairs/s,
the profile, the full sampling loop) and reports the GPU-only options as skipped with their reason; a second
call resumes (re-measures nothing finished). The runner's budget is checked with a stand-in item that sleeps.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from stochlift.errors import StochliftError

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", ROOT / "benchmarks" / "gpu_suite.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_suite"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gpu_suite", None)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def smoke(suite, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("suite")
    return out, suite.main(["--smoke", "--out", str(out)])


def test_a_smoke_call_measures_what_the_cpu_can_and_says_why_it_skips_the_rest(smoke) -> None:
    out, report = smoke
    items = {rec["name"]: rec for rec in report["items"]}
    for name in ("env", "matmul/fp32", "matmul/bf16", "paper-128/batch", "paper-128/fp32", "paper-128/channels_last",
                 "paper-128/device_labels", "paper-128/ardm", "paper-480/fp32", "train/paper-128/fp32",
                 "paper-128/profile", "paper-128/full", "paper-480/full"):
        assert items[name]["status"] == "done", (name, items[name])
    fp32 = items["paper-128/fp32"]["result"]
    assert fp32["batch"] == items["paper-128/batch"]["result"]["best_batch"]
    assert fp32["seconds_per_video"] == pytest.approx(fp32["seconds_per_step"] * fp32["frames"] / fp32["batch"])
    assert 0 < fp32["fraction_of_rate"] < 1 and fp32["rate_dtype"] == "fp32"
    assert math.isfinite(items["paper-128/ardm"]["result"]["ratio_to_sl"])
    assert items["train/paper-128/fp32"]["result"]["pairs_per_s"] > 0
    assert items["paper-128/full"]["result"]["finite"]
    assert items["paper-128/profile"]["result"]["eager"]["ops"][0]["share"] > 0
    for name, why in (("matmul/tf32", "CUDA"), ("paper-128/all", "GPU"), ("paper-128/cuda_graph", "CUDA"),
                      ("paper-128/cudnn_benchmark", "CUDA"), ("paper-128/compile", "--with-compile"),
                      ("train/paper-128/bf16+fused", "GPU")):
        assert items[name]["status"] == "skipped" and why in items[name]["reason"], (name, items[name])
    assert report["summary"]["paper-128"]["best_variant"] in ("fp32", "channels_last", "device_labels")
    saved = json.loads((out / "speed_gpu_smoke.json").read_text())
    assert saved["machine"]["torch"] and saved["command"].startswith("python gpu_suite.py --smoke")
    text = (out / "speed_gpu_smoke.md").read_text()
    assert "smoke run" in text and "| fp32 |" in text and "autocast bf16 is for GPUs" in text


def test_a_second_call_skips_finished_items(suite, smoke, capsys) -> None:
    out, first = smoke
    before = records(out / "speed_gpu_smoke.jsonl")
    second = suite.main(["--smoke", "--out", str(out)])
    after = records(out / "speed_gpu_smoke.jsonl")
    done = {rec["name"] for rec in before if rec.get("status") == "done"}
    new = after[len(before):]
    assert done and not any(rec["name"] in done for rec in new if "status" in rec), "a finished item ran again"
    assert [rec["name"] for rec in new if rec["name"] == "#call"] == ["#call"]
    assert "paper-128/fp32: done in an earlier call" in capsys.readouterr().out
    first_items = {rec["name"]: rec for rec in first["items"]}
    for rec in second["items"]:
        if rec["status"] == "done":
            assert rec == first_items[rec["name"]]
    assert len(second["calls"]) == 2


def test_the_budget_skips_what_would_not_fit_and_stops_what_overruns(suite, tmp_path: Path, monkeypatch) -> None:
    def sleeper(s):
        time.sleep(30)
        return {}

    slow = [suite.Item("slow", sleeper, lambda s: 0.1), suite.Item("after", lambda s: {"x": 1}, lambda s: 0.1)]
    monkeypatch.setattr(suite, "items", lambda: slow)
    began = time.monotonic()
    suite.main(["--smoke", "--out", str(tmp_path), "--budget", "1"])
    assert time.monotonic() - began < 20
    log = {rec["name"]: rec for rec in records(tmp_path / "speed_gpu_smoke.jsonl")}
    assert log["slow"]["status"] == "interrupted"  # stopped at the deadline; nothing runs after it
    assert log["after"]["status"] == "skipped" and "would not fit the budget" in log["after"]["reason"]
    report = suite.main(["--smoke", "--out", str(tmp_path), "--budget", "0.8"])
    log = {rec["name"]: rec for rec in records(tmp_path / "speed_gpu_smoke.jsonl")}
    assert log["slow"]["status"] == "skipped" and "would not fit the budget" in log["slow"]["reason"]
    assert log["after"]["status"] == "done" and report["not_finished"] == ["slow"]


def test_a_log_of_another_kind_of_run_is_refused(suite, tmp_path: Path) -> None:
    header = {"name": "#header", "mode": "full", "device": "H200"}
    (tmp_path / "speed_gpu_smoke.jsonl").write_text(json.dumps(header) + "\n")
    with pytest.raises(StochliftError, match="another kind of run"):
        suite.main(["--smoke", "--out", str(tmp_path)])


def test_a_device_timeline_gives_busy_time_gaps_syncs_and_launches() -> None:
    """The GPU half of the profile summary, on a hand-made trace (times in µs, as torch writes them): two
    steps, each a launch, two kernels 10 µs apart and a sync; 20 µs of the 70 µs span are idle."""
    from stochlift.apps.bench_profile import device_timeline, runtime_calls

    events = []
    for start in (0.0, 40.0):
        events += [{"ph": "X", "cat": "kernel", "name": "conv", "ts": start, "dur": 10.0},
                   {"ph": "X", "cat": "kernel", "name": "gelu", "ts": start + 20.0, "dur": 5.0},
                   {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy DtoH", "ts": start + 24.0, "dur": 6.0},
                   {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": start, "dur": 3.0},
                   {"ph": "X", "cat": "cuda_runtime", "name": "cudaStreamSynchronize", "ts": start + 25.0, "dur": 5.0}]
    timeline = device_timeline(events, steps=2)
    device = timeline["device"]
    assert device["busy_ms_per_step"] == pytest.approx(0.020) and device["idle_ms_per_step"] == pytest.approx(0.015)
    assert device["busy_fraction"] == pytest.approx(40 / 70) and device["gaps_per_step"] == pytest.approx(1.5)
    assert device["largest_gaps_us"] == [10.0, 10.0, 10.0]
    assert [k["name"] for k in timeline["kernels"]] == ["conv", "Memcpy DtoH", "gelu"]
    calls = runtime_calls(events, steps=2)
    assert calls["launches_per_step"] == 1 and calls["syncs"]["cudaStreamSynchronize"]["per_step"] == 1


@pytest.mark.skipif(os.environ.get("STOCHLIFT_TEST_COMPILE") != "1",
                    reason="a cold torch.compile takes minutes on the 2-core CI machine; set STOCHLIFT_TEST_COMPILE=1")
def test_the_compiled_variant_runs_in_smoke_mode_with_compile(suite, tmp_path: Path) -> None:
    report = suite.main(["--smoke", "--with-compile", "--out", str(tmp_path), "--budget", "900",
                         "--only", "matmul/fp32", "--only", "paper-128/flops", "--only", "paper-128/batch",
                         "--only", "paper-128/compile"])
    compiled = {rec["name"]: rec for rec in report["items"]}["paper-128/compile"]
    assert compiled["status"] == "done" and compiled["result"]["options"] == {"compile": "default"}
