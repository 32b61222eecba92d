"""Which inputs made each stage of a demo, so that a rerun reuses a stage only when they are unchanged.

`OUT/stages.json` maps each stage (data, train, sample) to the inputs its products were made from: the
problem, seed and data sizes, the resolved training config, the number of samples. Each stage's inputs
include the previous stage's, so a change anywhere redoes that stage and every stage after it, and a
demo never reports old results for new arguments. A stage is recorded before it runs, so an interrupted
stage whose inputs did not change continues (training resumes from its checkpoint).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from stochlift.io import write_json

STAGES_FILE = "stages.json"


class DemoStages:
    """The stages of the demo in one output folder, and the inputs each was made from."""

    def __init__(self, out: Path, *, progress: bool = True) -> None:
        self.path = out / STAGES_FILE
        self.progress = progress
        try:
            self.recorded: dict[str, Any] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except ValueError:  # unreadable: nothing can be reused
            self.recorded = {}

    def prepare(self, stage: str, inputs: dict[str, Any], products: list[Path]) -> dict[str, Any]:
        """Keep `stage`'s products if they were made from `inputs`; otherwise remove them (they are the demo's
        own files) and record `inputs`. Returns the inputs as recorded (JSON values), for the next stage's."""
        inputs = json.loads(json.dumps(inputs))
        if self.recorded.get(stage) != inputs:
            existing = [p for p in products if p.exists()]
            if existing and self.progress:
                print(f"demo: {stage}: other inputs than last time; redoing it", file=sys.stderr, flush=True)
            for product in existing:
                if product.is_dir() and not product.is_symlink():
                    shutil.rmtree(product)
                else:
                    product.unlink()
            self.recorded[stage] = inputs
            write_json(self.path, self.recorded)
        return inputs
