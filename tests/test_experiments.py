"""The experiment runner on tiny settings, and the pure computations behind its experiments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import stochlift.apps.experiments as experiments
from stochlift.apps.experiments.lipschitz import minimal_lipschitz
from stochlift.apps.experiments.nearest_neighbour import novelty_ratios
from stochlift.baselines.interpolant import ExplicitInterpolant
from stochlift.errors import StochliftError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COMMON = {
    "data_preset": "quick",
    "data_shrink": {"trajectories": 10, "frames": 6, "size": 16},
    "base": "{problem}-quick",
    "train_overrides": ["train.steps=3", "train.batch_size=4", "train.log_every=1",
                        "model.options={depths: [8, 16], mid_blocks: 1, embed_width: 16, groups: 4}"],
    "trajectories": 4,
}
SMOKE = {
    "table1": {**COMMON, "problems": ["wave", "flow"], "sl_overrides": ["model.label_dim=8"], "ardm_steps": [2, 3],
               "ardm_overrides": ["model.method=ardm", "model.label_dim=0", "model.loss=huber", "train.input_noise=0"],
               "ardm_overrides_by_steps": {2: ["model.diffusion_schedule=cosine", "model.prediction=v",
                                               "model.sampler=ddim"]},
               "ardm_overrides_by_problem": {"flow": ["model.loss=l2"]},
               "timing": {"batch": 2, "frames": 1}},
    "figure3": {"models_from": "table1", "shown_models": ["SL", "ARDM S=3"]},
    "label_dim": {**COMMON, "problem": "wave", "label_dims": [0, 8, 16]},
    "no_conditioning": {**COMMON, "problems": ["wave"], "sl_overrides": ["model.label_dim=8"], "shown": 2},
    "nearest_neighbour": {**COMMON, "problems": ["wave"], "sl_overrides": ["model.label_dim=8"]},
    "lipschitz": {**COMMON, "problems": ["wave"], "label_dims": [0, 2, 64], "seeds": [0, 1]},
}


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every experiment once at a 'smoke' scale (settings above), sharing one workspace."""
    configs = tmp_path_factory.mktemp("experiments")
    for name, settings in SMOKE.items():
        (configs / f"{name}.yaml").write_text(yaml.safe_dump({"description": f"{name} smoke", "smoke": settings}))
    out = tmp_path_factory.mktemp("results")
    patch = pytest.MonkeyPatch()
    patch.setattr(experiments, "EXPERIMENT_DIR", configs)
    try:
        for name in SMOKE:  # label_dim trains its two new models (d = 0, 16) side by side
            experiments.run_experiment(name, scale="smoke", out=out, progress=False, command=f"test {name}",
                                       jobs=2 if name == "label_dim" else 1)
    finally:
        patch.undo()
    return out / "smoke"


@pytest.mark.parametrize("name", list(SMOKE))
def test_every_experiment_writes_its_results_folder(smoke_results: Path, name: str) -> None:
    folder = smoke_results / name
    saved = json.loads((folder / "results.json").read_text())
    text = (folder / "results.md").read_text()
    assert saved["experiment"] == name and saved["command"] == f"test {name}" and saved["machine"]["cpu"]
    assert text.startswith(f"# Experiment `{name}`") and "| " in text
    for figure in saved["figures"]:
        assert (folder / figure).stat().st_size > 1000 and f"]({figure})" in text


@pytest.mark.parametrize("name", ["table1", "figure3", "label_dim", "no_conditioning"])
def test_experiments_that_generate_report_field_scores_over_their_floor(smoke_results: Path, name: str) -> None:
    assert "sliced W2 / floor" in (smoke_results / name / "results.md").read_text()
    numbers = json.loads((smoke_results / name / "results.json").read_text())["numbers"]
    if name == "label_dim":
        assert all(r["sliced_w2_ratio"] > 0 and r["spectrum_error_ratio"] > 0 for r in numbers["networks"])
    if name == "no_conditioning":
        assert all(numbers["wave"][m]["energy_score_ratio"] > 0 for m in ("rollout", "direct"))


def test_table1_rows_hold_the_measured_numbers(smoke_results: Path) -> None:
    numbers = json.loads((smoke_results / "table1" / "results.json").read_text())["numbers"]
    for problem in ("wave", "flow"):
        rows = numbers[problem]
        assert [r["model"] for r in rows] == ["SL", "ARDM S=2", "ARDM S=3"]
        assert [r["network_calls_per_frame"] for r in rows] == [1, 2, 3]
        assert all(np.isfinite(r["wct"]) and r["seconds_per_frame"] > 0 for r in rows)
        assert rows[0]["time_over_sl"] == 1.0
        # the budget in steps and in wall-clock, the same steps for every model
        assert {r["train_steps"] for r in rows} == {rows[0]["train_steps"]}
        assert all(r["train_seconds"] > 0 for r in rows)
        # field scores beside WCT and WIM, each over its truth-vs-truth floor, computed once beside the samples
        for r in rows:
            assert all(r[f"{name}_ratio"] > 0 for name in ("sliced_w2", "energy_score", "spectrum_error"))
            assert json.loads(Path(r["samples"]).with_suffix(".field_scores.json").read_text())["scores"]["sliced_w2"][
                "ratio"] == r["sliced_w2_ratio"]
        # the recipe chosen for S = 2 (ardm_overrides_by_steps) reaches that model alone
        chosen = [yaml.safe_load((Path(r["run"]) / "config.yaml").read_text())["model"] for r in rows[1:]]
        assert [(m["prediction"], m["sampler"], m["diffusion_steps"]) for m in chosen] == [("v", "ddim", 2),
                                                                                          ("epsilon", "ddpm", 3)]
        # the recipe chosen on Flow (ardm_overrides_by_problem) reaches Flow's ARDMs alone
        assert {m["loss"] for m in chosen} == {"l2" if problem == "flow" else "huber"}
    recipes = [line for line in (smoke_results / "table1" / "results.md").read_text().splitlines()
               if line.startswith("- ARDM on ")]
    assert len(recipes) == 2 and "model.loss=huber" in recipes[0] and "model.loss=l2" not in recipes[0]
    assert "model.loss=l2" in recipes[1] and "model.loss=huber" not in recipes[1]  # the value that acts
    # figure3 reuses table1's samples: the same WCT for the same model
    figure3 = json.loads((smoke_results / "figure3" / "results.json").read_text())["numbers"]
    assert figure3["wave"]["SL"]["wct"] == numbers["wave"][0]["wct"]
    truth = figure3["wave"]["truth"]
    assert 0 <= truth["never_share"] <= truth["late_share"] <= 1  # never crossing is the latest crossing


def test_runs_are_shared_and_a_second_run_reuses_everything(smoke_results: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    runs = sorted(p.name for p in (smoke_results / "_work" / "runs" / "wave").iterdir() if p.is_dir())
    lifted = [name for name in runs if name.startswith("sl-") and not name.startswith("sl-direct-")]
    # table1's SL, no_conditioning's rollout, nearest_neighbour's model and label_dim's d = 8 are one run
    assert len(lifted) == 3, runs  # d = 0, 8 and 16
    configs = smoke_results.parent / "configs-again"
    configs.mkdir()
    (configs / "nearest_neighbour.yaml").write_text(yaml.safe_dump({"smoke": SMOKE["nearest_neighbour"]}))
    monkeypatch.setattr(experiments, "EXPERIMENT_DIR", configs)
    folder = experiments.run_experiment("nearest_neighbour", scale="smoke", out=smoke_results.parent, progress=False)
    assert "everything reused" in (folder / "results.md").read_text()


def test_models_trained_side_by_side_equal_those_trained_one_at_a_time(smoke_results: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    from stochlift.apps.experiments.label_dim import planned_runs
    from stochlift.apps.experiments.workspace import Workspace
    from stochlift.lifting.checkpoint import CHECKPOINT_NAME

    settings = {**SMOKE["label_dim"], "label_dims": [16]}
    parallel = Workspace(smoke_results / "_work", progress=False)
    alone = Workspace(tmp_path, progress=False)  # trains the same plan (same data file) again, by itself
    plan = planned_runs(parallel, settings)[0]
    a, b = (load_file(str(run / CHECKPOINT_NAME)) for run in (alone.run(*plan), parallel.run_dir(*plan)))
    assert a.keys() == b.keys() and len(a) > 10  # weights and optimizer state
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-5, rtol=0, err_msg=key)


def test_unknown_experiment_and_scale_are_user_errors(run_cli_inprocess) -> None:
    bad = run_cli_inprocess("experiment", "table9")
    assert bad.returncode == 2 and "unknown experiment 'table9'" in bad.stderr and "table1" in bad.stderr
    with pytest.raises(StochliftError, match="no scale 'huge'"):
        experiments.load_settings("table1", "huge")


def test_minimal_lipschitz_constant_by_hand() -> None:
    # two trajectories, two frames, 1-D states: x_0 = (0, 1), x_1 = (0, 3): L = |3 - 0| / |1 - 0| = 3
    trajectories = np.array([[[0.0], [0.0]], [[1.0], [3.0]]])
    assert minimal_lipschitz(trajectories, None) == (pytest.approx(3.0), 0)
    labels = np.array([[[0.0]], [[np.sqrt(8.0)]]])  # label distance sqrt(8): L = 3 / sqrt(1 + 8) = 1
    assert minimal_lipschitz(trajectories, labels)[0] == pytest.approx(1.0)
    same_start = np.array([[[0.0], [1.0]], [[0.0], [2.0]]])  # one x_0, two x_1: no function fits without labels
    assert minimal_lipschitz(same_start, None)[0] == float("inf")


def test_novelty_ratio_is_zero_for_a_copy_and_about_one_for_a_fresh_sample() -> None:
    rng = np.random.default_rng(0)
    train = rng.standard_normal((200, 3, 8))
    copies = train[:5] + 1e-9
    fresh = rng.standard_normal((50, 3, 8))
    assert novelty_ratios(copies, train)[0].max() < 1e-6
    assert 0.7 < np.median(novelty_ratios(fresh, train)[0]) < 1.5


def test_explicit_interpolant_interpolates_and_is_affine_in_the_label() -> None:
    rng = np.random.default_rng(1)
    targets, labels = rng.standard_normal((6, 10)), rng.standard_normal((6, 32))
    f = ExplicitInterpolant(targets, labels)
    assert f.interpolates and np.allclose(f(labels), targets)
    a, b = rng.standard_normal((2, 32))
    assert np.allclose(f(a + 2 * b) - f(np.zeros(32)), (f(a) - f(np.zeros(32))) + 2 * (f(b) - f(np.zeros(32))))
    assert np.allclose(f(np.zeros((1, 32))), targets.mean(0))
    assert not ExplicitInterpolant(targets, labels[:, :3]).interpolates


def test_no_conditioning_calls_a_breakdown_only_when_the_jump_errs_many_times_more() -> None:
    from stochlift.apps.experiments.no_conditioning import BREAKDOWN_RATIO, _verdict

    def scores(mass: float, spectrum: float, **extra: float) -> dict[str, float]:
        return {"mass_w2_relative": mass, "spectrum_error_decades": spectrum, **extra}

    rollout = scores(1.0, 0.1)
    assert "breaks down" in _verdict(scores(BREAKDOWN_RATIO + 1, 0.2), rollout, 100)
    assert "but no breakdown" in _verdict(scores(1.8, 0.2), rollout, 100)  # the paper's direction, not its size
    assert _verdict(scores(0.8, 0.2), rollout, 100).startswith("no breakdown")
    assert _verdict(scores(BREAKDOWN_RATIO + 1, 0.05), rollout, 100).startswith("no breakdown")
    # Flow: water islands in many of the jump's frames and (almost) none of the rollout's is a breakdown,
    # whatever the mass says; a few islands against a clean rollout are not
    clean = scores(1.0, 0.1, frames_with_islands=0.0)
    assert "water islands" in _verdict(scores(0.8, 0.05, frames_with_islands=0.3), clean, 100)
    assert _verdict(scores(0.8, 0.05, frames_with_islands=0.05), clean, 100).startswith("no breakdown")
    assert _verdict(scores(0.8, 0.05, frames_with_islands=0.3), scores(1.0, 0.1, frames_with_islands=0.2), 100
                    ).startswith("no breakdown")


def test_disconnected_water_counts_the_wet_area_cut_off_from_the_injector() -> None:
    from stochlift.problems.flow import disconnected_water

    frames = np.zeros((4, 1, 8, 8))
    frames[0, 0, :3, :3] = 0.8  # one wet piece holding the injector: physical
    frames[1, 0, :3, :3] = 0.8
    frames[1, 0, 6:, 6:] = 0.9  # plus a 2x2 island by the producer: 4 of 13 wet pixels cut off
    frames[2, 0, 4:6, 4:6] = 0.9  # wet, but the injector pixel is dry: all of it cut off
    frames[3, 0, 0, :] = 0.6  # a strip along the top edge, connected through its neighbours
    frames[3, 0, 1, 1] = 0.6  # touches the strip (4-connected): still one piece
    assert np.allclose(disconnected_water(frames), [0.0, 4 / 13, 1.0, 0.0])
    assert np.allclose(disconnected_water(np.zeros((2, 1, 5, 5))), 0.0)  # no water yet: nothing cut off
    assert disconnected_water(frames, level=0.85)[1] == 1.0  # only the island is above 0.85
    with pytest.raises(StochliftError, match=r"\[n, C, H, W\]"):
        disconnected_water(np.zeros((5, 5)))

def test_label_dim_averages_over_seeds_and_says_whether_every_high_d_beats_d0() -> None:
    from stochlift.apps.experiments.label_dim import _findings, _mean_over_seeds

    def row(d: int, seed: int, wct: float, loss: float) -> dict:
        return {"label_dim": d, "seed": seed, "wct": wct, "training_set_loss": loss, "first_step_loss": loss,
                "final_training_loss": loss, "wct_relative": wct, "mass_w2": 0.0, "final_std_ratio": 1.0}

    means = {d: _mean_over_seeds([row(d, 0, w0, loss), row(d, 1, w1, loss)])
             for d, w0, w1, loss in [(0, 0.2, 0.2, 1e-2), (16, 0.1, 0.3, 2e-3), (64, 0.1, 0.1, 1e-3)]}
    assert means[16]["wct"] == pytest.approx(0.2) and means[16]["wct_per_seed"] == [0.1, 0.3]
    loss_finding, wct_finding = _findings(means)
    assert "10.0x" in loss_finding
    assert "not every one better" in wct_finding  # d = 16's mean 0.2 ties d = 0's
    means[16] = _mean_over_seeds([row(16, 0, 0.1, 2e-3), row(16, 1, 0.15, 2e-3)])
    assert "every one better than d = 0, the worst by 1.60x" in _findings(means)[1]


def test_table1_says_per_score_whether_sl_wins_and_where_the_ardm_catches_up() -> None:
    from stochlift.apps.experiments.table1 import _findings

    def row(model: str, calls: int, wct: float, mass_w2: float, largest: float = 1.0) -> dict:
        return {"model": model, "network_calls_per_frame": calls, "wct": wct, "mass_w2": mass_w2,
                "time_over_sl": calls * 2.0, "max_abs_over_truth": largest}

    rows = [row("SL", 1, 0.10, 0.010), row("ARDM S=2", 2, 0.50, 0.5, largest=40.0), row("ARDM S=10", 10, 0.09, 0.02),
            row("ARDM S=40", 40, 0.08, 0.03)]
    claim, wct, mass_w2, diverged = _findings({"wave": rows})
    assert "does not reproduce" in claim and "wct: no, mass_w2: yes" in claim.lower()
    assert "catches up at S = 10 (0.09 against SL's 0.1, at 20.0x" in wct and "ARDM S=10, ARDM S=40" in wct
    assert "SL wins against every ARDM; the closest is ARDM S=10 (0.02 against 0.01)" in mass_w2
    assert diverged == "wave: diverged (fields beyond 3x the truth's largest value): ARDM S=2."
