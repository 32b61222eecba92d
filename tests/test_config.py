"""Run configuration: presets, typed `section.key=value` overrides, clear errors and save/load round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from stochlift.config import CONFIG_DIR, RunConfig, apply_overrides, load_config, save_config
from stochlift.errors import StochliftError
from stochlift.models import DEPTH_PRESETS


def test_defaults_validate() -> None:
    config = load_config(None)
    assert isinstance(config, RunConfig)
    assert config.to_dict() == RunConfig().to_dict()


def test_wave_paper_preset_has_the_papers_table_3_values() -> None:
    c = load_config("wave-paper")
    assert c.model.backbone == "unet"
    assert c.model.label_dim == 64
    assert c.model.window == 3
    assert c.train.batch_size == 64
    assert c.train.steps == 350_000
    assert isinstance(c.train.lr, float) and c.train.lr == pytest.approx(1e-4, rel=0, abs=0)
    assert c.train.schedule == "cosine"
    assert c.model.options["depths"] == "medium"
    assert DEPTH_PRESETS["medium"] == [128, 256, 512]
    assert c.data.split == "train"


def test_wave_quick_preset_loads() -> None:
    if not (CONFIG_DIR / "wave-quick.yaml").is_file():
        pytest.skip("configs/wave-quick.yaml does not exist yet")
    c = load_config("wave-quick")
    assert c.model.backbone in ("unet", "mlp")
    assert c.train.steps > 0 and c.train.lr > 0


def test_presets_also_load_by_path() -> None:
    assert load_config(CONFIG_DIR / "wave-paper.yaml").to_dict() == load_config("wave-paper").to_dict()


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(StochliftError, match="no config file or preset 'nope'.*wave-paper"):
        load_config("nope")


# ------------------------------------------------------------------------------------------- overrides


def test_overrides_parse_types() -> None:
    c = apply_overrides(
        load_config(None),
        [
            "train.lr=1e-3",  # YAML reads 1e-3 as a string; the declared type makes it a float
            "train.weight_decay=0",
            "train.steps=12",
            "train.ema_decay=0.99",
            "model.label_dim=8",
            "model.options.depths=[8,16]",
            "model.options.groups=4",
            "model.backbone=mlp",
            "data.path=some/file.h5",
            "train.schedule=constant",
        ],
    )
    assert c.train.lr == 0.001 and type(c.train.lr) is float
    assert c.train.weight_decay == 0.0 and type(c.train.weight_decay) is float
    assert c.train.steps == 12 and type(c.train.steps) is int
    assert c.train.ema_decay == 0.99
    assert c.model.label_dim == 8 and type(c.model.label_dim) is int
    assert c.model.options == {"depths": [8, 16], "groups": 4}
    assert c.model.backbone == "mlp"
    assert c.data.path == "some/file.h5"
    assert c.train.schedule == "constant"


def test_overrides_do_not_touch_the_original() -> None:
    base = load_config(None)
    apply_overrides(base, ["train.steps=5", "model.options.depths=[8,16]"])
    assert base.train.steps == RunConfig().train.steps and base.model.options == {}


def test_integer_valued_float_is_accepted_for_int() -> None:
    assert apply_overrides(load_config(None), ["train.steps=100.0"]).train.steps == 100


def test_scientific_notation_for_int() -> None:
    assert apply_overrides(load_config(None), ["train.steps=1e3"]).train.steps == 1000


@pytest.mark.parametrize(
    "override, match",
    [
        ("train.lr", "must look like section.key=value"),
        ("lr=1e-3", "must look like section.key=value"),
        ("train.nope=1", "unknown key 'nope'"),
        ("nope.lr=1", "'nope' is not a config section"),
        ("train.lr.x=1", "'lr' is not a config section"),
    ],
)
def test_malformed_or_unknown_overrides(override: str, match: str) -> None:
    with pytest.raises(StochliftError, match=match):
        apply_overrides(load_config(None), [override])


@pytest.mark.parametrize(
    "override, match",
    [
        ("train.steps=abc", "train.steps must be a number"),
        ("train.steps=1.5", "train.steps must be an integer"),
        ("train.steps=[3]", "train.steps must be a number"),
        ("train.steps=", "train.steps must be a number"),
        ("train.lr=fast", "train.lr must be a number"),
        ("model.window=x", "model.window must be a number"),
        ("train.steps=0", "train.steps must be > 0"),
        ("train.lr=-1", "train.lr must be > 0"),
        ("train.ema_decay=1", r"train.ema_decay must be in \[0, 1\)"),
        ("train.schedule=linear", "train.schedule must be"),
        ("model.window=0", "model.window must be >= 1"),
        ("model.label_dim=-1", "model.label_dim must be >= 0"),
        ("model.output=both", "model.output must be"),
        ("model.loss=l1", "model.loss must be"),
        ("model.loss=bce", "set model.output to 'direct'"),
    ],
)
def test_wrong_types_and_values_are_clear_errors(override: str, match: str) -> None:
    with pytest.raises(StochliftError, match=match):
        apply_overrides(load_config(None), [override])


@pytest.mark.parametrize(
    "override",
    [
        pytest.param("train.lr=true", id="bool-for-float"),
        pytest.param("train.steps=yes", id="bool-for-int"),
        pytest.param("model.residual_scale=abc", id="string-for-optional-float"),
        pytest.param("model.options=5", id="int-for-dict"),
        pytest.param("model.backbone=[unet]", id="list-for-str"),
        pytest.param("model.frame_shape=abc", id="str-for-list"),
    ],
)
def test_wrong_types_in_other_fields_are_clear_errors(override: str) -> None:
    with pytest.raises(StochliftError):
        apply_overrides(load_config(None), [override])


def test_optional_float_is_coerced() -> None:
    c = apply_overrides(load_config(None), ["model.residual_scale=1e-3"])
    assert c.model.residual_scale == 0.001 and type(c.model.residual_scale) is float


def test_optional_fields_accept_null() -> None:
    c = apply_overrides(load_config(None), ["model.residual_scale=0.5", "model.frame_shape=[1, 8, 8]"])
    assert c.model.residual_scale == 0.5 and c.model.frame_shape == [1, 8, 8]
    c = apply_overrides(c, ["model.residual_scale=null", "model.frame_shape=null"])
    assert c.model.residual_scale is None and c.model.frame_shape is None


# -------------------------------------------------------------------------------------------- YAML files


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, match",
    [
        ("optim:\n  lr: 1\n", r"unknown config sections \['optim'\]"),
        ("train:\n  learning_rate: 1\n", r"unknown keys in config section 'train': \['learning_rate'\]"),
        ("model:\n  depth: 3\n", r"unknown keys in config section 'model'"),
        ("train:\n  steps: many\n", "train.steps must be a number"),
        ("train:\n  lr: [1]\n", "train.lr must be a number"),
        ("- a\n- b\n", "must hold a mapping"),
        ("train: {steps: 1\n", "not valid YAML"),
    ],
)
def test_bad_yaml_files_are_clear_errors(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(StochliftError, match=match):
        load_config(_write(tmp_path, text))


def test_partial_and_empty_yaml_files_fill_in_defaults(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, "")).to_dict() == RunConfig().to_dict()
    c = load_config(_write(tmp_path, "train:\n  lr: 1e-3\nmodel:\n"))
    assert c.train.lr == 0.001 and c.model == RunConfig().model


def test_save_load_round_trip(tmp_path: Path) -> None:
    c = apply_overrides(
        load_config("wave-paper"),
        [
            "train.lr=3e-5",
            "train.steps=1234",
            "model.options.depths=[8,16]",
            "model.residual_scale=0.0625",
            "model.frame_shape=[1,32,32]",
            "data.path=/tmp/some file.h5",
        ],
    )
    path = tmp_path / "sub" / "config.yaml"
    save_config(c, path)
    back = load_config(path)
    assert back.to_dict() == c.to_dict()
    assert type(back.train.lr) is float and back.train.lr == 3e-5
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # no temporary file left behind
    # the saved file is itself a valid input, and saving it again changes nothing
    save_config(back, tmp_path / "again.yaml")
    assert (tmp_path / "again.yaml").read_text() == path.read_text()
