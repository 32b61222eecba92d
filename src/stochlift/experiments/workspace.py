"""The shared work of experiments: data sets, trained runs, samples and timings, each made once and reused.

Runs are named by a label plus a hash of their full config, so two experiments that need the same model
(the table's SL row and the label-dimension sweep's d = 256, say) share one training, and a config change
can never silently reuse a stale model. Every product is written atomically and skipped when present,
and training resumes from its checkpoint, so a killed experiment continues where it stopped. Each product
is made under a file lock, so experiments run side by side share a workspace safely: the second one
waits for the first to finish a shared model, then reuses it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tqdm.auto import tqdm

from stochlift.config import RunConfig, apply_overrides, load_config
from stochlift.data.datasets import make_wave_dataset
from stochlift.data.flow_datasets import make_flow_dataset
from stochlift.errors import StochliftError
from stochlift.io import write_json
from stochlift.lifting.checkpoint import CHECKPOINT_NAME
from stochlift.lifting.fast import FastRollout
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.train import load_run, train
from stochlift.metrics.evaluate import evaluate_files
from stochlift.metrics.physics import PhysicsMetrics

DATASETS: dict[str, Callable[..., Path]] = {"wave": make_wave_dataset, "flow": make_flow_dataset}


def config_hash(config: RunConfig) -> str:
    """Eight hex digits that change whenever a config value changes. Only values off the defaults enter,
    so a config key added to stochlift later (with a default) leaves the names of existing runs alone."""
    defaults = RunConfig().to_dict()
    changed = {section: {k: v for k, v in values.items() if k not in defaults[section] or defaults[section][k] != v}
               for section, values in config.to_dict().items()}
    return hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]


def model_config(base: str, problem: str, data: Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """A training preset ("{problem}" filled in, e.g. wave-quick) with overrides, on a data file."""
    config = apply_overrides(load_config(base.format(problem=problem)), list(overrides))
    config.data.path = str(Path(data).resolve())
    return config


class PlannedRun(NamedTuple):
    """One model an experiment trains: `Workspace.run(*plan)` trains it, `train_parallel` many at once."""

    problem: str
    label: str
    config: RunConfig


@dataclass
class Workspace:
    """<root>/data, runs, samples and timings of one experiment scale."""

    root: Path
    progress: bool = True
    seconds: dict[str, float] = field(default_factory=dict)  # time spent per stage kind in this process

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Count the block's time under `name` when it made something (a reused product takes ~0 s)."""
        began = time.perf_counter()
        yield
        spent = time.perf_counter() - began
        if spent > 1.0:
            self.seconds[name] = self.seconds.get(name, 0.0) + spent

    def data(self, problem: str, preset: str, seed: int = 0, **shrink: int) -> Path:
        """The problem's data set of that preset, simulated the first time; `shrink` (trajectories,
        frames, size) makes a smaller one, for smoke tests."""
        if problem not in DATASETS:
            raise StochliftError(f"unknown problem {problem!r}; choose from {sorted(DATASETS)}")
        suffix = "".join(f"-{k}{v}" for k, v in sorted(shrink.items()))
        path = self.root / "data" / f"{problem}-{preset}-seed{seed}{suffix}.h5"
        with _exclusive(path), self._stage("data"):
            if not path.is_file():
                self._say(f"simulating the {problem} data set ({preset}) -> {path}")
                DATASETS[problem](path, preset=preset, seed=seed, progress=self.progress, **shrink)
        return path

    def run_dir(self, problem: str, label: str, config: RunConfig) -> Path:
        return self.root / "runs" / problem / f"{label}-{config_hash(config)}"

    def run(self, problem: str, label: str, config: RunConfig) -> Path:
        """A trained run of this config (trained, or resumed, when not finished yet)."""
        run_dir = self.run_dir(problem, label, config)
        with _exclusive(run_dir), self._stage("train"):
            if not _finished(run_dir):
                self._say(f"training {problem} {label} -> {run_dir}")
                train(config, run_dir, resume=(run_dir / CHECKPOINT_NAME).exists(), progress=self.progress)
        return run_dir

    def train_parallel(self, plans: Sequence[PlannedRun], jobs: int, threads: int | None = None) -> None:
        """Train the plans' unfinished runs in `jobs` processes side by side (`threads` torch threads each).

        A small model leaves a GPU mostly idle, its steps waiting on the CPU side, so several can share it.
        Each process takes its run's lock as `run` does, and the experiment afterwards finds the runs
        finished and reuses them; results are those of training one at a time.
        """
        todo = list({self.run_dir(*plan): plan for plan in plans
                     if not _finished(self.run_dir(*plan))}.values())
        if jobs < 2 or len(todo) < 2:
            return
        jobs = min(jobs, len(todo))
        threads = threads or max(1, torch.get_num_threads() // jobs)  # never more threads than cores in all
        self._say(f"training {len(todo)} runs, {jobs} side by side")
        context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        with self._stage("train"), ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = [pool.submit(_train_planned, self.root, plan, threads) for plan in todo]
            for future in tqdm(as_completed(futures), total=len(futures), desc="runs", disable=not self.progress):
                future.result()  # a failed run stops the experiment with its error

    def samples(self, problem: str, label: str, run_dir: Path, trajectories: int, seed: int,
                initial: Path | None = None) -> Path:
        """`trajectories` rollouts of a run from the first frame of the test split."""
        path = self.root / "samples" / problem / f"{run_dir.name}-n{trajectories}-seed{seed}.h5"
        with _exclusive(path), self._stage("sample"):
            if not path.is_file():
                self._say(f"sampling {trajectories} {problem} trajectories from {label}")
                sample_to_file(run_dir, path, trajectories=trajectories, seed=seed, initial=initial,
                               initial_split="test", progress=self.progress)
        return path

    def evaluate(self, data: Path, samples: Path) -> tuple[dict[str, Any], PhysicsMetrics]:
        """Crossing-time and mass scores of generated against held-out (test) trajectories."""
        return evaluate_files(data, samples)

    def seconds_per_frame(self, problem: str, run_dir: Path, batch: int, frames: int) -> dict[str, float]:
        """Wall seconds to generate one frame of one trajectory at this batch size, measured once and kept."""
        path = self.root / "timings" / problem / f"{run_dir.name}-b{batch}-f{frames}.json"
        if path.is_file():
            return json.loads(path.read_text())
        from stochlift.bench import (
            time_rollout,  # bench pulls in the device probes; only needed here
        )

        model, config, _ = load_run(run_dir)
        engine = FastRollout(model, tuple(config.model.frame_shape))
        timed = time_rollout(engine, batch, frames, repeats=3)
        result = {"seconds_per_frame": timed["seconds"] / (batch * frames), "batch": batch, "frames": frames,
                  "network_calls_per_frame": getattr(model, "steps", 1), "torch_threads": torch.get_num_threads()}
        write_json(path, result)
        return result

    def _say(self, message: str) -> None:
        if self.progress:
            print(f"[experiment] {message}", flush=True)


def _train_planned(root: Path, plan: PlannedRun, threads: int) -> Path:
    torch.set_num_threads(threads)
    return Workspace(root, progress=False).run(*plan)


@contextmanager
def _exclusive(product: Path) -> Iterator[None]:
    """Hold .<product>.lock while making a product: another process making the same one waits here."""
    lock = product.with_name(f".{product.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _finished(run_dir: Path) -> bool:
    log = run_dir / "train_log.json"
    if not log.is_file():
        return False
    saved = json.loads(log.read_text())
    return saved.get("step") == saved.get("steps")
