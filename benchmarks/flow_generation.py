"""Flow paper-scale generation speed: seconds per 100x100 trajectory, and the projected total for M = 1000.

    python benchmarks/flow_generation.py [--trajectories 8] [--workers 2]

Generates `--trajectories` trajectories of the paper preset (100x100 cells, end time 0.7, 50 stored
frames resampled to 96x96) twice: in one process, then with `--workers` processes, and projects the time
for the paper's 1000 training trajectories from the parallel rate. Writes
benchmarks/results/flow_generation.{json,md} with the command, machine and date.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from stochlift.data.flow_datasets import make_flow_dataset
from stochlift.io import atomic_path, write_json

RESULTS = Path(__file__).resolve().parent / "results"
PAPER_TRAJECTORIES = 1000


def timed_generation(n: int, workers: int, seed: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        make_flow_dataset(Path(tmp) / "flow.h5", preset="paper", trajectories=n, seed=seed, workers=workers,
                          progress=False)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    serial = timed_generation(args.trajectories, 1, seed=0)
    parallel = timed_generation(args.trajectories, args.workers, seed=1)
    record = {
        "command": " ".join(["python", *sys.argv]),
        "machine": f"{platform.machine()} {platform.processor() or ''} cores {os.cpu_count()}",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "trajectories": args.trajectories,
        "workers": args.workers,
        "seconds_per_trajectory_1_process": serial / args.trajectories,
        "seconds_per_trajectory_parallel": parallel / args.trajectories,
        "projected_minutes_for_1000": parallel / args.trajectories * PAPER_TRAJECTORIES / 60,
    }
    table = "\n".join([
        "| quantity | value |", "|---|---|",
        f"| seconds per 100x100 trajectory, 1 process | {record['seconds_per_trajectory_1_process']:.2f} |",
        f"| seconds per trajectory, {args.workers} workers (wall / trajectories) | "
        f"{record['seconds_per_trajectory_parallel']:.2f} |",
        f"| projected wall time for M = 1000 trajectories, {args.workers} workers | "
        f"{record['projected_minutes_for_1000']:.1f} min (target < 75) |",
    ])
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "flow_generation.json", record)
    with atomic_path(RESULTS / "flow_generation.md") as tmp:
        tmp.write_text(f"# Flow paper-scale generation\n\ncommand: `{record['command']}`  \n"
                       f"machine: {record['machine']}  \ndate: {record['date']}\n\n{table}\n\n"
                       "Each time includes assembling the HDF5 file. Timed in one process and then in parallel; "
                       "the projection uses the parallel rate.\n")


if __name__ == "__main__":
    main()
