"""What both demos share: a clock per stage, the result they return, and which inputs made each stage.

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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stochlift.io import write_json


class StageClock:
    """Seconds per stage of a demo: `lap(stage)` books the time since the previous lap (or the start)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage], self._last = now - self._last, now


@dataclass
class DemoResult:
    out: Path
    metrics: dict[str, Any]
    files: dict[str, Path]
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        keys = ("wct", "wct_relative", "mass_w2", "mass_w2_relative", "final_std_ratio")
        each = ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())
        lines = [f"demo finished in {sum(self.seconds.values()):.0f} s ({each})"]
        lines += [f"  {k:18s} {self.metrics[k]:.4f}" for k in keys if self.metrics.get(k) is not None]
        lines += [f"  {name:18s} {path}" for name, path in self.files.items()]
        return "\n".join(lines)


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
