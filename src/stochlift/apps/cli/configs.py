"""`stochlift config ...`: list the presets and the experiments' settings, print a resolved config (thin layers
over stochlift.config.list_presets and list_experiments, and stochlift.lifting.preview.show_config)."""

from __future__ import annotations

import shutil

import click


@click.group("config")
def config_group() -> None:
    """Inspect configs: the presets in configs/, the experiments' settings, a preset resolved with overrides."""


@config_group.command("list")
def config_list() -> None:
    """Every preset with its one-line description, and every experiment with its scales."""
    from stochlift.config import CONFIG_DIR, list_experiments, list_presets

    presets = list_presets()
    click.echo(f"Presets ({CONFIG_DIR.resolve()}; `stochlift train --config NAME`, `stochlift config show NAME`):")
    _table([(name, description) for name, description in presets.items()])
    click.echo("")
    click.echo("Experiments (configs/experiments/; `stochlift experiment NAME --scale SCALE`, "
               "`stochlift config show NAME`):")
    _table([(name, f"[{', '.join(scales)}] {description}") for name, (scales, description) in
            list_experiments().items()])


def _table(rows: list[tuple[str, str]]) -> None:
    """Names in a column, descriptions wrapped beside them."""
    width = max(len(name) for name, _ in rows) + 4
    columns = max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))
    for name, text in rows:
        wrapped = click.wrap_text(text, columns, initial_indent="  " + name.ljust(width - 2),
                                  subsequent_indent=" " * width)
        click.echo(wrapped)


@config_group.command("show")
@click.argument("name", metavar="PRESET")
@click.option("--data", "data_path", type=click.Path(),
              help="Fill the values training takes from the data (frame shape, residual scale, periodic padding, "
                   "...) from this file now, as a dry run: the data are read and the model is built, nothing is "
                   "trained.")
@click.argument("overrides", nargs=-1, metavar="[SECTION.KEY=VALUE]...")
def config_show(name: str, data_path: str | None, overrides: tuple[str, ...]) -> None:
    """Print PRESET (a name from `stochlift config list`, or a YAML file) with the overrides applied, as the YAML
    a run stores in its config.yaml (and `--config` reads back); each value training fills from the data is
    marked. PRESET may also name an experiment: its settings file is printed.

    Example: `stochlift config show wave-quick train.steps=500 --data wave.h5`.
    """
    from stochlift.config import CONFIG_DIR, EXPERIMENT_DIR

    experiment = EXPERIMENT_DIR / f"{name}.yaml"
    if experiment.is_file() and not (CONFIG_DIR / f"{name}.yaml").is_file():
        if overrides or data_path:
            raise click.UsageError(f"{name} is an experiment: its settings take no overrides or --data")
        click.echo(experiment.read_text(), nl=False)
        return
    from stochlift.lifting.preview import show_config

    click.echo(show_config(name, overrides, data=data_path), nl=False)
