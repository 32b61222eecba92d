#!/usr/bin/env bash
# Build the wheel and try it as a user gets it: installed (not editable) into a fresh venv, run from outside
# the source tree. The dependencies are not installed again: the fresh venv sees those of ./.venv (made by
# scripts/setup.sh) through a .pth file, so this stays fast and works offline; the package itself, its
# configs and its entry point come from the wheel alone (checked below).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

.venv/bin/python -m pip wheel -q --no-deps -w "$WORK/dist" . 2>&1 | grep -v "^WARNING: Location" || true
WHEEL=$(ls "$WORK"/dist/stochlift-*.whl)
.venv/bin/python -m venv "$WORK/venv"
DEPS=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
SITE=$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$DEPS" > "$SITE/_stochlift_dependencies.pth"  # a path entry: .venv's own .pth files (its editable
                                                     # stochlift) are not processed from there
"$WORK/venv/bin/python" -m pip install -q --no-deps "$WHEEL" 2>&1 | grep -v "^WARNING: Location" || true

cd "$WORK"  # not the source tree: nothing can come from ./src
export OMP_NUM_THREADS=1
"$WORK/venv/bin/python" - "$SITE" <<'EOF'
import sys
from pathlib import Path

import stochlift
from stochlift.config import CONFIG_DIR, load_config
from stochlift.apps.experiments import EXPERIMENT_DIR, experiment_names, load_settings

site = Path(sys.argv[1]).resolve()
where = [Path(p).resolve() for p in stochlift.__path__]
assert all(p.is_relative_to(site) for p in where), f"stochlift imported from {where}, not the wheel in {site}"
presets = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
experiments = experiment_names()
assert "wave-quick" in presets and "flow-quick" in presets, presets
assert {"table1", "lipschitz", "label_dim"} <= set(experiments), experiments
for name in presets:
    load_config(name)
for name in experiments:
    load_settings(name, "quick")
print(f"wheel: {len(presets)} presets and {len(experiments)} experiment settings load from {CONFIG_DIR}")
EOF
SL="$WORK/venv/bin/stochlift"
"$SL" --help >/dev/null
"$SL" --version
"$SL" data wave --out wave.h5 --trajectories 6 --frames 6 --size 8 --quiet
"$SL" train --data wave.h5 --out run --config wave-quick --quiet train.steps=2 train.batch_size=4 \
  "model.options={depths: [8, 16], mid_blocks: 1, embed_width: 16, groups: 4}" model.label_dim=4
"$SL" sample --run run --out samples.h5 --trajectories 2 --quiet
"$SL" evaluate --reference wave.h5 --generated samples.h5 --out metrics.json >/dev/null
test -s metrics.json
echo "wheel: $(basename "$WHEEL") installs and runs data -> train -> sample -> evaluate outside $ROOT"
