"""Tests for the figures and animations: readable output, atomic writes, no leaked figures."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import matplotlib
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest

import stochlift.apps.plots as plots
from stochlift.apps.plots import save_crossing_time_plot, save_mass_plot, save_rollout_animation, save_snapshot_grid
from stochlift.errors import StochliftError


def fields(k: int = 2, t: int = 6, size: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(k, t, size, size)).astype(np.float32)


def no_leftovers(directory: Path) -> bool:
    return not list(directory.rglob("*.tmp"))


@pytest.fixture(autouse=True)
def no_figure_leaks():
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


def test_animation_gif_has_one_frame_per_time(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "rollout.gif"
    save_rollout_animation(path, fields(t=7), fields(t=7, seed=1), fps=5, title="wave")
    frames = iio.imread(path, index=None)
    assert frames.shape[0] == 7 and frames.ndim == 4
    assert not np.array_equal(frames[0], frames[1])  # the counter and the fields change
    assert no_leftovers(tmp_path)


def test_a_long_animation_has_every_frame(tmp_path: Path) -> None:
    save_rollout_animation(tmp_path / "big.gif", fields(k=4, t=64, size=32), fields(k=4, t=64, size=32, seed=1))
    assert iio.imread(tmp_path / "big.gif", index=None).shape[0] == 64


def count_near(image: np.ndarray, rgba: tuple[float, ...], tol: float = 20.0) -> int:
    colour = np.array(rgba[:3]) * 255
    return int((np.abs(image[..., :3].astype(float) - colour).max(axis=-1) < tol).sum())


def test_animation_colour_scale_is_shared_and_symmetric(tmp_path: Path) -> None:
    """Generated = reference / 2 must look paler than the reference (one scale, set by the reference)."""
    ref = np.zeros((1, 2, 8, 8), dtype=np.float32)
    ref[0, :, :, :4] = 1.0
    ref[0, :, :, 4:] = -1.0
    save_rollout_animation(tmp_path / "s.gif", ref, 0.5 * ref, cmap="RdBu_r")
    frame = iio.imread(tmp_path / "s.gif", index=None)[0]
    height, width = frame.shape[:2]
    panels = frame[:, : int(0.75 * width)]  # leave out the colour bar on the right
    top, bottom = panels[: int(0.45 * height)], panels[int(0.6 * height) :]  # clear of the row boundary
    cmap = matplotlib.colormaps["RdBu_r"]
    for end, half in ((1.0, 0.75), (0.0, 0.25)):  # +-max|ref| -> the ends of the map, +-max|ref|/2 -> halfway
        in_top = count_near(top, cmap(end))
        assert in_top > 1000
        assert count_near(bottom, cmap(end)) < 0.02 * in_top  # a few anti-aliased edge pixels at most
        assert count_near(bottom, cmap(half)) > 0.9 * in_top


@pytest.mark.parametrize("name", ["rollout.png", "rollout"])
def test_animation_rejects_unknown_suffix(tmp_path: Path, name: str) -> None:
    with pytest.raises(StochliftError, match=".gif or .mp4"):
        save_rollout_animation(tmp_path / name, fields(), fields())
    assert not list(tmp_path.iterdir())


def test_mp4_without_ffmpeg_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # makes the import fail
    with pytest.raises(StochliftError, match="imageio-ffmpeg"):
        save_rollout_animation(tmp_path / "r.mp4", fields(), fields())
    assert not list(tmp_path.iterdir())


def test_mp4_when_ffmpeg_is_installed(tmp_path: Path) -> None:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    path = tmp_path / "r.mp4"
    save_rollout_animation(path, fields(t=5), fields(t=5, seed=1))
    reader = imageio_ffmpeg.read_frames(str(path))
    next(reader)  # metadata
    assert sum(1 for _ in reader) == 5
    assert no_leftovers(tmp_path)


def test_mismatched_shapes_leave_no_file(tmp_path: Path) -> None:
    with pytest.raises(StochliftError, match="same shape"):
        save_rollout_animation(tmp_path / "a.gif", fields(t=6), fields(t=5))
    with pytest.raises(StochliftError, match="same shape"):
        save_snapshot_grid(tmp_path / "s.png", fields(k=2), fields(k=3))
    with pytest.raises(StochliftError, match="frames"):
        save_mass_plot(tmp_path / "m.png", np.ones((4, 5)), np.ones((4, 6)))
    with pytest.raises(StochliftError, match="NaN"):
        save_crossing_time_plot(tmp_path / "c.png", [0.1, np.nan], [0.2])
    assert not list(tmp_path.iterdir())


def test_failure_while_writing_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that dies half-way must leave neither the target nor a temporary file."""

    def partial_write(target, *args, **kwargs) -> None:
        Path(target).write_bytes(b"half a file")
        raise OSError("disk full")

    def partial_savefig(self, target, *args, **kwargs) -> None:
        if hasattr(target, "write"):  # PNGs are rendered to memory first, then written atomically
            target.write(b"half a file")
            raise OSError("disk full")
        partial_write(target)

    monkeypatch.setattr(plots.iio, "imwrite", partial_write)
    with pytest.raises(OSError, match="disk full"):
        save_rollout_animation(tmp_path / "a.gif", fields(), fields())
    monkeypatch.setattr(plots.Figure, "savefig", partial_savefig)
    with pytest.raises(OSError, match="disk full"):
        save_mass_plot(tmp_path / "m.png", np.ones((4, 5)), np.ones((3, 5)))
    with pytest.raises(OSError, match="disk full"):
        save_snapshot_grid(tmp_path / "s.png", fields(), fields())
    assert not list(tmp_path.iterdir())


def read_png(path: Path) -> np.ndarray:
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    return image


def test_crossing_time_plot(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    metrics = {"wct": 0.05, "wct_relative": 0.4, "mass_w2": 0.01, "mass_w2_relative": None}
    path = tmp_path / "plots" / "tau.png"
    save_crossing_time_plot(path, rng.uniform(size=40), np.append(rng.uniform(size=30), 1.0), metrics)
    read_png(path)
    save_crossing_time_plot(tmp_path / "plain.png", [0.2, 0.4], [1.0])
    read_png(tmp_path / "plain.png")
    assert no_leftovers(tmp_path)


def test_mass_plot(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = tmp_path / "mass.png"
    save_mass_plot(path, rng.uniform(size=(20, 9)), rng.uniform(size=(7, 9)))
    read_png(path)
    assert no_leftovers(tmp_path)


def test_snapshot_grid(tmp_path: Path) -> None:
    path = tmp_path / "grid.png"
    save_snapshot_grid(path, fields(k=2, t=8), fields(k=2, t=8, seed=1), frames=(0, 3, -1))
    read_png(path)
    save_snapshot_grid(tmp_path / "default.png", fields(k=1, t=3), fields(k=1, t=3, seed=1))
    read_png(tmp_path / "default.png")
    with pytest.raises(StochliftError, match="frames"):
        save_snapshot_grid(tmp_path / "bad.png", fields(t=8), fields(t=8), frames=(8,))
    assert no_leftovers(tmp_path)
    assert not (tmp_path / "bad.png").exists()
