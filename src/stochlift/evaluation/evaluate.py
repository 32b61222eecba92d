"""Evaluate generated trajectory files against reference ones, streaming both chunk by chunk."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stochlift.data.readers import TrajectoryReader, open_trajectories
from stochlift.errors import StochliftError
from stochlift.io import refuse_overwriting_inputs, write_json
from stochlift.metrics.qoi import QoI
from stochlift.problems import Metrics, get_problem


def check_comparable(ref: TrajectoryReader, gen: TrajectoryReader) -> None:
    """Refuse to compare files of different problems or fields: their numbers would mean nothing."""
    for what, a, b in (("problem", ref.meta.problem, gen.meta.problem),
                       ("fields", list(ref.meta.field_names), list(gen.meta.field_names))):
        if a != b:
            raise StochliftError(f"reference {ref.path} has {what} {a!r} but generated {gen.path} has {b!r}")


def evaluate_files(
    reference: str | os.PathLike,
    generated: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    reference_split: str | None = None,
    generated_split: str | None = None,
    options: dict[str, Any] | None = None,
    qoi: Mapping[str, QoI] | None = None,
    problem: str | None = None,
) -> tuple[dict[str, Any], Metrics]:
    """Compare two trajectory files (ours or The Well's, in physical units) in distribution; write metrics JSON
    to `out` if given.

    The reference's split defaults to 'test', the generated file's to its only split. The metrics are
    the reference file's problem's (stochlift.problems: `problem` attribute), which takes `options` (video
    files: FVD / PSNR / SSIM with i3d_weights, clip_frames, ... of stochlift.metrics.video.evaluate_video_files;
    problems without options ignore them). `problem` scores the files as another problem than theirs (e.g.
    "generic": field scores with floors for any data); `qoi` (name -> function of frames [n, T, *state], see
    stochlift.metrics.qoi) adds user quantities of interest, for problems that score them (generic).
    """
    if out is not None:
        refuse_overwriting_inputs([out], [reference, generated])
    ref, gen = open_trajectories(reference), open_trajectories(generated)  # our files or The Well's
    ref_split = reference_split or ref.default_split("test")
    gen_split = generated_split or gen.default_split("generated")
    check_comparable(ref, gen)
    scorer = get_problem(problem or ref.meta.problem)
    if qoi and not scorer.scores_qoi:
        raise StochliftError(f"{scorer.name} data are scored by their own quantities of interest; to score yours, "
                             "score the files as generic data (--problem generic)")
    metrics = scorer.evaluate(ref, gen, reference_split=ref_split, generated_split=gen_split,
                              **({"qoi": qoi} if qoi else {}), **(options or {}))
    report = {
        "problem": scorer.name,
        "reference": str(Path(reference)),
        "reference_split": ref_split,
        "generated": str(Path(generated)),
        "generated_split": gen_split,
        **metrics.to_dict(),
    }
    if out is not None:
        write_json(out, report)
    return report, metrics
