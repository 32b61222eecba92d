"""Evaluate generated trajectory files against reference ones, streaming both chunk by chunk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from stochlift.data.trajectories import TrajectoryFile
from stochlift.errors import StochliftError
from stochlift.io import write_json
from stochlift.problems import Metrics, get_problem


def evaluate_files(
    reference: str | os.PathLike,
    generated: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    reference_split: str | None = None,
    generated_split: str | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Metrics]:
    """Compare two trajectory files in distribution; write metrics JSON to `out` if given.

    The reference's split defaults to 'test', the generated file's to its only split. The metrics are
    the reference file's problem's (stochlift.problems: `problem` attribute), which takes `options` (video
    files: FVD / PSNR / SSIM with i3d_weights, clip_frames, ... of stochlift.metrics.video.evaluate_video_files;
    problems without options ignore them).
    """
    ref, gen = TrajectoryFile(reference), TrajectoryFile(generated)
    ref_split = reference_split or ref.default_split("test")
    gen_split = generated_split or gen.default_split("generated")
    if ref.meta.problem != gen.meta.problem:
        raise StochliftError(f"reference is a {ref.meta.problem!r} file but generated is {gen.meta.problem!r}")
    problem = get_problem(ref.meta.problem)
    metrics = problem.evaluate(ref, gen, reference_split=ref_split, generated_split=gen_split,
                               **(options or {}))
    report = {
        "problem": ref.meta.problem,
        "reference": str(Path(reference)),
        "reference_split": ref_split,
        "generated": str(Path(generated)),
        "generated_split": gen_split,
        **metrics.to_dict(),
    }
    if out is not None:
        write_json(out, report)
    return report, metrics
