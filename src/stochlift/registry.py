"""Named registries of plug-ins (problems, backbones, generator methods, experiments), PDEArena-style.

An entry is an object, or a "module:attribute" string imported on first use. Lazy entries let a core
registry name a plug-in that lives in a higher layer (the ARDM baseline, say) without importing it, and
keep `import stochlift` cheap. A plug-in from outside the package registers itself with one line:

    from stochlift.problems import PROBLEMS
    PROBLEMS.register("my-problem", MyProblem)
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from stochlift.errors import StochliftError

T = TypeVar("T")


class Registry(Generic[T]):
    """name -> plug-in; `kind` names what is registered in error messages ("problem", "backbone", ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, entry: T | str, *, replace: bool = False) -> T | str:
        """Add `entry` (an object or "module:attribute") under `name`; a taken name needs `replace`."""
        if not isinstance(name, str) or not name:
            raise StochliftError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if name in self._entries and not replace:
            raise StochliftError(f"a {self.kind} named {name!r} is registered already (pass replace=True)")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The plug-in registered as `name` (imported now if it was registered lazily)."""
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), list(self._entries), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise StochliftError(f"unknown {self.kind} {name!r}{hint}; choose from {self.names()}")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = getattr(importlib.import_module(module), attribute)
            self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        """The registered names, in the order they were registered."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
