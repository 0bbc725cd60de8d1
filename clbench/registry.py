"""Name -> class registries for methods and benchmarks (Mammoth's ``@register_model`` pattern).

Built-ins register through the decorators when their module is imported; third-party plugins
register through the ``clbench.methods`` / ``clbench.benchmarks`` entry-point groups.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from clbench.errors import UserError

T = TypeVar("T")


class Registry:
    """A registry of named plugins with lazy discovery of built-ins and entry points."""

    def __init__(self, kind: str, builtin_package: str, entry_point_group: str) -> None:
        self.kind = kind
        self._builtin_package = builtin_package
        self._group = entry_point_group
        self._items: dict[str, Any] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            existing = self._items.get(name)
            if existing is not None and existing is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def discover(self) -> None:
        """Import every built-in module and load every entry point once."""
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self._builtin_package)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self._builtin_package}.{info.name}")
        for ep in entry_points(group=self._group):
            obj = ep.load()
            if ep.name not in self._items:
                self._items[ep.name] = obj

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._items)

    def get(self, name: str) -> Any:
        self.discover()
        if name not in self._items:
            raise UserError(unknown_name_message(self.kind, name, self.names()))
        return self._items[name]

    def items(self) -> list[tuple[str, Any]]:
        self.discover()
        return sorted(self._items.items())


def unknown_name_message(kind: str, name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}"


METHODS = Registry("method", "clbench.methods", "clbench.methods")
BENCHMARKS = Registry("benchmark", "clbench.benchmarks", "clbench.benchmarks")

register_method = METHODS.register
register_benchmark = BENCHMARKS.register
