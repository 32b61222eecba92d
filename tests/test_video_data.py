"""Video data: uint8 storage, folder/CLEVRER/BAIR importers, the shipped synthetic benchmarks and their CLI."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest

from stochlift.data import tfrecord
from stochlift.data.bair import import_bair
from stochlift.data.synthetic_video import (
    BallsParams,
    bounce_step,
    digit_paths,
    elastic_collisions,
    make_bouncing_balls,
    make_moving_digits,
    render_balls,
    render_digits,
    simulate_balls,
)
from stochlift.data.trajectories import TrajectoryFile, TrajectoryMeta, TrajectoryWriter
from stochlift.data.video import import_clevrer, import_video_folder, resize_frame, split_counts
from stochlift.errors import StochliftError


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())  # hidden temporary/staging files included


# ------------------------------------------------------------------------------------ uint8 storage


def _video_meta(frames: int = 5, size: int = 6) -> TrajectoryMeta:
    grid = (np.arange(size) + 0.5) / size
    return TrajectoryMeta("v", "video", ("r", "g", "b"), np.arange(frames), grid, grid, dtype="uint8")


def test_uint8_round_trip_reads_floats_in_unit_interval(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(3, 5, 3, 6, 6), dtype=np.uint8)
    floats = rng.uniform(size=(2, 5, 3, 6, 6)).astype(np.float32)
    path = tmp_path / "v.h5"
    with TrajectoryWriter(path, _video_meta(), {"train": 3, "test": 2}) as w:
        w.write("train", 0, {n: raw[:, :, c] for c, n in enumerate("rgb")})
        w.write("test", 0, {n: floats[:, :, c] for c, n in enumerate("rgb")})
    f = TrajectoryFile(path)
    assert f.meta.dtype == "uint8" and f.meta.problem == "video"
    train = f.read("train")
    assert train.dtype == np.float32 and train.shape == (3, 5, 3, 6, 6)
    np.testing.assert_array_equal(f.read("train", raw=True), raw)
    np.testing.assert_allclose(train, raw / 255.0, atol=1e-7)
    np.testing.assert_array_equal(f.read("test", raw=True), np.rint(floats * 255).astype(np.uint8))
    assert np.abs(f.read("test") - floats).max() <= 0.5 / 255 + 1e-6
    chunks = np.concatenate(list(f.iter_chunks("train", 2)))
    assert chunks.dtype == np.float32 and np.array_equal(chunks, train)
    with h5py.File(path) as h:
        d = h["train/t0_fields/r"]
        assert d.dtype == np.uint8 and d.chunks[:2] == (1, 5) and d.compression == "gzip"
        assert d.attrs["storage_dtype"] == "uint8"


def test_uint8_writer_refuses_values_outside_unit_interval(tmp_path: Path) -> None:
    bad = np.full((1, 5, 6, 6), 1.5, dtype=np.float32)
    with pytest.raises(StochliftError, match=r"uint8 file stores \[0, 1\]"):
        with TrajectoryWriter(tmp_path / "v.h5", _video_meta(), {"train": 1}) as w:
            w.write("train", 0, {"r": bad, "g": bad, "b": bad})
    assert _files(tmp_path) == []
    with pytest.raises(StochliftError, match="storage dtype"):
        meta = _video_meta()
        meta.dtype = "int16"
        TrajectoryWriter(tmp_path / "v.h5", meta, {"train": 1})


def test_float32_stays_the_default(tmp_path: Path) -> None:
    meta = _video_meta()
    meta.dtype = "float32"
    path = tmp_path / "f.h5"
    values = np.full((1, 5, 6, 6), 2.5, dtype=np.float32)
    with TrajectoryWriter(path, meta, {"train": 1}) as w:
        w.write("train", 0, {"r": values, "g": values, "b": values})
    f = TrajectoryFile(path)
    assert f.meta.dtype == "float32" and f.read("train").max() == 2.5


# ---------------------------------------------------------------------------- moving digits physics


def test_bounce_draws_a_new_velocity_away_from_the_wall() -> None:
    rng = np.random.default_rng(1)
    n, high = 4000, 31
    pos = rng.integers(-4, high + 5, size=(n, 2))
    vel = rng.integers(-4, 5, size=(n, 2))
    new_pos, new_vel, hit = bounce_step(pos, vel, rng, high)
    assert ((new_pos >= 0) & (new_pos <= high)).all()
    assert (new_pos[pos < 0] == 0).all() and (new_pos[pos > high] == high).all()
    assert (new_vel[pos < 0] >= 1).all() and (new_vel[pos < 0] <= 4).all()  # away from the low wall
    assert (new_vel[pos > high] <= -1).all() and (new_vel[pos > high] >= -4).all()
    one_axis = hit.any(axis=1) & ~hit.all(axis=1)
    other = new_vel[one_axis][~hit[one_axis]]  # the component along the wall: random in -4..4
    assert other.min() == -4 and other.max() == 4 and len(np.unique(other)) == 9
    untouched = ~hit.any(axis=1)
    np.testing.assert_array_equal(new_vel[untouched], vel[untouched])
    np.testing.assert_array_equal(new_pos[untouched], pos[untouched])


def test_digit_paths_follow_the_rules() -> None:
    paths = digit_paths(np.random.default_rng(2), 300, 40, digits=2, size=64, digit_size=32)
    assert paths.shape == (300, 40, 2, 2)
    assert paths.min() >= 0 and paths.max() <= 31  # every digit stays fully inside the 64x64 canvas
    assert (paths[:, 0] < 32).all()
    steps = np.diff(paths, axis=1)
    assert np.abs(steps).max() <= 4  # integer speeds in -4..4
    # a digit clamped at the low wall moves away from it (or stays) on the next frame
    at_low = paths[:, 1:-1] == 0
    assert (steps[:, 1:][at_low] >= 0).all()
    at_high = paths[:, 1:-1] == 31
    assert (steps[:, 1:][at_high] <= 0).all()


def test_render_digits_sums_and_clips_at_one() -> None:
    paths = np.zeros((1, 1, 2, 2), dtype=np.int64)
    paths[0, 0, 1] = (2, 2)
    glyphs = np.full((1, 2, 4, 4), 0.7, dtype=np.float32)
    frame = render_digits(paths, glyphs, size=8)[0, 0]
    assert frame[0, 0] == pytest.approx(0.7) and frame[3, 3] == 1.0 and frame[7, 7] == 0.0


def _write_idx(path: Path, images: np.ndarray) -> None:
    data = struct.pack(">IIII", 2051, *images.shape) + images.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake MNIST folder: blobs on 28x28, train file gzipped, t10k file plain."""
    folder = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:28, :28]
    blobs = [255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 20) for cy, cx in rng.uniform(8, 20, (30, 2))]
    _write_idx(folder / "train-images-idx3-ubyte.gz", np.array(blobs[:20]))
    _write_idx(folder / "t10k-images-idx3-ubyte", np.array(blobs[20:]))
    return folder


def test_moving_digits_file(tmp_path: Path, mnist_dir: Path) -> None:
    options = dict(trajectories=10, frames=6, size=32, mnist=mnist_dir, progress=False)
    path = make_moving_digits(tmp_path / "d.h5", seed=3, **options)
    f = TrajectoryFile(path)
    assert f.meta.problem == "video" and f.meta.dtype == "uint8" and f.meta.field_names == ("gray",)
    assert sum(f.splits.values()) == 10 and set(f.splits) == {"train", "valid", "test"}
    x = f.read("train")
    assert x.shape == (f.splits["train"], 6, 1, 32, 32) and x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.5
    np.testing.assert_allclose(f.meta.x, (np.arange(32) + 0.5) / 32)
    np.testing.assert_array_equal(f.meta.time, np.arange(6))
    p = f.meta.parameters
    assert p["digit_size"] == 16 and p["max_speed"] == 4 and p["seed"] == 3 and p["source"].startswith("mnist:")
    again = make_moving_digits(tmp_path / "e.h5", seed=3, **options)
    other = make_moving_digits(tmp_path / "o.h5", seed=4, **options)
    for split in f.splits:
        np.testing.assert_array_equal(f.read(split, raw=True), TrajectoryFile(again).read(split, raw=True))
    assert not np.array_equal(f.read("train", raw=True), TrajectoryFile(other).read("train", raw=True))


def test_moving_digits_with_scikit_learn_digits(tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="scikit-learn (the 'video' extra) is not installed")
    f = TrajectoryFile(make_moving_digits(tmp_path / "d.h5", trajectories=3, frames=3, progress=False))
    x = f.read("test")
    assert x.shape == (1, 3, 1, 64, 64) and x.max() > 0.9 and x.min() == 0.0
    assert "sklearn" in f.meta.parameters["source"]


def test_moving_digits_errors(tmp_path: Path) -> None:
    with pytest.raises(StochliftError, match="no such MNIST"):
        make_moving_digits(tmp_path / "d.h5", trajectories=3, mnist=tmp_path / "missing", progress=False)
    (tmp_path / "bad-idx").write_bytes(b"\0" * 20)
    with pytest.raises(StochliftError, match="idx3-ubyte"):
        make_moving_digits(tmp_path / "d.h5", trajectories=3, mnist=tmp_path / "bad-idx", progress=False)
    with pytest.raises(StochliftError, match="digit_size"):
        make_moving_digits(tmp_path / "d.h5", trajectories=3, size=16, digit_size=16, progress=False)
    assert _files(tmp_path) == ["bad-idx"]


# ------------------------------------------------------------------------------------------- balls


def test_elastic_collisions_conserve_momentum_and_energy() -> None:
    pos = np.array([[10.0, 10.0], [10.0, 15.0]])
    vel = np.array([[0.0, 1.0], [0.0, -0.5]])
    assert elastic_collisions(pos, vel, radius=3.0) == 1
    np.testing.assert_allclose(vel, [[0.0, -0.5], [0.0, 1.0]])  # head on: velocities exchanged
    assert elastic_collisions(pos, vel, radius=3.0) == 0  # separating now: no second kick
    rng = np.random.default_rng(0)
    for _ in range(50):
        pos, vel = rng.uniform(0, 6, (5, 2)), rng.normal(size=(5, 2))
        momentum, energy = vel.sum(axis=0), (vel**2).sum()
        elastic_collisions(pos, vel, radius=2.0)
        np.testing.assert_allclose(vel.sum(axis=0), momentum, atol=1e-12)
        assert (vel**2).sum() == pytest.approx(energy)


def test_balls_enter_from_off_frame_and_respect_the_cap() -> None:
    params = BallsParams(size=32, frames=80, max_balls=4, entry_rate=0.5, warmup=0)
    rng = np.random.default_rng(5)
    for _ in range(10):
        scene = simulate_balls(params, rng)
        present = np.isfinite(scene.centres[..., 0])
        assert len(scene.entered) == scene.centres.shape[1] > 0
        assert present.sum(axis=1).max() <= 4  # never more balls in the world than max_balls
        assert scene.visible(32).sum(axis=1).max() <= 4
        for ball, frame in enumerate(scene.entered):
            assert present[frame, ball] and not present[:frame, ball].any()
            assert not scene.visible(32)[frame, ball]  # it starts outside the frame
        assert (scene.entered[1:] >= scene.entered[:-1]).all()


def test_no_entries_means_an_empty_grey_scene() -> None:
    params = BallsParams(size=16, frames=5, entry_rate=0.0, background=0.4)
    scene = simulate_balls(params, np.random.default_rng(0))
    assert len(scene.entered) == 0
    np.testing.assert_allclose(render_balls(scene, params), 0.4)


def test_balls_file(tmp_path: Path) -> None:
    path = make_bouncing_balls(tmp_path / "b.h5", trajectories=6, frames=12, size=16, max_balls=2, entry_rate=0.3,
                               seed=1, progress=False)
    f = TrajectoryFile(path)
    assert f.meta.field_names == ("r", "g", "b") and f.meta.dtype == "uint8" and f.meta.problem == "video"
    x = f.read("train")
    assert x.shape == (f.splits["train"], 12, 3, 16, 16) and x.min() >= 0 and x.max() <= 1
    assert (x != 0.5).any()  # some ball shows up
    p = f.meta.parameters
    assert p["max_balls"] == 2 and p["seed"] == 1 and p["speed"] == [0.02, 0.05]
    assert all(v["max_visible_balls"] <= 2 for v in p["observed"].values())
    again = make_bouncing_balls(tmp_path / "c.h5", trajectories=6, frames=12, size=16, max_balls=2, entry_rate=0.3,
                                seed=1, progress=False)
    np.testing.assert_array_equal(TrajectoryFile(again).read("test", raw=True), f.read("test", raw=True))
    with pytest.raises(StochliftError, match="radius"):
        make_bouncing_balls(tmp_path / "x.h5", trajectories=3, radius=0.7, progress=False)
    with pytest.raises(StochliftError, match="parameter"):
        make_bouncing_balls(tmp_path / "x.h5", trajectories=3, colour="red", progress=False)
    assert not (tmp_path / "x.h5").exists()


# ------------------------------------------------------------------------------------ folder import


def _grey_frames(count: int, h: int = 12, w: int = 18, offset: int = 0) -> np.ndarray:
    """Frame i is uniformly grey at level 10 * i + offset: the value tells which source frame it is."""
    levels = 10 * np.arange(count) + offset
    return np.broadcast_to(levels[:, None, None, None], (count, h, w, 3)).astype(np.uint8).copy()


def test_resize_frame_modes() -> None:
    frame = np.zeros((20, 40, 3), dtype=np.uint8)
    frame[:, 10:30] = 200  # the central square
    assert resize_frame(frame, 10).shape == (10, 10, 3)
    assert resize_frame(frame, 10).min() == 200  # crop keeps the centre, cuts the sides
    stretched = resize_frame(frame, 10, resize="stretch")
    assert stretched[:, 0].max() == 0 and stretched[:, 5].min() == 200
    assert resize_frame(frame, None, crop=(0, 10, 20, 20)).min() == 200
    with pytest.raises(StochliftError, match="crop box"):
        resize_frame(frame, 8, crop=(0, 30, 20, 20))


def test_split_counts() -> None:
    assert split_counts(10, (0.8, 0.1, 0.1)) == [8, 1, 1]
    assert split_counts(1, (0.8, 0.1, 0.1)) == [1, 0, 0]
    assert sum(split_counts(7, (1 / 3, 1 / 3, 1 / 3))) == 7
    with pytest.raises(StochliftError, match="fractions"):
        split_counts(5, (0.5, -0.1, 0.6))
    for fractions in ((0.5, 0.6, 0.1), (1, 1, 1)):  # issue 21: not silently rescaled to sum to 1
        with pytest.raises(StochliftError, match="sum to 1"):
            split_counts(10, fractions)


def test_import_gif_and_png_folders(tmp_path: Path) -> None:
    import imageio.v3 as iio

    src = tmp_path / "videos"
    (src / "nested").mkdir(parents=True)
    iio.imwrite(src / "a.gif", _grey_frames(10), duration=100, loop=0)
    iio.imwrite(src / "nested" / "b.gif", _grey_frames(9, offset=3), duration=100, loop=0)
    frames_dir = src / "c_frames"
    frames_dir.mkdir()
    for i, frame in enumerate(_grey_frames(11, offset=5)):  # frame_10 must sort after frame_9
        iio.imwrite(frames_dir / f"frame_{i}.png", frame)
    out = tmp_path / "v.h5"
    import_video_folder(src, out, size=8, stride=2, clip_length=2, split=(1, 0, 0), progress=False)
    f = TrajectoryFile(out)
    assert f.splits == {"train": 2 + 2 + 3} and f.meta.frame_shape == (3, 8, 8)
    raw = f.read("train", raw=True)
    levels = raw[:, :, 0, 4, 4].tolist()  # natural order: a.gif, c_frames, nested/b.gif
    assert levels == [[0, 20], [40, 60], [5, 25], [45, 65], [85, 105], [3, 23], [43, 63]]
    assert (raw == raw[:, :, :, :1, :1]).all()  # uniform frames stay uniform through crop and resize
    p = f.meta.parameters
    assert p["stride"] == 2 and p["clip_length"] == 2 and p["source_fps"] == pytest.approx(10.0)
    assert p["fps"] == pytest.approx(5.0) and p["videos_per_split"] == {"train": 3}
    np.testing.assert_array_equal(f.meta.time, [0, 2])
    first = tmp_path / "first.h5"
    import_video_folder(src, first, size=None, clip_length=3, clips="first", channels="gray", split=(1, 0, 0),
                        progress=False)
    g = TrajectoryFile(first)
    assert g.splits == {"train": 3} and g.meta.frame_shape == (1, 12, 18) and g.meta.field_names == ("gray",)
    assert [name for name in _files(tmp_path)] == ["first.h5", "v.h5", "videos"]


def test_import_splits_by_video_seeded_and_by_folder(tmp_path: Path) -> None:
    import imageio.v3 as iio

    src = tmp_path / "src"
    for split in ("video_train", "video_validation", "video_test"):
        (src / split).mkdir(parents=True)
    for i in range(5):
        iio.imwrite(src / "video_train" / f"t{i}.gif", _grey_frames(4, 8, 8, offset=i), duration=50)
    iio.imwrite(src / "video_validation" / "v.gif", _grey_frames(4, 8, 8), duration=50)
    iio.imwrite(src / "video_test" / "x.gif", _grey_frames(4, 8, 8), duration=50)
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    for out in (a, b):
        import_video_folder(src, out, size=4, clip_length=2, split=(0.6, 0.2, 0.2), seed=7, progress=False)
    fa, fb = TrajectoryFile(a), TrajectoryFile(b)
    assert fa.splits == {"train": 8, "valid": 4, "test": 2}  # 7 videos -> 4/2/1 (largest remainder), 2 clips each
    for split in fa.splits:
        np.testing.assert_array_equal(fa.read(split, raw=True), fb.read(split, raw=True))
    c = tmp_path / "c.h5"
    import_clevrer(src, c, size=4, stride=1, clip_length=4, progress=False)  # official folders are kept
    fc = TrajectoryFile(c)
    assert fc.splits == {"train": 5, "valid": 1, "test": 1} and fc.meta.dataset_name == "clevrer"
    assert fc.meta.parameters["preset"] == "clevrer" and fc.meta.parameters["split_by"] == "folder"


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_import_ffmpeg_video(tmp_path: Path, suffix: str) -> None:
    pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg is not installed (needed for mp4/webm)")
    import imageio.v3 as iio

    src = tmp_path / "src"
    src.mkdir()
    codec = {"codec": "libvpx-vp9"} if suffix == ".webm" else {}
    frames = _grey_frames(12, 32, 48, offset=40)
    iio.imwrite(src / f"clip{suffix}", frames, fps=25, macro_block_size=16, **codec)
    out = tmp_path / "v.h5"
    import_clevrer(src, out, size=16, stride=5, clip_length=2, split=(1, 0, 0), progress=False)
    f = TrajectoryFile(out)
    assert f.splits == {"train": 1} and f.meta.frame_shape == (3, 16, 16)
    levels = f.read("train", raw=True)[0, :, :, 8, 8].astype(int)  # source frames 0 and 5 (lossy codec)
    assert np.abs(levels - np.array([[40] * 3, [90] * 3])).max() <= 8
    assert f.meta.parameters["fps"] == pytest.approx(5.0)


def test_import_errors_leave_no_file(tmp_path: Path) -> None:
    import imageio.v3 as iio

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "v.h5"
    with pytest.raises(StochliftError, match="no such folder"):
        import_video_folder(tmp_path / "missing", out, progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no videos here")
    with pytest.raises(StochliftError, match="no videos"):
        import_video_folder(empty, out, progress=False)
    src = tmp_path / "src"
    src.mkdir()
    iio.imwrite(src / "a.gif", _grey_frames(5), duration=50)
    with pytest.raises(StochliftError, match="fewer than one clip"):
        import_video_folder(src, out, clip_length=6, progress=False)
    with pytest.raises(StochliftError, match="no video .* long enough"):
        import_video_folder(src, out, clip_length=6, skip_short=True, progress=False)
    with pytest.raises(StochliftError, match="positive integer"):
        import_video_folder(src, out, size=0, progress=False)
    (src / "broken.gif").write_bytes(b"GIF89a not really")
    with pytest.raises(StochliftError, match=r"cannot read video .*broken\.gif"):
        import_video_folder(src, out, clip_length=2, progress=False)
    assert _files(out_dir) == []  # no output and no staging file left behind


# -------------------------------------------------------------------------------------------- BAIR


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _encode_feature(value, packed: bool = True) -> bytes:
    """A tf.train.Feature: list of bytes -> BytesList, float array -> FloatList, int array -> Int64List."""
    if isinstance(value, list):
        return _field(1, b"".join(_field(1, v) for v in value))
    value = np.asarray(value)
    if value.dtype.kind == "f":
        if packed:
            return _field(2, _field(1, value.astype("<f4").tobytes()))
        return _field(2, b"".join(_varint(1 << 3 | 5) + struct.pack("<f", v) for v in value))
    if packed:
        return _field(3, _field(1, b"".join(_varint(int(v)) for v in value)))
    return _field(3, b"".join(_varint(1 << 3 | 0) + _varint(int(v)) for v in value))


def _encode_example(features: dict, packed: bool = True) -> bytes:
    entries = b"".join(
        _field(1, _field(1, k.encode()) + _field(2, _encode_feature(v, packed))) for k, v in features.items()
    )
    return _field(1, entries)


def _masked(data: bytes) -> int:
    crc = tfrecord.crc32c_python(data) if len(data) < 4096 else tfrecord.crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _write_tfrecord(path: Path, records: list[bytes]) -> None:
    with open(path, "wb") as f:
        for data in records:
            length = struct.pack("<Q", len(data))
            f.write(length + struct.pack("<I", _masked(length)) + data + struct.pack("<I", _masked(data)))


def test_crc32c_implementations_agree() -> None:
    assert tfrecord.crc32c_python(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert tfrecord.crc32c(b"123456789") == 0xE3069283
    data = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    assert tfrecord.crc32c_python(data) == tfrecord.crc32c(data)


@pytest.mark.parametrize("packed", [True, False])
def test_example_decoder_matches_the_encoder(packed: bool) -> None:
    features = {
        "0/image_aux1/encoded": [bytes(range(256)) * 3],
        "0/action": np.array([0.5, -1.25, 3.0, 1e-3], dtype=np.float32),
        "steps": np.array([1, -2, 300, 2**40], dtype=np.int64),
        "names": [b"a", b"", b"ccc"],
    }
    decoded = tfrecord.parse_example(_encode_example(features, packed))
    assert set(decoded) == set(features)
    assert decoded["0/image_aux1/encoded"] == features["0/image_aux1/encoded"]
    assert decoded["names"] == features["names"]
    np.testing.assert_array_equal(decoded["0/action"], features["0/action"])
    np.testing.assert_array_equal(decoded["steps"], features["steps"])
    with pytest.raises(StochliftError, match="not a valid tf.train.Example"):
        tfrecord.parse_example(b"\x0a\x05\x0a")


def _bair_record(rng: np.random.Generator, frames: int = 30) -> tuple[bytes, np.ndarray, np.ndarray]:
    aux = rng.integers(0, 256, size=(frames, 64, 64, 3), dtype=np.uint8)
    main = rng.integers(0, 256, size=(frames, 64, 64, 3), dtype=np.uint8)
    features = {}
    for i in range(frames):
        features[f"{i}/action"] = rng.normal(size=4).astype(np.float32)
        features[f"{i}/endeffector_pos"] = rng.normal(size=3).astype(np.float32)
        features[f"{i}/image_aux1/encoded"] = [aux[i].tobytes()]
        features[f"{i}/image_main/encoded"] = [main[i].tobytes()]
    return _encode_example(features), aux, main


@pytest.fixture(scope="module")
def bair_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """softmotion30_44k/{train,test} in the official layout: 3 + 2 train records, 2 test records."""
    root = tmp_path_factory.mktemp("bair")
    rng = np.random.default_rng(0)
    aux, main = {"train": [], "test": []}, {"train": [], "test": []}
    layout = {"train": {"traj_3_to_4.tfrecords": 2, "traj_0_to_2.tfrecords": 3}, "test": {"traj_0_to_1.tfrecords": 2}}
    for split, files in layout.items():
        (root / "softmotion30_44k" / split).mkdir(parents=True)
        for name in sorted(files, key=lambda n: int(n.split("_")[1])):  # the videos in official order
            records = []
            for _ in range(files[name]):
                record, a, m = _bair_record(rng)
                records.append(record)
                aux[split].append(a)
                main[split].append(m)
            _write_tfrecord(root / "softmotion30_44k" / split / name, records)
    return root, {k: np.stack(v) for k, v in aux.items()}, {k: np.stack(v) for k, v in main.items()}


def test_bair_import_keeps_split_camera_and_raw_frames(tmp_path: Path, bair_dir) -> None:
    root, aux, main = bair_dir
    assert tfrecord.count_records(root / "softmotion30_44k/train/traj_0_to_2.tfrecords") == 3
    out = import_bair(root, tmp_path / "bair.h5", progress=False)
    f = TrajectoryFile(out)
    assert f.splits == {"train": 5, "test": 2} and f.meta.dataset_name == "bair"
    assert f.meta.frames == 30 and f.meta.frame_shape == (3, 64, 64) and f.meta.dtype == "uint8"
    for split in ("train", "test"):  # [n, T, C, H, W] <- [n, T, H, W, C]
        np.testing.assert_array_equal(f.read(split, raw=True), aux[split].transpose(0, 1, 4, 2, 3))
    assert f.meta.parameters["camera"] == "image_aux1" and f.meta.parameters["crc_checked"] is True
    out2 = import_bair(root / "softmotion30_44k", tmp_path / "main.h5", camera="image_main", frames=16, valid=2,
                       block=2, progress=False)
    g = TrajectoryFile(out2)
    assert g.splits == {"train": 3, "valid": 2, "test": 2} and g.meta.frames == 16
    np.testing.assert_array_equal(g.read("train", raw=True), main["train"][:3, :16].transpose(0, 1, 4, 2, 3))
    np.testing.assert_array_equal(g.read("valid", raw=True), main["train"][3:, :16].transpose(0, 1, 4, 2, 3))


def test_bair_corrupt_crc_is_a_clear_error(tmp_path: Path, bair_dir) -> None:
    root, _, _ = bair_dir
    broken = tmp_path / "broken" / "test"
    broken.mkdir(parents=True)
    data = bytearray((root / "softmotion30_44k/test/traj_0_to_1.tfrecords").read_bytes())
    data[5000] ^= 0xFF  # inside the first record's data
    (broken / "traj_0_to_1.tfrecords").write_bytes(bytes(data))
    out = tmp_path / "out.h5"
    with pytest.raises(StochliftError, match="data CRC mismatch"):
        import_bair(tmp_path / "broken", out, progress=False)
    assert not out.exists() and _files(tmp_path) == ["broken"]
    data[3] ^= 0xFF  # the length field: caught by the header CRC, even when only counting
    (broken / "traj_0_to_1.tfrecords").write_bytes(bytes(data))
    with pytest.raises(StochliftError, match="length CRC mismatch"):
        import_bair(tmp_path / "broken", out, progress=False)
    (broken / "traj_0_to_1.tfrecords").write_bytes(bytes(data[:3]))
    with pytest.raises(StochliftError, match="truncated"):
        import_bair(tmp_path / "broken", out, progress=False)
    (broken / "traj_0_to_1.tfrecords").unlink()
    with pytest.raises(StochliftError, match="no .tfrecords"):
        import_bair(tmp_path / "broken", out, progress=False)
    with pytest.raises(StochliftError, match="neither softmotion30_44k"):
        import_bair(tmp_path, out, progress=False)
    assert not out.exists()


# --------------------------------------------------------------------------------------------- CLI


def test_cli_synthetic_sets(tmp_path: Path, mnist_dir: Path, run_cli_inprocess) -> None:
    out = tmp_path / "d.h5"
    result = run_cli_inprocess("data", "moving-digits", "--out", out, "--trajectories", 4, "--frames", 3,
                               "--size", 16, "--mnist", mnist_dir, "--seed", 2, "--quiet")
    assert result.returncode == 0, result.stderr
    assert TrajectoryFile(out).meta.parameters["seed"] == 2
    out = tmp_path / "b.h5"
    result = run_cli_inprocess("data", "balls", "--out", out, "--trajectories", 3, "--frames", 4, "--size", 16,
                               "--max-balls", 5, "--flat", "--quiet")
    assert result.returncode == 0, result.stderr
    p = TrajectoryFile(out).meta.parameters
    assert p["max_balls"] == 5 and p["shading"] is False


def test_cli_import_video_and_bair(tmp_path: Path, bair_dir, run_cli) -> None:
    import imageio.v3 as iio

    src = tmp_path / "src"
    src.mkdir()
    iio.imwrite(src / "a.gif", _grey_frames(8), duration=50)
    out = tmp_path / "v.h5"
    result = run_cli("data", "import-video", src, "--out", out, "--size", 8, "--stride", 2, "--clip-length", 2,
                     "--split", "1,0,0", "--quiet")
    assert result.returncode == 0, result.stderr
    assert TrajectoryFile(out).splits == {"train": 2}
    result = run_cli("data", "bair", bair_dir[0], "--out", tmp_path / "bair.h5", "--frames", 2, "--quiet")
    assert result.returncode == 0, result.stderr
    assert TrajectoryFile(tmp_path / "bair.h5").splits == {"train": 5, "test": 2}


@pytest.mark.parametrize(
    "args",
    [
        ("import-video", "{missing}", "--out", "{out}"),
        ("import-video", "{empty}", "--out", "{out}"),
        ("import-video", "{empty}", "--out", "{out}", "--split", "1,2"),
        ("import-video", "{empty}", "--out", "{out}", "--size", "-3"),
        ("bair", "{empty}", "--out", "{out}"),
        ("bair", "{empty}", "--out", "{out}", "--camera", "image_side"),
        ("moving-digits", "--out", "{out}", "--mnist", "{missing}"),
        ("balls", "--out", "{out}", "--radius", "0.9"),
        ("balls", "--out", "{out}", "--frames", "0"),
    ],
)
def test_cli_bad_input_exits_2_without_output(tmp_path: Path, run_cli_inprocess, args: tuple[str, ...]) -> None:
    (tmp_path / "empty").mkdir()
    out_dir = tmp_path / "out"
    names = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "out": out_dir / "x.h5"}
    result = run_cli_inprocess("data", *(a.format(**names) for a in args))
    assert result.returncode == 2
    assert result.stderr_lines and result.stderr_lines[-1].lower().startswith("error")  # one line says what
    assert not out_dir.exists() or _files(out_dir) == []
