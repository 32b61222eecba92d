"""Inputs are checked before they can give a wrong result or a traceback (issue 21, cases 5, 6 and 8).

Each test failed before the fix: an input from another problem accepted because its frames had the model's
shape, a silently dropped imaginary part or training split, or a traceback (KeyError, ValueError,
BadZipFile, LinAlgError, MemoryError) instead of one line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import TINY_OVERRIDES, smooth_trajectories, tiny_config, tiny_meta, write_tiny
from stochlift.data.trajectories import TrajectoryFile, write_trajectories
from stochlift.errors import StochliftError
from stochlift.lifting.train import train
from test_cli_errors import assert_one_line_error, assert_usage_error

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def wave_run(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path, one_torch_thread) -> Path:
    run = tmp_path_factory.mktemp("checks") / "run"
    train(tiny_config(tiny_data, "train.steps=2"), run, progress=False)
    return run


def write_other(path: Path, *, problem: str = "flow", field: str = "saturation", dtype: str = "float32",
                splits: dict[str, int] | None = None) -> Path:
    """A file whose frames have the tiny run's shape (1 x 8 x 8, 6 frames) but another problem or field."""
    meta = dataclasses.replace(tiny_meta(field_names=(field,)), problem=problem, dtype=dtype,
                               field_scales={field: 1.0}, dataset_name=f"{problem}-tiny")
    splits = splits or {"test": 3}
    values = (smooth_trajectories(sum(splits.values())) + 1) / 2  # in [0, 1], so uint8 can hold it
    bounds = np.cumsum([0, *splits.values()])
    write_trajectories(path, meta, {s: values[a:b] for s, a, b in zip(splits, bounds[:-1], bounds[1:])})
    return path


# ------------------------------------------------------------ case 5: inputs of another problem or field


@pytest.mark.parametrize("problem, field", [("flow", "saturation"), ("wave", "v")])
def test_sample_refuses_initial_frames_of_another_problem_or_field(run_cli_inprocess, wave_run: Path,
                                                                   tmp_path: Path, problem: str, field: str) -> None:
    other = write_other(tmp_path / "other.h5", problem=problem, field=field)
    out = tmp_path / "samples.h5"
    result = run_cli_inprocess("sample", "--run", wave_run, "--out", out, "--initial", other, "--trajectories", "2")
    assert_one_line_error(result, "but the run was trained on", "wave" if problem != "wave" else "['u']")
    assert not out.exists()


def test_video_eval_refuses_a_test_file_of_another_problem(run_cli_inprocess, wave_run: Path, tmp_path: Path) -> None:
    video = write_other(tmp_path / "video.h5", problem="video", field="gray", dtype="uint8")
    out = tmp_path / "metrics.json"
    result = run_cli_inprocess("video-eval", "--run", wave_run, "--test", video, "--out", out, "--videos", "2",
                               "--samples", "2", "--predicted-frames", "2", "--quiet")
    assert_one_line_error(result, "holds problem 'video', but the run was trained on 'wave'")
    assert not out.exists()


def test_evaluate_and_report_refuse_files_with_other_fields(run_cli_inprocess, wave_run: Path, tiny_data: Path,
                                                            tmp_path: Path) -> None:
    generated = write_other(tmp_path / "gen.h5", problem="wave", field="v", splits={"generated": 3})
    assert_one_line_error(run_cli_inprocess("evaluate", "--reference", tiny_data, "--generated", generated),
                          "has fields ['u'] but generated", "['v']")
    flow = write_other(tmp_path / "flow.h5", splits={"test": 3})
    out = tmp_path / "report.html"
    assert_one_line_error(run_cli_inprocess("report", "--run", wave_run, "--out", out, "--reference", flow,
                                            "--quiet"), "holds problem 'flow'")
    assert not out.exists()


# -------------------------------------------------------------------- case 6: silently wrong inputs


def test_data_wave_with_three_trajectories_has_a_training_split(run_cli_inprocess, tmp_path: Path) -> None:
    out = tmp_path / "w.h5"
    assert run_cli_inprocess("data", "wave", "--out", out, "--trajectories", "3", "--frames", "4", "--size", "8",
                             "--quiet").returncode == 0
    assert TrajectoryFile(out).splits == {"train": 1, "valid": 1, "test": 1}


def test_complex_values_are_refused_not_truncated(tmp_path: Path) -> None:
    from stochlift.lifting.pairs import ArraySource

    values = smooth_trajectories(4).astype(np.complex64) * (1 + 1j)
    with pytest.raises(StochliftError, match="complex"):
        ArraySource(values)
    with pytest.raises(StochliftError, match="complex"):
        write_trajectories(tmp_path / "c.h5", tiny_meta(), {"train": values})
    assert not (tmp_path / "c.h5").exists()
    path = write_tiny(tmp_path / "edited.h5")
    with h5py.File(path, "r+") as f:  # a file written by another tool
        del f["train/t0_fields/u"]
        f["train/t0_fields/u"] = values[:, :, 0]
    with pytest.raises(StochliftError, match="complex64 values; fields must be real"):
        TrajectoryFile(path)


@pytest.mark.parametrize("option, value, message", [("--split", "0.5,0.6,0.1", "sum to 1"),
                                                    ("--fps", "-3", "fps must be a positive number"),
                                                    ("--fps", "0", "fps must be a positive number")])
def test_import_video_refuses_bad_fractions_and_rates(run_cli_inprocess, tmp_path: Path, option: str, value: str,
                                                      message: str) -> None:
    import imageio.v3 as iio

    src = tmp_path / "videos"
    src.mkdir()
    iio.imwrite(src / "a.gif", np.zeros((4, 8, 8, 3), np.uint8), duration=50)
    out = tmp_path / "clips.h5"
    result = run_cli_inprocess("data", "import-video", src, "--out", out, "--clip-length", "2", "--size", "8",
                               option, value, "--quiet")
    assert_one_line_error(result, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["videos"]


def test_report_shows_the_config_the_model_was_built_from(wave_run: Path, tmp_path: Path) -> None:
    from stochlift.apps.report import build_report

    run = tmp_path / "run"
    run.mkdir()
    for p in wave_run.iterdir():
        (run / p.name).write_bytes(p.read_bytes())
    (run / "config.yaml").write_text("# edited after training\nmodel:\n  label_dim: 999\n")
    html = build_report(run, tmp_path / "r.html", forecast_trajectories=0, progress=False).read_text()
    config = html[html.index('id="config"'):]
    config = config[:config.index("</section>")]
    assert "label_dim: 4" in config and "999" not in config and "residual_scale:" in config


# ------------------------------------------------------------------ case 8: one line, not a traceback


def test_a_yaml_error_in_an_override_is_one_line(run_cli_inprocess, tmp_path: Path, tiny_data: Path) -> None:
    result = run_cli_inprocess("train", "--data", tiny_data, "--out", tmp_path / "run", *TINY_OVERRIDES,
                               "train.steps=[1,")
    assert_one_line_error(result, "override 'train.steps=[1,'", "not valid YAML")
    assert not (tmp_path / "run").exists()


def test_negative_seeds_are_refused_everywhere(run_cli_inprocess, wave_run: Path, tiny_data: Path,
                                               tmp_path: Path) -> None:
    from stochlift.lifting.rollout import sample_to_file

    assert_one_line_error(run_cli_inprocess("train", "--data", tiny_data, "--out", tmp_path / "run",
                                            *TINY_OVERRIDES, "train.seed=-1"), "train.seed must be >= 0")
    for command in (("sample", "--run", wave_run, "--out", tmp_path / "s.h5"),
                    ("data", "wave", "--out", tmp_path / "w.h5"), ("demo", "--out", tmp_path / "demo")):
        assert_usage_error(run_cli_inprocess(*command, "--seed", "-1"), "'--seed'")
    with pytest.raises(StochliftError, match="seed must be >= 0"):
        sample_to_file(wave_run, tmp_path / "s.h5", trajectories=2, seed=-1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_unknown_initial_split_is_one_line(run_cli_inprocess, wave_run: Path, tmp_path: Path) -> None:
    result = run_cli_inprocess("sample", "--run", wave_run, "--out", tmp_path / "s.h5", "--initial-split", "nope")
    assert_one_line_error(result, "has no split 'nope'", "'test'")


def test_a_training_split_without_rows_is_one_line(run_cli_inprocess, tmp_path: Path) -> None:
    data = write_tiny(tmp_path / "data.h5")
    with h5py.File(data, "r+") as f:
        del f["train/t0_fields/u"]
        f.create_dataset("train/t0_fields/u", (0, 6, 8, 8), "f4")
    result = run_cli_inprocess("train", "--data", data, "--out", tmp_path / "run", *TINY_OVERRIDES)
    assert_one_line_error(result, "split 'train' holds no trajectories")
    assert not (tmp_path / "run").exists()


def test_nan_in_i3d_weights_is_refused(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from stochlift.metrics.fvd import frechet_distance
    from stochlift.metrics.i3d import I3D, WEIGHTS_FORMAT, load_i3d

    weights = {k: v.clone().contiguous() for k, v in I3D().state_dict().items()}
    name = next(k for k, v in weights.items() if v.is_floating_point() and v.numel() > 1)
    weights[name].view(-1)[0] = float("nan")
    save_file(weights, str(tmp_path / "i3d.safetensors"), metadata={"format": WEIGHTS_FORMAT})
    with pytest.raises(StochliftError, match="NaN or Inf"):
        load_i3d(tmp_path / "i3d.safetensors")
    mean, cov = np.zeros(3), np.eye(3)
    with pytest.raises(StochliftError, match="NaN or Inf"):
        frechet_distance(mean, cov, mean, np.full((3, 3), np.nan))
    assert torch.isnan(weights[name]).any()


def test_a_truncated_flow_part_is_one_line(tmp_path: Path) -> None:
    from stochlift.data.flow_datasets import _load_part

    part = tmp_path / "000000.npz"
    np.savez(part, saturation=np.zeros((3, 4, 4), np.float32), log_permeability=np.zeros((4, 4), np.float32))
    part.write_bytes(part.read_bytes()[:100])
    with pytest.raises(StochliftError, match=r"part file .*000000\.npz is damaged"):
        _load_part(part)


@pytest.mark.parametrize("args, message", [
    (("data", "wave", "--trajectories", "10000000000"), "of memory"),
    (("sample", "--trajectories", "1000000000000"), "of memory"),
    (("sample", "--frames", "100000000000"), "of memory"),
    (("bench", "--config", "wave-quick", "--shape", "1,65536,65536", "--batch", "1"), "of memory"),
    (("data", "import-video", "VIDEOS", "--size", "100000"), "of memory"),
], ids=["wave-trajectories", "sample-trajectories", "sample-frames", "bench-shape", "import-size"])
def test_absurd_sizes_are_refused_before_allocating(run_cli_inprocess, wave_run: Path, tmp_path: Path,
                                                    args: tuple[str, ...], message: str) -> None:
    out = tmp_path / ("out.json" if args[0] == "bench" else "out.h5")
    if args[0] == "sample":
        args = (*args, "--run", wave_run)
    if "VIDEOS" in args:
        (tmp_path / "videos").mkdir()
        args = tuple(str(tmp_path / "videos") if a == "VIDEOS" else a for a in args)
    result = run_cli_inprocess(*args, "--out", out)
    assert_one_line_error(result, "needs about", message)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "videos") == []
