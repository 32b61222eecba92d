"""What every metric and term on the report means: the metrics' definitions come from the project's one
glossary (stochlift.apps.glossary, also docs/glossary.md); the terms that only the report uses are here.
"""

from __future__ import annotations

from stochlift.apps.glossary import GLOSSARY, metric_for

# the metrics the report can show, in the order its glossary lists them
REPORT_METRICS = ("wct", "wct_relative", "mass_w2", "mass_w2_relative", "mean_field_rmse", "std_field_rmse",
                  "final_std_ratio", "energy_score", "crps", "spread_skill", "rank_deviation", "sliced_w2",
                  "energy_distance", "mean_w2", "abs_mean_w2", "spectrum_error")
READING_TERMS: dict[str, str] = {
    # the problems' quantities of interest
    "crossing time": "the first time a trajectory's field reaches a region: Wave, the signed field above a "
                     "threshold on the outer ring; Flow, water (saturation above a threshold) in the producer's "
                     "corner. A trajectory that never crosses counts at the end of the horizon.",
    "mass": "each frame's mean |x| over the field: Wave, the mean |u|; Flow, the mean water saturation (the water "
            "in place).",
    # how to read them
    "floor": "the same score between two independent halves of the true ensemble, at the same sizes: what "
             "sampling noise alone gives. A model cannot be expected to beat it.",
    "ratio": "score / floor, averaged over time: 1 is as good as a second sample of the truth, 2 is twice the "
             "sampling noise.",
    "collapsed ensemble": "every member equal to the true per-point mean (a model with no spread, like d = 0): "
                          "computed from the truth, no training. A useful model scores well below it on the "
                          "divergences.",
    "distribution matching": "the report's main setting: generated trajectories started from the given initial "
                             "frames are compared in distribution with the true ones (unpaired).",
    "forecasting": "each held-out true trajectory gets its own small ensemble rolled out from its own first "
                   "frames; scored against that trajectory.",
    "power spectrum": "the power |F(k)|^2 of each field (spatial mean removed), averaged over shells of equal "
                      "|k|: how much structure there is at each scale.",}
TERMS: dict[str, str] = {**{key: GLOSSARY[key].meaning for key in REPORT_METRICS}, **READING_TERMS}


def meaning(key: str) -> str:
    """The definition of a metric key or term; a user quantity of interest `<name>_w2` gets a generic one."""
    if key in TERMS:
        return TERMS[key]
    if key.endswith("_w2"):
        return f"W2 between the true and the generated distributions of the quantity of interest {key[:-3]!r}."
    metric = metric_for(key)
    return metric.meaning if metric is not None else ""


def glossary_anchor(term: str) -> str:
    """The id of a term's entry on the page ("term-energy-score")."""
    return "term-" + "".join(c if c.isalnum() else "-" for c in term.lower())
