"""`stochlift experiment NAME`: regenerate the paper's evidence (Table 1, Figures 3 and 4, Appendices B, C).

Each experiment is a function of a Workspace (shared data, runs, samples) and its settings, read from
configs/experiments/NAME.yaml at one scale ("quick": 2 CPU cores, "paper": a GPU). It returns a table,
the numbers and the figures, which `run_experiment` writes to <out>/<scale>/<NAME>/ as results.md,
results.json and PNGs, together with the command, the machine, the date and the time it took.
"""

from __future__ import annotations

import datetime
import importlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stochlift.apps.experiments.workspace import Workspace
from stochlift.config import EXPERIMENT_DIR
from stochlift.errors import StochliftError
from stochlift.io import atomic_path, write_json


@dataclass
class ExperimentResult:
    """What an experiment found: a markdown table, every number, its figures, a verdict in words."""

    table: str
    numbers: dict[str, Any]
    figures: list[str] = field(default_factory=list)  # file names inside the experiment's folder
    findings: list[str] = field(default_factory=list)  # plain-language conclusions, one per line


Experiment = Callable[[Workspace, dict[str, Any], Path], ExperimentResult]


# experiment name -> "module:function" inside stochlift.apps.experiments (imported only when run)
EXPERIMENTS = {
    "table1": "table1:run_table1",
    "figure3": "table1:run_figure3",
    "label_dim": "label_dim:run",
    "no_conditioning": "no_conditioning:run",
    "nearest_neighbour": "nearest_neighbour:run",
    "lipschitz": "lipschitz:run",
}


# experiment name -> its planner: the runs it trains, known before any of them is trained (for --jobs)
PLANNERS = {
    "table1": "table1:planned_runs",
    "figure3": "table1:planned_figure3_runs",
    "label_dim": "label_dim:planned_runs",
    "no_conditioning": "no_conditioning:planned_runs",
    "nearest_neighbour": "nearest_neighbour:planned_runs",
}


def _implementation(name: str, registry: dict[str, str] = EXPERIMENTS) -> Callable[..., Any]:
    if name not in registry:
        raise StochliftError(f"experiment {name!r} has settings but no implementation; known: {sorted(EXPERIMENTS)}")
    module, function = registry[name].split(":")
    return getattr(importlib.import_module(f"stochlift.apps.experiments.{module}"), function)


def experiment_names() -> list[str]:
    return sorted(p.stem for p in EXPERIMENT_DIR.glob("*.yaml"))


def load_settings(name: str, scale: str) -> dict[str, Any]:
    """The settings of one experiment at one scale, from configs/experiments/NAME.yaml."""
    path = EXPERIMENT_DIR / f"{name}.yaml"
    if not path.is_file():
        raise StochliftError(f"unknown experiment {name!r}; choose from {experiment_names()}")
    raw = yaml.safe_load(path.read_text()) or {}
    if scale not in raw:
        scales = [k for k in raw if k != "description"]
        raise StochliftError(f"experiment {name!r} has no scale {scale!r}; it has {scales}")
    return {"description": raw.get("description", ""), "scale": scale, **raw[scale]}


def run_experiment(name: str, *, scale: str = "quick", out: str | os.PathLike = "results", progress: bool = True,
                   command: str | None = None, jobs: int = 1) -> Path:
    """Run (or continue) one experiment; returns its results folder <out>/<scale>/<name>.

    jobs > 1 first trains the experiment's models that many side by side (separate processes), which
    pays on a GPU, where one small model leaves it mostly idle; the results are the same.
    """
    if jobs < 1:
        raise StochliftError(f"jobs must be at least 1, got {jobs}")
    settings = load_settings(name, scale)
    experiment: Experiment = _implementation(name)
    root = Path(out) / scale
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(root / "_work", progress=progress)
    began = time.perf_counter()
    if jobs > 1 and name in PLANNERS:
        workspace.train_parallel(_implementation(name, PLANNERS)(workspace, settings), jobs)
    result = experiment(workspace, settings, folder)
    seconds = time.perf_counter() - began
    write_results(folder, name, scale, settings, result, seconds, workspace.seconds, command or " ".join(sys.argv))
    return folder


def write_results(folder: Path, name: str, scale: str, settings: dict[str, Any], result: ExperimentResult,
                  seconds: float, stages: dict[str, float], command: str) -> None:
    """folder/results.json (every number, settings and provenance) and folder/results.md (table, findings,
    command, machine, date, time taken)."""
    from stochlift.apps.bench import machine

    provenance: dict[str, Any] = {
        "experiment": name, "scale": scale, "command": command, "machine": machine(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seconds_this_invocation": seconds, "seconds_by_stage_this_invocation": stages,
    }
    write_json(folder / "results.json", {**provenance, "settings": settings, "numbers": result.numbers,
                                         "findings": result.findings, "figures": result.figures})
    m = provenance["machine"]
    lines = [
        f"# Experiment `{name}` ({scale} scale)", "", settings.get("description", "").strip(), "",
        f"- command: `{command}`",
        f"- machine: {m.get('gpu') or m.get('cpu')}, torch {m.get('torch')}, {m.get('cpu_count', '?')} CPU cores",
        f"- date: {provenance['date']}",
        f"- wall time of this invocation: {seconds / 60:.1f} min "
        f"({', '.join(f'{k} {v / 60:.1f} min' for k, v in stages.items()) or 'everything reused'})", "",
        result.table, "",
    ]
    if result.findings:
        lines += ["## Findings", "", *[f"- {f}" for f in result.findings], ""]
    lines += [f"![{f}]({f})" for f in result.figures]
    with atomic_path(folder / "results.md") as tmp:
        tmp.write_text("\n".join(lines).rstrip() + "\n")
