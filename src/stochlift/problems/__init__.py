"""Problems by name: each file's `problem` attribute picks everything stochlift knows about its data.

    from stochlift.problems import PROBLEMS, get_problem
    PROBLEMS.register("my-problem", MyProblem)     # a Problem subclass (stochlift.problems.base)
    get_problem("wave").evaluate(reference, generated, reference_split="test", generated_split="generated")

Built-in: wave, flow, video, generic. Entries are "module:Class" strings until first used.
"""

from __future__ import annotations

from functools import cache

from torch import nn

from stochlift.config import CONSTRAINTS
from stochlift.data.trajectories import TrajectoryMeta
from stochlift.problems.base import Demo, Metrics, Problem, QuantityView, Target
from stochlift.registry import Registry

PROBLEMS: Registry[type[Problem]] = Registry("problem")
PROBLEMS.register("wave", "stochlift.problems.wave:WaveProblem")
PROBLEMS.register("flow", "stochlift.problems.flow:FlowProblem")
PROBLEMS.register("video", "stochlift.problems.video:VideoProblem")
PROBLEMS.register("generic", "stochlift.problems.generic:GenericProblem")


def get_problem(name: str) -> Problem:
    """The problem registered as `name` (an unknown name is a user error listing the known ones)."""
    # a class is hashable; mypy checks the instances' unbound __hash__ against typeshed's Hashable instead
    return _instance(PROBLEMS.get(name))  # type: ignore[arg-type]


@cache
def _instance(cls: type[Problem]) -> Problem:
    return cls()


def demos() -> dict[str, tuple[Problem, Demo]]:
    """Every built-in demo by name, with its problem."""
    found = {}
    for name in PROBLEMS.names():
        problem = get_problem(name)
        found.update({demo: (problem, spec) for demo, spec in problem.demos.items()})
    return found


def constraint_for(name: str, meta: TrajectoryMeta) -> nn.Module | None:
    """The constraint `name` (model.constraint; stochlift.config.CONSTRAINTS) for rollouts that start from a
    file with metadata `meta`; "none" gives None."""
    if name == "none":
        return None
    return CONSTRAINTS.get(name)(meta)


__all__ = ["PROBLEMS", "Demo", "Metrics", "Problem", "QuantityView", "Target", "constraint_for", "demos", "get_problem"]
