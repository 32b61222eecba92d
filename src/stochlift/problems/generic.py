"""Data of no built-in problem (`problem = "generic"`): what any trajectory file gets.

Scored by the mass (mean |x|) over time, the per-pixel mean and std fields and, as the paper's physics
problems, a crossing time on the outer ring (settings from the file's qoi_* parameters); drawn as the mass
over time.
"""

from __future__ import annotations

from typing import Any

from stochlift.data.trajectories import TrajectoryFile
from stochlift.metrics.physics import PhysicsMetrics, evaluate_physics_files
from stochlift.problems.base import Metrics, Problem, QuantityView
from stochlift.problems.physics import physics_views
from stochlift.problems.wave import RingCrossing


class GenericProblem(Problem):
    name = "generic"
    description = "any trajectories (imported or written by your own code)"

    def evaluate(self, reference: TrajectoryFile, generated: TrajectoryFile, *, reference_split: str,
                 generated_split: str, **options: Any) -> PhysicsMetrics:
        params = reference.meta.parameters
        crossing = RingCrossing(threshold=float(params.get("qoi_crossing_threshold", 0.05)),
                                ring_width=int(params.get("qoi_ring_width", 1)))
        return evaluate_physics_files(reference, generated, crossing, reference_split=reference_split,
                                      generated_split=generated_split)

    def views(self, metrics: Metrics) -> list[QuantityView]:
        return [view for view in physics_views(metrics, "", "mass (mean |x| over the field)") if view.kind == "series"]
