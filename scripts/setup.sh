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
