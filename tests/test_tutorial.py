"""The tutorial notebook (docs/tutorial.ipynb) runs top to bottom as committed: every cell, no error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip(
    "nbformat", reason="the tutorial test needs nbformat, nbclient and ipykernel (test extra)"
)
nbclient = pytest.importorskip("nbclient")

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"


@pytest.mark.slow
def test_the_tutorial_runs_and_shows_what_it_says(tmp_path: Path) -> None:
    notebook = nbformat.read(TUTORIAL, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # committed clean
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for output in cell.outputs)
    assert "final loss" in text and "(32, 8, 1, 16, 16)" in text and "wct_relative" in text
    assert (tmp_path / "rollouts.png").stat().st_size > 1000 and (tmp_path / "run" / "checkpoint.safetensors").is_file()
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["n_generated"] == 32
