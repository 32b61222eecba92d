"""The pieces of the method: pairs and their padding, fixed labels, the U-Net, the lifted model, the rollout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stochlift.config import ModelConfig, apply_overrides, load_config
from stochlift.errors import StochliftError
from stochlift.lifting.generator import build_model
from stochlift.lifting.labels import batch_indices, training_labels
from stochlift.lifting.pairs import ArraySource, PairSet
from stochlift.lifting.rollout import rollout
from stochlift.models import UNet

TINY_UNET = {"depths": [8, 16], "mid_blocks": 1, "embed_width": 16, "groups": 4}


def test_pairs_pad_history_with_frame_zero():
    # trajectory i, frame t holds the value 10 * i + t, so every window is readable
    data = (10 * np.arange(3)[:, None] + np.arange(5)[None, :]).astype(np.float32)[..., None]
    pairs = PairSet(ArraySource(data), window=3)
    assert pairs.n_pairs == 3 * 4
    window, target = pairs.get(0)  # trajectory 0, target frame 1
    assert window[:, 0].tolist() == [0, 0, 0] and target.tolist() == [1]
    window, target = pairs.get(1)  # target frame 2: history 0, 0, 1
    assert window[:, 0].tolist() == [0, 0, 1] and target.tolist() == [2]
    window, target = pairs.get(4 + 3)  # trajectory 1, target frame 4
    assert window[:, 0].tolist() == [11, 12, 13] and target.tolist() == [14]


def test_too_few_frames_for_the_window_is_an_error():
    with pytest.raises(StochliftError, match="Markov window"):
        PairSet(ArraySource(np.zeros((2, 2, 3), np.float32)), window=3)


def test_labels_are_fixed_per_pair_and_reproducible():
    a, b = training_labels(100, 8, seed=1), training_labels(100, 8, seed=1)
    assert torch.equal(a, b)
    assert not torch.equal(a, training_labels(100, 8, seed=2))
    assert abs(a.mean().item()) < 0.15 and abs(a.std().item() - 1) < 0.1
    np.testing.assert_array_equal(batch_indices(100, 16, 0, 5), batch_indices(100, 16, 0, 5))
    assert not np.array_equal(batch_indices(100, 16, 0, 5), batch_indices(100, 16, 0, 6))


def test_unet_label_conditioning_and_d0():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    lifted = UNet(3, 1, label_dim=4, **TINY_UNET)
    out1, out2 = lifted(x, torch.randn(2, 4)), lifted(x, torch.randn(2, 4))
    assert out1.shape == (2, 1, 16, 16)
    # the FiLM layers are randomly initialised, so different labels give different outputs from the start
    assert not torch.allclose(out1, out2)
    plain = UNet(3, 1, label_dim=0, **TINY_UNET)
    assert plain.embedding is None
    assert torch.equal(plain(x), plain(x, None))


def test_label_embedding_choices():
    linear = UNet(3, 1, label_dim=4, label_embedding="linear", **TINY_UNET)
    assert isinstance(linear.embedding.net, torch.nn.Linear)
    xi = torch.randn(5, 4)
    emb = linear.embedding(xi)  # affine in xi: the embedding of a mean is the mean of the embeddings
    torch.testing.assert_close(linear.embedding(xi.mean(0, keepdim=True)), emb.mean(0, keepdim=True))
    from stochlift.models import build_backbone

    with pytest.raises(StochliftError, match="label embedding"):
        build_backbone("unet", in_channels=3, out_channels=1, label_dim=4, label_embedding="cubic")


def test_a_spatial_label_steers_its_own_neighbourhood():
    torch.manual_seed(0)
    net = UNet(3, 1, label_dim=2 * 16 * 16, label_planes=2, **TINY_UNET).eval()
    x, xi = torch.randn(1, 3, 16, 16), torch.randn(1, 2 * 16 * 16)
    nudged = xi.clone().view(1, 2, 16, 16)
    nudged[0, 0, 2, 2] += 1.0  # one label pixel near a corner
    change = (net(x, nudged.flatten(1)) - net(x, xi)).abs()[0, 0]
    # the change reaches the far corner only through the global FiLM path, far weaker than the local one
    assert change[:5, :5].mean() > 3 * change[-5:, -5:].mean()
    with pytest.raises(StochliftError, match="set model.label_dim=256, not 64"):
        build_model(ModelConfig(window=3, label_dim=64, frame_shape=[1, 16, 16],
                                options={**TINY_UNET, "label_planes": 1}))
    with pytest.raises(StochliftError, match="set model.options.label_planes=0"):
        build_model(ModelConfig(window=3, label_dim=0, frame_shape=[1, 16, 16],
                                options={**TINY_UNET, "label_planes": 1}))


def test_periodic_unet_commutes_with_shifts():
    torch.manual_seed(0)
    net = UNet(3, 1, label_dim=2, periodic=True, **TINY_UNET).eval()
    x, xi = torch.randn(1, 3, 16, 16), torch.randn(1, 2)
    shifted = net(torch.roll(x, shifts=(4, -6), dims=(2, 3)), xi)  # shifts by multiples of the stride
    torch.testing.assert_close(shifted, torch.roll(net(x, xi), shifts=(4, -6), dims=(2, 3)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("output,loss",
                         [("residual", "l2"), ("second_order", "l2"), ("direct", "l2"), ("direct", "bce")])
def test_lifted_model_output_and_loss(output, loss):
    config = ModelConfig(backbone="unet", window=2, label_dim=3, output=output, loss=loss, residual_scale=0.5,
                         frame_shape=[1, 8, 8], options=dict(TINY_UNET))
    model = build_model(config)
    window, xi = torch.rand(4, 2, 1, 8, 8), torch.randn(4, 3)
    prediction = model(window, xi)
    assert prediction.shape == (4, 1, 8, 8)
    raw = model.backbone(window.flatten(1, 2), xi)
    expected = {"residual": window[:, -1] + 0.5 * raw, "second_order": 2 * window[:, -1] - window[:, 0] + 0.5 * raw,
                "direct": raw}[output] if loss == "l2" else torch.sigmoid(raw)
    torch.testing.assert_close(prediction, expected)
    target = torch.rand(4, 1, 8, 8)
    value = model.loss(window, target, xi)
    assert value.ndim == 0 and torch.isfinite(value)
    if loss == "l2":  # the L2 loss in units of the residual scale for residual outputs
        scale = 1.0 if output == "direct" else 0.5
        torch.testing.assert_close(value, ((prediction - target) ** 2).mean() / scale**2)


def test_bce_needs_direct_output():
    with pytest.raises(StochliftError, match="direct"):
        ModelConfig(loss="bce", output="residual").validate()


def test_second_order_output_needs_two_frames_and_scales_by_the_second_difference():
    with pytest.raises(StochliftError, match="window must be >= 2"):
        ModelConfig(window=1, output="second_order").validate()
    # x_t = t^2 / 2 on every pixel: second differences are all 1, first differences grow with t
    data = (0.5 * np.arange(6, dtype=np.float32) ** 2)[None, :, None].repeat(2, axis=0)
    pairs = PairSet(ArraySource(data), window=2)
    # the first pair's history is padded with frame 0 (x_-1 = x_0), so its second difference is x_1 - x_0 = 0.5
    assert pairs.increment_scale("second_order") == pytest.approx(np.std([0.5, 1, 1, 1, 1] * 2, ddof=1), rel=1e-5)
    assert pairs.increment_scale("residual") > 1.0


class CountingModel(torch.nn.Module):
    """Adds the label's first entry to the last frame and counts the calls."""

    window, label_dim, noise_shape, history_padding, frame_shape = 2, 1, (1,), "repeat", (1,)

    def __init__(self) -> None:
        super().__init__()
        self.calls, self.windows = 0, []

    def forward(self, window: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.windows.append(window.clone())
        return window[:, -1] + xi[:, :1]


def test_rollout_calls_the_network_once_per_frame_with_fresh_labels():
    model = CountingModel()
    initial = np.zeros((5, 1, 1), np.float32)
    out = rollout(model, initial, frames=7, seed=3, batch_size=5)
    assert out.shape == (5, 7, 1)
    assert model.calls == 6  # one call per generated frame, for the whole batch
    increments = np.diff(out[..., 0], axis=1)
    assert len(np.unique(increments.round(6))) == increments.size  # a fresh label per sample and step
    assert torch.equal(model.windows[0][:, 0], model.windows[0][:, 1])  # history padded with frame 0
    np.testing.assert_array_equal(out, rollout(CountingModel(), initial, frames=7, seed=3, batch_size=5))
    assert not np.array_equal(out, rollout(CountingModel(), initial, frames=7, seed=4, batch_size=5))


def test_zero_history_padding_is_the_same_in_pairs_and_rollouts():
    data = (1 + np.arange(2 * 6 * 3)).reshape(2, 6, 3).astype(np.float32)  # no zero frame of its own
    windows, _ = PairSet(ArraySource(data), window=3, padding="zeros").batch(np.array([0, 1, 2]))  # targets 1-3
    assert [int((w == 0).all(axis=1).sum()) for w in windows.numpy()] == [2, 1, 0]
    assert torch.equal(windows[1, 1:], torch.from_numpy(data[0, :2]))
    model = build_model(ModelConfig(backbone="mlp", window=3, label_dim=4, history_padding="zeros", frame_shape=[3]))
    seen = []
    model.backbone.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    rollout(model, data[:, :1], frames=4, seed=0, batch_size=2)
    assert torch.equal(seen[0], torch.cat([torch.zeros(2, 6), torch.from_numpy(data[:, 0])], dim=1))  # 0, 0, x_0
    assert seen[1][:, :3].eq(0).all() and not seen[2].eq(0).all(dim=1).any()
    with pytest.raises(StochliftError, match="history_padding"):
        ModelConfig(history_padding="mirror").validate()
    with pytest.raises(StochliftError, match="history_padding"):
        ModelConfig(history_padding="zeros", output="second_order").validate()


def test_rollout_rejects_too_few_frames():
    with pytest.raises(StochliftError, match="frames"):
        rollout(CountingModel(), np.zeros((1, 3, 1), np.float32), frames=3)


def test_pushforward_windows_end_in_the_models_own_predictions():
    from stochlift.lifting.perturbations import pushed_window

    torch.manual_seed(0)
    data = np.random.default_rng(0).normal(size=(2, 6, 3)).astype(np.float32)
    pairs = PairSet(ArraySource(data), window=2)
    model = build_model(ModelConfig(backbone="mlp", window=2, label_dim=4, output="residual", frame_shape=[3]))
    labels = training_labels(pairs.n_pairs, 4, seed=0)
    index = np.array([0, 1, 3, 5 + 4])  # targets: traj 0 frames 1, 2, 4; traj 1 frame 5
    clean, _ = pairs.batch(index)
    pushed = pushed_window(model, pairs, index, labels, unroll=2)
    # target frame 1 has nothing to unroll from: the data window stays
    assert torch.equal(pushed[0], clean[0])
    # target frame 2 unrolls one step, from pair 0 with pair 0's label
    with torch.no_grad():
        one = model(pairs.batch(np.array([0]))[0], labels[[0]])
        assert torch.allclose(pushed[1, -1], one[0]) and torch.equal(pushed[1, 0], clean[1, 0])
        # target frame 4 unrolls two steps: from pair 1 (label 1), then pair 2 (label 2)
        w = pairs.batch(np.array([1]))[0]
        w = torch.cat([w[:, 1:], model(w, labels[[1]])[:, None]], 1)
        w = torch.cat([w[:, 1:], model(w, labels[[2]])[:, None]], 1)
    assert torch.allclose(pushed[2], w[0])
    assert not torch.allclose(pushed[3], clean[3])


def test_data_trajectories_trains_on_the_first_n_only(tiny_data) -> None:
    from stochlift.data.trajectories import TrajectoryFile
    from stochlift.lifting.pairs import FileSource

    file = TrajectoryFile(tiny_data)
    limited = FileSource(file, "train", limit=2)
    assert limited.n_trajectories == 2 and FileSource(file, "train", limit=4).n_trajectories == 4
    with pytest.raises(StochliftError, match="data.trajectories=99, but split 'train' .* holds 4"):
        FileSource(file, "train", limit=99)  # issue 21: not silently fewer than asked for
    assert PairSet(limited, 2).n_pairs == 2 * (file.meta.frames - 1)
    with pytest.raises(StochliftError, match="data.trajectories"):
        apply_overrides(load_config(None), ["data.trajectories=0"])


@pytest.mark.parametrize("padding", ["repeat", "zeros"])
@pytest.mark.parametrize("window", [1, 3])
def test_a_split_held_in_memory_gives_the_batches_read_pair_by_pair(tiny_data, padding: str, window: int) -> None:
    from stochlift.data.trajectories import TrajectoryFile
    from stochlift.lifting.pairs import FileSource

    file = TrajectoryFile(tiny_data)
    held, streamed = FileSource(file, "train", limit=3), FileSource(file, "train", limit=3, in_memory_bytes=0)
    assert held.data is not None and held.data.shape[0] == 3 and streamed.data is None
    index = np.array([0, 1, 2, 5, 1, 3 * (file.meta.frames - 1) - 1])  # padded windows, repeats, the last pair
    batches = (PairSet(source, window, padding).batch(index) for source in (held, streamed))
    for got, expected in zip(*batches):
        assert got.dtype == torch.float32 and torch.equal(got, expected)


def test_smooth_input_noise_has_unit_variance_and_the_asked_correlation_length():
    from stochlift.lifting.perturbations import perturbation, smooth_field

    white = torch.randn(4000, 1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    smooth = smooth_field(white, 2.0)
    assert smooth.std().item() == pytest.approx(1.0, abs=0.02)
    # a Gaussian filter of std l gives the correlation exp(-r^2 / (4 l^2)) at a distance of r pixels
    for r in (1, 2, 4):
        correlation = (smooth * torch.roll(smooth, r, dims=-1)).mean().item()
        assert correlation == pytest.approx(np.exp(-(r**2) / 16), abs=0.03)
    assert torch.equal(smooth_field(white, 0.0), white)
    window = torch.zeros(3, 2, 1, 16, 16)
    noise = perturbation(window, 0.5, seed=0, step=7, length=2.0)
    assert torch.equal(noise[:, 0], noise[:, 1])  # one field per sample, the same on every frame
    assert torch.equal(noise, perturbation(window, 0.5, seed=0, step=7, length=2.0))
    with pytest.raises(StochliftError, match="input_noise_length"):
        apply_overrides(load_config(None), ["train.input_noise_length=-1"]).validate()


def test_start_pairs_can_be_drawn_more_often_and_uniform_stays_unchanged():
    from stochlift.lifting.loader import StepBatches

    pairs = PairSet(ArraySource(np.zeros((4, 11, 2), np.float32)), window=2)  # 4 x 10 pairs, 4 of them padded
    uniform = StepBatches(pairs, batch_size=64, seed=3, steps=10)
    assert uniform.weights is None and np.array_equal(uniform.global_batch(5), batch_indices(40, 64, 3, 5))
    weighted = StepBatches(pairs, batch_size=64, seed=3, steps=10, start_weight=9.0)
    drawn = np.concatenate([weighted.global_batch(step) for step in range(200)])
    share = np.mean(pairs.target_frames(drawn) == 1)
    assert share == pytest.approx(4 * 9 / (4 * 9 + 36), abs=0.03)  # 0.5 instead of 0.1
    assert np.array_equal(weighted.global_batch(7), weighted.global_batch(7))  # a function of (seed, step)
    with pytest.raises(StochliftError, match="start_weight"):
        apply_overrides(load_config(None), ["train.start_weight=0"]).validate()
    three = PairSet(ArraySource(np.zeros((4, 11, 2), np.float32)), window=3)  # targets 1 and 2 are padded
    assert np.count_nonzero(three.sampling_weights(5.0) > three.sampling_weights(5.0).min()) == 8
