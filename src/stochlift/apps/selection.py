"""Best of several training seeds, chosen on the validation split.

A Flow rollout composes ~50 network calls, so the small weight differences between training seeds move the
breakthrough times as much as any recipe change does (benchmarks/results/flow_recipe_search.md, lessons 5, 8
and 15). Training a few seeds side by side and keeping the one whose samples score best against the held-out
validation trajectories is ordinary model selection: the test split, where the reported scores come from,
is never looked at. The seeds train in separate processes (one thread each on a 2-core machine), so two
seeds cost little more wall time than one.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from stochlift.config import RunConfig, apply_overrides, load_config
from stochlift.errors import StochliftError
from stochlift.evaluation.evaluate import evaluate_files
from stochlift.io import write_json
from stochlift.lifting.checkpoint import CHECKPOINT_NAME, checkpoint_step
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.runs import run_finished
from stochlift.lifting.train import train_or_resume
from stochlift.problems import get_problem
from stochlift.progress import tqdm

SELECTION_FILE = "selection.json"


@dataclass
class Selection:
    """The seeds tried, each one's validation scores, and the run kept."""

    chosen: Path
    seed: int
    scores: dict[int, dict[str, float]]
    split: str
    trajectories: int

    def to_dict(self) -> dict:
        keys = [k for k in next(iter(self.scores.values()), {}) if k != "score"]
        return {**asdict(self), "chosen": self.chosen.name, "scores": {str(k): v for k, v in self.scores.items()},
                "score": f"mean of {' and '.join(keys)} against the {self.split} split (lower is better)"}

    @classmethod
    def read(cls, out: Path) -> Selection:
        """The selection saved in out/selection.json (its run found beside it, wherever `out` is now)."""
        saved = json.loads((out / SELECTION_FILE).read_text())
        return cls(chosen=seed_run(out, int(saved["seed"])), seed=int(saved["seed"]), split=saved["split"],
                   trajectories=int(saved["trajectories"]), scores={int(k): v for k, v in saved["scores"].items()})


def seed_run(out: Path, seed: int) -> Path:
    return out / f"seed{seed}"


def train_best_of(
    config: RunConfig,
    out: str | os.PathLike,
    seeds: Sequence[int],
    *,
    split: str = "valid",
    trajectories: int = 192,
    jobs: int | None = None,
    progress: bool = True,
) -> Selection:
    """Train `config` once per seed into out/seed<K> (side by side, `jobs` processes; default one per seed
    up to the cores), roll each out `trajectories` times from the first frame of `split`, score the samples
    against that split's trajectories, and keep the best. Writes out/selection.json; calling again reuses
    finished runs and scores, and an interrupted seed resumes from its checkpoint."""
    out, seeds = Path(out), list(dict.fromkeys(seeds))
    if not seeds:
        raise StochliftError("train_best_of needs at least one seed")
    saved = out / SELECTION_FILE
    if saved.is_file():
        selection = Selection.read(out)
        if sorted(selection.scores) != sorted(seeds) or selection.split != split:
            raise StochliftError(f"{saved} chose among seeds {sorted(selection.scores)} on {selection.split!r}, not "
                                 f"{sorted(seeds)} on {split!r}; choose another --out")
        return selection
    train_side_by_side([(apply_overrides(config, [f"train.seed={seed}"]), seed_run(out, seed)) for seed in seeds],
                       jobs=jobs, progress=progress)
    scores = {seed: validation_scores(seed_run(out, seed), split, trajectories, seed=seed + 1, progress=progress)
              for seed in seeds}
    best = min(seeds, key=lambda seed: scores[seed]["score"])
    selection = Selection(chosen=seed_run(out, best), seed=best, scores=scores, split=split, trajectories=trajectories)
    write_json(saved, selection.to_dict())
    return selection


def validation_scores(run: Path, split: str, trajectories: int, *, seed: int,
                      progress: bool = True) -> dict[str, float]:
    """The run's samples from the first frame of `split` scored against that split (with the run's own
    constraint, as the demo samples); kept in run/<split>-samples.h5 and run/<split>-metrics.json."""
    if not (run / "config.yaml").is_file():
        raise StochliftError(f"{run} holds no trained run (no config.yaml)")
    data_path = load_config(run / "config.yaml").data.path
    if data_path is None:
        raise StochliftError(f"{run} records no data file to score its samples against")
    data = Path(data_path)
    samples, metrics = run / f"{split}-samples.h5", run / f"{split}-metrics.json"
    if not samples.is_file():
        sample_to_file(run, samples, trajectories=trajectories, initial=data, initial_split=split, seed=seed,
                       progress=progress)
    report, _ = evaluate_files(data, samples, metrics, reference_split=split)
    keys = get_problem(report["problem"]).selection_keys
    missing = [key for key in keys if report.get(key) is None]
    if missing or not keys:
        raise StochliftError(f"choosing a seed needs {', '.join(keys) or 'scores the problem names'}, and {data} "
                             f"({report['problem']} data, {split} split, {report.get('n_reference')} trajectories) "
                             f"gives no {', '.join(missing) or 'such scores'}: the scores need a spread of the true "
                             "quantities (wave and flow data)")
    scores = {key: float(report[key]) for key in keys}
    return {**scores, "score": sum(scores.values()) / len(scores)}


def train_side_by_side(plans: Sequence[tuple[RunConfig, Path]], *, jobs: int | None = None,
                       threads: int | None = None, progress: bool = True) -> None:
    """Train (or resume) the unfinished (config, run_dir) plans in `jobs` processes at once (default: one
    per core), `threads` torch threads each (default: the cores shared out); one progress bar counts the
    checkpointed steps of all of them. Each run is trained by `train_or_resume`, under its lock."""
    todo = [(config, Path(run)) for config, run in plans if not run_finished(run)]
    if not todo:
        return
    jobs = max(1, min(jobs or torch.get_num_threads(), len(todo)))
    if jobs == 1:
        for config, run in todo:
            train_or_resume(config, run, progress=progress)
        return
    threads = threads or max(1, torch.get_num_threads() // jobs)  # never more threads than cores in all
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    total = sum(config.train.steps for config, _ in todo)
    with ProcessPoolExecutor(jobs, mp_context=context) as pool, \
            tqdm(total=total, desc=f"train {len(todo)} runs side by side", unit="step", disable=not progress) as bar:
        futures: list[Future] = [pool.submit(_train_in_process, config, run, threads) for config, run in todo]
        while True:
            done, pending = wait(futures, timeout=5.0, return_when=FIRST_EXCEPTION)
            bar.update(sum(checkpoint_step(run / CHECKPOINT_NAME) for _, run in todo) - bar.n)
            for future in done:
                future.result()  # a failed run stops here with its own error
            if not pending:
                return


def _train_in_process(config: RunConfig, run: Path, threads: int) -> None:
    torch.set_num_threads(threads)
    train_or_resume(config, run, progress=False)

