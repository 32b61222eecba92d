"""User quantities of interest (QoIs): functions of an ensemble's trajectories that `field_scores` compares.

A QoI is any function `f(frames) -> values` with frames [n, T, *state] (the state as stored: [C], [C, X],
[C, H, W]) and values [n, T] (one number per trajectory and time, like a mass) or [n] (one number per
trajectory, like a crossing time). It must treat each trajectory on its own: file scoring calls it on
chunks of trajectories and concatenates the results. Name QoIs in Python with a mapping
{name: function}, or on a command line with a `module:function` spec (see `load_qoi`).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stochlift.errors import StochliftError

__all__ = ["QoI", "evaluate_qoi", "load_qoi", "load_qois"]

QoI = Callable[[np.ndarray], np.ndarray]


def load_qoi(spec: str) -> QoI:
    """The function named by 'package.module:function' or 'path/to/file.py:function'.

    A file path lets a script beside the data define its QoI without being installed or on sys.path.
    Any problem (no colon, no such module or file, no such attribute, not callable) is a StochliftError.
    """
    module_name, sep, attribute = spec.rpartition(":")
    if not sep or not module_name or not attribute:
        raise StochliftError(f"a quantity of interest is given as module:function or file.py:function, got {spec!r}")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise StochliftError(f"quantity of interest {spec!r}: no such file {path}")
            loader_spec = importlib.util.spec_from_file_location(f"stochlift_qoi_{path.stem}", path)
            # a path ending in .py always gets a spec with a source-file loader
            assert loader_spec is not None and loader_spec.loader is not None
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except StochliftError:
        raise
    except Exception as exc:  # the user's module may fail to import in any way; say which and why, in one line
        raise StochliftError(f"quantity of interest {spec!r}: cannot import {module_name!r} "
                             f"({type(exc).__name__}: {exc})") from exc
    function = getattr(module, attribute, None)
    if function is None:
        raise StochliftError(f"quantity of interest {spec!r}: {module_name!r} has no attribute {attribute!r}")
    if not callable(function):
        raise StochliftError(f"quantity of interest {spec!r}: {attribute!r} is not a function")
    return function


def load_qois(specs: list[str]) -> dict[str, QoI]:
    """{function name: function} for several specs (a CLI's repeated --qoi); duplicate names are an error."""
    out: dict[str, QoI] = {}
    for spec in specs:
        name = spec.rpartition(":")[2]
        if name in out:
            raise StochliftError(f"two quantities of interest are named {name!r}; give each function its own name")
        out[name] = load_qoi(spec)
    return out


def evaluate_qoi(name: str, function: QoI, frames: np.ndarray) -> np.ndarray:
    """function(frames) checked: float64 [n] or [n, T] of finite values for frames [n, T, *state]."""
    n, frames_count = frames.shape[:2]
    try:
        values = np.asarray(function(frames), dtype=np.float64)
    except StochliftError:
        raise
    except Exception as exc:  # a user's function: name it in the one-line error
        raise StochliftError(f"quantity of interest {name!r} failed on frames {list(frames.shape)} "
                             f"({type(exc).__name__}: {exc})") from exc
    if values.shape not in ((n,), (n, frames_count)):
        raise StochliftError(f"quantity of interest {name!r} must return [n] or [n, T] = [{n}] or "
                             f"[{n}, {frames_count}] for frames {list(frames.shape)}, got {list(values.shape)}")
    if not np.isfinite(values).all():
        raise StochliftError(f"quantity of interest {name!r} returned NaN or Inf values; give every trajectory "
                             "a finite value (e.g. the last time for a threshold never crossed)")
    return values
