"""The generator contract: what training, sampling and benchmarking need from a model, and methods by name.

A generator is an nn.Module that makes the next frame from a Markov window and some standard-normal
randomness (the lifting label, or an ARDM's diffusion noises), in `calls_per_frame` network calls:

    training   noise = generator.training_noise(n_pairs, seed).batch(pair_index, step)   # dict of tensors
               loss = generator.loss(window, target, **noise)                            # a scalar
    sampling   next_frame = generator(window, xi)        # xi [B, *noise_shape] fresh N(0, 1), or None

Rows of every training-noise tensor follow the batch's rows, so data parallelism shards them like the
windows. Methods register by name in `stochlift.config.METHODS` (`model.method` in a config) with a
"module:Class" string, so the core never imports a baseline: baselines import the core, never the reverse.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch import nn

from stochlift.config import METHODS, ModelConfig
from stochlift.errors import StochliftError
from stochlift.lifting.pairs import PairSet


class TrainingNoise(Protocol):
    """The randomness of the training pairs: a pure function of (pairs, step), so resume is exact."""

    def batch(self, index: np.ndarray, step: int) -> dict[str, torch.Tensor]:
        """Keyword arguments of `Generator.loss` for the pairs `index` of a step, rows in `index` order."""
        ...


class Generator(Protocol):
    """A model that generates one frame per `calls_per_frame` network calls (see the module docstring)."""

    window: int  # Markov window m: frames of history
    frame_shape: tuple[int, ...] | None  # one frame: [C, *spatial] ([D] for vectors)
    history_padding: str  # how a history shorter than m is padded ("repeat" or "zeros")
    residual_scale: torch.Tensor  # the typical frame-to-frame change (units of input noise)

    @property
    def noise_shape(self) -> tuple[int, ...]:
        """Standard-normal numbers per sample per generated frame; () when the method draws none."""
        ...

    @property
    def calls_per_frame(self) -> int:
        """Network calls per generated frame: 1 for Stochastic Lifting, S for an S-step diffusion model."""
        ...

    @classmethod
    def from_config(cls, config: ModelConfig) -> Generator:
        """The untrained model of a resolved model config (frame_shape known)."""
        ...

    pushforward: bool  # whether it trains on its own rollouts (train.unroll > 0)

    @classmethod
    def validate_config(cls, config: ModelConfig) -> None:
        """User errors in the method's settings (called when a model config is validated)."""
        ...

    @classmethod
    def resolve_from_data(cls, config: ModelConfig, pairs: PairSet, seed: int) -> None:
        """Fill in the method's data-derived settings (scales, bounds) in place, deterministically."""
        ...

    def training_noise(self, n_pairs: int, seed: int) -> TrainingNoise: ...

    def loss(self, window: torch.Tensor, target: torch.Tensor, **noise: torch.Tensor) -> torch.Tensor: ...

    def __call__(self, window: torch.Tensor, xi: torch.Tensor | None = None) -> torch.Tensor: ...

    # what the core uses of nn.Module
    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any: ...
    def to(self, *args: Any, **kwargs: Any) -> Any: ...
    def train(self, mode: bool = True) -> Any: ...
    def eval(self) -> Any: ...


__all__ = ["METHODS", "Generator", "TrainingNoise", "as_module", "build_model"]  # METHODS: stochlift.config, by name


def as_module(generator: Generator) -> nn.Module:
    """The generator as the nn.Module it is (see the module docstring), for what takes any module; typing only."""
    return cast(nn.Module, generator)


def build_model(config: ModelConfig) -> Generator:
    """The model of a resolved config (frame_shape known: [C, *spatial], or [D] for vectors), by its method."""
    if not config.frame_shape:
        raise StochliftError("model.frame_shape is unknown; it is filled in from the training data")
    return METHODS.get(config.method).from_config(config)
