"""The `stochlift` command line: each command is a thin layer over a public Python function."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import click

from stochlift.errors import StochliftError


def _version() -> str:
    try:
        return importlib.metadata.version("stochlift")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "unknown (not installed)"


def _positive(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be a positive integer, got {value}")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version=_version())
def cli() -> None:
    """Stochastic Lifting: generate stochastic trajectories with one network call per frame.

    \b
    Typical workflow:
      stochlift data wave --out wave.h5
      stochlift train --data wave.h5 --config wave-quick --out runs/wave
      stochlift sample --run runs/wave --out samples.h5
      stochlift evaluate --reference wave.h5 --generated samples.h5 --out metrics.json
    or all of it at once:  stochlift demo --out demo
    """


@cli.group()
def data() -> None:
    """Generate data sets (HDF5 trajectory files with train/valid/test splits)."""


@data.command("wave")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HDF5 file to write.")
@click.option("--preset", type=click.Choice(["quick", "paper"]), default="quick", show_default=True,
              help="quick: 32x32, 416 trajectories (CPU minutes); paper: 64x64, M=1024 training trajectories.")
@click.option("--trajectories", type=int, callback=_positive, help="Total trajectories (split like the preset).")
@click.option("--frames", type=int, callback=_positive, help="Stored frames T per trajectory.")
@click.option("--size", type=int, callback=_positive, help="Grid size S (S x S).")
@click.option("--seed", type=int, default=0, show_default=True)
def data_wave(out: str, preset: str, trajectories: int | None, frames: int | None, size: int | None, seed: int) -> None:
    """The Wave problem: u_tt = c(x)^2 Laplace u in a random medium c, from a fixed Gaussian bump."""
    from stochlift.data.datasets import make_wave_dataset

    path = make_wave_dataset(out, preset=preset, trajectories=trajectories, frames=frames, size=size, seed=seed)
    click.echo(f"wrote {path}")


@cli.command()
@click.option("--data", "data_path", type=click.Path(dir_okay=False), help="Training trajectory file (HDF5).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory to create.")
@click.option("--config", "config_name", help="Preset name from configs/ (e.g. wave-quick) or a YAML file.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out exactly where it stopped.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.argument("overrides", nargs=-1, metavar="[SECTION.KEY=VALUE]...")
def train(data_path: str | None, out: str, config_name: str | None, resume: bool, quiet: bool,
          overrides: tuple[str, ...]) -> None:
    """Train a lifted model: fixed random labels, plain regression (Algorithm 1).

    Overrides change any config value, e.g. `train.steps=500 model.label_dim=0`.
    """
    from stochlift.config import apply_overrides, load_config
    from stochlift.lifting.train import train as train_run

    if resume and config_name is None and (Path(out) / "config.yaml").is_file():
        config_name = str(Path(out) / "config.yaml")  # resume the run as it was configured
    config = apply_overrides(load_config(config_name), list(overrides))
    if data_path:
        config.data.path = data_path  # verbatim: a path is not YAML
    result = train_run(config, out, resume=resume, progress=not quiet)
    last = result.history[-1]["loss"] if result.history else float("nan")
    click.echo(f"trained {out} (final loss {last:.4g})")


@cli.command()
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="Trained run directory.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HDF5 file of generated trajectories.")
@click.option("--trajectories", type=int, default=256, show_default=True, callback=_positive)
@click.option("--frames", type=int, callback=_positive, help="Frames per trajectory (default: the data's T).")
@click.option("--initial", type=click.Path(dir_okay=False),
              help="Trajectory file whose first frames start the rollouts (default: the run's data, test split).")
@click.option("--initial-split", help="Split of --initial to take initial frames from.")
@click.option("--initial-frames", type=int, default=1, show_default=True, callback=_positive,
              help="Given frames per trajectory; a shorter history than the window repeats frame 0.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True, callback=_positive)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sample(run_dir: str, out: str, trajectories: int, frames: int | None, initial: str | None,
           initial_split: str | None, initial_frames: int, seed: int, batch_size: int, quiet: bool) -> None:
    """Generate trajectories, one network call per frame with a fresh label each (Algorithm 2)."""
    from stochlift.lifting.rollout import sample_to_file

    path = sample_to_file(run_dir, out, trajectories=trajectories, frames=frames, initial=initial,
                          initial_split=initial_split, initial_count=initial_frames, seed=seed,
                          batch_size=batch_size, progress=not quiet)
    click.echo(f"wrote {path}")


@cli.command()
@click.option("--reference", required=True, type=click.Path(dir_okay=False), help="True trajectories (HDF5).")
@click.option("--generated", required=True, type=click.Path(dir_okay=False), help="Generated trajectories (HDF5).")
@click.option("--out", type=click.Path(dir_okay=False), help="metrics.json to write.")
@click.option("--reference-split", help="Split of the reference file (default: test).")
@click.option("--generated-split", help="Split of the generated file (default: its only split).")
def evaluate(reference: str, generated: str, out: str | None, reference_split: str | None,
             generated_split: str | None) -> None:
    """Compare generated with true trajectories in distribution (W2 of crossing time and mass, ...)."""
    from stochlift.metrics.evaluate import evaluate_files

    report, _ = evaluate_files(reference, generated, out, reference_split=reference_split,
                               generated_split=generated_split)
    click.echo(json.dumps({k: v for k, v in report.items() if not isinstance(v, list)}, indent=2))


@cli.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory for everything the demo writes.")
@click.option("--problem", type=click.Choice(["wave"]), default="wave", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.argument("overrides", nargs=-1, metavar="[SECTION.KEY=VALUE]...")
def demo(out: str, problem: str, seed: int, quiet: bool, overrides: tuple[str, ...]) -> None:
    """Data, training, sampling, evaluation and pictures in one go, on the quick preset.

    About 8 minutes on 2 CPU cores. Re-running continues an interrupted demo: finished stages are
    reused. Overrides change the training config, e.g. `train.steps=500` for a faster, rougher demo.
    """
    from stochlift.demo import run_demo

    result = run_demo(out, problem=problem, seed=seed, overrides=overrides, progress=not quiet)
    click.echo(result.summary())


def main() -> None:
    """Entry point: user mistakes print one line and exit 2; Ctrl-C exits 130."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except StochliftError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as exc:  # disk full, permissions, ...: the user's environment, not a bug
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
