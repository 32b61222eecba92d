"""`stochlift data ...`: simulate data sets, import your own or videos, export to The Well (thin layers over
stochlift.data)."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from typing import Any

import click


class LazyChoice(click.Choice):
    """A click.Choice whose names are looked up when first needed (a registry whose lookup imports models),
    so that the CLI starts without importing torch."""

    def __init__(self, names: Callable[[], Sequence[str]]) -> None:
        self._names = names
        self._loaded: Sequence[str] | None = None

    @property  # (click.Choice sets a tuple attribute; a lazy read-only property stands in for it on purpose)
    def choices(self) -> Sequence[str]:  # type: ignore[override]
        if self._loaded is None:
            self._loaded = list(self._names())
        return self._loaded

    @property
    def case_sensitive(self) -> bool:  # type: ignore[override]
        return True


class Renamed(click.Option):
    """An option whose earlier spellings (`old`) still work but are left out of --help and error messages."""

    def __init__(self, *args: Any, old: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.old = tuple(old)

    def _shown(self) -> list[str]:
        return [name for name in self.opts if name not in self.old]

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        opts, self.opts = self.opts, self._shown()
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = opts

    def get_error_hint(self, ctx: click.Context | None) -> str:
        return " / ".join(f"'{name}'" for name in self._shown())


def wrote(path: str | os.PathLike) -> str:
    """"wrote PATH (train 14, valid 4, test 30 trajectories)": a data command says how it split the data."""
    from stochlift.data.trajectories import TrajectoryFile

    with TrajectoryFile(path) as file:
        order = sorted(file.splits, key=lambda s: ("train", "valid", "test", s).index(s))
        return f"wrote {path} ({', '.join(f'{split} {file.splits[split]}' for split in order)} trajectories)"


def positive(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be a positive integer, got {value}")
    return value


@click.group()
def data() -> None:
    """Generate data sets (HDF5 trajectory files with train/valid/test splits), or export them to The Well."""


@data.command("wave")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HDF5 file to write.")
@click.option("--preset", type=click.Choice(["quick", "paper"]), default="quick", show_default=True,
              help="quick: 32x32, 416 trajectories (CPU minutes); paper: 64x64, M=1024 training trajectories.")
@click.option("--trajectories", type=int, callback=positive,
              help="Total trajectories, split in the preset's proportions (quick: 128/32/256 of 416 train/valid/test; "
                   "48 give 14/4/30).")
@click.option("--frames", type=int, callback=positive, help="Stored frames T per trajectory.")
@click.option("--size", type=int, callback=positive, help="Grid size S (S x S).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_wave(out: str, preset: str, trajectories: int | None, frames: int | None, size: int | None, seed: int,
              quiet: bool) -> None:
    """The Wave problem: u_tt = c(x)^2 Laplace u in a random medium c, from a fixed Gaussian bump."""
    from stochlift.data.datasets import make_wave_dataset

    path = make_wave_dataset(out, preset=preset, trajectories=trajectories, frames=frames, size=size, seed=seed,
                             progress=not quiet)
    click.echo(wrote(path))


@data.command("flow")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HDF5 file to write.")
@click.option("--preset", type=click.Choice(["quick", "paper"]), default="quick", show_default=True,
              help="quick: 32x32 cells, 352 trajectories (about a minute on 2 cores); paper: 100x100 cells "
                   "stored at 96x96, M=1000 training trajectories (about an hour on 2 cores).")
@click.option("--trajectories", type=int, callback=positive, help="Total trajectories (split like the preset).")
@click.option("--frames", type=int, callback=positive, help="Stored frames T per trajectory (t = 0 included).")
@click.option("--size", type=int, callback=positive,
              help="Stored frame size S (S x S); quick simulates S x S cells, paper resamples its 100 x 100.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--workers", type=int, callback=positive, help="Worker processes.  [default: all cores]")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_flow(out: str, preset: str, trajectories: int | None, frames: int | None, size: int | None, seed: int,
              workers: int | None, quiet: bool) -> None:
    """The Flow problem: water floods oil through a random porous medium, injector to producer corner.

    Interrupted runs continue where they stopped: finished trajectories are kept in OUT.parts/.
    """
    from stochlift.data.flow_datasets import make_flow_dataset

    path = make_flow_dataset(out, preset=preset, trajectories=trajectories, frames=frames, size=size, seed=seed,
                             workers=workers, progress=not quiet)
    click.echo(wrote(path))


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
@click.option("--stride", type=int, callback=positive, help="Keep every K-th frame.  [default: 1]")
@click.option("--clip-length", type=int, callback=positive, help="Frames per clip after the stride.  [default: 16]")
@click.option("--clips", type=click.Choice(["all", "first"]), default="all", show_default=True,
              help="all: consecutive non-overlapping clips of each video; first: one clip per video.")
@click.option("--channels", type=click.Choice(["rgb", "gray"]), default="rgb", show_default=True)
@click.option("--split-fractions", "--split", "split", cls=Renamed, old=["--split"], callback=_floats(3),
              metavar="TRAIN,VALID,TEST", help="Shares of the videos per split (normalised to sum 1, so counts work "
                                               "too).  [default: 0.8,0.1,0.1]")
@click.option("--split-by", type=click.Choice(["random", "folder"]),
              help="random: videos drawn with --seed; folder: top folders named train/val/test.  [default: random]")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the random split.")
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
    common: dict[str, Any] = dict(clips=clips, channels=channels, seed=seed, skip_short=skip_short, fps=fps,
                                  progress=not quiet)
    if name is not None:
        common["name"] = name
    importer = import_clevrer if preset == "clevrer" else import_video_folder
    path = importer(src, out, **options, **common)
    click.echo(wrote(path))


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",")]


@data.command("import")
@click.argument("src", required=False, type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Trajectory file (HDF5) to write.")
@click.option("--layout", metavar="AXES",
              help="The array's axes in order, e.g. N,T,D (vectors), N,T,X or N,T,C,X (1-D fields), N,T,H,W, "
                   "N,T,H,W,C or N,T,C,H,W (2-D fields): N trajectories, T time, C or D fields, X / X,Y / H,W space. "
                   "The Well's files name their own.")
@click.option("--array", help=".npz: the array to import (needed when the archive holds several).")
@click.option("--dataset", metavar="PATH/IN/FILE", help="HDF5: the dataset to import (needed when there are several).")
@click.option("--split-fractions", "--split", "split", cls=Renamed, old=["--split"], callback=_floats(3),
              metavar="TRAIN,VALID,TEST",
              help="Fractions of SRC's trajectories per split (summing to 1), drawn by a shuffle with --seed.  "
                   "[default: 0.8,0.1,0.1; a Well data set root keeps its own splits]")
@click.option("--train", "train_file", type=click.Path(), help="A file to import as the train split (instead of SRC).")
@click.option("--valid", "valid_file", type=click.Path(), help="A file to import as the valid split.")
@click.option("--test", "test_file", type=click.Path(), help="A file to import as the test split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split shuffle.")
@click.option("--fields", metavar="A,B,...",
              help="Field names, one per field (C or D axis).  [default: u, or u0,u1,...; The Well: its own]")
@click.option("--periodic", metavar="AXES", help="Periodic spatial axes: x, y (or the layout's X/Y/H/W), or all.")
@click.option("--wall", metavar="AXES",
              help="Wall spatial axes.  [default: every axis not --periodic; The Well: its own]")
@click.option("--time", metavar="SPEC", help="Frame times: a .npy of T values, START:STOP (evenly spaced, both ends "
                                             "included) or dt=STEP.  [default: 0, 1, 2, ...; The Well: its own]")
@click.option("--name", help="Data set name.  [default: SRC's name]")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_import(src: str | None, out: str, layout: str | None, array: str | None, dataset: str | None,
                split: tuple[float, ...] | None, train_file: str | None, valid_file: str | None, test_file: str | None,
                seed: int, fields: str | None, periodic: str | None, wall: str | None, time: str | None,
                name: str | None, quiet: bool) -> None:
    """Import your own trajectories: a .npy, .npz or HDF5 array, or The Well's files or folder.

    Examples: `stochlift data import paths.npy --layout N,T,D --out sde.h5` (SDE paths [N, T, D]);
    `stochlift data import kpz.npz --array h --layout N,T,X --periodic x --out kpz.h5`;
    `stochlift data import --train a.h5 --test b.h5 --dataset u --layout N,T,H,W --out f.h5`.
    """
    from stochlift.data.importer import import_trajectories

    files = {k: v for k, v in (("train", train_file), ("valid", valid_file), ("test", test_file)) if v is not None}
    path = import_trajectories(out, src, split_files=files or None, layout=layout, array=array, dataset=dataset,
                               fractions=split, seed=seed, fields=_names(fields), periodic=_names(periodic) or (),
                               wall=_names(wall) or (), time=time, name=name, progress=not quiet)
    click.echo(wrote(path))


@data.command("bair")
@click.argument("src", type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HDF5 file to write.")
@click.option("--camera", type=click.Choice(["image_aux1", "image_main"]), default="image_aux1", show_default=True,
              help="Which of the two cameras to import.")
@click.option("--frames", type=int, default=30, show_default=True, callback=positive,
              help="Keep the first N of the 30 frames.")
@click.option("--valid", type=int, default=0, show_default=True, help="Hold out the last N training videos as valid.")
@click.option("--no-verify", is_flag=True, help="Skip the TFRecord CRC checks.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_bair(src: str, out: str, camera: str, frames: int, valid: int, no_verify: bool, quiet: bool) -> None:
    """BAIR robot pushing from the original softmotion30_44k tfrecords (SRC holds softmotion30_44k/ or
    train/ and test/); keeps the official train/test split. No TensorFlow needed."""
    from stochlift.data.bair import import_bair

    path = import_bair(src, out, camera=camera, frames=frames, valid=valid, verify=not no_verify, progress=not quiet)
    click.echo(wrote(path))


@data.command("digits")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HDF5 file to write.")
@click.option("--trajectories", type=int, callback=positive,
              help="Total videos, split like the default 1024/64/256 (train/valid/test).")
@click.option("--frames", type=int, default=20, show_default=True, callback=positive, help="Frames per video.")
@click.option("--size", type=int, default=64, show_default=True, callback=positive, help="Canvas S x S.")
@click.option("--digit-size", type=int, callback=positive, help="Digit side in pixels [default: S / 2].")
@click.option("--digits", type=int, default=2, show_default=True, callback=positive, help="Digits per video.")
@click.option("--max-speed", type=int, default=4, show_default=True, callback=positive,
              help="Velocity components are integers in -K..K px/frame.")
@click.option("--mnist", type=click.Path(),
              help="Local MNIST idx file or folder (train-/t10k-images-idx3-ubyte[.gz]) "
                   "[default: scikit-learn's digits].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_moving_digits(out: str, trajectories: int | None, frames: int, size: int, digit_size: int | None,
                       digits: int, max_speed: int, mnist: str | None, seed: int, quiet: bool) -> None:
    """Stochastic Moving Digits: the Stochastic Moving MNIST rules, offline (gray, uint8); the data of
    `stochlift demo --problem digits` and configs/digits-quick.yaml."""
    from stochlift.data.synthetic_video import make_moving_digits

    path = make_moving_digits(out, trajectories=trajectories, frames=frames, size=size, digit_size=digit_size,
                              digits=digits, max_speed=max_speed, seed=seed, mnist=mnist, progress=not quiet)
    click.echo(wrote(path))


_old_digits = copy.copy(data.commands["digits"])  # its name before the demo and the preset's: digits
_old_digits.hidden = True
data.add_command(_old_digits, "moving-digits")


@data.command("balls")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HDF5 file to write.")
@click.option("--trajectories", type=int, callback=positive,
              help="Total videos, split like the default 1024/64/256 (train/valid/test).")
@click.option("--frames", type=int, default=32, show_default=True, callback=positive, help="Frames per video.")
@click.option("--size", type=int, default=32, show_default=True, callback=positive, help="Frame S x S.")
@click.option("--max-balls", type=int, default=3, show_default=True, callback=positive,
              help="Most balls present at once (the most a model sees in training).")
@click.option("--entry-rate", type=float, default=0.1, show_default=True, help="Mean entries per frame.")
@click.option("--radius", type=float, default=0.12, show_default=True, help="Ball radius, fraction of S.")
@click.option("--warmup", type=int, default=16, show_default=True, help="Frames simulated before the first one.")
@click.option("--flat", is_flag=True, help="Flat discs instead of shaded balls.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_balls(out: str, trajectories: int | None, frames: int, size: int, max_balls: int, entry_rate: float,
               radius: float, warmup: int, flat: bool, seed: int, quiet: bool) -> None:
    """A CLEVRER-like RGB scene: coloured balls enter from off-frame, collide elastically and leave."""
    from stochlift.data.synthetic_video import make_bouncing_balls

    path = make_bouncing_balls(out, trajectories=trajectories, frames=frames, size=size, max_balls=max_balls,
                               entry_rate=entry_rate, radius=radius, warmup=warmup, shading=not flat, seed=seed,
                               progress=not quiet)
    click.echo(wrote(path))


@data.command("export-well")
@click.argument("src", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Data set folder to create: OUT/data/{train,valid,test}/NAME.hdf5 and OUT/stats.yaml.")
@click.option("--split-map", "--split", "split_map", cls=Renamed, old=["--split"], multiple=True, metavar="OURS=WELL",
              help="Map a split of SRC to The Well's train/valid/test (repeatable), e.g. generated=test. "
                   "train, valid/val/validation and test map by name.")
@click.option("--name", help="File name stem [default: the data set's name].")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists (swapped in only when complete).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_export_well(src: str, out: str, split_map: tuple[str, ...], name: str | None, overwrite: bool,
                     quiet: bool) -> None:
    """Write trajectory file SRC in The Well's layout (PolymathicAI), for The Well's tools and loaders.

    Our fields become scalar t0_fields [n_traj, T, x, y] (x = our frame's H axis, y = W), in physical
    units; stats.yaml holds mean, std, mean_delta and std_delta per field of the train split. Training
    on OUT (`stochlift train --data OUT/data/train`) sees exactly SRC's frames, normalised per field.
    """
    from stochlift.data.well_export import export_well

    mapping = {}
    for item in split_map:
        ours, sep, theirs = item.partition("=")
        if not sep or not ours or not theirs:
            raise click.BadParameter(f"expected OURS=WELL, e.g. generated=test, got {item!r}",
                                     param_hint="--split-map")
        mapping[ours] = theirs
    path = export_well(src, out, splits=mapping, name=name, overwrite=overwrite, progress=not quiet)
    click.echo(f"wrote {path}")
