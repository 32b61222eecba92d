"""The BAIR video-prediction protocol, run end to end from a trained run directory and a test file.

BAIR (anchors.md section 3; the paper's Table 2): the 256 test videos; from each video's first frame, 100
samples of 15 further frames (16-frame clips); FVD between the I3D features of the 256 real clips and of the
25,600 generated ones; best-of-100 PSNR/SSIM over the 15 predicted frames. Papers differ on whether the
context frame is inside the FVD clips, so that is an option, written into the result with every other
protocol detail (`VideoProtocol.describe`). Other counts can be asked for; the result then says that it is
not the standard protocol.

Samples of test video v use the label stream seeded by (seed, v) and are generated, measured and dropped
one video at a time: memory holds one video's samples, never the 25,600 clips.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stochlift.data.trajectories import TrajectoryFile
from stochlift.errors import StochliftError
from stochlift.io import refuse_overwriting_inputs, write_json
from stochlift.metrics.fvd import (
    Extractor,
    GaussianStats,
    file_clips,
    fvd_from_stats,
    stats_of,
)
from stochlift.metrics.video import (
    FVD_NEEDS_WEIGHTS,
    BestOfN,
    VideoProtocol,
    i3d_extractor,
    prepare,
)

BAIR_PROTOCOL = {"context_frames": 1, "predicted_frames": 15, "samples": 100, "videos": 256}


def run_video_protocol(
    run_dir: str | os.PathLike,
    test_file: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    split: str | None = None,
    i3d_weights: str | os.PathLike | None = None,
    videos: int = 256,
    samples: int = 100,
    context_frames: int = 1,
    predicted_frames: int = 15,
    context_in_fvd: bool = True,
    resize: str = "tf1",
    seed: int = 0,
    batch_size: int = 100,
    device: str = "cpu",
    fvd_batch_size: int = 16,
    extractor: Extractor | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Sample `samples` continuations of each of the first `videos` test videos and measure them.

    Returns (and writes to `out`, if given) FVD when I3D weights (argument or $STOCHLIFT_I3D_WEIGHTS) or an
    `extractor` are at hand, best-of-N PSNR/SSIM and the sample spread always, and the exact protocol.
    """
    from stochlift.lifting.labels import stream_seed
    from stochlift.lifting.rollout import rollout_batches
    from stochlift.lifting.runs import check_run_inputs, load_run, run_files
    from stochlift.metrics.i3d import resolve_weights
    from stochlift.progress import tqdm

    for name, value in (("videos", videos), ("samples", samples), ("predicted frames", predicted_frames),
                        ("batch size", batch_size)):
        if value < 1:
            raise StochliftError(f"{name} must be positive, got {value}")
    started = time.time()
    if out is not None:
        refuse_overwriting_inputs([out], [*run_files(run_dir), test_file, i3d_weights])
    model, config, _ = load_run(run_dir)
    test = TrajectoryFile(test_file)
    split = split or test.default_split("test")
    protocol = VideoProtocol(context_frames=context_frames, clip_frames=context_frames + predicted_frames,
                             context_in_fvd=context_in_fvd, resize=resize)
    assert config.model.frame_shape is not None  # load_run built the model, which needs it
    if list(test.meta.frame_shape) != list(config.model.frame_shape):
        raise StochliftError(
            f"test frames {list(test.meta.frame_shape)} do not fit the model's {config.model.frame_shape}"
        )
    check_run_inputs(run_dir, test, "the test file")
    if split not in test.splits:
        raise StochliftError(f"{test.path} has no split {split!r}; it has {list(test.splits)}")
    if test.splits[split] < videos:
        raise StochliftError(f"{test.path} split {split!r} has {test.splits[split]} videos, fewer than {videos}")
    if test.meta.frames < protocol.clip_frames:
        raise StochliftError(f"test videos have {test.meta.frames} frames, the protocol needs {protocol.clip_frames}")

    notes: list[str] = []
    weights = resolve_weights(i3d_weights) if extractor is None else None
    if extractor is None and weights is not None:
        extractor = i3d_extractor(weights, protocol, device=device, batch_size=fvd_batch_size)
    if extractor is None:
        notes.append(FVD_NEEDS_WEIGHTS)
    real = fake = None
    if extractor is not None:
        clips = file_clips(test, split, protocol.fvd_frames, fvd_batch_size, rows=videos)
        real, fake = stats_of((prepare(c, protocol.quantize) for c in clips), extractor), GaussianStats()

    best = BestOfN()
    sampling_seconds = 0.0
    for v in tqdm(range(videos), desc="test videos", unit="video", disable=not progress):
        given = test.read(split, v, slice(0, context_frames))  # [k, C, H, W]
        initial = np.repeat(given[None], samples, axis=0)
        tick = time.time()
        batches = [batch for _, batch in rollout_batches(
            model, initial, protocol.clip_frames, seed=stream_seed(seed, "video-protocol", v),
            batch_size=min(batch_size, samples), device=device)]
        sampling_seconds += time.time() - tick
        generated = np.concatenate(batches)
        if not np.isfinite(generated).all():
            raise StochliftError(f"the rollout of test video {v} diverged (NaN or Inf)")
        generated = prepare(generated, protocol.quantize)
        truth = test.read(split, v, protocol.predicted)
        best.add(generated[:, protocol.predicted], truth)
        if fake is not None:
            assert extractor is not None  # fake is made only with an extractor
            fake.add(extractor(generated[:, protocol.fvd_frames]))

    asked = {"context_frames": context_frames, "predicted_frames": predicted_frames, "samples": samples,
             "videos": videos}
    standard = asked == BAIR_PROTOCOL
    if not standard:
        notes.append(f"not the standard BAIR protocol {BAIR_PROTOCOL}: numbers are not comparable with papers")
    result: dict[str, Any] = {
        "protocol_name": "bair" if standard else "custom",
        "standard_bair_protocol": standard,
        "fvd": fvd_from_stats(real, fake) if real is not None and fake is not None else None,
        "fvd_real_clips": real.n if real is not None else 0,
        "fvd_generated_clips": fake.n if fake is not None else 0,
        **best.result(),
        "protocol": {**protocol.describe(), "videos": videos, "samples_per_video": samples,
                     "i3d_weights": str(Path(weights).resolve()) if weights is not None else None},
        "run": str(Path(run_dir).resolve()),
        "test_file": str(test.path.resolve()),
        "test_split": split,
        "test_videos": f"rows 0..{videos - 1} of the split",
        "seed": seed,
        "sampling": f"labels of test video v from stream (seed, 'video-protocol', v), batch size "
                    f"{min(batch_size, samples)}",
        "device": device,
        "machine": f"{platform.node()} ({platform.machine()}, torch {torch.__version__})",
        "sampling_seconds": sampling_seconds,
        "seconds": time.time() - started,
        "notes": notes,
    }
    if out is not None:
        write_json(out, result)
    return result
