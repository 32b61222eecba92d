"""The direct jump x_0 -> x_{T-1} against the rollout at the paper's pairs-per-label-dimension ratio.

    python benchmarks/no_conditioning_ratio.py [--problem wave] [--label-dim 8] [--out results]

`stochlift experiment no_conditioning` trains both models with the quick recipe's label dimension (Wave
d = 256 for the jump's 128 training pairs), where a map affine in the label interpolates the jump's pairs.
The paper's jump had 16 pairs per label dimension (1,024 trajectories, d = 64); at the quick scale that is
d = 128 / 16 = 8. This runs that experiment's own code at that d for both models, with its budget (1,000
steps) and in its workspace (OUT/quick/_work, so runs are shared and reused), and writes the experiment's
results folder (table, findings, figure, command, machine, date) to
benchmarks/results/no_conditioning_ratio_<problem>_d<d>/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from stochlift.apps.experiments import load_settings, write_results
from stochlift.apps.experiments.no_conditioning import run
from stochlift.apps.experiments.workspace import Workspace

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="wave", choices=["wave", "flow"])
    parser.add_argument("--label-dim", type=int, default=8)
    parser.add_argument("--out", default="results", help="the experiments' results folder (workspace OUT/quick/_work)")
    args = parser.parse_args()
    settings = load_settings("no_conditioning", "quick")
    settings.update(problems=[args.problem], sl_overrides=[*settings.get("sl_overrides", []),
                                                           f"model.label_dim={args.label_dim}"],
                    description=f"{settings['description'].strip()} Both models with label dimension "
                                f"d = {args.label_dim} (benchmarks/no_conditioning_ratio.py).")
    ws = Workspace(Path(args.out) / "quick" / "_work")
    folder = RESULTS / f"no_conditioning_ratio_{args.problem}_d{args.label_dim}"
    folder.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    result = run(ws, settings, folder)
    write_results(folder, "no_conditioning", "quick", settings, result, time.perf_counter() - began, ws.seconds,
                  " ".join(["python", *sys.argv]))
    print(result.table)


if __name__ == "__main__":
    main()
