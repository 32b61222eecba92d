"""`stochlift export`: trajectories as MP4, GIF or PNG, for 2-D fields, 1-D fields, vectors and video."""

from __future__ import annotations

import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from conftest import smooth_trajectories, tiny_meta, write_tiny
from stochlift.apps.export import export_trajectories
from stochlift.data.trajectories import TrajectoryMeta, write_trajectories
from stochlift.errors import StochliftError

FRAMES = 6


def _frames(path: Path) -> np.ndarray:
    """Every frame of a GIF or MP4, as imageio reads it back: [T, H, W, 3]."""
    if path.suffix == ".mp4":
        return iio.imread(path, index=None, plugin="FFMPEG")
    return iio.imread(path, index=None)


@pytest.fixture(scope="module")
def fields_2d(tmp_path_factory) -> tuple[Path, Path]:
    """A reference (test split of 3) and generated samples (split 'generated' of 4): 8x8 fields, 6 frames."""
    folder = tmp_path_factory.mktemp("export")
    reference = write_tiny(folder / "reference.h5", splits={"train": 2, "test": 3})
    generated = folder / "samples.h5"
    write_trajectories(generated, tiny_meta(), {"generated": smooth_trajectories(4, seed=5)})
    return reference, generated


def _generic(path: Path, state: tuple[int, ...], n: int = 3, seed: int = 0) -> Path:
    """A generic file of n trajectories with states [C] (vectors) or [C, X] (1-D fields)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, state[1]) if len(state) == 2 else None
    meta = TrajectoryMeta(dataset_name=path.stem, problem="generic",
                          field_names=tuple(f"v{i}" for i in range(state[0])), time=np.linspace(0.0, 2.0, FRAMES), x=x)
    values = np.cumsum(rng.normal(size=(n, FRAMES, *state)), axis=1).astype(np.float32)
    write_trajectories(path, meta, {"generated": values})
    return path


def test_mp4_gif_and_png_of_2d_fields_through_the_cli(fields_2d, tmp_path, run_cli_inprocess):
    pytest.importorskip("imageio_ffmpeg")
    reference, samples = fields_2d
    for name in ("a.mp4", "a.gif"):
        result = run_cli_inprocess("export", samples, "--out", tmp_path / name, "--reference", reference,
                                   "--trajectories", "2")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"wrote {tmp_path / name}"
        frames = _frames(tmp_path / name)
        assert frames.shape[0] == FRAMES and frames.shape[-1] == 3
        assert frames.std(axis=0).max() > 0  # the fields move: frames differ
    alone = _frames(export_trajectories(samples, tmp_path / "alone.gif", trajectories=3))
    together = _frames(tmp_path / "a.gif")
    assert alone.shape[0] == FRAMES and alone.shape[1] < together.shape[1]  # one row, not two
    still = iio.imread(export_trajectories(samples, tmp_path / "s.png", reference=reference))
    assert still.ndim == 3 and still.shape[0] > 300 and still.shape[1] > 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.mp4", "alone.gif", "s.png"]  # no temporaries


def test_1d_fields_as_space_time_images_and_a_filling_video(tmp_path):
    samples = _generic(tmp_path / "line.h5", (2, 16))
    still = iio.imread(export_trajectories(samples, tmp_path / "line.png", field="v1"))
    assert still.ndim == 3 and still.shape[1] > 400
    frames = _frames(export_trajectories(samples, tmp_path / "line.gif", reference=samples))
    assert frames.shape[0] == FRAMES
    # each frame fills in one more time row of the images: more of the picture is drawn as time goes on
    drawn = [(frame.astype(int).sum(axis=-1) < 700).sum() for frame in frames]
    assert drawn == sorted(drawn) and drawn[-1] > drawn[0]
    with pytest.raises(StochliftError, match=r"no field 'w'; the file has \['v0', 'v1'\]"):
        export_trajectories(samples, tmp_path / "x.png", field="w")


def test_vectors_export_as_a_still_only(tmp_path):
    samples = _generic(tmp_path / "vec.h5", (3,))
    still = iio.imread(export_trajectories(samples, tmp_path / "vec.png", reference=samples, trajectories=2))
    assert still.ndim == 3 and still.shape[1] > 400
    with pytest.raises(StochliftError, match="export as a still"):
        export_trajectories(samples, tmp_path / "vec.gif")
    assert not (tmp_path / "vec.gif").exists()


def test_video_frames_are_drawn_pixel_exact(tmp_path):
    meta = tiny_meta()
    meta.problem, meta.dtype, meta.field_names = "video", "uint8", ("r", "g", "b")
    videos = np.clip(np.abs(smooth_trajectories(2, channels=3)), 0.0, 1.0)
    path = tmp_path / "video.h5"
    write_trajectories(path, meta, {"generated": videos})
    frames = _frames(export_trajectories(path, tmp_path / "v.gif", trajectories=2))
    assert frames.shape[0] == FRAMES
    still = iio.imread(export_trajectories(path, tmp_path / "v.png", trajectories=2))
    assert still.ndim == 3


@pytest.mark.parametrize("name", ["out.avi", "out", "out.html"])
def test_bad_suffix_is_one_line_error_before_reading(tmp_path, run_cli_inprocess, name):
    result = run_cli_inprocess("export", tmp_path / "missing.h5", "--out", tmp_path / name)
    assert result.returncode == 2
    assert result.stderr_lines == [f"error: --out must end with .mp4, .gif or .png, got {name!r}"]
    assert not list(tmp_path.iterdir())


def test_mp4_without_ffmpeg_names_the_extra(fields_2d, tmp_path, monkeypatch):
    _, samples = fields_2d
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # makes the import fail
    with pytest.raises(StochliftError, match=r"imageio-ffmpeg package \(pip install 'stochlift\[video\]'\)"):
        export_trajectories(samples, tmp_path / "a.mp4")
    assert not list(tmp_path.iterdir())
