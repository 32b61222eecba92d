#!/usr/bin/env bash
# Install, then run the Wave demo end to end into ./demo (data, training, sampling, metrics, pictures).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/stochlift demo --out "${1:-demo}"
