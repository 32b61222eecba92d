"""What every metric and term on the report means, in one place: the metrics table and the glossary read it.

Keys are the metric names the page prints (those of `stochlift evaluate` and stochlift.metrics.field_scores).
When the project's own glossary (docs/glossary.md and its dict) lands, this module should read from it rather
than keep a second copy.
"""

from __future__ import annotations

TERMS: dict[str, str] = {
    # the problems' quantities of interest (stochlift.metrics.physics)
    "crossing time": "the first time a trajectory's field reaches a region: Wave, the signed field above a "
                     "threshold on the outer ring; Flow, water (saturation above a threshold) in the producer's "
                     "corner. A trajectory that never crosses counts at the end of the horizon.",
    "mass": "each frame's mean |x| over the field: Wave, the mean |u|; Flow, the mean water saturation (the water "
            "in place).",
    "wct": "W2 (Wasserstein-2 distance) between the true and the generated crossing-time distributions, in units "
           "of the horizon (0 = identical).",
    "wct_relative": "wct divided by the std of the true crossing times: 0 is perfect, 1 is what an ensemble "
                    "collapsed onto one trajectory scores at least.",
    "mass_w2": "W2 between the true and the generated mass distributions at each time, averaged over the "
               "generated frames.",
    "mass_w2_relative": "mass_w2 divided by the mean std of the true mass: 0 is perfect, a collapsed ensemble "
                        "scores at least 1.",
    "mean_field_rmse": "RMSE between the true and the generated per-point mean fields, over the generated frames.",
    "std_field_rmse": "RMSE between the true and the generated per-point std fields, over the generated frames.",
    "final_std_ratio": "generated / true mean per-point std at the last frame: 1 is right, below 1 the ensemble "
                       "is too narrow.",
    # ensemble scores, each with its floor (stochlift.metrics.field_scores)
    "energy_score": "fair energy score of the generated ensemble against each true trajectory, over whole "
                    "frames (a proper score: lower is better; it mostly measures the truth's own spread, so "
                    "ratios to the floor are compressed: a collapsed ensemble is only ~1.4x its floor).",
    "crps": "fair CRPS (continuous ranked probability score) of the ensemble at every point, averaged (proper: "
            "lower is better; compressed like the energy score).",
    "spread_skill": "spread / skill: the ensemble's spread over the RMSE of its mean against the truth, "
                    "finite-ensemble corrected. 1 is calibrated, below 1 under-dispersed (0 when collapsed).",
    "spread_skill_ratio": "the same spread / skill ratio as spread_skill (1 is calibrated), in the forecasting "
                          "setting.",
    "rank_deviation": "RMS deviation from flat of the rank histogram of the truth among the ensemble members "
                      "(0 is flat).",
    "sliced_w2": "sliced W2 between the true and the generated ensembles of whole frames (random 1-D "
                 "projections): a divergence, sampling noise at the floor, large for a collapsed ensemble.",
    "energy_distance": "energy distance between the true and the generated ensembles of whole frames (a "
                       "divergence; biased estimator with a positive floor).",
    "mean_w2": "W2 between the true and the generated distributions of each variable's spatial mean.",
    "abs_mean_w2": "W2 between the true and the generated distributions of each variable's spatial mean |x| "
                   "(the mass, per variable).",
    "spectrum_error": "error in decades of the ensemble-mean radially averaged power spectrum, mean over "
                      "wavenumber shells (0 = the same power at every scale).",
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
                      "|k|: how much structure there is at each scale.",
}


def meaning(key: str) -> str:
    """The definition of a metric key; a user quantity of interest `<name>_w2` gets a generic one."""
    if key in TERMS:
        return TERMS[key]
    if key.endswith("_w2"):
        return f"W2 between the true and the generated distributions of the quantity of interest {key[:-3]!r}."
    return ""


def glossary_anchor(term: str) -> str:
    """The id of a term's entry on the page ("term-energy-score")."""
    return "term-" + "".join(c if c.isalnum() else "-" for c in term.lower())
