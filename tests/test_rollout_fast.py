"""The fast rollout path: bit-identical by default on the CPU, each speed option within a stated tolerance.

Tolerances (float32 frames of O(1), a few frames rolled out):
    channels_last, compile (CPU): atol 1e-4: the same arithmetic in another order (seen: ~3e-6);
    CUDA fp32 vs the CPU: atol 1e-3 (other kernels, TF32 off); CUDA graph vs eager CUDA: atol 1e-6;
    bf16 / fp16 autocast vs fp32: atol 0.1 (8 / 11 bit mantissas over a few frames).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from stochlift.config import ModelConfig
from stochlift.data.flow import FlowParams
from stochlift.errors import StochliftError
from stochlift.lifting.fast import FastOptions, FastRollout
from stochlift.lifting.generator import build_model
from stochlift.lifting.labels import stream_seed
from stochlift.lifting.rollout import rollout, rollout_chunks
from stochlift.models.unet import pad_circular
from stochlift.problems.flow import WaterBalance

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_UNET = {"depths": [8, 16], "mid_blocks": 1, "embed_width": 16, "groups": 4}
OPTION_TOLERANCE = 1e-4
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def unet(periodic: bool = True, label_dim: int = 4, frame_shape=(1, 8, 8)):
    torch.manual_seed(0)
    config = ModelConfig(window=3, label_dim=label_dim, frame_shape=list(frame_shape), residual_scale=0.5,
                         options={**TINY_UNET, "periodic": periodic})
    return build_model(config)


def reference(model, initial: np.ndarray, frames: int, seed: int, batch_size: int) -> np.ndarray:
    """The straightforward loop: torch.cat the window every frame, labels from stream (seed, batch)."""
    initial = torch.as_tensor(initial)
    m, outputs = model.window, []
    with torch.no_grad():
        for b, start in enumerate(range(0, len(initial), batch_size)):
            given = initial[start : start + batch_size]
            generator = torch.Generator().manual_seed(stream_seed(seed, "rollout", b))
            k = given.shape[1]
            if k >= m:
                window = given[:, k - m :]
            else:
                window = torch.cat([given[:, :1].expand(-1, m - k, *given.shape[2:]), given], dim=1)
            out = torch.empty(len(given), frames, *given.shape[2:])
            out[:, :k] = given
            for t in range(k, frames):
                xi = torch.randn(len(given), model.label_dim, generator=generator) if model.label_dim else None
                nxt = model(window, xi)
                out[:, t] = nxt
                window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
            outputs.append(out.numpy())
    return np.concatenate(outputs)


def initial(n: int = 5, k: int = 2, frame_shape=(1, 8, 8)) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, k, *frame_shape)).astype(np.float32)


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("periodic", [True, False])
def test_default_rollout_is_bit_identical_to_the_plain_loop(k: int, periodic: bool) -> None:
    model = unet(periodic)
    start = initial(k=k)
    np.testing.assert_array_equal(rollout(model, start, 7, seed=3, batch_size=2),  # uneven last batch
                                  reference(model, start, 7, seed=3, batch_size=2))


def test_default_rollout_of_vector_states_is_bit_identical() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="mlp", window=2, label_dim=3, frame_shape=[4], options={"hidden": 16}))
    start = initial(n=6, k=1, frame_shape=(4,))
    np.testing.assert_array_equal(rollout(model, start, 5, seed=1, batch_size=4), reference(model, start, 5, 1, 4))
    deterministic = build_model(ModelConfig(backbone="mlp", window=2, label_dim=0, frame_shape=[4]))
    np.testing.assert_array_equal(rollout(deterministic, start, 4, batch_size=4),
                                  reference(deterministic, start, 4, 0, 4))


def test_auto_batch_on_the_cpu_is_the_default_batch() -> None:
    model = unet()
    start = initial(n=3)
    np.testing.assert_array_equal(rollout(model, start, 4, batch_size="auto"), rollout(model, start, 4))


def test_channels_last_changes_samples_only_within_tolerance_and_leaves_the_model_alone() -> None:
    model = unet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    start = initial()
    fast = rollout(model, start, 7, seed=3, batch_size=2, channels_last=True)
    np.testing.assert_allclose(fast, reference(model, start, 7, 3, 2), atol=OPTION_TOLERANCE, rtol=0)
    for name, value in model.state_dict().items():
        assert value.is_contiguous() and torch.equal(value, before[name]), name


@pytest.mark.skipif(os.environ.get("STOCHLIFT_TEST_COMPILE") != "1",
                    reason="a cold torch.compile of even the tiny U-Net takes ~2 minutes on the 2-core CI machine "
                           "(warm cache ~9 s); set STOCHLIFT_TEST_COMPILE=1 to run it")
def test_compile_changes_samples_only_within_tolerance() -> None:
    model = unet()
    start = initial(n=4)
    fast = rollout(model, start, 5, seed=2, batch_size=4, compile=True)
    np.testing.assert_allclose(fast, reference(model, start, 5, 2, 4), atol=OPTION_TOLERANCE, rtol=0)


def test_gpu_options_are_refused_on_the_cpu() -> None:
    model, start = unet(), initial(n=2)
    with pytest.raises(StochliftError, match="autocast bf16 is for GPUs"):
        rollout(model, start, 3, autocast="bf16", device="cpu")
    with pytest.raises(StochliftError, match="cuda_graph needs a CUDA device"):
        rollout(model, start, 3, cuda_graph=True, device="cpu")
    with pytest.raises(StochliftError, match="autocast must be one of"):
        rollout(model, start, 3, autocast="int8", device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(StochliftError, match="no CUDA GPU"):
            rollout(model, start, 3, device="cuda")


def test_pad_circular_matches_f_pad_and_keeps_the_layout() -> None:
    x = torch.randn(2, 3, 6, 10)
    for pad in (1, 2):
        expected = F.pad(x, [pad] * 4, mode="circular")
        assert torch.equal(pad_circular(x, pad), expected)
        nhwc = pad_circular(x.contiguous(memory_format=torch.channels_last), pad)
        assert torch.equal(nhwc, expected) and nhwc.is_contiguous(memory_format=torch.channels_last)


@cuda
def test_cuda_rollout_matches_the_cpu() -> None:
    model, start = unet(), initial()
    gpu = rollout(model, start, 6, seed=3, batch_size=2, device="cuda")
    np.testing.assert_allclose(gpu, reference(model, start, 6, 3, 2), atol=1e-3, rtol=0)
    assert next(model.parameters()).device.type == "cpu"  # the caller's model stays where it was


@pytest.mark.parametrize("graph", [False, pytest.param(True, marks=cuda)])
def test_a_stepper_used_outside_no_grad_steps_like_the_rollout(graph: bool) -> None:
    """benchmarks call the engine directly, with autograd on: the in-place window update must not trip it."""
    model, start = unet(), initial(n=2, k=3)
    device = "cuda" if graph else "cpu"
    engine = FastRollout(model, (1, 8, 8), FastOptions(device=device, cuda_graph=graph))
    stepper = engine.stepper(2)
    stepper.load(torch.as_tensor(start).to(device))
    xi = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.to(device)(torch.as_tensor(start).to(device), xi.to(device))
    np.testing.assert_allclose(stepper.step(xi.to(device)).cpu().numpy(), expected.cpu().numpy(), atol=1e-5, rtol=0)


@cuda
def test_cuda_graph_matches_eager_cuda() -> None:
    model, start = unet(), initial()
    eager = rollout(model, start, 6, seed=3, batch_size=2, device="cuda")
    graphed = rollout(model, start, 6, seed=3, batch_size=2, device="cuda", cuda_graph=True)
    np.testing.assert_allclose(graphed, eager, atol=1e-6, rtol=0)


@cuda
def test_a_constraint_runs_inside_the_cuda_graph() -> None:
    model, start = unet(periodic=False), np.abs(initial()).clip(0, 1) * 0.3
    balance = WaterBalance(inflow=2.0, producer=(7, 7), params=FlowParams())
    cpu = rollout(model, start, 6, seed=3, batch_size=2, constraint=balance)
    graphed = rollout(model, start, 6, seed=3, batch_size=2, device="cuda", cuda_graph=True, constraint=balance)
    np.testing.assert_allclose(graphed, cpu, atol=1e-3, rtol=0)
    assert graphed.min() >= 0 and graphed.max() <= 1


@cuda
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_autocast_stays_close_to_fp32(dtype: str) -> None:
    model, start = unet(), initial()
    eager = rollout(model, start, 6, seed=3, batch_size=2, device="cuda")
    for graph in (False, True):
        low = rollout(model, start, 6, seed=3, batch_size=2, device="cuda", autocast=dtype, cuda_graph=graph,
                      channels_last=True)
        assert low.dtype == np.float32
        np.testing.assert_allclose(low, eager, atol=0.1, rtol=0)


@cuda
def test_auto_batch_fills_the_gpu_within_the_limit() -> None:
    model, start = unet(), initial(n=5)
    np.testing.assert_allclose(rollout(model, start, 4, batch_size="auto", device="cuda"),
                               rollout(model, start, 4, batch_size=5, device="cuda"), atol=0, rtol=0)


# ------------------------------------------------------------------------------ labels drawn by the stepper


def test_device_labels_on_the_cpu_are_the_host_labels() -> None:
    """labels="device" draws with the stepper's own generator (xi.normal_), seeded per batch like the host's:
    on the CPU the very same numbers, so the samples are bit-identical."""
    model, start = unet(), initial()
    np.testing.assert_array_equal(rollout(model, start, 7, seed=3, batch_size=2, labels="device"),
                                  reference(model, start, 7, seed=3, batch_size=2))


def test_device_labels_draw_an_ardm_s_noise_like_the_host() -> None:
    torch.manual_seed(0)
    config = ModelConfig(window=2, label_dim=0, frame_shape=[1, 8, 8], method="ardm", loss="huber",
                         diffusion_steps=3, options={**TINY_UNET, "periodic": True})
    model, start = build_model(config), initial(n=3, k=1)
    np.testing.assert_array_equal(rollout(model, start, 4, seed=1, batch_size=2, labels="device"),
                                  rollout(model, start, 4, seed=1, batch_size=2))


def test_a_shard_of_batches_is_the_same_rows_of_the_whole_rollout() -> None:
    """Batches keep their label streams (seed, b) when rolled out alone: processes can split a rollout."""
    model, start = unet(), initial(n=5)
    whole = rollout(model, start, 6, seed=2, batch_size=2)
    pieces = {(row, frame): out for row, frame, out in
              rollout_chunks(model, start, 6, chunk_frames=4, seed=2, batch_size=2, batches=range(1, 3))}
    assert sorted(pieces) == [(2, 0), (2, 4), (4, 0), (4, 4)]
    for (row, frame), out in pieces.items():
        np.testing.assert_array_equal(out, whole[row : row + len(out), frame : frame + out.shape[1]])


def test_a_stepper_says_who_draws_the_labels() -> None:
    model = unet()
    host = FastRollout(model, (1, 8, 8)).stepper(2)
    with pytest.raises(StochliftError, match=r"call step\(xi\)"):
        host.step()
    device = FastRollout(model, (1, 8, 8), FastOptions(labels="device")).stepper(2)
    with pytest.raises(StochliftError, match=r"call step\(\)"):
        device.step(torch.zeros(2, 4))


def test_bad_speed_options_are_named() -> None:
    model, start = unet(), initial(n=2)
    with pytest.raises(StochliftError, match="labels must be one of"):
        rollout(model, start, 3, labels="gpu")
    with pytest.raises(StochliftError, match="compile mode must be one of"):
        rollout(model, start, 3, compile="fastest")
    with pytest.raises(StochliftError, match="cudnn_benchmark needs a CUDA device"):
        rollout(model, start, 3, cudnn_benchmark=True, device="cpu")
    with pytest.raises(StochliftError, match="captures its own CUDA graphs"):
        FastOptions(compile="reduce-overhead", cuda_graph=True).check(torch.device("cuda"))


@cuda
def test_device_labels_in_a_cuda_graph_match_eager_device_labels() -> None:
    """The graph replays advance the registered generator as eager draws do (Philox offsets), and reseed
    per batch: graphed and eager samples agree, runs repeat exactly, and the labels differ per batch."""
    model, start = unet(), initial(n=4)
    eager = rollout(model, start, 6, seed=3, batch_size=2, device="cuda", labels="device")
    graphed = rollout(model, start, 6, seed=3, batch_size=2, device="cuda", labels="device", cuda_graph=True,
                      cudnn_benchmark=True)
    np.testing.assert_allclose(graphed, eager, atol=1e-5, rtol=0)
    again = rollout(model, start, 6, seed=3, batch_size=2, device="cuda", labels="device", cuda_graph=True)
    np.testing.assert_allclose(again, graphed, atol=1e-5, rtol=0)
    twins = np.repeat(initial(n=1), 4, axis=0)  # the same start: any difference comes from the labels
    spread = rollout(model, twins, 4, seed=3, batch_size=2, device="cuda", labels="device", cuda_graph=True)
    assert np.abs(spread[:2] - spread[2:]).max() > 1e-3 and np.abs(spread[0] - spread[1]).max() > 1e-3


@cuda
def test_lagged_chunks_on_cuda_equal_the_whole_rollout() -> None:
    model, start = unet(), initial(n=5)
    whole = rollout(model, start, 7, seed=3, batch_size=2, device="cuda", cuda_graph=True)
    for row, frame, out in rollout_chunks(model, start, 7, chunk_frames=3, seed=3, batch_size=2, device="cuda",
                                          cuda_graph=True):
        np.testing.assert_allclose(out, whole[row : row + len(out), frame : frame + out.shape[1]], atol=1e-6, rtol=0)


def test_batches_outside_the_rollout_are_refused() -> None:
    with pytest.raises(StochliftError, match="outside the 3 batches"):
        list(rollout_chunks(unet(), initial(n=5), 4, batch_size=2, batches=range(2, 4)))
