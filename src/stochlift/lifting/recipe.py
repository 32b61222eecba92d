"""The automatic recipe: a training config chosen from the data alone (and an optional wall-clock budget).

`summarize` (stochlift.lifting.data_summary) looks at a training set once (shape, size, shared start, value
range, how much a second frame of history helps a linear one-step predictor, how many directions the one-step
noise spans) and `auto_recipe` maps that summary to a RunConfig with one reason per choice. `check_recipe`
names the settings that cannot work (no label, warm-up >= steps, a budget too small for the data);
`recipe_for_file` / `recipe_for_source` do all of it for `stochlift train` and `stochlift.fit`. The rules and
the experiments they come from are in docs/auto_recipe.md (benchmarks/recipe_rules.py).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from stochlift.config import DataConfig, ModelConfig, RunConfig, TrainConfig, apply_overrides
from stochlift.errors import StochliftError
from stochlift.lifting.data_summary import (  # the summary, here with the rules that read it
    HISTORY_GAIN,
    DataSummary,
    NonFiniteData,
    _window_from_gains,
    open_split,
    summarize,
)
from stochlift.lifting.data_summary import MAX_WINDOW as MAX_WINDOW
from stochlift.lifting.data_summary import summarize_file as summarize_file
from stochlift.lifting.pairs import FrameSource

# ---------------------------------------------------------------------------------------- the rules

BACKBONE_FOR_RANK = {0: "mlp", 1: "unet1d", 2: "unet"}
MLP = {"lr": 5e-3, "batch": 256, "weight_decay": 0.0, "hidden": 128, "layers": 3, "epochs": 50,
       "min_steps": 1500, "max_steps": 20000, "trajectories_per_label": 4}
UNET = {"lr": 3e-3, "batch": 32, "weight_decay": 1e-4, "epochs": 12, "min_steps": 2000, "max_steps": 6000}
MIN_LABEL_DIM, MAX_LABEL_DIM = 64, 1024
WARMUP_SHARE, MAX_WARMUP = 0.05, 200
# of a wall-clock budget spent on steps as timed on random data: the training loop (data, logging, checkpoints)
# ran 1.27x slower than that timing (an MLP on 2 cores), and start-up (imports, the data scan) takes ~20 s
BUDGET_SHARE = 0.75
MIN_BUDGET_STEPS = 20  # a budget affording fewer training steps is refused: nothing would be learnt
RECIPE_FILE = "recipe.json"  # a run's automatic recipe: its choices, reasons and warnings


@dataclass(frozen=True)
class Choice:
    """One chosen setting, its value and why."""

    setting: str
    value: Any
    reason: str


@dataclass
class _Recipe:
    model: ModelConfig
    train: TrainConfig
    choices: list[Choice] = field(default_factory=list)

    def choose(self, setting: str, value: Any, reason: str) -> None:
        section, _, key = setting.partition(".")
        target: ModelConfig | TrainConfig = self.model if section == "model" else self.train
        if key.startswith("options."):
            self.model.options[key.removeprefix("options.")] = value  # only the model has options
        else:
            setattr(target, key, value)
        self.choices.append(Choice(setting, value, reason))


def _pow2(x: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1.0, x))))


def auto_recipe(summary: DataSummary, budget_seconds: float | None = None,
                seconds_per_step: float | None = None) -> tuple[RunConfig, list[Choice]]:
    """A RunConfig for this data (and budget), with the reason for every choice (see docs/auto_recipe.md).

    With a budget, the steps are what fits in BUDGET_SHARE of it at `seconds_per_step` (measured on the
    machine for this recipe's model: `measure_seconds_per_step`), at most what the data needs.
    """
    if budget_seconds is not None and (seconds_per_step is None or seconds_per_step <= 0):
        raise StochliftError("a budget needs the measured seconds per training step (measure_seconds_per_step)")
    r = _Recipe(ModelConfig(options={}), TrainConfig())
    backbone = BACKBONE_FOR_RANK.get(summary.spatial_rank)
    if backbone is None:
        raise StochliftError(f"frames of shape {list(summary.frame_shape)} have no backbone: vectors [D], "
                             "1-D fields [C, X] and 2-D fields [C, H, W] are supported")
    kind = "vectors" if backbone == "mlp" else f"{summary.spatial_rank}-D fields"
    r.choose("model.backbone", backbone, f"the default network for {kind}")
    _choose_window(r, summary)
    _choose_label_dim(r, summary, backbone)
    rules = MLP if backbone == "mlp" else UNET
    _choose_network(r, summary, backbone)
    _choose_optimiser(r, rules, backbone)
    _choose_steps(r, summary, rules, budget_seconds, seconds_per_step)
    config = RunConfig(data=DataConfig(), model=r.model, train=r.train).validate()
    return config, r.choices


def _choose_window(r: _Recipe, s: DataSummary) -> None:
    window = _window_from_gains(s.history_gains)
    gains = ", ".join(f"{g:.0%}" for g in s.history_gains) or "not measured"
    r.choose("model.window", window, f"a linear one-step predictor's held-out error drops by {gains} with each "
             f"further frame of history; frames that cut it by >= {HISTORY_GAIN:.0%} are kept")
    if window > 1 and s.shared_start:
        r.choose("model.history_padding", "zeros", "zero frames before x_0 tell the shared start apart from "
                 "a slow state (Wave recipe search)")
        r.choose("train.start_weight", 8.0, "from a shared start the first m - 1 steps create the spread from "
                 "few pairs: drawn 8x as often")


SPATIAL_NOISE_SHARE = 0.25  # a one-step noise of at least this share of a field's points gets label planes


def _choose_label_dim(r: _Recipe, s: DataSummary, backbone: str) -> None:
    n = s.trajectories
    if backbone == "mlp":
        d, why = n / MLP["trajectories_per_label"], (
            f"{s.trajectories} trajectories / {MLP['trajectories_per_label']}: the MLP then fits its labels only in "
            "part (a smaller d under-fits and narrows the ensemble, a larger one memorises and narrows it too)")
    else:
        d, why = 2 * n, (f"2 x the {n} trajectories: the U-Net's linear label embedding spreads the first step "
                         "right at d ~ 2N (Appendix B: variance ratio N / (d - N - 1))")
    d = min(max(_pow2(d), MIN_LABEL_DIM), MAX_LABEL_DIM)
    pixels = math.prod(s.frame_shape[1:])
    if backbone != "mlp" and s.noise_rank is not None and s.noise_rank >= SPATIAL_NOISE_SHARE * pixels:
        planes = max(1, round(d / pixels))
        r.choose("model.label_dim", planes * pixels, f"{why}, as {planes} label plane(s) of the frame's {pixels} "
                 f"points (model.options.label_planes)")
        r.choose("model.options.label_planes", planes, f"the one-step noise spans {s.noise_rank} of {pixels} "
                 f"directions (>= {SPATIAL_NOISE_SHARE:.0%}: noise independent from point to point, as in KPZ): a "
                 "label laid out over the field lets each point draw its own noise, which FiLM, moving whole "
                 "channels, cannot (kpz1d: sliced W2 3.2x -> 1.3x the floor, benchmarks/results/external_problems.md)")
        return
    r.choose("model.label_dim", d, f"{why}; a power of 2 in [{MIN_LABEL_DIM}, {MAX_LABEL_DIM}]")


def _choose_network(r: _Recipe, s: DataSummary, backbone: str) -> None:
    r.choose("model.output", "residual", "x_t + s R: the network learns the frame-to-frame change at its own "
             "scale (Corollary 1)")
    if s.unit_range:
        r.choices.append(Choice("model.loss", "l2", "values lie in [0, 1]: model.loss=bce with model.output=direct "
                                "may suit binary data (not chosen automatically)"))
    if backbone == "mlp":
        r.choose("model.options.hidden", MLP["hidden"], "MLP width")
        r.choose("model.options.layers", MLP["layers"], "MLP depth")
        return
    r.choose("model.options.depths", "tiny", "a [16, 32, 64] U-Net trains in minutes on a CPU")
    for key, value in (("blocks_per_level", 1), ("mid_blocks", 1), ("embed_width", 256), ("groups", 8)):
        r.model.options[key] = value
    r.choose("model.options.label_embedding", "linear", "a linear label embedding keeps the map near affine "
             "in the label; the two-layer one memorises labels and collapses on fresh ones (Wave search)")
    if s.periodic:
        r.choose("model.options.periodic", True, "the data are periodic: circular padding")
    r.choose("train.input_noise", 0.1, "input noise (in units of the frame-to-frame change) damps rollout drift")
    r.choose("train.grad_clip", 1.0, "gradient clipping at norm 1")


def _choose_optimiser(r: _Recipe, rules: dict, backbone: str) -> None:
    r.choose("train.lr", rules["lr"], f"learning rate for the {backbone}")
    r.choose("train.batch_size", rules["batch"], f"batch for the {backbone}")
    r.choose("train.weight_decay", rules["weight_decay"], "weight decay")
    r.train.ema_decay = 0.0
    r.train.schedule = "cosine"


def _choose_steps(r: _Recipe, s: DataSummary, rules: dict, budget: float | None, per_step: float | None) -> None:
    batch = r.train.batch_size
    steps = need = steps_needed(s, r.model.backbone, batch)
    reason = (f"{rules['epochs']} passes over the {s.pairs} pairs at batch {batch}, within "
              f"[{rules['min_steps']}, {rules['max_steps']}]")
    if budget is not None and per_step is not None:
        affordable = int(BUDGET_SHARE * budget / per_step)
        if affordable < MIN_BUDGET_STEPS:
            least, wanted = (math.ceil(k * per_step / BUDGET_SHARE) for k in (MIN_BUDGET_STEPS, need))
            raise StochliftError(f"a budget of {budget:.3g} s affords only {affordable} training steps at "
                                 f"{per_step:.3g} s each; give at least {least} s (this data wants {need} steps, "
                                 f"about {wanted} s)")
        if affordable < need:
            steps = affordable
            reason += f"; the budget of {budget:.0f} s affords only {affordable} at {per_step:.3g} s per step"
        else:
            reason += f"; fits the budget ({need * per_step:.0f} s of {budget:.0f} s at {per_step:.3g} s per step)"
    r.choose("train.steps", steps, reason)
    _fit_schedule(r.train, steps)
    r.choose("train.warmup_steps", r.train.warmup_steps, f"{WARMUP_SHARE:.0%} of the steps, at most {MAX_WARMUP}")


def _fit_schedule(train: TrainConfig, steps: int, keep: AbstractSet[str] = frozenset()) -> None:
    """Warm-up, checkpoint and log intervals scaled to `steps` (also after a train.steps override), except the
    settings in `keep` (ones the user set)."""
    scaled = {"warmup_steps": min(MAX_WARMUP, int(WARMUP_SHARE * steps)), "checkpoint_every": max(100, steps // 10),
              "log_every": max(10, steps // 100)}
    for key, value in scaled.items():
        if f"train.{key}" not in keep:
            setattr(train, key, value)


def steps_needed(summary: DataSummary, backbone: str, batch_size: int) -> int:
    """The fewest steps the recipe considers enough for this data: `epochs` passes, within the backbone's bounds."""
    rules = MLP if backbone == "mlp" else UNET
    passes = math.ceil(rules["epochs"] * summary.pairs / batch_size)
    return int(min(rules["max_steps"], max(rules["min_steps"], passes)))


def check_recipe(config: RunConfig, summary: DataSummary) -> list[str]:
    """Warnings for settings that cannot work on this data: each names the problem and the fix."""
    t, m = config.train, config.model
    warnings = []
    if m.method == "lifting" and m.label_dim == 0:
        warnings.append("model.label_dim=0: the network regresses to the conditional mean and every generated "
                        "trajectory is the same (no spread); set model.label_dim >= 64")
    if t.warmup_steps >= t.steps:
        warnings.append(f"train.warmup_steps={t.warmup_steps} >= train.steps={t.steps}: the whole run is warm-up "
                        "and the learning rate never reaches its peak; lower warmup_steps or raise steps")
    need = steps_needed(summary, m.backbone, t.batch_size)
    if t.steps < need:
        warnings.append(f"train.steps={t.steps} is fewer than the {need} this data needs ({summary.pairs} pairs "
                        f"at batch {t.batch_size}): the model may not fit its labels and the spread collapses; "
                        "raise the budget or train.steps")
    return warnings


def measure_seconds_per_step(config: RunConfig, frame_shape: tuple[int, ...], steps: int = 5) -> float:
    """Seconds per training step of this config's model on this machine (forward, backward and AdamW on random
    data, after one warm-up step): what `auto_recipe` divides a budget by."""
    import torch

    from stochlift.lifting.generator import build_model
    from stochlift.lifting.timing import time_training

    model_config = RunConfig.from_dict(config.to_dict()).model
    model_config.frame_shape = list(frame_shape)
    model = build_model(model_config)
    return 1.0 / time_training(model, tuple(frame_shape), config.train.batch_size, steps, torch.device("cpu"), None,
                               False)


def timed_recipe(summary: DataSummary, budget_seconds: float, steps: int = 5) -> tuple[RunConfig, list[Choice]]:
    """`auto_recipe` within a wall-clock budget: the recipe's model is timed here first, then the steps fitted."""
    config, _ = auto_recipe(summary)
    per_step = measure_seconds_per_step(config, summary.frame_shape, steps)
    return auto_recipe(summary, budget_seconds, per_step)


# ------------------------------------------------------------------------------- the recipe for a run

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_budget(budget: str | float | None) -> float | None:
    """Seconds of a wall-clock budget: a number of seconds, or "90s", "10m", "1.5h" (None: no budget)."""
    if budget is None:
        return None
    if isinstance(budget, (int, float)) and not isinstance(budget, bool):
        seconds = float(budget)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*", str(budget))
        if not match:
            raise StochliftError(f"a budget is a time such as 90s, 10m or 1.5h, got {budget!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not (seconds > 0 and math.isfinite(seconds)):
        raise StochliftError(f"a budget must be a positive time, got {budget!r}")
    return seconds


@dataclass
class AutoRecipe:
    """The automatic recipe for one training set: the config (overrides applied), each choice with its reason,
    and the warnings `check_recipe` gives for the final config."""

    summary: DataSummary
    config: RunConfig
    choices: list[Choice]
    warnings: list[str]
    budget_seconds: float | None = None
    overrides: list[str] = field(default_factory=list)  # the user's, applied on top of the choices

    def describe(self) -> str:
        """What a user reads: the data, one line per choice with its reason, the overrides, then the warnings."""
        lines = [f"automatic recipe for {self.summary.describe()}:"]
        lines += [f"  {c.setting} = {c.value}: {c.reason}" for c in self.choices]
        lines += [f"  {o}: your override, applied on top" for o in self.overrides]
        return "\n".join(lines + [f"warning: {w}" for w in self.warnings])

    def to_dict(self) -> dict[str, Any]:
        """What RUN/recipe.json holds."""
        return {"data": self.summary.describe(), "budget_seconds": self.budget_seconds,
                "choices": [{"setting": c.setting, "value": c.value, "reason": c.reason} for c in self.choices],
                "overrides": list(self.overrides), "warnings": list(self.warnings)}


def recipe_for_source(source: FrameSource, budget: str | float | None = None, *, overrides: Sequence[str] = (),
                      periodic: bool = False, seed: int = 0, name: str = "the training data") -> AutoRecipe:
    """The automatic recipe for a FrameSource: summarized, timed on this machine when there is a budget, then
    `overrides` ("train.steps=500", ...) applied on top; settings that cannot work are warnings."""
    seconds = parse_budget(budget)
    summary = summarize(source, periodic=periodic, seed=seed, name=name)
    config, choices = timed_recipe(summary, seconds) if seconds is not None else auto_recipe(summary)
    config = apply_overrides(config, [f"train.seed={seed}", *overrides])
    keys = {item.partition("=")[0].strip() for item in overrides}
    if "train.steps" in keys:  # the schedule follows the steps the user set, unless set too
        _fit_schedule(config.train, config.train.steps, keep=keys)
    if config.model.label_dim == 0 and not any(k.startswith("model.options") for k in keys):
        config.model.options.pop("label_planes", None)  # no label (the d = 0 regressor): no label planes either
    config = config.validate()
    return AutoRecipe(summary, config, choices, check_recipe(config, summary), seconds, list(overrides))


def recipe_for_file(path: str | os.PathLike, budget: str | float | None = None, *, split: str = "train",
                    overrides: Sequence[str] = (), seed: int = 0) -> AutoRecipe:
    """The automatic recipe for one split of a trajectory file (or The Well's files): what `stochlift train
    --data FILE` uses without --config; the config reads the data from `path`."""
    source, periodic = open_split(path, split)
    try:
        recipe = recipe_for_source(source, budget, periodic=periodic, seed=seed, overrides=overrides,
                                   name=f"{path}: split {split!r}")
    except NonFiniteData:
        from stochlift.lifting.train import open_training_data  # its full check names the file and trajectories

        open_training_data(RunConfig(data=DataConfig(path=str(path), split=split)))
        raise

    recipe.config.data.path, recipe.config.data.split = str(path), split  # verbatim: a path is not YAML
    return recipe
