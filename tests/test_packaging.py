"""Packaging: the package imports without fcntl (Windows), its lock works across processes, optional
dependencies fail with one line naming the extra, and the files a release needs are there."""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT, cli_env
from stochlift.errors import StochliftError
from stochlift.optional import EXTRAS, require


def test_the_package_imports_without_fcntl(tmp_path: Path) -> None:
    """Windows has no fcntl: block it, then import the package and take a lock."""
    code = ("import sys; sys.modules['fcntl'] = None\n"
            "import stochlift, stochlift.io, stochlift.config, stochlift.apps.cli\n"
            f"with stochlift.io.exclusive({str(tmp_path / 'product')!r}):\n"
            "    print('locked', stochlift.__version__)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("locked"), done.stderr


def test_exclusive_makes_another_process_wait(tmp_path: Path) -> None:
    """A second process asking for the same product gets the lock only after the first released it."""
    from stochlift.io import exclusive

    product, log = tmp_path / "product", tmp_path / "log"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, pathlib\nfrom stochlift.io import exclusive\n"
         f"log = pathlib.Path({str(log)!r})\n"
         f"with exclusive({str(product)!r}):\n"
         "    log.write_text('held\\n'); sys.stdin.readline(); log.write_text('held\\nreleased\\n')\n"],
        stdin=subprocess.PIPE, text=True, env=cli_env())
    try:
        for _ in range(1200):
            if log.is_file():
                break
            time.sleep(0.05)
        assert log.read_text() == "held\n"
        holder.stdin.write("\n")
        holder.stdin.flush()
        with exclusive(product):  # waits for the holder
            assert log.read_text().endswith("released\n")
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


@pytest.mark.parametrize("module", sorted(EXTRAS))
def test_a_missing_optional_dependency_names_its_extra(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    package, extra = EXTRAS[module]
    with pytest.raises(StochliftError, match=rf"reading x needs the Python package {package}: pip install "
                                             rf"'stochlift\[{extra}\]'"):
        require(module, "reading x")


def test_video_import_without_ffmpeg_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        run_cli_inprocess) -> None:
    import importlib.util

    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "av" else real(name, *a))
    result = run_cli_inprocess("data", "import-video", tmp_path / "videos", "--out", tmp_path / "v.h5")
    assert result.returncode == 2 and len(result.stderr_lines) == 1
    assert ("reading .mp4 videos needs the Python package imageio-ffmpeg: pip install 'stochlift[video]'"
            in result.stderr)
    assert not (tmp_path / "v.h5").exists()


def test_release_files() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and "MIT License" in (ROOT / "LICENSE").read_text()
    assert (ROOT / "src" / "stochlift" / "py.typed").is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["stochlift"]
    assert f"## {project['version']}" in (ROOT / "CHANGELOG.md").read_text()
    core = " ".join(project["dependencies"])
    for heavy in ("imageio-ffmpeg", "scikit-learn", "selenium"):  # only in the extras that use them
        assert heavy not in core
    for needed in ("pillow", "tensorboard", "filelock"):
        assert needed in core
