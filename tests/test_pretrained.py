"""Pretrained models: packing a run, loading it by name, sampling without a data file (the shipped first frames)
or with --initial, the demo's --pretrained, and the models shipped in the package (loadable, small, carded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import stochlift
from stochlift.apps.demo import run_demo
from stochlift.config import apply_overrides, load_config
from stochlift.data.datasets import make_wave_dataset
from stochlift.data.trajectories import TrajectoryFile
from stochlift.errors import StochliftError
from stochlift.lifting import pretrained as pretrained_module
from stochlift.lifting.pretrained import load_pretrained, pack_pretrained, pretrained_names, unpack_pretrained
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.runs import load_run, run_finished
from stochlift.lifting.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SHIPPED = ("wave-quick", "flow-quick", "digits-quick")
TINY = ["train.steps=6", "train.batch_size=4", "train.log_every=2", "train.checkpoint_every=3",
        "model.options={depths: [8, 16], mid_blocks: 1, embed_width: 16, groups: 4}"]


@pytest.fixture(scope="module")
def tiny_pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(folder of packed models, the run, its data): a tiny wave-quick run packed as "tiny-quick" and, with the
    demo's data set shrunk, as "wave-quick" (what `demo --pretrained` looks for)."""
    root = tmp_path_factory.mktemp("pretrained")
    data = make_wave_dataset(root / "wave.h5", trajectories=12, frames=8, size=16, progress=False)
    config = apply_overrides(load_config("wave-quick"), [*TINY, "train.ema_decay=0.9", f"data.path={data}"])
    train(config, root / "run", progress=False)
    folder = root / "shipped"
    remake = "stochlift data wave --out wave.h5 --trajectories 12 --frames 8 --size 16"
    for name in ("tiny-quick", "wave-quick"):
        pack_pretrained(root / "run", folder / f"{name}.safetensors", remake=remake, training={"seed": 0})
    (folder / "tiny-quick.md").write_text("# tiny-quick\n")
    return folder, root / "run", data


@pytest.fixture
def packed(tiny_pretrained, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    folder, run, data = tiny_pretrained
    monkeypatch.setattr(pretrained_module, "pretrained_folder", lambda: folder)
    return run, data


def test_packed_model_loads_by_name_with_the_runs_weights_and_data_record(packed) -> None:
    run, data = packed
    assert pretrained_names() == ["tiny-quick", "wave-quick"]
    p = stochlift.load_pretrained("tiny-quick")
    model, config, _ = load_run(run)
    for key, value in model.state_dict().items():  # the run's sampling weights: its EMA weights
        torch.testing.assert_close(p.model.state_dict()[key], value, rtol=0, atol=0)
    assert p.record["training"]["weights"] == "ema" and p.record["training"]["seed"] == 0
    assert p.config.data.path is None and p.config.model == config.model
    truth = TrajectoryFile(data)
    np.testing.assert_array_equal(p.initial, truth.read("test", slice(None), slice(0, 1)))
    np.testing.assert_array_equal(p.meta.time, truth.meta.time)
    assert p.meta.parameters == truth.meta.parameters and p.meta.frame_shape == truth.meta.frame_shape
    assert p.initial_frames(5).shape == (5, 1, 1, 16, 16) and p.card == "# tiny-quick\n"
    assert not any(k.startswith(("optim.", "ema.")) for k in pretrained_module._read(
        pretrained_module.pretrained_path("tiny-quick"))[0])  # weights only
    with pytest.raises(StochliftError, match="no pretrained model 'nope'.*tiny-quick"):
        load_pretrained("nope")


def test_sampling_pretrained_by_name_equals_sampling_the_run(packed, tmp_path: Path, run_cli_inprocess) -> None:
    run, data = packed
    from_run = sample_to_file(run, tmp_path / "run.h5", trajectories=5, seed=1, progress=False)
    result = run_cli_inprocess("sample", "--run", "pretrained:tiny-quick", "--out", tmp_path / "p.h5",
                               "--trajectories", "5", "--seed", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    got, want = TrajectoryFile(tmp_path / "p.h5"), TrajectoryFile(from_run)
    assert got.meta.frames == 8 and got.meta.parameters["sampled_from_run"] == "pretrained:tiny-quick"
    np.testing.assert_allclose(got.read("generated"), want.read("generated"), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(got.meta.time, want.meta.time)
    again = run_cli_inprocess("sample", "--run", "pretrained:tiny-quick", "--out", tmp_path / "i.h5",
                              "--trajectories", "3", "--initial", data, "--initial-split", "valid", "--quiet")
    assert again.returncode == 0 and TrajectoryFile(tmp_path / "i.h5").splits == {"generated": 3}
    more = run_cli_inprocess("sample", "--run", "pretrained:tiny-quick", "--out", tmp_path / "x.h5",
                             "--initial-frames", "2", "--quiet")
    assert more.returncode == 2 and "first 1 frame(s)" in more.stderr and "stochlift data wave" in more.stderr
    assert not (tmp_path / "x.h5").exists()
    unknown = run_cli_inprocess("sample", "--run", "pretrained:nope", "--out", tmp_path / "y.h5", "--quiet")
    assert unknown.returncode == 2 and "tiny-quick" in unknown.stderr


def test_unpacked_pretrained_is_a_finished_run(packed, tmp_path: Path) -> None:
    _, data = packed
    out = unpack_pretrained("tiny-quick", tmp_path / "run", data)
    assert run_finished(out) and json.loads((out / "train_log.json").read_text())["pretrained"] == "tiny-quick"
    model, config, file = load_run(out)
    assert Path(config.data.path) == data and isinstance(file, TrajectoryFile)
    for key, value in load_pretrained("tiny-quick").model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.slow
def test_demo_pretrained_skips_training(packed, tmp_path: Path) -> None:
    result = run_demo(tmp_path / "demo", trajectories=12, frames=8, size=16, samples=6, pretrained=True,
                      progress=False)
    log = json.loads((tmp_path / "demo" / "run" / "train_log.json").read_text())
    assert log["pretrained"] == "wave-quick" and np.isfinite(result.metrics["wct"])
    assert result.files["report"].is_file()
    with pytest.raises(StochliftError, match="--pretrained uses the shipped model"):
        run_demo(tmp_path / "other", trajectories=12, frames=8, size=16, pretrained=True, overrides=TINY)
    with pytest.raises(StochliftError, match="no pretrained model for this demo"):
        run_demo(tmp_path / "balls", problem="balls", trajectories=6, frames=6, size=16, pretrained=True)


# --------------------------------------------------------------------------------- the shipped models


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_loads_samples_and_has_a_card(name: str, tmp_path: Path) -> None:
    path = pretrained_module.pretrained_path(name)
    assert path.stat().st_size < 8 << 20  # a few MB
    p = load_pretrained(name)
    card = p.card
    for needed in (f"# {name}", "stochlift sample --run pretrained:" + name, "seed", "Limits"):
        assert needed in card, needed
    assert p.record["training"]["steps"] == p.config.train.steps
    out = sample_to_file(f"pretrained:{name}", tmp_path / "s.h5", trajectories=2, seed=1, frames=6,
                         initial_count=p.initial.shape[1], progress=False)
    generated = TrajectoryFile(out).read("generated")
    assert generated.shape == (2, 6, *p.meta.frame_shape) and np.isfinite(generated).all()
    np.testing.assert_allclose(generated[:, : p.initial.shape[1]], p.initial_frames(2), atol=1 / 255)


def test_shipped_models_are_package_data() -> None:
    import tomllib

    patterns = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["tool"][
        "setuptools"]["package-data"]["stochlift"]
    assert "pretrained/*.safetensors" in patterns and "pretrained/*.md" in patterns
    assert set(SHIPPED) <= set(pretrained_names())

