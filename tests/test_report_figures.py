"""The report's pictures and headline: labelled, unclipped figures for every state; targets from the problems;
reports of vector and 1-D runs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import smooth_trajectories, tiny_meta
from stochlift.apps.plots import fields as field_plots
from stochlift.apps.plots import report as report_plots
from stochlift.apps.report import build_report
from stochlift.apps.report.headline import ratio_against
from stochlift.apps.report.statistics import summarise, write_collapsed
from stochlift.config import apply_overrides, load_config
from stochlift.data.trajectories import TrajectoryFile, TrajectoryMeta, write_trajectories
from stochlift.lifting.train import train
from stochlift.problems import PROBLEMS, Target, get_problem

RNG = np.random.default_rng(0)
TIME = np.linspace(0.0, 2.0, 6)


def dark_border_pixels(png: bytes, width: int = 2) -> int:
    """Non-background pixels in the outer `width` pixels of an image: > 0 where a label runs off the edge."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("L")).astype(int)
    border = np.concatenate([image[:, :width].ravel(), image[:, -width:].ravel(), image[:width].ravel(),
                             image[-width:].ravel()])
    return int((border < 200).sum())


FIGURES = {
    "moment maps": lambda: field_plots.moment_maps_png(*RNG.random((4, 4, 8, 8)), [0.1, 0.2, 0.3, 0.4],
                                                       display={"cmap": "RdBu_r"}),
    "snapshots with a static field": lambda: field_plots.snapshots_png(
        RNG.random((3, 6, 8, 8)), RNG.random((3, 6, 8, 8)), [0, 2, 4, 5], TIME[[0, 2, 4, 5]],
        display={"cmap": "RdBu_r"}, static=RNG.random((3, 8, 8)), static_name="wave_speed"),
    "space-time rollouts": lambda: field_plots.spacetime_rollouts_png(
        RNG.random((3, 6, 16)), RNG.random((3, 6, 16)), TIME, np.arange(16.0), display={},
        static=RNG.random((3, 16)), static_name="c"),
    "space-time moments": lambda: field_plots.spacetime_moments_png(*RNG.random((4, 6, 16)), TIME, None, display={}),
    "vector moments": lambda: field_plots.vector_moments_png(*RNG.random((4, 6, 3)), TIME, ["a", "b", "c"]),
    "vector rollouts": lambda: field_plots.rollout_lines_png(RNG.random((2, 6, 3)), RNG.random((2, 6, 3)), TIME,
                                                             ["a", "b", "c"]),
    "spectrum": lambda: field_plots.spectrum_png(RNG.random((3, 5)) + 0.1, RNG.random((3, 5)) + 0.1, [1, 2, 3]),
    "crossing CDF": lambda: report_plots.crossing_cdf_png(RNG.random(20), RNG.random(30), TIME, xlabel="crossing time"),
    "mass band": lambda: report_plots.series_band_png(RNG.random((5, 6)), RNG.random((4, 6)), TIME, ylabel="mass"),
}


@pytest.mark.parametrize("name", list(FIGURES))
def test_figures_keep_their_labels_inside(name):
    """Row labels and colour bars stay clear of the edges (the old snapshot grid cut "true 0" to "rue 0")."""
    png = FIGURES[name]()
    assert png.startswith(b"\x89PNG") and dark_border_pixels(png) == 0


def test_per_time_panels_label_both_axes_and_draw_floor_and_collapsed_lines(monkeypatch):
    figures = []
    monkeypatch.setattr(report_plots, "_png_bytes", lambda fig: figures.append(fig) or b"")
    panels = [report_plots.CurvePanel(name, {"this run": [1.0, 2.0, 3.0]}, floor=[0.5, 0.6, 0.7],
                                      collapsed=[2.0, 3.0, 4.0]) for name in ("energy score", "CRPS", "sliced W2")]
    panels.append(report_plots.CurvePanel("spread / skill", {"this run": [0.8, 0.9, 1.0]}, "spread / skill",
                                          reference=1.0, reference_label="calibrated (1)"))
    report_plots.metric_curves_png([1.0, 2.0, 3.0], panels, columns=2)
    axes = [ax for ax in figures[0].axes if ax.get_visible()]
    assert len(axes) == 4
    assert all(ax.get_xlabel() == "time" and ax.get_ylabel() for ax in axes)
    labels = [line.get_label() for line in axes[0].get_lines()]
    assert labels == ["this run", report_plots.FLOOR_LABEL, report_plots.COLLAPSED_LABEL]
    # one legend explains the shared lines; later panels get one only for lines not yet explained
    assert axes[0].get_legend() is not None and axes[1].get_legend() is None
    assert [t.get_text() for t in axes[3].get_legend().get_texts()] == ["calibrated (1)"]


def test_targets_name_metrics_their_problem_computes(tmp_path):
    """Every built-in problem with targets computes each target's metric (so the card can judge it)."""
    for name in PROBLEMS.names():
        problem = get_problem(name)
        for target in problem.targets:
            assert isinstance(target, Target) and target.limit > 0 and target.label
    meta = tiny_meta()
    reference, generated = tmp_path / "r.h5", tmp_path / "g.h5"
    for problem_name in ("wave", "flow", "generic"):
        meta.problem = problem_name
        write_trajectories(reference, meta, {"test": smooth_trajectories(6, seed=1)})
        write_trajectories(generated, meta, {"generated": smooth_trajectories(6, seed=2)})
        problem = get_problem(problem_name)
        metrics = problem.evaluate(TrajectoryFile(reference), TrajectoryFile(generated), reference_split="test",
                                   generated_split="generated").to_dict()
        assert problem.targets and all(t.key in metrics for t in problem.targets), problem_name
    assert Target("x", 0.5, "x").passes(0.5) is True and Target("x", 0.5, "x").passes(0.51) is False
    assert Target("x", 0.5, "x").passes(None) is None


def test_collapsed_ensemble_sits_on_the_true_mean(tmp_path):
    meta = tiny_meta()
    truth = smooth_trajectories(5, seed=3)
    write_trajectories(tmp_path / "t.h5", meta, {"test": truth})
    file = TrajectoryFile(tmp_path / "t.h5")
    summary = summarise(file, "test", [1, 5])
    np.testing.assert_allclose(summary.mean, truth.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(summary.std, truth.std(axis=0), atol=1e-5)
    assert summary.spectra.shape == (2, 3)  # 8x8 fields: shells 1..3
    collapsed = write_collapsed(tmp_path / "c.h5", file, summary.mean)
    members = collapsed.read("collapsed")
    assert members.shape == (2, *truth.shape[1:]) and np.ptp(members, axis=0).max() == 0
    assert ratio_against([2.0, None, 3.0], [1.0, 1.0, 0.0]) == 2.0  # undefined and zero floors left out


def _run_on(tmp_path: Path, name: str, state: tuple[int, ...], backbone: str, options: str) -> Path:
    """A tiny generic data file of the given state (8 test trajectories) and a run trained on it for a few steps."""
    rng = np.random.default_rng(1)
    x = np.linspace(0.0, 1.0, state[1], endpoint=False) if len(state) == 2 else None
    meta = TrajectoryMeta(dataset_name=name, problem="generic", field_names=tuple(f"v{i}" for i in range(state[0])),
                          time=np.linspace(0.0, 1.0, 6), x=x, periodic=x is not None)
    values = np.cumsum(0.3 * rng.normal(size=(14, 6, *state)), axis=1).astype(np.float32)
    data = tmp_path / f"{name}.h5"
    write_trajectories(data, meta, {"train": values[:6], "test": values[6:]})
    config = apply_overrides(load_config(None), [f"data.path={data}", f"model.backbone={backbone}",
                                                 f"model.options={options}", "model.label_dim=4", "model.window=1",
                                                 "train.steps=4", "train.batch_size=4", "train.log_every=2",
                                                 "train.checkpoint_every=4"])
    run = tmp_path / f"run-{name}"
    train(config, run, progress=False)
    return run


@pytest.mark.parametrize("state, backbone, options, expected, absent", [
    ((3,), "mlp", "{hidden: 16, layers: 2}", ["true and generated trajectories over time",
                                               "ensemble mean and std per variable, true vs generated"],
     ["per-point mean and std maps, true vs generated", "power spectra, true vs generated"]),
    ((1, 16), "unet1d", "{depths: [8, 16], mid_blocks: 1, embed_width: 16, groups: 4}",
     ["space-time images of true and generated rollouts", "per-point mean and std of the 1-D field, true vs generated",
      "power spectra, true vs generated"], ["per-point mean and std maps, true vs generated"]),
])
def test_reports_of_vector_and_1d_runs(tmp_path, one_torch_thread, state, backbone, options, expected, absent):
    run = _run_on(tmp_path, f"state{len(state)}", state, backbone, options)
    out = build_report(run, tmp_path / "r.html", forecast_trajectories=2, forecast_samples=2, progress=False)
    text = out.read_text(encoding="utf-8")
    for alt in expected:
        assert f'alt="{alt}"' in text
    for alt in absent:
        assert f'alt="{alt}"' not in text
    assert "<video" not in text  # no 2-D rollout to animate
    assert "per-time scores with floor and collapsed reference" in text
    assert "<code>energy_score_ratio</code>" in text  # the generic problem's targets on the card
