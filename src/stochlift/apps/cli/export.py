"""`stochlift export`: trajectories as a video or a still (stochlift.apps.export.export_trajectories)."""

from __future__ import annotations

import click

from stochlift.apps.cli.data import positive


@click.command()
@click.argument("samples", type=click.Path(dir_okay=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="File to write: .mp4 (video; needs imageio-ffmpeg, the 'video' extra), .gif or .png (a still grid).")
@click.option("--reference", type=click.Path(),
              help="True trajectories to show above the samples (our file or The Well's), e.g. the data set the "
                   "samples started from.")
@click.option("--trajectories", type=int, default=4, show_default=True, callback=positive,
              help="How many trajectories side by side.")
@click.option("--split", help="Split of SAMPLES (default: its only one).")
@click.option("--reference-split", help="Split of --reference (default: test, or its only one).")
@click.option("--field", help="Field to draw of a file with several (default: the first; video shows its colours).")
@click.option("--fps", type=float, default=8.0, show_default=True, help="Frames per second of a video.")
def export(samples: str, out: str, reference: str | None, trajectories: int, split: str | None,
           reference_split: str | None, field: str | None, fps: float) -> None:
    """Write a few trajectories of SAMPLES as a video (.mp4, .gif) or a still grid (.png).

    2-D fields and video play frame by frame; 1-D fields show as space-time images (a video fills them in);
    vectors show each variable over time (.png only). With --reference, its trajectories sit above the samples.
    """
    from stochlift.apps.export import export_trajectories

    path = export_trajectories(samples, out, reference=reference, trajectories=trajectories, split=split,
                               reference_split=reference_split, field=field, fps=fps)
    click.echo(f"wrote {path}")
