"""Evaluate generated trajectory files against reference ones, streaming both chunk by chunk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stochlift.data.trajectories import TrajectoryFile
from stochlift.errors import StochliftError
from stochlift.io import refuse_overwriting_inputs, write_json
from stochlift.metrics.physics import PhysicsEvaluator, PhysicsMetrics
from stochlift.metrics.quantities import CornerBreakthrough, RingCrossing

if TYPE_CHECKING:
    from stochlift.metrics.video import VideoMetrics

VIDEO_PROBLEM = "video"  # as stochlift.data.video.VIDEO_PROBLEM; video files get FVD / PSNR / SSIM

# Problems whose quantities of interest are the physics ones (mass, crossing time).
PHYSICS_PROBLEMS = ("wave", "flow", "generic")


def crossing_for(reference: TrajectoryFile) -> RingCrossing | CornerBreakthrough:
    """The crossing time that fits the reference file's problem, with the settings in its metadata.

    Flow: water breakthrough in the producer's corner square (qoi_corner_size pixels, default 1/8 of the
    side; qoi_crossing_threshold, default 0.5). Wave and the rest: the outer-ring crossing.
    """
    params = reference.meta.parameters
    if reference.meta.problem == "flow":
        side = min(len(reference.meta.x), len(reference.meta.y))
        return CornerBreakthrough(threshold=float(params.get("qoi_crossing_threshold", 0.5)),
                                  corner_size=int(params.get("qoi_corner_size", max(1, round(side / 8)))))
    return RingCrossing(threshold=float(params.get("qoi_crossing_threshold", 0.05)),
                        ring_width=int(params.get("qoi_ring_width", 1)))


def check_comparable(ref: TrajectoryFile, gen: TrajectoryFile) -> None:
    """Refuse to compare files of different problems or fields: their numbers would mean nothing."""
    for what, a, b in (("problem", ref.meta.problem, gen.meta.problem),
                       ("fields", list(ref.meta.field_names), list(gen.meta.field_names))):
        if a != b:
            raise StochliftError(f"reference {ref.path} has {what} {a!r} but generated {gen.path} has {b!r}")


def evaluate_physics_files(
    reference: TrajectoryFile, generated: TrajectoryFile, *, reference_split: str, generated_split: str, chunk_size: int = 64
) -> PhysicsMetrics:
    """Crossing-time and mass metrics; the crossing time and its settings come from the reference's metadata."""
    evaluator = PhysicsEvaluator(crossing=crossing_for(reference))
    for chunk in reference.iter_chunks(reference_split, chunk_size):
        evaluator.add_reference(chunk)
    for chunk in generated.iter_chunks(generated_split, chunk_size):
        evaluator.add_generated(chunk)
    return evaluator.result()


def evaluate_files(
    reference: str | os.PathLike,
    generated: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    reference_split: str | None = None,
    generated_split: str | None = None,
    video_options: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], PhysicsMetrics | VideoMetrics]:
    """Compare two trajectory files in distribution; write metrics JSON to `out` if given.

    The reference's split defaults to 'test', the generated file's to its only split. The metrics are
    chosen from the reference file's `problem` attribute; "video" files get FVD / PSNR / SSIM, with
    `video_options` passed to `stochlift.metrics.video.evaluate_video_files` (i3d_weights, clip_frames, ...).
    """
    if out is not None:
        refuse_overwriting_inputs([out], [reference, generated])
    ref, gen = TrajectoryFile(reference), TrajectoryFile(generated)
    ref_split = reference_split or ref.default_split("test")
    gen_split = generated_split or gen.default_split("generated")
    check_comparable(ref, gen)
    metrics: PhysicsMetrics | VideoMetrics
    if ref.meta.problem == VIDEO_PROBLEM:
        # imports torch, so only for video files
        from stochlift.metrics.video import evaluate_video_files

        metrics = evaluate_video_files(ref, gen, reference_split=ref_split, generated_split=gen_split,
                                       **(video_options or {}))
    elif ref.meta.problem in PHYSICS_PROBLEMS:
        metrics = evaluate_physics_files(ref, gen, reference_split=ref_split, generated_split=gen_split)
    else:
        known = [*PHYSICS_PROBLEMS, VIDEO_PROBLEM]
        raise StochliftError(f"no metrics for problem {ref.meta.problem!r} yet; known: {known}")
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
