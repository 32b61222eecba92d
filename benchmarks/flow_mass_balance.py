"""Would a mass balance fix the Flow rollouts? A trained Flow run rolled out twice: as it is, and with each
generated increment projected onto the water volume the wells allow.

    python benchmarks/flow_mass_balance.py RUN_DIR DATA.h5 [--trajectories 256] [--seed 0]

The truth's water volume grows by exactly rate * dt_frame / (porosity * area) per frame, less the water
the producer takes out (rate * f_w(s) of the producer cell's saturation, f_w the fractional flow). The
projection keeps each step's negative changes and scales its positive ones so the step's total matches
that amount, then clips to [0, 1]. Both rollouts use the same labels. An experiment, not library code
yet: it prints and saves (results/flow_mass_balance.{md,json}) the scores with and without it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from stochlift.data.flow import FlowParams, fractional_flow
from stochlift.data.trajectories import TrajectoryFile
from stochlift.io import atomic_path
from stochlift.lifting.pairs import initial_window
from stochlift.lifting.train import load_run
from stochlift.metrics.evaluate import crossing_for
from stochlift.metrics.physics import evaluate_physics

RESULTS = Path(__file__).resolve().parent / "results"


def balanced(current: torch.Tensor, proposed: torch.Tensor, volume: float, params: FlowParams,
             producer: tuple[int, int]) -> torch.Tensor:
    """`proposed` [B, 1, H, W] with its positive changes scaled so the step adds the water the wells allow
    (volume per frame in saturation x cells, less the producer's fractional-flow share)."""
    s_producer = current[:, 0, producer[0], producer[1]].numpy()
    target = torch.from_numpy(volume * (1.0 - fractional_flow(s_producer, params))).float()
    change = (proposed - current).clamp(min=-current, max=1 - current)
    gain = change.clamp(min=0)
    scale = ((target - (change - gain).sum((1, 2, 3))) / gain.sum((1, 2, 3)).clamp(min=1e-6)).clamp(0, 3)
    return (current + (change - gain) + gain * scale[:, None, None, None]).clamp(0, 1)


@torch.inference_mode()
def rollouts(run: str, reference: TrajectoryFile, n: int, seed: int) -> dict[str, np.ndarray]:
    model, _, _ = load_run(run)
    meta = reference.meta.parameters
    params = FlowParams(mu_w=float(meta["mu_w"]), mu_o=float(meta["mu_o"]), swc=float(meta["swc"]),
                        sor=float(meta["sor"]))
    truth = reference.read("test", slice(0, n))
    frames, cells = truth.shape[1], int(np.prod(truth.shape[-2:]))
    area = float(np.prod(meta["extent"]))
    volume = float(meta["rate"]) * float(meta["t_end"]) / (frames - 1) / (float(meta["porosity"]) * area) * cells
    producer = tuple(int(i) for i in meta["producer_cell"])
    out = {}
    for name in ("plain", "mass balance"):
        generator = torch.Generator().manual_seed(seed)
        window = initial_window(torch.from_numpy(truth[:, :1]), model.window, model.history_padding)
        states = [window[:, -1]]
        for _ in range(frames - 1):
            proposed = model(window, torch.randn(len(truth), model.label_dim, generator=generator))
            nxt = balanced(window[:, -1], proposed, volume, params, producer) if name == "mass balance" else proposed
            states.append(nxt)
            window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
        out[name] = torch.stack(states, dim=1).numpy()
    return {"truth": truth, **out}


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("data")
    parser.add_argument("--trajectories", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    reference = TrajectoryFile(args.data)
    runs = rollouts(args.run, reference, args.trajectories, args.seed)
    truth = runs.pop("truth")
    picks = [5, 20, 40, truth.shape[1] - 1]
    rows = {}
    for name, generated in runs.items():
        m = evaluate_physics([truth], [generated], crossing=crossing_for(reference))
        rows[name] = {"wct_relative": m.wct_relative, "mass_w2_relative": m.mass_w2_relative,
                      "final_std_ratio": m.final_std_ratio,
                      "mean_water": _rounded(generated.mean((2, 3, 4)).mean(0)[picks])}
    record = {
        "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} python {' '.join(sys.argv)}",
        "machine": f"{platform.machine()} {platform.processor()}, torch {torch.__version__}",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "frames": picks, "truth_mean_water": _rounded(truth.mean((2, 3, 4)).mean(0)[picks]), "rows": rows,
    }
    lines = ["# Flow rollouts with and without a mass-balance projection", "",
             f"Command: `{record['command']}`  ", f"Machine: {record['machine']}  ", f"Date: {record['date']}", "",
             f"| rollout | wct_relative | mass_w2_relative | final_std_ratio | mean water at frames {picks} |",
             "|---|---|---|---|---|",
             *(f"| {k} | {r['wct_relative']:.2f} | {r['mass_w2_relative']:.2f} | {r['final_std_ratio']:.2f} | "
               f"{r['mean_water']} |" for k, r in rows.items()),
             f"| truth | - | - | - | {record['truth_mean_water']} |", ""]
    print("\n".join(lines))
    for suffix, text in (("md", "\n".join(lines)), ("json", json.dumps(record, indent=2))):
        with atomic_path(RESULTS / f"flow_mass_balance.{suffix}") as tmp:
            Path(tmp).write_text(text)


if __name__ == "__main__":
    main()
