"""Optional dependencies: import one where it is used, or say in one line which extra installs it.

The core install leaves out what only some uses need (pyproject.toml's extras): an ffmpeg binary for mp4
and webm (imageio-ffmpeg, 165 MB), scikit-learn's digits, selenium for browser screenshots.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from stochlift.errors import StochliftError

# module -> (its package on PyPI, the extra of stochlift that installs it)
EXTRAS = {
    "imageio_ffmpeg": ("imageio-ffmpeg", "video"),
    "sklearn": ("scikit-learn", "video"),
    "selenium": ("selenium", "browser"),
}


def install_hint(module: str) -> str:
    """`pip install 'stochlift[extra]'` for an optional module (or one of its submodules)."""
    package, extra = EXTRAS[module.partition(".")[0]]
    return f"pip install 'stochlift[{extra}]' (or pip install {package})"


def require(module: str, purpose: str) -> ModuleType:
    """The optional `module`, imported; missing, a user error naming what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = EXTRAS[module.partition(".")[0]][0]
        raise StochliftError(f"{purpose} needs the Python package {package}: {install_hint(module)}") from None
