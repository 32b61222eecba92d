"""Data sets nobody on the project wrote: made by kept libraries of their fields, saved as their users would save
them, and imported through the CLI (`stochlift data import`), for issue 20's evidence.

    python benchmarks/external_problems.py generate --out DIR [--only NAME ...] [--seed 0]
    python benchmarks/external_problems.py run --data DIR [--only NAME ...] [--budget 10m] [--results STEM]
    python benchmarks/external_problems.py list

Needs the optional `external` extra (`pip install -e ".[external]"`: py-pde, torchsde, the-well); stochlift
itself never imports these libraries. The problems (settings in PROBLEMS; each has its own seed, drawn from
--seed and its name by stochlift's stream_seed):

    kpz1d            py-pde KPZInterfacePDE on a periodic line of 64 points, from a flat interface (shared start);
                     saved as .npz (stored) with arrays h [N, T, X], t, x        -> --array h --layout N,T,X
    ks1d             py-pde KuramotoSivashinskyPDE with additive noise, periodic line of 64 points, from one
                     small shared wave; saved as HDF5 like a solver's output, simulation/u [T, N, X]
                                                                            -> --dataset simulation/u --layout T,N,X
    kpz2d            py-pde KPZInterfacePDE on a periodic 32 x 32 grid, flat start; .npy [N, T, H, W] float32
                                                                                 -> --layout N,T,H,W
    lorenz           torchsde: the stochastic Lorenz system of torchsde's latent-SDE example (multiplicative
                     diagonal noise), one shared start; .npy as sdeint returns it, [T, N, 3], with t.npy
                                                                                 -> --layout T,N,D --time t.npy
    linear_gaussian  a 4-variable linear SDE dX = A X dt + B dW sampled exactly (numpy, Van Loan's matrix
                     exponential), one shared start; .npy [N, T, 4]              -> --layout N,T,D --time dt=...
    well_dummy       a The Well data set root written by The Well's own the_well.utils.dummy_data (2 trajectories
                     per file, 32 x 32, 10 frames; every value i.i.d. uniform in [0, 1], no dependence on the past:
                     a check of the format path more than of dynamics)              -> the folder, its own splits

For each problem: DIR/NAME/raw/ (the library's output as saved), DIR/NAME/data.h5 (the import), and
DIR/NAME/settings.json (library and version, every parameter, the seed, shapes, seconds, the import command).
DIR/manifest.json lists every problem in DIR (each with the command and date that made it) and the machine;
benchmarks/results/external_problems_data.json keeps a copy. `load_problems(DIR)` hands the problems to the `run`
stage (benchmarks/external_run.py): the automatic recipe within --budget against the d = 0 regressor and resampled
training trajectories, scores relative to their floors, into benchmarks/results/external_problems.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stochlift.apps.bench import machine
from stochlift.io import write_json
from stochlift.lifting.labels import stream_seed

RESULTS = Path(__file__).resolve().parent / "results"
SPLIT = "0.8,0.1,0.1"  # train, valid, test fractions of the array problems (the Well folder has its own splits)


@dataclass(frozen=True)
class Problem:
    name: str
    library: str  # the package that makes the data (its version goes in the record)
    settings: dict[str, Any]
    generate: Callable[[Path, dict[str, Any], int], list[str]]  # (raw dir, settings, seed) -> import arguments


# ------------------------------------------------------------------------------------------- py-pde


def pypde_ensemble(equation: Any, grid: Any, initial: np.ndarray, n: int, frames: int, interval: float, dt: float,
                   seed: int) -> np.ndarray:
    """n trajectories [n, frames, *grid] of a py-pde equation from one initial field, Euler-Maruyama with step dt,
    a frame every `interval`. The stepper is compiled once (py-pde compiles anew on every `solve`) and reused;
    numba's random generator, which draws py-pde's noise, is seeded with `seed`."""
    import numba
    import pde

    @numba.njit
    def seed_numba(value: int) -> None:
        np.random.seed(value)

    state = pde.ScalarField(grid, initial)
    stepper = pde.EulerSolver(equation, backend="numba").make_stepper(state, dt=dt)
    seed_numba(seed % 2**32)
    out = np.empty((n, frames, *grid.shape))
    for i in range(n):
        state.data[...] = initial
        out[i, 0], t = initial, 0.0
        for k in range(1, frames):
            t = stepper(state, t, k * interval)
            out[i, k] = state.data
    if not np.isfinite(out).all():
        raise RuntimeError(f"{type(equation).__name__} diverged: lower dt")
    return out


def _grid(settings: dict[str, Any]) -> Any:
    import pde

    return pde.CartesianGrid([(0.0, settings["length"])] * settings["dims"], [settings["points"]] * settings["dims"],
                             periodic=True)


def _kpz(raw: Path, s: dict[str, Any], seed: int) -> tuple[np.ndarray, Any]:
    import pde

    grid = _grid(s)
    equation = pde.KPZInterfacePDE(nu=s["nu"], lmbda=s["lmbda"], noise=s["noise"], bc="periodic",
                                   rng=np.random.default_rng(seed))
    h = pypde_ensemble(equation, grid, np.zeros(grid.shape), s["trajectories"], s["frames"], s["interval"], s["dt"],
                       seed)
    return h, grid


def kpz1d(raw: Path, s: dict[str, Any], seed: int) -> list[str]:
    h, grid = _kpz(raw, s, seed)
    t = s["interval"] * np.arange(s["frames"])
    np.savez(raw / "kpz1d.npz", h=h, t=t, x=grid.axes_coords[0])  # stored, not compressed: read by a memory map
    return [str(raw / "kpz1d.npz"), "--array", "h", "--layout", "N,T,X", "--periodic", "x", "--fields", "h",
            "--time", f"0:{t[-1]}"]


def kpz2d(raw: Path, s: dict[str, Any], seed: int) -> list[str]:
    h, _ = _kpz(raw, s, seed)
    np.save(raw / "kpz2d.npy", h.astype(np.float32))
    t_end = s["interval"] * (s["frames"] - 1)
    return [str(raw / "kpz2d.npy"), "--layout", "N,T,H,W", "--periodic", "x,y", "--fields", "h", "--time", f"0:{t_end}"]


def ks1d(raw: Path, s: dict[str, Any], seed: int) -> list[str]:
    import h5py
    import pde

    grid = _grid(s)
    equation = pde.KuramotoSivashinskyPDE(nu=s["nu"], noise=s["noise"], bc="periodic", rng=np.random.default_rng(seed))
    x = grid.axes_coords[0]
    initial = s["amplitude"] * np.cos(2 * np.pi * s["mode"] * x / s["length"])
    u = pypde_ensemble(equation, grid, initial, s["trajectories"], s["frames"], s["interval"], s["dt"], seed)
    with h5py.File(raw / "ks1d.h5", "w") as f:  # time-major, as a solver stepping all members at once writes it
        f["simulation/u"] = np.moveaxis(u, 1, 0)
        f["simulation/t"] = s["interval"] * np.arange(s["frames"])
        f["simulation/x"] = x
    return [str(raw / "ks1d.h5"), "--dataset", "simulation/u", "--layout", "T,N,X", "--periodic", "x", "--fields", "u",
            "--time", f"0:{s['interval'] * (s['frames'] - 1)}"]


# ------------------------------------------------------------------------------------------- torchsde


def lorenz(raw: Path, s: dict[str, Any], seed: int) -> list[str]:
    import torch
    import torchsde

    class StochasticLorenz(torch.nn.Module):
        """torchsde's examples/latent_sde_lorenz.py data process: Lorenz drift, noise b_i x_i per variable."""

        noise_type, sde_type = "diagonal", "ito"

        def f(self, t, y):
            x1, x2, x3 = y.unbind(-1)
            a1, a2, a3 = s["a"]
            return torch.stack([a1 * (x2 - x1), a2 * x1 - x2 - x1 * x3, x1 * x2 - a3 * x3], dim=-1)

        def g(self, t, y):
            return y * torch.tensor(s["b"], dtype=y.dtype)

    n, t_end = s["trajectories"], s["interval"] * (s["frames"] - 1)
    start = torch.tensor(s["start"], dtype=torch.float64).expand(n, 3).clone()
    ts = torch.linspace(0.0, t_end, s["frames"], dtype=torch.float64)
    brownian = torchsde.BrownianInterval(0.0, t_end, size=(n, 3), dtype=torch.float64, entropy=seed)
    with torch.no_grad():
        ys = torchsde.sdeint(StochasticLorenz(), start, ts, method=s["method"], dt=s["dt"], bm=brownian)
    np.save(raw / "lorenz.npy", ys.numpy())  # [T, N, 3], as sdeint returns it
    np.save(raw / "t.npy", ts.numpy())
    return [str(raw / "lorenz.npy"), "--layout", "T,N,D", "--fields", "x,y,z", "--time", str(raw / "t.npy")]


# ------------------------------------------------------------------------------------------- linear Gaussian


def linear_gaussian_step(s: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(Phi, Q) of the exact one-frame law X_{t+dt} | X_t = N(Phi X_t, Q) of dX = A X dt + B dW (Van Loan)."""
    from scipy.linalg import expm

    a, b, dt = np.asarray(s["A"]), np.asarray(s["B"]), s["interval"]
    d = len(a)
    block = np.zeros((2 * d, 2 * d))
    block[:d, :d], block[:d, d:], block[d:, d:] = -a, b @ b.T, a.T
    e = expm(block * dt)
    phi = e[d:, d:].T
    q = phi @ e[:d, d:]
    return phi, (q + q.T) / 2


def linear_gaussian_law(s: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The exact mean [T, 4] and covariance [T, 4, 4] of every frame from the shared start (for floors)."""
    phi, q = linear_gaussian_step(s)
    mean, cov = [np.asarray(s["start"], float)], [np.zeros((len(q), len(q)))]
    for _ in range(s["frames"] - 1):
        mean.append(phi @ mean[-1])
        cov.append(phi @ cov[-1] @ phi.T + q)
    return np.stack(mean), np.stack(cov)


def linear_gaussian_samples(s: dict[str, Any], n: int, seed: int) -> np.ndarray:
    """n exact trajectories [n, T, 4] (fresh ones with another seed: an exact sampler to score against)."""
    phi, q = linear_gaussian_step(s)
    noise = np.random.default_rng(seed).normal(size=(n, s["frames"] - 1, len(q))) @ np.linalg.cholesky(q).T
    x = np.empty((n, s["frames"], len(q)))
    x[:, 0] = s["start"]
    for k in range(1, s["frames"]):
        x[:, k] = x[:, k - 1] @ phi.T + noise[:, k - 1]
    return x


def linear_gaussian(raw: Path, s: dict[str, Any], seed: int) -> list[str]:
    np.save(raw / "paths.npy", linear_gaussian_samples(s, s["trajectories"], seed))
    return [str(raw / "paths.npy"), "--layout", "N,T,D", "--time", f"dt={s['interval']}"]


# ------------------------------------------------------------------------------------------- The Well


def well_dummy(raw: Path, s: dict[str, Any], seed: int) -> list[str]:
    from the_well.utils.dummy_data import write_dummy_data

    root = raw / "dummy_dataset"
    for split, files in s["files"].items():
        (root / "data" / split).mkdir(parents=True, exist_ok=True)
        for i in range(files):
            np.random.seed(stream_seed(seed, split, i) % 2**32)  # write_dummy_data draws from numpy's global state
            write_dummy_data(str(root / "data" / split / f"dummy_{i:03d}.hdf5"))
    return [str(root)]


# ------------------------------------------------------------------------------------------- registry

PROBLEMS = {p.name: p for p in (
    Problem("kpz1d", "py-pde", {"dims": 1, "points": 64, "length": 32.0, "nu": 0.5, "lmbda": 1.0, "noise": 0.5,
                                "dt": 0.01, "interval": 0.5, "frames": 21, "trajectories": 320}, kpz1d),
    Problem("ks1d", "py-pde", {"dims": 1, "points": 64, "length": 32.0, "nu": 1.0, "noise": 0.1, "amplitude": 0.5,
                               "mode": 2, "dt": 0.002, "interval": 1.0, "frames": 41, "trajectories": 320}, ks1d),
    Problem("kpz2d", "py-pde", {"dims": 2, "points": 32, "length": 32.0, "nu": 0.5, "lmbda": 1.0, "noise": 0.5,
                                "dt": 0.05, "interval": 0.5, "frames": 17, "trajectories": 320}, kpz2d),
    Problem("lorenz", "torchsde", {"a": [10.0, 28.0, 8 / 3], "b": [0.1, 0.28, 0.3], "start": [-8.0, 7.0, 27.0],
                                   "method": "euler", "dt": 1e-3, "interval": 0.05, "frames": 41,
                                   "trajectories": 640}, lorenz),
    Problem("linear_gaussian", "numpy", {
        "A": [[-0.5, 1.0, 0.0, 0.0], [-1.0, -0.5, 0.3, 0.0], [0.0, 0.0, -0.2, 2.0], [0.0, 0.2, -2.0, -0.2]],
        "B": [[0.5, 0.0, 0.0, 0.0], [0.2, 0.4, 0.0, 0.0], [0.0, 0.1, 0.3, 0.0], [0.1, 0.0, 0.2, 0.3]],
        "start": [1.0, 0.0, -1.0, 0.5], "interval": 0.1, "frames": 41, "trajectories": 1280}, linear_gaussian),
    Problem("well_dummy", "the-well", {"files": {"train": 32, "valid": 4, "test": 16}, "trajectories_per_file": 2,
                                       "grid": [32, 32], "frames": 10}, well_dummy),
)}


def _version(library: str) -> str:
    return np.__version__ if library == "numpy" else importlib.metadata.version(library)


def generate(problem: Problem, out: Path, seed: int) -> dict[str, Any]:
    """Make one problem's raw data with its library, import it through the CLI, and record how."""
    folder = out / problem.name
    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    own_seed = stream_seed(seed, problem.name)
    started = time.perf_counter()
    arguments = problem.generate(raw, problem.settings, own_seed)
    generated = time.perf_counter() - started
    command = ["stochlift", "data", "import", *arguments]
    if problem.name != "well_dummy":
        command += ["--split-fractions", SPLIT, "--seed", str(seed)]
    command += ["--name", problem.name, "--out", str(folder / "data.h5"), "--quiet"]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "stochlift", *command[1:]], check=True)
    imported = time.perf_counter() - started
    from stochlift.data.trajectories import TrajectoryFile

    with TrajectoryFile(folder / "data.h5") as data:
        shape = {"splits": data.splits, "frames": data.meta.frames, "frame_shape": list(data.meta.frame_shape),
                 "fields": list(data.meta.field_names), "boundaries": list(data.meta.bc_types)}
    record = {"command": " ".join(["python", *sys.argv]),
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "name": problem.name, "library": problem.library, "version": _version(problem.library),
              "settings": problem.settings, "seed": own_seed, "master_seed": seed, **shape,
              "import_command": " ".join(c.replace(str(out), "$OUT") for c in command),
              "seconds": {"generate": round(generated, 1), "import": round(imported, 1)},
              "raw_bytes": sum(p.stat().st_size for p in raw.rglob("*") if p.is_file())}
    write_json(folder / "settings.json", record)
    print(f"{problem.name}: {shape['splits']} x {shape['frames']} frames of {shape['frame_shape']} "
          f"({generated:.0f} s to make, {imported:.0f} s to import)", flush=True)
    return record


def load_problems(out: str | Path) -> dict[str, dict[str, Any]]:
    """The generated problems of DIR: name -> its settings.json record plus `data` (the imported file)."""
    problems = {}
    for settings in sorted(Path(out).glob("*/settings.json")):
        problems[settings.parent.name] = {**json.loads(settings.read_text()), "data": settings.parent / "data.h5"}
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    stages = parser.add_subparsers(dest="stage", required=True)
    make = stages.add_parser("generate", help="make and import the data sets")
    make.add_argument("--out", type=Path, required=True, help="folder for the data (large: not for the repository)")
    make.add_argument("--only", nargs="+", choices=sorted(PROBLEMS), help="these problems only")
    make.add_argument("--seed", type=int, default=0)
    run = stages.add_parser("run", help="train, sample and score every generated problem (resumable)")
    run.add_argument("--data", type=Path, required=True, help="the folder the generate stage wrote (its --out)")
    run.add_argument("--only", nargs="+", choices=sorted(PROBLEMS), help="these problems only")
    run.add_argument("--budget", default="10m", help="wall-clock training budget per model (stochlift train --budget)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--samples", type=int, help="generated trajectories per model (default: the test split's size)")
    run.add_argument("--results", type=Path, default=RESULTS / "external_problems",
                     help="STEM of the results: STEM.json and STEM.md")
    stages.add_parser("list", help="the problems and their settings")
    args = parser.parse_args()
    if args.stage == "list":
        for problem in PROBLEMS.values():
            print(f"{problem.name} ({problem.library}): {json.dumps(problem.settings)}")
        return
    if args.stage == "run":
        from external_run import run_stage  # beside this script

        run_stage(load_problems(args.data), args.only, args.budget, args.seed, args.samples, args.results)
        return
    for name in args.only or PROBLEMS:
        generate(PROBLEMS[name], args.out, args.seed)
    problems = {name: {k: v for k, v in r.items() if k != "data"} for name, r in load_problems(args.out).items()}
    manifest = {"machine": machine(), "problems": problems}  # every problem in OUT, each with its own command
    write_json(args.out / "manifest.json", manifest)
    write_json(RESULTS / "external_problems_data.json", manifest)
    print(f"wrote {args.out / 'manifest.json'} and {RESULTS / 'external_problems_data.json'}")


if __name__ == "__main__":
    main()
