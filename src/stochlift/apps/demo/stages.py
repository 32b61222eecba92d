"""What both demos share: a clock per stage and the result they return."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
        lines = [f"demo finished in {sum(self.seconds.values()):.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in self.seconds.items())})"]
        lines += [f"  {k:18s} {self.metrics[k]:.4f}" for k in keys if self.metrics.get(k) is not None]
        lines += [f"  {name:18s} {path}" for name, path in self.files.items()]
        return "\n".join(lines)
