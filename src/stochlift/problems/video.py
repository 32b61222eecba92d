"""Video: frames of RGB or gray pixels in [0, 1] (BAIR, CLEVRER, Stochastic Moving Digits, the ball scene).

Scored with the field's protocol (FVD with I3D, best-of-N PSNR/SSIM, sample spread; stochlift.metrics.video)
and shown on a fixed [0, 1] scale. Its demos are the two shipped synthetic video benchmarks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from stochlift.data.readers import TrajectoryReader
from stochlift.data.synthetic_video import make_bouncing_balls, make_moving_digits
from stochlift.data.video import VIDEO_PROBLEM
from stochlift.problems.base import UNIT_RANGE_DISPLAY, Demo, Metrics, Problem


def _digits(out: str | os.PathLike, *, trajectories: int | None, frames: int | None, size: int | None, seed: int,
            progress: bool) -> Path:
    """Stochastic Moving MNIST at half its resolution: 32 px canvas, 16 px digits, speeds up to 2 px per frame
    (defaults: 1,024 train / 64 valid / 256 test videos)."""
    return make_moving_digits(out, trajectories=trajectories, frames=frames or 20, size=size or 32,
                              max_speed=max(1, (size or 32) // 16), seed=seed, progress=progress)


def _balls(out: str | os.PathLike, *, trajectories: int | None, frames: int | None, size: int | None, seed: int,
           progress: bool) -> Path:
    """The CLEVRER-like RGB ball scene at 32x32, 32 frames."""
    return make_bouncing_balls(out, trajectories=trajectories, frames=frames or 32, size=size or 32, seed=seed,
                               progress=progress)


class VideoProblem(Problem):
    name = VIDEO_PROBLEM
    description = "video frames in [0, 1] (FVD, best-of-N PSNR/SSIM)"
    demos = {"digits": Demo(make_data=_digits, config="digits-quick", video=True),
             "balls": Demo(make_data=_balls, config="balls-quick", video=True)}
    report_metrics = False  # FVD needs I3D weights and paired videos: `stochlift evaluate` / `video-eval` score it

    def evaluate(self, reference: TrajectoryReader, generated: TrajectoryReader, *, reference_split: str,
                 generated_split: str, **options: Any) -> Metrics:
        """FVD (with I3D weights), best-of-N PSNR/SSIM and spread; `options` are those of
        stochlift.metrics.video.evaluate_video_files (i3d_weights, clip_frames, context_in_fvd, device, ...)."""
        from stochlift.metrics.video import evaluate_video_files  # imports torch: only for video files

        return evaluate_video_files(reference, generated, reference_split=reference_split,
                                    generated_split=generated_split, **options)

    def display(self, reference: np.ndarray) -> dict[str, Any]:
        return dict(UNIT_RANGE_DISPLAY)
