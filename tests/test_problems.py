"""A new problem is one Problem subclass plus one registry line, and a new backbone one registry entry:
registered from this file, each runs the whole road (data -> train -> sample -> evaluate -> report)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import stochlift
from conftest import TINY_OVERRIDES, tiny_config
from stochlift.config import ModelConfig
from stochlift.data.trajectories import TrajectoryFile, TrajectoryMeta, write_trajectories
from stochlift.errors import StochliftError
from stochlift.metrics.wasserstein import wasserstein_1d_per_column
from stochlift.models import BACKBONES, BackboneSpec
from stochlift.problems import PROBLEMS, Problem, QuantityView, get_problem

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass
class ToyMetrics:
    """W2 per time of each trajectory's spatial mean, true vs generated."""

    mean_w2: list[float]
    reference: np.ndarray
    generated: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"toy_mean_w2": float(np.mean(self.mean_w2[1:])), "toy_mean_w2_per_time": self.mean_w2}


class ToyProblem(Problem):
    """Random walks of 8x8 fields from a shared start: a problem nobody in stochlift knows."""

    name = "toy"
    description = "random-walk fields (a test problem)"

    def make_dataset(self, out: str | os.PathLike, *, preset: str = "quick", seed: int = 0, progress: bool = True,
                     **sizes: int | None) -> Path:
        rng = np.random.default_rng(seed)
        steps = rng.normal(scale=0.1, size=(10, 5, 1, 8, 8)).astype(np.float32)
        steps[:, 0] = 0.0
        data = np.cumsum(steps, axis=1)
        grid = np.linspace(0.0, 1.0, 8, endpoint=False)
        meta = TrajectoryMeta(dataset_name="toy", problem=self.name, field_names=("u",), time=np.arange(5.0),
                              x=grid, y=grid, periodic=True)
        write_trajectories(out, meta, {"train": data[:6], "valid": data[6:8], "test": data[8:]})
        return Path(out)

    def evaluate(self, reference: TrajectoryFile, generated: TrajectoryFile, *, reference_split: str,
                 generated_split: str, **options: Any) -> ToyMetrics:
        ref = reference.read(reference_split).mean(axis=(2, 3, 4))
        gen = generated.read(generated_split).mean(axis=(2, 3, 4))
        return ToyMetrics([float(v) for v in wasserstein_1d_per_column(ref, gen)], ref, gen)

    def views(self, metrics: Any) -> list[QuantityView]:
        return [QuantityView("toy_mean", "series", "field mean over time", "field mean", metrics.reference,
                             metrics.generated, "Each trajectory's spatial mean: ensemble mean and 5-95% band.")]


@pytest.fixture
def toy_problem():
    PROBLEMS.register("toy", ToyProblem)
    yield get_problem("toy")
    PROBLEMS.unregister("toy")


def test_a_problem_registered_here_runs_data_train_sample_evaluate_report(toy_problem, tmp_path, run_cli_inprocess):
    data = toy_problem.make_dataset(tmp_path / "toy.h5")
    run, samples, metrics = tmp_path / "run", tmp_path / "samples.h5", tmp_path / "metrics.json"
    assert run_cli_inprocess("train", "--data", data, "--out", run, "--quiet", *TINY_OVERRIDES).returncode == 0
    assert run_cli_inprocess("sample", "--run", run, "--out", samples, "--trajectories", "4", "--quiet").returncode == 0
    assert TrajectoryFile(samples).meta.problem == "toy"
    evaluated = run_cli_inprocess("evaluate", "--reference", data, "--generated", samples, "--out", metrics)
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(metrics.read_text())
    assert report["problem"] == "toy" and len(report["toy_mean_w2_per_time"]) == 5 and report["toy_mean_w2"] > 0
    page = stochlift.build_report(run, tmp_path / "report.html", forecast_trajectories=2, forecast_samples=2,
                                  progress=False).read_text(encoding="utf-8")
    assert 'alt="field mean over time"' in page and "No crossing-time plot" in page
    with pytest.raises(StochliftError, match="unknown problem 'toyy' \\(did you mean 'toy'\\?\\)"):
        get_problem("toyy")


class TinyCircularNet(nn.Module):
    """One 3x3 convolution with circular or zero padding, plus the label's mean: the smallest backbone."""

    def __init__(self, in_channels: int, out_channels: int, label_dim: int, periodic: bool = False) -> None:
        super().__init__()
        self.periodic = periodic
        self.conv = nn.Conv2d(in_channels, out_channels, 3)

    def forward(self, x: torch.Tensor, xi: torch.Tensor | None = None) -> torch.Tensor:
        x = F.pad(x, [1, 1, 1, 1], mode="circular" if self.periodic else "constant")
        out = self.conv(x)
        return out if xi is None else out + xi.mean(dim=1)[:, None, None, None]


@pytest.fixture
def tiny_backbone():
    BACKBONES.register("tiny-circular", BackboneSpec(TinyCircularNet, frame_ranks=(3,), periodic=True))
    yield "tiny-circular"
    BACKBONES.unregister("tiny-circular")


def test_a_backbone_registered_here_trains_and_samples_with_the_datas_periodic_padding(tiny_backbone, tiny_data,
                                                                                          tmp_path):
    config = tiny_config(tiny_data, f"model.backbone={tiny_backbone}", "model.options={}")
    result = stochlift.train(config, tmp_path / "run", progress=False)
    assert result.config.model.options == {"periodic": True}  # the tiny data are periodic: the spec says it pads so
    assert result.model.backbone.periodic
    model, _, data = stochlift.load_run(tmp_path / "run")
    frames = stochlift.rollout(model, data.read("test")[:, :1], frames=4, seed=0)
    assert frames.shape == (2, 4, 1, 8, 8) and np.isfinite(frames).all()
    net = model.backbone.eval()  # circular padding: a shifted input gives the shifted output
    x, xi = torch.randn(2, 3, 8, 8), torch.randn(2, 4)
    with torch.no_grad():
        torch.testing.assert_close(net(torch.roll(x, 3, dims=-1), xi), torch.roll(net(x, xi), 3, dims=-1))
    with pytest.raises(StochliftError,
                       match="needs \\[C, H, W\\] frames, got frames of shape \\(4,\\); set model.backbone=mlp"):
        stochlift.build_model(ModelConfig(backbone=tiny_backbone, frame_shape=[4]))
