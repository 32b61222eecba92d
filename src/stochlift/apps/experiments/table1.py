"""Table 1 and Figure 3: SL (one network call per frame) against the ARDM with S in {2, 5, 10, 20, 40}.

Every model has the same backbone family, data, training steps and batch; each generates the same number
of trajectories from the shared initial condition, scored against the held-out test trajectories by the
Wasserstein-2 distances of the crossing time (`wct`, the paper's WCT) and of the integrated mass (`mass_w2`,
the paper's WIM); names: docs/glossary.md.
Seconds per frame are measured on this machine at one batch size for every model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stochlift.apps.experiments import ExperimentResult, load_settings
from stochlift.apps.experiments.workspace import FIELD_HEADLINES, PlannedRun, Workspace, field_ratios, model_config
from stochlift.apps.plots.experiments import (
    save_crossing_histograms,
    save_rollout_rows,
    save_table1_plot,
)
from stochlift.data.trajectories import TrajectoryFile
from stochlift.evaluation.evaluate import evaluate_files
from stochlift.lifting.run_log import training_seconds

# the paper's Table 1 (512 samples, its own data sizes and normalisation): its WCT and WIM (our wct, mass_w2)
PAPER_TABLE1 = {
    "wave": {2: (2.49e-2, 9.11e-5), 5: (2.13e-2, 1.04e-4), 10: (1.04e-2, 6.00e-5), 20: (7.28e-3, 1.06e-4),
             40: (1.11e-2, 9.85e-5), "SL": (4.53e-3, 2.06e-5)},
    "flow": {2: (1.18e-1, 3.46e-2), 5: (3.39e-2, 4.58e-2), 10: (9.13e-2, 1.29e-1), 20: (3.25e-2, 1.27e-3),
             40: (1.86e-3, 6.00e-4), "SL": (9.47e-4, 6.08e-4)},
}


def models(settings: dict[str, Any], problem: str | None = None) -> list[tuple[str, int, list[str]]]:
    """(label, network calls per frame, overrides) of every model in the table: SL first, then ARDM by S.
    `ardm_overrides_by_steps` ({S: [...]}) adds the recipe chosen for that S and `ardm_overrides_by_problem`
    ({problem: [...]}) the one chosen on that problem (the few-step search's), so each ARDM row is the
    strongest found for its S and problem."""
    common = list(settings.get("train_overrides", []))
    rows = [("SL", 1, common + list(settings.get("sl_overrides", [])))]
    by_steps = {int(k): list(v) for k, v in (settings.get("ardm_overrides_by_steps") or {}).items()}
    for steps in settings.get("ardm_steps", []):
        rows.append((f"ARDM S={steps}", steps, common + ardm_recipe(settings, problem) + by_steps.get(steps, [])
                     + [f"model.diffusion_steps={steps}"]))
    return rows


def _slug(label: str) -> str:
    return label.lower().replace(" ", "-").replace("=", "")


def planned_runs(ws: Workspace, settings: dict[str, Any]) -> list[PlannedRun]:
    """Every model of the table on every problem, problem by problem in the order of `models`."""
    plans = []
    for problem in settings["problems"]:
        data = ws.data(problem, settings["data_preset"], **settings.get("data_shrink", {}))
        plans += [PlannedRun(problem, _slug(label), model_config(settings["base"], problem, data, overrides))
                  for label, _, overrides in models(settings, problem)]
    return plans


def planned_figure3_runs(ws: Workspace, settings: dict[str, Any]) -> list[PlannedRun]:
    return planned_runs(ws, load_settings(settings.get("models_from", "table1"), settings["scale"]))


def evaluate_models(ws: Workspace, settings: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Train, sample, score and time every model on every problem (reusing whatever exists)."""
    results: dict[str, list[dict[str, Any]]] = {}
    timing = settings.get("timing", {})
    plans = iter(planned_runs(ws, settings))
    for problem in settings["problems"]:
        data = ws.data(problem, settings["data_preset"], **settings.get("data_shrink", {}))
        rows = []
        for (label, calls, _), plan in zip(models(settings, problem), plans):
            run = ws.run(*plan)
            samples = ws.samples(problem, _slug(label), run, settings["trajectories"], settings.get("sample_seed", 1))
            report, metrics = ws.evaluate(data, samples)
            field = ws.field_scores(data, samples)
            speed = ws.seconds_per_frame(problem, run, timing.get("batch", 64), timing.get("frames", 2))
            rows.append({
                "model": label, "network_calls_per_frame": calls, "run": str(run), "samples": str(samples),
                "wct": report["wct"], "wct_relative": report["wct_relative"], "mass_w2": report["mass_w2"],
                "mass_w2_relative": report["mass_w2_relative"], "final_std_ratio": report.get("final_std_ratio"),
                "max_abs_over_truth": largest_value(samples, "generated") / largest_value(data, "test"),
                **field_ratios(field), "field_scores": field,
                "seconds_per_frame": speed["seconds_per_frame"], "timing_batch": speed["batch"],
                "train_steps": plan.config.train.steps, "train_batch": plan.config.train.batch_size,
                "train_seconds": training_seconds(run, plan.config.train.batch_size),
                "tau_generated": metrics.tau_generated.tolist(), "tau_reference": metrics.tau_reference.tolist(),
            })
        sl_time = rows[0]["seconds_per_frame"]
        for row in rows:
            row["time_over_sl"] = row["seconds_per_frame"] / sl_time
        results[problem] = rows
    return results


def largest_value(path: Path, split: str) -> float:
    """The largest |value| in a split of a trajectory file (read chunk by chunk): a diverged rollout's grows
    far beyond the truth's."""
    return max(float(np.abs(chunk).max()) for chunk in TrajectoryFile(path).iter_chunks(split, 64))


def ardm_recipe(settings: dict[str, Any], problem: str | None) -> list[str]:
    """The overrides that make the ARDM of a problem (those every ARDM row shares, by-steps ones aside)."""
    return [*settings.get("ardm_overrides", []), *(settings.get("ardm_overrides_by_problem") or {}).get(problem, [])]


def _last_of_each_key(overrides: list[str]) -> list[str]:
    """key=value overrides as they act: a later value of a key replaces an earlier one, in its place (keys
    read as `stochlift.config.apply_overrides` reads them, spaces around them ignored)."""
    keys = [item.partition("=")[0].strip() for item in overrides]
    last = {key: i for i, key in enumerate(keys)}
    return [item for i, (key, item) in enumerate(zip(keys, overrides)) if last[key] == i]


def _markdown(results: dict[str, list[dict[str, Any]]], settings: dict[str, Any]) -> str:
    trajectories = settings["trajectories"]
    lines = [
        f"wct and mass_w2 (the paper's WCT and WIM): Wasserstein-2 distances of crossing time and integrated mass, "
        f"{trajectories} generated vs the held-out test trajectories (lower is better); _relative: divided by the "
        "truth's spread (docs/glossary.md); \"max / truth\": "
        "the largest |value| generated over the truth's (a diverged rollout's grows far beyond 1). "
        "Paper: the paper's Table 1 (its 512 samples, full-size data), for the ranking, not the absolute values.",
        "",
        "Field scores (stochlift.metrics.field_scores, frames 1 to T-1): each the mean over time of its ratio to "
        "the same score between two halves of the truth (1 = as close as a second sample of the truth).",
        "",
        "Budget: every model trains the same steps at the same batch; \"train min\" is its measured training time "
        "(from its train_log.csv, in the process that trained it).",
        "",
        *(f"- ARDM on {problem} ({settings['base'].format(problem=problem)} with): "
          f"`{' '.join(_last_of_each_key(ardm_recipe(settings, problem)))}`" for problem in results),
        "",
        "| problem | model | calls/frame | wct | wct_relative | mass_w2 | mass_w2_relative | "
        + " | ".join(f"{title} / floor" for _, title in FIELD_HEADLINES)
        + " | max / truth | steps | train min | s/frame | time / SL | paper WCT | paper WIM |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for problem, rows in results.items():
        for r in rows:
            key = "SL" if r["model"] == "SL" else r["network_calls_per_frame"]
            paper = PAPER_TABLE1.get(problem, {}).get(key, (None, None))
            cells = [problem, r["model"], str(r["network_calls_per_frame"]), _e(r["wct"]), _f(r["wct_relative"]),
                     _e(r["mass_w2"]), _f(r["mass_w2_relative"]),
                     *(_f(r.get(f"{name}_ratio")) for name, _ in FIELD_HEADLINES),
                     _f(r.get("max_abs_over_truth")), str(r.get("train_steps", "n/a")),
                     _minutes(r.get("train_seconds")), _e(r["seconds_per_frame"]),
                     f"{r['time_over_sl']:.1f}x",
                     _e(paper[0]), _e(paper[1])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _e(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _minutes(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds / 60:.1f}"


# the table's scores, lower is better: (key in a row, name in the findings)
SCORES = (("wct", "wct"), ("mass_w2", "mass_w2"))
# an ARDM whose generated fields reach this many times the truth's largest |value| has diverged
DIVERGED = 3.0


def _findings(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Per problem: the paper's claim against the largest S, then per score whether SL beats every ARDM
    and the fewest steps at which an ARDM catches up (scores at least as low as SL's), then any ARDM that
    diverged."""
    findings = []
    for problem, rows in results.items():
        sl, ardm = rows[0], sorted(rows[1:], key=lambda r: r["network_calls_per_frame"])
        if not ardm:
            continue
        last = ardm[-1]
        beats = {name: sl[key] <= last[key] for key, name in SCORES if _known(sl, last, key)}
        answers = ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in beats.items())
        verdict = "reproduces" if all(beats.values()) else "does not reproduce"
        findings.append(
            f"{problem}: SL (S = 1) wct {sl['wct']:.3g} vs {last['model']} {last['wct']:.3g}; mass_w2 "
            f"{sl['mass_w2']:.3g} vs {last['mass_w2']:.3g}. This run {verdict} the paper's claim SL <= ARDM "
            f"(S = {last['network_calls_per_frame']}) ({answers}). {last['model']} takes "
            f"{last['time_over_sl']:.1f}x SL's time per frame.")
        for key, name in (*SCORES, *_extra_scores(sl)):
            caught = [r for r in ardm if _known(sl, r, key) and r[key] <= sl[key]]
            if not caught:
                best = min((r for r in ardm if r.get(key) is not None), key=lambda r: r[key], default=None)
                closest = f"; the closest is {best['model']} ({best[key]:.3g} against {sl[key]:.3g})" if best else ""
                findings.append(f"{problem}, {name}: SL wins against every ARDM{closest}.")
            else:
                first = caught[0]
                findings.append(f"{problem}, {name}: the ARDM catches up at S = {first['network_calls_per_frame']} "
                                f"({first[key]:.3g} against SL's {sl[key]:.3g}, at {first['time_over_sl']:.1f}x SL's "
                                f"time per frame); ARDM rows at least as good as SL: "
                                f"{', '.join(r['model'] for r in caught)}.")
        diverged = [r["model"] for r in ardm if (r.get("max_abs_over_truth") or 0) > DIVERGED]
        if diverged:
            findings.append(f"{problem}: diverged (fields beyond {DIVERGED:g}x the truth's largest value): "
                            f"{', '.join(diverged)}.")
    return findings


def _known(a: dict[str, Any], b: dict[str, Any], key: str) -> bool:
    return a.get(key) is not None and b.get(key) is not None


def _extra_scores(row: dict[str, Any]) -> list[tuple[str, str]]:
    """The field scores the rows carry, as (key, name) like SCORES."""
    return [(f"{name}_ratio", f"{title} / floor") for name, title in FIELD_HEADLINES if f"{name}_ratio" in row]


def training_set_scores(data: Path) -> dict[str, Any]:
    """wct and mass_w2 of the data set's own training trajectories scored as if generated: what a perfect
    generator's samples of that number score against the test set, the floor of the table's scores."""
    report, _ = evaluate_files(data, data, generated_split="train")
    return {"trajectories": TrajectoryFile(data).splits["train"],
            **{key: report[key] for key in ("wct", "wct_relative", "mass_w2", "mass_w2_relative")}}


def run_table1(ws: Workspace, settings: dict[str, Any], folder: Path) -> ExperimentResult:
    results = evaluate_models(ws, settings)
    save_table1_plot(folder / "table1.png", results)
    numbers: dict[str, Any] = {p: [{k: v for k, v in r.items() if not k.startswith("tau_")} for r in rows]
                               for p, rows in results.items()}
    floors = {problem: training_set_scores(ws.data(problem, settings["data_preset"], **settings.get("data_shrink", {})))
              for problem in results}
    numbers["training_set"] = floors
    findings = _findings(results) + [
        f"{problem}: the {f['trajectories']} training trajectories themselves, scored as if generated, give "
        f"wct_relative {f['wct_relative']:.2f} and mass_w2_relative {f['mass_w2_relative']:.2f}: about what a "
        "perfect generator's samples of that size score here." for problem, f in floors.items()]
    return ExperimentResult(table=_markdown(results, settings), numbers=numbers,
                            figures=["table1.png"], findings=findings)


def run_figure3(ws: Workspace, settings: dict[str, Any], folder: Path) -> ExperimentResult:
    """Rollouts of SL and the ARDMs from the shared initial condition, and their crossing-time histograms."""
    table = {**load_settings(settings.get("models_from", "table1"), settings["scale"])}
    results = evaluate_models(ws, table)
    shown = set(settings.get("shown_models", []))
    figures, numbers = [], {}
    for problem, rows in results.items():
        picked = [r for r in rows if not shown or r["model"] in shown]
        data = ws.data(problem, table["data_preset"], **table.get("data_shrink", {}))
        truth = TrajectoryFile(data).read("test", slice(0, 1))[0, :, 0]
        generated = [TrajectoryFile(r["samples"]).read("generated", slice(0, 1))[0, :, 0] for r in picked]
        save_rollout_rows(folder / f"figure3_{problem}_rollouts.png", problem,
                          [("truth", truth)] + [(r["model"], g) for r, g in zip(picked, generated)],
                          frames=settings.get("frames"))
        save_crossing_histograms(folder / f"figure3_{problem}_crossing.png", np.asarray(rows[0]["tau_reference"]),
                                 [(r["model"], np.asarray(r["tau_generated"]), r["wct"]) for r in picked])
        figures += [f"figure3_{problem}_rollouts.png", f"figure3_{problem}_crossing.png"]
        numbers[problem] = {r["model"]: {"wct": r["wct"], **crossing_summary(np.asarray(r["tau_generated"])),
                                         "sliced_w2_ratio": r.get("sliced_w2_ratio")} for r in picked}
        numbers[problem]["truth"] = crossing_summary(np.asarray(rows[0]["tau_reference"]))
    lines = ["Crossing times in units of the horizon; \"late\": the share after 0.8 of it, \"never\": the share that "
             "never crosses within it (counted as 1.0 by wct).", "",
             "| problem | model | wct | mean crossing time | std | late | never | sliced W2 / floor |",
             "|---|---|---|---|---|---|---|---|"]
    for problem, by_model in numbers.items():
        for model, v in by_model.items():
            lines.append(f"| {problem} | {model} | {_e(v.get('wct'))} | {v['tau_mean']:.3f} | {v['tau_std']:.3f} | "
                         f"{v['late_share']:.3f} | {v['never_share']:.3f} | {_f(v.get('sliced_w2_ratio'))} |")
    return ExperimentResult(table="\n".join(lines), numbers=numbers, figures=figures)


def crossing_summary(tau: np.ndarray) -> dict[str, float]:
    """Mean and std of crossing times and the two shares that make their tail: after 0.8 of the horizon,
    and never within it (1.0)."""
    return {"tau_mean": float(np.mean(tau)), "tau_std": float(np.std(tau)), "late_share": float(np.mean(tau > 0.8)),
            "never_share": float(np.mean(tau >= 1.0))}
