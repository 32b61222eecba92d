"""What the physics problems (Wave, Flow, generic fields) share: crossing time and mass, drawn alike."""

from __future__ import annotations

from stochlift.metrics.physics import PhysicsMetrics
from stochlift.problems.base import Metrics, QuantityView, Target

PHYSICS_SELECTION = ("wct_relative", "mass_w2_relative")  # both relative to the truth's spread
# the demos' targets (docs/demos.md): W2 below half the truth's own spread; a collapsed ensemble scores >= 1
PHYSICS_TARGETS = (
    Target("wct_relative", 0.5, "crossing-time W2 / std of the true crossing times",
           "the demos' target: under half the truth's spread (a collapsed ensemble scores >= 1)"),
    Target("mass_w2_relative", 0.5, "mass W2 / std of the true mass",
           "the demos' target: under half the truth's spread (a collapsed ensemble scores >= 1)"),
)


def physics_views(metrics: Metrics, crossing: str, mass: str) -> list[QuantityView]:
    """The crossing-time distributions and the mass over time of a PhysicsMetrics (Wave, Flow, generic)."""
    assert isinstance(metrics, PhysicsMetrics)
    return [
        QuantityView("crossing_times", "times", "crossing-time distributions",
                     "crossing time (normalised; 1 = never crossed)",
                     metrics.tau_reference, metrics.tau_generated,
                     f"Distribution of the crossing time ({crossing}), true vs generated."),
        QuantityView("mass", "series", "mass over time", mass, metrics.mass_reference, metrics.mass_generated,
                     f"{mass[0].upper()}{mass[1:]} over normalised time: ensemble mean and 5-95% band."),
    ]
