"""Run configuration: typed sections, YAML presets in configs/, and `section.key=value` overrides.

A run directory always holds the fully resolved config (data-derived values filled in), so a run can be
rebuilt, resumed or sampled from that file alone.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stochlift.errors import StochliftError
from stochlift.io import atomic_path
from stochlift.registry import Registry

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
EXPERIMENT_DIR = CONFIG_DIR / "experiments"  # the experiments' settings (stochlift.apps.experiments)
OUTPUTS = ("residual", "second_order", "direct")  # model.output: stochlift.lifting.outputs
ANCHORED = ("residual", "second_order")  # outputs x = anchor(window) + s * R, with a residual scale s
HISTORY_PADDINGS = ("repeat", "zeros")  # model.history_padding: frame 0 repeated, or zero frames

# generator methods by name (the contract: stochlift.lifting.generator). Lazy "module:Class" entries, so the
# schema imports no model code and the core no baseline; a method class checks its own settings
# (`validate_config`) and builds its model (`from_config`).
METHODS: Registry[Any] = Registry("method")
METHODS.register("lifting", "stochlift.lifting.model:LiftedModel")
METHODS.register("ardm", "stochlift.baselines.ardm:ARDM")
# projections of generated frames onto physics the data obey exactly (model.constraint; "none" for none): a
# name -> a factory (the starting file's TrajectoryMeta) -> nn.Module, kept in its problem's module
CONSTRAINTS: Registry[Any] = Registry("constraint")
CONSTRAINTS.register("water_balance", "stochlift.problems.flow:water_balance_for")


@dataclass
class DataConfig:
    path: str | None = None  # trajectory file (HDF5)
    split: str = "train"
    trajectories: int | None = None  # train on the first N trajectories of the split only (None: all)


@dataclass
class ModelConfig:
    # "lifting": F(window, xi) fitted by regression (the paper's method); "ardm": the autoregressive
    # conditional diffusion baseline (stochlift.baselines.ardm) on the same backbone
    method: str = "lifting"
    backbone: str = "unet"  # a name in stochlift.models.BACKBONES
    window: int = 3  # Markov window m: frames of history stacked as channels
    label_dim: int = 64  # d; 0 gives the deterministic (mean-collapse) regressor
    # "residual": x_t + s * R(x, xi) (Corollary 1); "second_order": 2 x_t - x_{t-1} + s * R (waves);
    # "direct": x_{t+1} (see stochlift.lifting.outputs)
    output: str = "residual"
    loss: str = "l2"  # "l2", or "bce" (sigmoid output, for data in [0, 1]); ARDM: "huber" or "l2" on the noise
    # how a history shorter than m (the first steps of a trajectory) is padded: "repeat" frame 0 (the
    # authors'), or "zeros", which tells a step with no history apart from one with little motion
    history_padding: str = "repeat"
    # a projection of each generated frame during sampling, onto physics the data obey exactly
    # (stochlift.problems.constraint_for): "none", or "water_balance" for Flow data (the wells' water budget)
    constraint: str = "none"
    residual_scale: float | None = None  # s; None = std of (x_{t+1} - anchor) measured on the training data
    frame_shape: list[int] | None = None  # one frame: [C, H, W], [C, X] or [D]; None = taken from the data
    options: dict[str, Any] = field(default_factory=dict)  # backbone keyword arguments
    # ARDM only: diffusion steps S (network calls per frame), "clean" or "noisy" (diffused) conditioning,
    # and the scale the condition window is divided by (None = std of the training frames)
    diffusion_steps: int = 20
    conditioning: str = "clean"
    frame_scale: float | None = None
    # ARDM only: each reverse step clips its estimate of the clean (normalised) frame to +-this, DDPM's
    # clip_denoised; None = the largest |value| in the training data
    clip_denoised: float | None = None
    # ARDM only, the few-step choices (stochlift.baselines): the noise schedule at S steps, "linear" (ACDM's,
    # rescaled) or "cosine"; snr_shift multiplies every step's signal-to-noise ratio (> 1: less noise);
    # zero_terminal_snr rescales it so the last step is pure noise (needs x0 or v); what the network
    # predicts, "epsilon", "x0" or "v"; the sampler, "ddpm" (ancestral) or "ddim", whose ddim_eta runs from
    # 0 (deterministic) to 1 (DDPM's law)
    diffusion_schedule: str = "linear"
    snr_shift: float = 1.0
    zero_terminal_snr: bool = False
    prediction: str = "epsilon"
    sampler: str = "ddpm"
    ddim_eta: float = 0.0

    def validate(self) -> None:
        """The checks every method shares; a method's own are its `validate_config` (see RunConfig.validate)."""
        if self.method not in METHODS:
            METHODS.get(self.method)  # the unknown-name error, with the registered names
        if self.window < 1:
            raise StochliftError(f"model.window must be >= 1, got {self.window}")
        if self.output not in OUTPUTS:
            raise StochliftError(f"model.output must be one of {list(OUTPUTS)}, got {self.output!r}")
        if self.output == "second_order" and self.window < 2:
            raise StochliftError("model.output 'second_order' extrapolates from two frames: model.window must be >= 2")
        if self.history_padding not in HISTORY_PADDINGS:
            raise StochliftError(f"model.history_padding must be one of {list(HISTORY_PADDINGS)}, "
                                 f"got {self.history_padding!r}")
        if self.history_padding == "zeros" and self.output == "second_order":
            raise StochliftError("model.output 'second_order' extrapolates from x_t - x_(t-1): "
                                 "it needs model.history_padding 'repeat'")
        if self.constraint != "none" and self.constraint not in CONSTRAINTS:
            raise StochliftError(f"model.constraint must be one of {['none', *CONSTRAINTS.names()]}, "
                                 f"got {self.constraint!r}")
        METHODS.get(self.method).validate_config(self)


@dataclass
class TrainConfig:
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    schedule: str = "cosine"  # "cosine" (to 0) or "constant"
    grad_clip: float = 0.0  # max gradient norm; 0 disables
    ema_decay: float = 0.0  # exponential moving average of the weights used for sampling; 0 disables
    # std of Gaussian noise added to the input window (one field, the same on every frame), in units of
    # model.residual_scale; the target stays clean, so the model learns to pull perturbed states back
    input_noise: float = 0.0
    # correlation length of that noise in pixels (Gaussian filter; 0 = white). Rollout errors of waves pile
    # up in the smooth, large-scale modes, which white noise hardly touches
    input_noise_length: float = 0.0
    # the pairs of a trajectory's first m - 1 steps (window padded before frame 0) are drawn this many times as
    # often as the others (1 = uniform): from a shared initial condition they create all the spread, from
    # few examples each
    start_weight: float = 1.0
    # pushforward training: the last `unroll` frames of each input window are the model's own predictions
    # (no gradient, each pair's own label) instead of the data, so it learns to correct its rollout errors
    unroll: int = 0
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 50
    # a validation score logged with the loss (lifting/validation.py): rollouts from the first frames of this
    # many trajectories of the data file's "valid" split, every validate_every steps and at the end (0: never)
    validate_every: int = 500
    validation_trajectories: int = 16
    # speed and scale (lifting/distributed.py): micro-batches per step (gradients summed, same update up to
    # float rounding), "fp32" | "bf16" | "fp16" autocast on GPUs (fp16 with a gradient scaler), the device
    # ("auto": CUDA when available), and DataLoader worker processes reading the training pairs
    grad_accum: int = 1
    precision: str = "fp32"
    device: str = "auto"
    workers: int = 0

    def validate(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "grad_accum"):
            if getattr(self, name) <= 0:
                raise StochliftError(f"train.{name} must be > 0, got {getattr(self, name)}")
        for name in ("workers", "seed", "validate_every", "validation_trajectories"):
            if getattr(self, name) < 0:
                raise StochliftError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise StochliftError(f"train.precision must be 'fp32', 'bf16' or 'fp16', got {self.precision!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise StochliftError(f"train.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.lr <= 0:
            raise StochliftError(f"train.lr must be > 0, got {self.lr}")
        if self.unroll < 0:
            raise StochliftError(f"train.unroll must be >= 0, got {self.unroll}")
        if self.start_weight <= 0:
            raise StochliftError(f"train.start_weight must be > 0, got {self.start_weight}")
        if self.input_noise < 0 or self.input_noise_length < 0:
            raise StochliftError(f"train.input_noise and train.input_noise_length must be >= 0, got "
                                 f"{self.input_noise} and {self.input_noise_length}")
        if not 0 <= self.ema_decay < 1:
            raise StochliftError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.schedule not in ("cosine", "constant"):
            raise StochliftError(f"train.schedule must be 'cosine' or 'constant', got {self.schedule!r}")


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> RunConfig:
        if self.data.trajectories is not None and self.data.trajectories < 1:
            raise StochliftError(f"data.trajectories must be >= 1, got {self.data.trajectories}")
        self.model.validate()
        self.train.validate()
        if self.train.unroll and not METHODS.get(self.model.method).pushforward:
            raise StochliftError(f"train.unroll (pushforward) rolls a lifted model with its training labels; "
                                 f"model.method={self.model.method} trains on true windows: set train.unroll=0")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> RunConfig:
        raw = raw or {}
        unknown = set(raw) - {"data", "model", "train"}
        if unknown:
            raise StochliftError(f"unknown config sections {sorted(unknown)}; expected data, model, train")
        sections: dict[str, Any] = {}
        for name, section_cls in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig)):
            values = raw.get(name) or {}
            known = {f.name for f in dataclasses.fields(section_cls)}
            bad = set(values) - known
            if bad:
                raise StochliftError(f"unknown keys in config section {name!r}: {sorted(bad)}; known: {sorted(known)}")
            sections[name] = section_cls(**{k: _coerce(section_cls, name, k, v) for k, v in values.items()})
        return cls(**sections).validate()


def _coerce(section_cls: type, section: str, key: str, value: Any) -> Any:
    """Check a config value against its declared type; numbers are parsed (YAML reads `1e-3` as a string)."""
    declared = typing.get_type_hints(section_cls)[key]
    name = f"config {section}.{key}"
    args = typing.get_args(declared)
    if type(None) in args:  # Optional[X]: None, or an X
        if value is None:
            return None
        declared = next(a for a in args if a is not type(None))
    if declared in (int, float):
        return _number(name, declared, value)
    if declared is bool and not isinstance(value, bool):
        raise StochliftError(f"{name} must be true or false, got {value!r}")
    if declared is str and not isinstance(value, str):
        raise StochliftError(f"{name} must be a string, got {value!r}")
    if typing.get_origin(declared) is list:
        item = (typing.get_args(declared) or (object,))[0]
        if not isinstance(value, list) or (
            item is int and not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise StochliftError(f"{name} must be a list{' of integers' if item is int else ''}, got {value!r}")
    if typing.get_origin(declared) is dict and not isinstance(value, dict):
        raise StochliftError(f"{name} must be a mapping, got {value!r}")
    return value


def _number(name: str, declared: type, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise StochliftError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise StochliftError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise StochliftError(f"{name} must be a finite number, got {value!r}")
    if declared is float:
        return number
    if isinstance(value, int):
        return value
    if not number.is_integer():
        raise StochliftError(f"{name} must be an integer, got {value!r}")
    return int(number)


def load_config(name_or_path: str | os.PathLike | None) -> RunConfig:
    """A preset name from configs/ (e.g. 'wave-quick') or a YAML file path; None gives the defaults."""
    if name_or_path is None:
        return RunConfig().validate()
    path = Path(name_or_path)
    if not path.is_file():
        preset = CONFIG_DIR / f"{name_or_path}.yaml"
        if not preset.is_file():
            names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
            raise StochliftError(f"no config file or preset {str(name_or_path)!r}; presets: {names}")
        path = preset
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise StochliftError(f"{path} is not valid YAML: {exc}") from None
    if raw is not None and not isinstance(raw, dict):
        raise StochliftError(f"{path} must hold a mapping with sections data, model, train")
    return RunConfig.from_dict(raw)


def apply_overrides(config: RunConfig, overrides: list[str] | tuple[str, ...]) -> RunConfig:
    """Apply `section.key=value` (or `model.options.key=value`) overrides; values are parsed as YAML."""
    raw = config.to_dict()
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2:
            raise StochliftError(f"override {item!r} must look like section.key=value, e.g. train.lr=3e-4")
        target = raw
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                raise StochliftError(f"override {item!r}: {part!r} is not a config section")
            target = target[part]
        if len(parts) == 2 and parts[-1] not in target:
            raise StochliftError(f"override {item!r}: unknown key {parts[-1]!r} in section {parts[0]!r}")
        try:
            target[parts[-1]] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise StochliftError(f"override {item!r}: the value is not valid YAML ({problem})") from None
    return RunConfig.from_dict(raw)


def config_yaml(config: RunConfig) -> str:
    """The config as the YAML a run directory's config.yaml holds."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def save_config(config: RunConfig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(config_yaml(config))


ABBREVIATIONS = ("Eq", "Eqs", "Fig", "e.g", "i.e", "cf", "vs", "etc", "approx")


def summary_line(text: str, stops: str = ".:") -> str:
    """The first clause of a description: up to the first of `stops` that ends a word outside brackets
    ("Eq. (5)" and "e.g. x" go on)."""
    text, depth = " ".join(text.split()), 0
    for i, char in enumerate(text):
        depth += (char in "([") - (char in ")]")
        ends_word = i + 1 == len(text) or text[i + 1] == " "
        if depth == 0 and char in stops and ends_word and text[:i].rpartition(" ")[2] not in ABBREVIATIONS:
            return text[:i]
    return text


def preset_description(path: str | os.PathLike) -> str:
    """The opening comment of a preset file, before its first key (command examples left out)."""
    lines = []
    for line in Path(path).read_text().splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("#  "):  # "#   stochlift ..." lines are example commands
            lines.append(line.lstrip("#").strip())
    return " ".join(lines)


def list_presets() -> dict[str, str]:
    """Every preset in configs/ by name, with its one-line description."""
    return {path.stem: summary_line(preset_description(path)) for path in sorted(CONFIG_DIR.glob("*.yaml"))}


def list_experiments() -> dict[str, tuple[list[str], str]]:
    """Every experiment in configs/experiments/ by name: its scales and the first sentence of its description."""
    described = {}
    for path in sorted(EXPERIMENT_DIR.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        described[path.stem] = ([k for k in raw if k != "description"], summary_line(raw.get("description", ""), "."))
    return described


def config_text(config: RunConfig, notes: dict[str, str] | None = None,
                header: list[str] | tuple[str, ...] = ()) -> str:
    """The config as YAML that `load_config` reads back, with `notes` ({"model.residual_scale": "..."}) as
    comments on their keys; a note on a key the config leaves out (model.options.periodic) is a comment line."""
    notes = dict(notes or {})
    lines: list[tuple[str, str | None]] = [(f"# {line}", None) for line in header]
    for section, values in config.to_dict().items():
        lines.append((f"{section}:", None))
        lines += _yaml_lines(values, section, 1, notes)
    width = max((len(text) for text, note in lines if note), default=0)
    return "\n".join(f"{text:<{width}}  # {note}" if note else text for text, note in lines) + "\n"


def _yaml_lines(values: dict[str, Any], prefix: str, depth: int, notes: dict[str, str]) -> list[tuple[str, str | None]]:
    indent, lines = "  " * depth, []
    for key, value in values.items():
        path = f"{prefix}.{key}"
        if isinstance(value, dict) and value:
            lines.append((f"{indent}{key}:", notes.pop(path, None)))
            lines += _yaml_lines(value, path, depth + 1, notes)
        else:
            lines.append((f"{indent}{key}: {_flow(value)}", notes.pop(path, None)))
            if isinstance(value, dict):  # empty: notes on keys inside it
                lines += _yaml_lines({}, path, depth + 1, notes)
    for path in [p for p in notes if p.rpartition(".")[0] == prefix]:
        lines.append((f"{indent}# {path.rpartition('.')[2]}: {notes.pop(path)}", None))
    return lines


def _flow(value: Any) -> str:
    """One value as inline YAML."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip()
    return text.removesuffix("...").strip()
