"""stochlift: Stochastic Lifting, one network call per frame generation of stochastic trajectories.

The public API, importable from here (each name is imported on first use, so `import stochlift` is cheap):

    import stochlift
    gen = stochlift.fit(X, budget="10m")                    # your own trajectories X [N, T, *state]
    ens = gen.sample(x0, frames=50, n=256)
    print(stochlift.score(ens, truth).summary())            # every score over its truth-vs-truth floor
    stochlift.make_wave_dataset("wave.h5")
    config = stochlift.apply_overrides(stochlift.load_config("wave-quick"), ["data.path=wave.h5"])
    result = stochlift.train(config, "runs/wave")
    stochlift.sample_to_file("runs/wave", "samples.h5", trajectories=256)
    pipe = stochlift.SamplingPipeline.from_run("runs/wave")  # built once: pipe(8) in memory, pipe.to_file(...)
    wave = stochlift.load_pretrained("wave-quick")          # shipped: no training
    stochlift.rollout(wave.model, wave.initial_frames(8), 64)
    report, metrics = stochlift.evaluate_files("wave.h5", "samples.h5", "metrics.json")

Layers (each imports only the ones below it; `lint-imports` checks this, see pyproject.toml):
    apps        cli, demo, report, plots, bench, experiments, selection
    evaluation  evaluate_files, forecasting, the BAIR video protocol
    baselines   the ARDM diffusion baseline, Appendix B's interpolant
    lifting     the method: generator contract, training, sampling
    problems    what each kind of data means (wave, flow, video, generic)  |  models: backbones
    metrics     scores on arrays and streamed files
    data        trajectory files, The Well, simulators, video import
    config, registry, io, optional, progress, errors
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

try:
    __version__ = importlib.metadata.version("stochlift")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

_EXPORTS = {
    # configuration and registries
    "RunConfig": "stochlift.config", "load_config": "stochlift.config", "apply_overrides": "stochlift.config",
    "save_config": "stochlift.config", "METHODS": "stochlift.config", "CONSTRAINTS": "stochlift.config",
    "list_presets": "stochlift.config", "show_config": "stochlift.lifting.preview",
    "StochliftError": "stochlift.errors",
    # data
    "TrajectoryFile": "stochlift.data.trajectories", "TrajectoryMeta": "stochlift.data.trajectories",
    "TrajectoryWriter": "stochlift.data.trajectories", "write_trajectories": "stochlift.data.trajectories",
    "make_wave_dataset": "stochlift.data.datasets", "make_flow_dataset": "stochlift.data.flow_datasets",
    # problems and backbones
    "PROBLEMS": "stochlift.problems", "Problem": "stochlift.problems", "get_problem": "stochlift.problems",
    "BACKBONES": "stochlift.models", "BackboneSpec": "stochlift.models",
    # the method
    "Generator": "stochlift.lifting.generator", "build_model": "stochlift.lifting.generator",
    "LiftedModel": "stochlift.lifting.model", "ArraySource": "stochlift.lifting.pairs",
    "train": "stochlift.lifting.train", "train_or_resume": "stochlift.lifting.train",
    "TrainResult": "stochlift.lifting.train",
    "load_run": "stochlift.lifting.runs", "run_finished": "stochlift.lifting.runs",
    "load_pretrained": "stochlift.lifting.pretrained", "pretrained_names": "stochlift.lifting.pretrained",
    "rollout": "stochlift.lifting.rollout", "rollout_batches": "stochlift.lifting.rollout",
    "rollout_chunks": "stochlift.lifting.rollout", "sample_to_file": "stochlift.lifting.rollout",
    "FastOptions": "stochlift.lifting.fast", "SamplingPipeline": "stochlift.lifting.sampling",
    "fit": "stochlift.lifting.fit", "score": "stochlift.lifting.fit", "FittedGenerator": "stochlift.lifting.fit",
    "recipe_for_file": "stochlift.lifting.recipe", "AutoRecipe": "stochlift.lifting.recipe",
    # evaluation
    "evaluate_files": "stochlift.evaluation.evaluate", "forecast_scores": "stochlift.evaluation.forecast",
    # applications
    "build_report": "stochlift.apps.report", "run_demo": "stochlift.apps.demo",
    "export_trajectories": "stochlift.apps.export",
    "run_experiment": "stochlift.apps.experiments", "run_bench": "stochlift.apps.bench",
    "train_best_of": "stochlift.apps.selection", "GLOSSARY": "stochlift.apps.glossary",
}

__all__ = [
    "BACKBONES",
    "CONSTRAINTS",
    "GLOSSARY",
    "METHODS",
    "PROBLEMS",
    "ArraySource",
    "AutoRecipe",
    "BackboneSpec",
    "FastOptions",
    "FittedGenerator",
    "Generator",
    "LiftedModel",
    "Problem",
    "RunConfig",
    "SamplingPipeline",
    "StochliftError",
    "TrainResult",
    "TrajectoryFile",
    "TrajectoryMeta",
    "TrajectoryWriter",
    "__version__",
    "apply_overrides",
    "build_model",
    "build_report",
    "evaluate_files",
    "export_trajectories",
    "fit",
    "forecast_scores",
    "get_problem",
    "list_presets",
    "load_config",
    "load_pretrained",
    "load_run",
    "make_flow_dataset",
    "make_wave_dataset",
    "pretrained_names",
    "recipe_for_file",
    "rollout",
    "rollout_batches",
    "rollout_chunks",
    "run_bench",
    "run_demo",
    "run_experiment",
    "run_finished",
    "sample_to_file",
    "save_config",
    "score",
    "show_config",
    "train",
    "train_best_of",
    "train_or_resume",
    "write_trajectories",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'stochlift' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # what type checkers and IDEs see
    from stochlift.apps.bench import run_bench
    from stochlift.apps.demo import run_demo
    from stochlift.apps.experiments import run_experiment
    from stochlift.apps.export import export_trajectories
    from stochlift.apps.glossary import GLOSSARY
    from stochlift.apps.report import build_report
    from stochlift.apps.selection import train_best_of
    from stochlift.config import (
        CONSTRAINTS,
        METHODS,
        RunConfig,
        apply_overrides,
        list_presets,
        load_config,
        save_config,
    )
    from stochlift.data.datasets import make_wave_dataset
    from stochlift.data.flow_datasets import make_flow_dataset
    from stochlift.data.trajectories import TrajectoryFile, TrajectoryMeta, TrajectoryWriter, write_trajectories
    from stochlift.errors import StochliftError
    from stochlift.evaluation.evaluate import evaluate_files
    from stochlift.evaluation.forecast import forecast_scores
    from stochlift.lifting.fast import FastOptions
    from stochlift.lifting.fit import FittedGenerator, fit, score
    from stochlift.lifting.generator import Generator, build_model
    from stochlift.lifting.model import LiftedModel
    from stochlift.lifting.pairs import ArraySource
    from stochlift.lifting.pretrained import load_pretrained, pretrained_names
    from stochlift.lifting.preview import show_config
    from stochlift.lifting.recipe import AutoRecipe, recipe_for_file
    from stochlift.lifting.rollout import rollout, rollout_batches, rollout_chunks, sample_to_file
    from stochlift.lifting.runs import load_run, run_finished
    from stochlift.lifting.sampling import SamplingPipeline
    from stochlift.lifting.train import TrainResult, train, train_or_resume
    from stochlift.models import BACKBONES, BackboneSpec
    from stochlift.problems import PROBLEMS, Problem, get_problem
