"""What a problem is: everything stochlift knows about one kind of data, in one place.

A trajectory file names its problem (`problem` root attribute: "wave", "flow", "video", "generic", ...);
the registry (stochlift.problems.PROBLEMS) maps that name to a Problem, and nothing outside a problem's
module branches on its name. A problem supplies:

- make_dataset: its data set maker (a simulator and presets), if it has one;
- evaluate: its quantities of interest and their metrics, comparing a generated file with a reference one;
- views: those quantities as the report and the demo draw them (plain arrays; the plots live in apps);
- display: how its fields are coloured;
- frame_checks: physical checks of loose frames that no ensemble statistic replaces;
- demos: the built-in demos that run on it;
- selection_keys: the metrics whose mean picks the best of several training seeds;
- targets: what "good enough" means for it, pass/fail lines on the report's headline card;
- report_metrics: whether the HTML report scores it with `evaluate` (video needs I3D weights: it does not).

A new problem is one module with a Problem subclass plus one registry line (see tests/test_problems.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from stochlift.data.readers import TrajectoryReader
from stochlift.errors import StochliftError
from stochlift.metrics.qoi import QoI


class Metrics(Protocol):
    """What a problem's evaluation returns: the scores as plain JSON-able values."""

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class QuantityView:
    """A quantity of interest of true and generated trajectories, as a picture shows it.

    kind "times": one value per trajectory in [0, 1] (e.g. a crossing time; drawn as histograms);
    kind "series": one value per trajectory and frame, [n, T] (e.g. the mass; drawn as mean and 5-95% band).
    """

    key: str  # the picture's file stem ("crossing_times", "mass")
    kind: str
    title: str  # what the picture is, in a few words ("mass over time")
    label: str  # what the axis shows
    reference: np.ndarray
    generated: np.ndarray
    caption: str


@dataclass(frozen=True)
class Target:
    """A pass/fail line of the report's headline card: the metric `key` of `evaluate(...).to_dict()` <= `limit`.

    Targets belong to the problem, not the report, so a new problem brings its own; `why` says in a few words
    where the limit comes from.
    """

    key: str  # e.g. "wct_relative"
    limit: float  # passes when the value is <= limit
    label: str  # what the metric is, in words ("crossing-time W2 / true std")
    why: str = ""

    def passes(self, value: float | None) -> bool | None:
        """True or False; None when the value is undefined (the metric could not be computed)."""
        return None if value is None else bool(float(value) <= self.limit)


@dataclass(frozen=True)
class Demo:
    """A built-in demo: its data set, its training preset and how many seeds it tries."""

    make_data: Callable[..., Path]  # (out, *, trajectories, frames, size, seed, progress) -> path
    config: str  # the training preset in configs/
    best_of: int = 1  # seeds trained side by side, the best on the validation split kept
    video: bool = False  # the video demo's stages and pictures (apps/demo_video.py) instead of the physics one


class Problem:
    """The defaults of a problem without special knowledge; subclasses override what they know."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    demos: ClassVar[Mapping[str, Demo]] = {}
    selection_keys: ClassVar[tuple[str, ...]] = ()
    targets: ClassVar[tuple[Target, ...]] = ()  # the report's headline card: pass/fail against these
    report_metrics: ClassVar[bool] = True  # whether `stochlift report` scores it with `evaluate`
    scores_qoi: ClassVar[bool] = False  # whether `evaluate` takes user quantities of interest (qoi=...)

    def make_dataset(self, out: str | os.PathLike, *, preset: str = "quick", seed: int = 0, progress: bool = True,
                     **sizes: int | None) -> Path:
        raise StochliftError(f"the {self.name} problem has no built-in data set maker")

    def evaluate(self, reference: TrajectoryReader, generated: TrajectoryReader, *, reference_split: str,
                 generated_split: str, qoi: Mapping[str, QoI] | None = None, **options: Any) -> Metrics:
        """The problem's scores; `qoi` are user quantities of interest (only problems that score them take them)."""
        raise StochliftError(f"no metrics for problem {self.name!r} yet")

    def views(self, metrics: Metrics) -> list[QuantityView]:
        return []

    def display(self, reference: np.ndarray) -> dict[str, Any]:
        """Colour keywords for its fields [k, T, H, W]: signed fields symmetric about 0, scaled to the evolving
        field rather than the first frames (the Wave bump is several times higher than the waves it sends out)."""
        n_frames = reference.shape[1]
        tail = reference[:, n_frames // 8 :] if n_frames >= 8 else reference
        return {"cmap": "RdBu_r", "vmax": float(np.quantile(np.abs(tail), 0.999)) or None}

    # the physical checks of loose frames: name -> what a failing frame has, in words
    frame_check_descriptions: ClassVar[Mapping[str, str]] = {}

    def frame_checks(self, frames: np.ndarray) -> dict[str, float]:
        """Physical checks of loose frames [n, C, H, W]: per check, the share of frames that fail it."""
        return {}


UNIT_RANGE_DISPLAY = {"cmap": "viridis", "value_range": (0.0, 1.0)}  # values in [0, 1]: saturations, video
