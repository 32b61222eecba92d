"""The `stochlift` command line: each command is a thin layer over a public Python function."""

from __future__ import annotations

import importlib.metadata
import json
import os
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
      stochlift report --run runs/wave --out report.html
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


@data.command("flow")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HDF5 file to write.")
@click.option("--preset", type=click.Choice(["quick", "paper"]), default="quick", show_default=True,
              help="quick: 32x32 cells, 352 trajectories (about a minute on 2 cores); paper: 100x100 cells "
                   "stored at 96x96, M=1000 training trajectories (about an hour on 2 cores).")
@click.option("--trajectories", type=int, callback=_positive, help="Total trajectories (split like the preset).")
@click.option("--frames", type=int, callback=_positive, help="Stored frames T per trajectory (t = 0 included).")
@click.option("--size", type=int, callback=_positive,
              help="Stored frame size S (S x S); quick simulates S x S cells, paper resamples its 100 x 100.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=int, callback=_positive, help="Worker processes.  [default: all cores]")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_flow(out: str, preset: str, trajectories: int | None, frames: int | None, size: int | None, seed: int,
              workers: int | None, quiet: bool) -> None:
    """The Flow problem: water floods oil through a random porous medium, injector to producer corner.

    Interrupted runs continue where they stopped: finished trajectories are kept in OUT.parts/.
    """
    from stochlift.data.flow_datasets import make_flow_dataset

    path = make_flow_dataset(out, preset=preset, trajectories=trajectories, frames=frames, size=size, seed=seed,
                             workers=workers, progress=not quiet)
    click.echo(f"wrote {path}")


def _floats(count: int):
    """Click callback: "a,b,c" -> a tuple of `count` floats."""

    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, ...] | None:
        if value is None:
            return None
        try:
            numbers = tuple(float(v) for v in value.split(","))
        except ValueError:
            numbers = ()
        if len(numbers) != count:
            raise click.BadParameter(f"expected {count} comma-separated numbers, got {value!r}")
        return numbers

    return parse


@data.command("import-video")
@click.argument("src", type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HDF5 file to write.")
@click.option("--preset", type=click.Choice(["clevrer"]),
              help="clevrer: 128x128 stretched, every 5th frame, 16-frame clips, official split folders if present.")
@click.option("--size", type=int, help="Output frames S x S; 0 keeps the source size.  [default: 64]")
@click.option("--resize", type=click.Choice(["crop", "stretch"]),
              help="crop: short side to S, centre crop; stretch: both sides to S.  [default: crop]")
@click.option("--crop", callback=_floats(4), metavar="TOP,LEFT,H,W", help="Box to cut from each frame before resizing.")
@click.option("--stride", type=int, callback=_positive, help="Keep every K-th frame.  [default: 1]")
@click.option("--clip-length", type=int, callback=_positive, help="Frames per clip after the stride.  [default: 16]")
@click.option("--clips", type=click.Choice(["all", "first"]), default="all", show_default=True,
              help="all: consecutive non-overlapping clips of each video; first: one clip per video.")
@click.option("--channels", type=click.Choice(["rgb", "gray"]), default="rgb", show_default=True)
@click.option("--split", callback=_floats(3), metavar="TRAIN,VALID,TEST",
              help="Fractions of the videos per split.  [default: 0.8,0.1,0.1]")
@click.option("--split-by", type=click.Choice(["random", "folder"]),
              help="random: videos drawn with --seed; folder: top folders named train/val/test.  [default: random]")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random split.")
@click.option("--skip-short", is_flag=True, help="Skip videos shorter than one clip instead of failing.")
@click.option("--fps", type=float, help="Frames per second of the source, when the files do not say.")
@click.option("--name", help="Data set name [default: the folder's name].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_import_video(src: str, out: str, preset: str | None, size: int | None, resize: str | None,
                      crop: tuple[float, ...] | None, stride: int | None, clip_length: int | None, clips: str,
                      channels: str, split: tuple[float, ...] | None, split_by: str | None, seed: int,
                      skip_short: bool, fps: float | None, name: str | None, quiet: bool) -> None:
    """Import a folder of videos (mp4, webm, gif, ...) or of frame-image folders (png, jpg) as uint8 video."""
    from stochlift.data.video import import_clevrer, import_video_folder

    if size is not None and size < 0:
        raise click.BadParameter(f"must be >= 0, got {size}", param_hint="--size")
    given = {"resize": resize, "stride": stride, "clip_length": clip_length, "split_by": split_by}
    options: dict = {k: v for k, v in given.items() if v is not None}
    if size is not None:
        options["size"] = size or None  # 0: keep the source size
    if crop is not None:
        if any(v != int(v) for v in crop):
            raise click.BadParameter(f"pixel counts must be integers, got {crop}", param_hint="--crop")
        options["crop"] = tuple(int(v) for v in crop)
    if split is not None:
        options["split"] = split
    common = dict(clips=clips, channels=channels, seed=seed, skip_short=skip_short, fps=fps, progress=not quiet)
    if name is not None:
        common["name"] = name
    importer = import_clevrer if preset == "clevrer" else import_video_folder
    path = importer(src, out, **options, **common)
    click.echo(f"wrote {path}")


@data.command("bair")
@click.argument("src", type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HDF5 file to write.")
@click.option("--camera", type=click.Choice(["image_aux1", "image_main"]), default="image_aux1", show_default=True,
              help="Which of the two cameras to import.")
@click.option("--frames", type=int, default=30, show_default=True, callback=_positive,
              help="Keep the first N of the 30 frames.")
@click.option("--valid", type=int, default=0, show_default=True, help="Hold out the last N training videos as valid.")
@click.option("--no-verify", is_flag=True, help="Skip the TFRecord CRC checks.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_bair(src: str, out: str, camera: str, frames: int, valid: int, no_verify: bool, quiet: bool) -> None:
    """BAIR robot pushing from the original softmotion30_44k tfrecords (SRC holds softmotion30_44k/ or
    train/ and test/); keeps the official train/test split. No TensorFlow needed."""
    from stochlift.data.bair import import_bair

    path = import_bair(src, out, camera=camera, frames=frames, valid=valid, verify=not no_verify, progress=not quiet)
    click.echo(f"wrote {path}")


@data.command("moving-digits")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HDF5 file to write.")
@click.option("--trajectories", type=int, callback=_positive,
              help="Total videos, split like the default 1024/64/256 (train/valid/test).")
@click.option("--frames", type=int, default=20, show_default=True, callback=_positive, help="Frames per video.")
@click.option("--size", type=int, default=64, show_default=True, callback=_positive, help="Canvas S x S.")
@click.option("--digit-size", type=int, callback=_positive, help="Digit side in pixels [default: S / 2].")
@click.option("--digits", type=int, default=2, show_default=True, callback=_positive, help="Digits per video.")
@click.option("--max-speed", type=int, default=4, show_default=True, callback=_positive,
              help="Velocity components are integers in -K..K px/frame.")
@click.option("--mnist", type=click.Path(),
              help="Local MNIST idx file or folder (train-/t10k-images-idx3-ubyte[.gz]) "
                   "[default: scikit-learn's digits].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_moving_digits(out: str, trajectories: int | None, frames: int, size: int, digit_size: int | None,
                       digits: int, max_speed: int, mnist: str | None, seed: int, quiet: bool) -> None:
    """Stochastic Moving Digits: the Stochastic Moving MNIST rules, offline (gray, uint8)."""
    from stochlift.data.synthetic_video import make_moving_digits

    path = make_moving_digits(out, trajectories=trajectories, frames=frames, size=size, digit_size=digit_size,
                              digits=digits, max_speed=max_speed, seed=seed, mnist=mnist, progress=not quiet)
    click.echo(f"wrote {path}")


@data.command("balls")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HDF5 file to write.")
@click.option("--trajectories", type=int, callback=_positive,
              help="Total videos, split like the default 1024/64/256 (train/valid/test).")
@click.option("--frames", type=int, default=32, show_default=True, callback=_positive, help="Frames per video.")
@click.option("--size", type=int, default=32, show_default=True, callback=_positive, help="Frame S x S.")
@click.option("--max-balls", type=int, default=3, show_default=True, callback=_positive,
              help="Most balls present at once (the most a model sees in training).")
@click.option("--entry-rate", type=float, default=0.1, show_default=True, help="Mean entries per frame.")
@click.option("--radius", type=float, default=0.12, show_default=True, help="Ball radius, fraction of S.")
@click.option("--warmup", type=int, default=16, show_default=True, help="Frames simulated before the first one.")
@click.option("--flat", is_flag=True, help="Flat discs instead of shaded balls.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_balls(out: str, trajectories: int | None, frames: int, size: int, max_balls: int, entry_rate: float,
               radius: float, warmup: int, flat: bool, seed: int, quiet: bool) -> None:
    """A CLEVRER-like RGB scene: coloured balls enter from off-frame, collide elastically and leave."""
    from stochlift.data.synthetic_video import make_bouncing_balls

    path = make_bouncing_balls(out, trajectories=trajectories, frames=frames, size=size, max_balls=max_balls,
                               entry_rate=entry_rate, radius=radius, warmup=warmup, shading=not flat, seed=seed,
                               progress=not quiet)
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
    On several GPUs (or CPU processes), launch it with torchrun:
    `torchrun --nproc_per_node 4 -m stochlift.cli train ...` (data parallel, same result as one process).
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
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
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
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto: the GPU when there is one.")
@click.option("--autocast", type=click.Choice(["bf16", "fp16"]), help="Run the network in reduced precision (GPU).")
@click.option("--channels-last", is_flag=True, help="NHWC memory layout (faster on most CPUs and GPUs).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the network (slow start, faster steps).")
@click.option("--cuda-graph", is_flag=True, help="Capture the one-step update as a CUDA graph (GPU).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sample(run_dir: str, out: str, trajectories: int, frames: int | None, initial: str | None,
           initial_split: str | None, initial_frames: int, seed: int, batch_size: int, device: str,
           autocast: str | None, channels_last: bool, compile_: bool, cuda_graph: bool, quiet: bool) -> None:
    """Generate trajectories, one network call per frame with a fresh label each (Algorithm 2).

    The speed options other than --device change the samples by float rounding only; without them the
    samples on the CPU are bit-identical to the plain loop.
    """
    from stochlift.lifting.fast import FastOptions
    from stochlift.lifting.rollout import sample_to_file

    options = FastOptions(device=device, autocast=autocast, channels_last=channels_last, compile=compile_,
                          cuda_graph=cuda_graph)
    path = sample_to_file(run_dir, out, trajectories=trajectories, frames=frames, initial=initial,
                          initial_split=initial_split, initial_count=initial_frames, seed=seed,
                          batch_size=batch_size, progress=not quiet, options=options)
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
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Trained run directory (config.yaml, checkpoint.safetensors, train_log.json).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HTML file to write.")
@click.option("--reference", type=click.Path(dir_okay=False),
              help="True trajectories, 'test' split or the only one (default: the run's data file).")
@click.option("--generated", type=click.Path(dir_okay=False),
              help="Generated trajectories to evaluate (default: sampled from the run into a temporary file, "
                   "as many as the reference split holds).")
@click.option("--metrics", type=click.Path(dir_okay=False),
              help="Metrics JSON to show as written (default: RUN/metrics.json if present).")
@click.option("--forecast-trajectories", type=click.IntRange(min=0), default=16, show_default=True,
              help="Held-out reference trajectories for the forecasting setting; 0 skips it.")
@click.option("--forecast-samples", type=click.IntRange(min=2), default=4, show_default=True,
              help="Samples rolled out per held-out trajectory in the forecasting setting.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of sampling and of the scores.")
@click.option("--quiet", is_flag=True, help="No progress messages.")
def report(run_dir: str, out: str, reference: str | None, generated: str | None, metrics: str | None,
           forecast_trajectories: int, forecast_samples: int, seed: int, quiet: bool) -> None:
    """One self-contained HTML page about a run: config, training curve, rollouts, metrics, plots.

    Every image and the animation are embedded, so the file opens offline with nothing beside it.
    """
    from stochlift.report import build_report

    path = build_report(run_dir, out, reference=reference, generated=generated, metrics=metrics,
                        forecast_trajectories=forecast_trajectories, forecast_samples=forecast_samples,
                        seed=seed, progress=not quiet)
    click.echo(f"wrote {path}")


@cli.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory for everything the demo writes.")
@click.option("--problem", type=click.Choice(["wave", "flow"]), default="wave", show_default=True,
              help="wave: waves in a random medium; flow: water flooding a random porous medium.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.argument("overrides", nargs=-1, metavar="[SECTION.KEY=VALUE]...")
def demo(out: str, problem: str, seed: int, quiet: bool, overrides: tuple[str, ...]) -> None:
    """Data, training, sampling, evaluation, pictures and an HTML report in one go, on the quick preset.

    About 9 minutes (wave) or 12 (flow) on 2 CPU cores. Re-running continues an interrupted demo: finished stages are
    reused. Overrides change the training config, e.g. `train.steps=500` for a faster, rougher demo.
    """
    from stochlift.demo import run_demo

    result = run_demo(out, problem=problem, seed=seed, overrides=overrides, progress=not quiet)
    click.echo(result.summary())


@cli.command()
@click.option("--preset", type=click.Choice(["cpu-quick", "paper-480", "paper-128"]),
              help="cpu-quick: the wave-quick model on 32x32; paper-480 / paper-128: the paper's two headline "
                   "timings (Large U-Net 480x480x3 32 frames, Medium U-Net 128x128x3 500 frames).  "
                   "[default: cpu-quick unless --config is given]")
@click.option("--config", "config_name", help="Config preset or YAML file whose model section to time.")
@click.option("--shape", help="Frame shape C,H,W (with --config; presets bring their own).")
@click.option("--batch", help="Rollout batch, or 'auto' (largest that fits on a GPU).")
@click.option("--frames", type=int, callback=_positive, help="Frames generated per video.")
@click.option("--ardm-steps", type=int, default=40, show_default=True, callback=_positive,
              help="S: backbone calls per frame of the ARDM comparison.")
@click.option("--train-batch", type=int, callback=_positive, help="Batch of the training-speed measurement.")
@click.option("--train-steps", type=click.IntRange(min=0), default=5, show_default=True,
              help="Training steps timed; 0 skips the training measurement.")
@click.option("--repeats", type=int, default=3, show_default=True, callback=_positive,
              help="Timed rollout passes (the median is reported).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--threads", type=int, callback=_positive, help="torch CPU threads.")
@click.option("--autocast", type=click.Choice(["bf16", "fp16"]), help="Reduced-precision network (GPU).")
@click.option("--channels-last", is_flag=True, help="NHWC memory layout.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the network.")
@click.option("--cuda-graph", is_flag=True, help="CUDA-graph capture of the one-step update (GPU).")
@click.option("--fast", is_flag=True, help="All speed options that suit the device: channels_last, and on a GPU "
                                            "also bf16 autocast and CUDA graphs.")
@click.option("--matmul-size", type=int, callback=_positive,
              help="n of the n x n matmul timed for the roofline.  [default: 4096 on the CPU, 8192 on GPUs]")
@click.option("--out", type=click.Path(dir_okay=False), help="JSON file to write the results to.")
def bench(preset: str | None, config_name: str | None, shape: str | None, batch: str | None, frames: int | None,
          ardm_steps: int, train_batch: int | None, train_steps: int, repeats: int, device: str,
          threads: int | None, autocast: str | None, channels_last: bool, compile_: bool, cuda_graph: bool,
          fast: bool, matmul_size: int | None, out: str | None) -> None:
    """Measure sampling and training speed on this machine, against its matmul roofline.

    One run: SL rollout frames/s, ARDM with S steps per frame (the same backbone S times), FLOPs per frame
    and the fraction of the measured dense-matmul rate achieved, peak memory, training steps/s.
    """
    from stochlift.bench import BenchOptions, run_bench
    from stochlift.lifting.fast import resolve_device

    if preset is None and config_name is None:
        preset = "cpu-quick"
    if fast:
        channels_last = True
        if resolve_device(device).type == "cuda":
            autocast, cuda_graph = autocast or "bf16", True
    parsed_batch: int | str | None = batch
    if batch is not None and batch != "auto":
        if not batch.isdigit() or int(batch) < 1:
            raise click.BadParameter(f"must be a positive integer or 'auto', got {batch!r}", param_hint="--batch")
        parsed_batch = int(batch)
    parsed_shape = None
    if shape is not None:
        try:
            parsed_shape = [int(v) for v in shape.split(",")]
        except ValueError:
            parsed_shape = []
        if len(parsed_shape) not in (1, 3) or min(parsed_shape) < 1:
            raise click.BadParameter(f"expected C,H,W (or D for vectors), got {shape!r}", param_hint="--shape")
    options = BenchOptions(device=device, autocast=autocast, channels_last=channels_last, compile=compile_,
                           cuda_graph=cuda_graph, threads=threads, ardm_steps=ardm_steps, train_steps=train_steps,
                           repeats=repeats, matmul_size=matmul_size)
    run_bench(preset, config_name, shape=parsed_shape, batch=parsed_batch, frames=frames, train_batch=train_batch,
              options=options, out=out, command="stochlift " + " ".join(sys.argv[1:]), echo=click.echo)
    if out:
        click.echo(f"wrote {out}")


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
