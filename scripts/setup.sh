#!/usr/bin/env bash
# Create .venv and install stochlift into it. Idempotent: a second run only checks.
#
# Which PyTorch build goes in is chosen here, explicitly, before stochlift (whose metadata accepts any
# torch >= 2.4, < 3, so pip then keeps what is installed):
#   - a torch already in .venv is kept, whatever its build;
#   - TORCH_BUILD=cpu (the default on a machine where `nvidia-smi` sees no GPU): the CPU wheel of
#     torch $TORCH_VERSION, from a local wheel directory that pip is configured with (find-links) if it holds
#     one, else from PyTorch's CPU package index ($TORCH_CPU_INDEX);
#   - TORCH_BUILD=cuda (the default where `nvidia-smi` sees a GPU): torch $TORCH_VERSION from the package
#     index, whose Linux wheel is the CUDA build (several GB with its CUDA libraries).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_BUILD=${TORCH_BUILD:-auto}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if [ "$TORCH_BUILD" = auto ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then TORCH_BUILD=cuda; else TORCH_BUILD=cpu; fi
  fi
  case "$TORCH_BUILD" in
    cpu)
      .venv/bin/python -m pip install -q "torch==${TORCH_VERSION}+cpu" 2>/dev/null \
        || .venv/bin/python -m pip install -q "torch==${TORCH_VERSION}" --index-url "$TORCH_CPU_INDEX" ;;
    cuda)
      .venv/bin/python -m pip install -q "torch==${TORCH_VERSION}" ;;
    *)
      echo "TORCH_BUILD must be cpu, cuda or auto, got '$TORCH_BUILD'" >&2; exit 2 ;;
  esac
fi
.venv/bin/python -m pip install -q -e ".[test,video]"
.venv/bin/python -c "import torch; print(f'torch {torch.__version__} (CUDA: {torch.cuda.is_available()})')"
