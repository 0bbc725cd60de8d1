"""What a benchmark needs on disk, and the one-line error when something is absent.

A benchmark's options dataclass exposes ``missing_data() -> list[Missing]``; ``clbench data check`` lists every
item, while :func:`require` (called by ``build`` before any heavy work) turns the first one into a
:class:`~clbench.errors.MissingResourceError` naming the exact path and how to obtain it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clbench.errors import MissingResourceError


@dataclass(frozen=True)
class Missing:
    """One absent (or malformed) dataset item."""

    dataset: str  # the dataset it belongs to, e.g. "CIFAR100"
    path: Path  # exactly where clbench looked
    hint: str  # how to obtain it / what to put there (one sentence)
    downloadable: bool = False  # ``benchmark.download=true`` would fetch it (torchvision)


def absent(dataset: str, paths: Iterable[Path], hint: str, downloadable: bool = False) -> list[Missing]:
    """A :class:`Missing` for each path that does not exist (files and folders alike)."""
    return [Missing(dataset, p, hint, downloadable) for p in paths if not p.exists()]


def missing_data(options: Any) -> list[Missing] | None:
    """What ``options`` lacks on disk, or None when its benchmark reads nothing from disk."""
    check = getattr(options, "missing_data", None)
    return None if check is None else list(check())


def require(benchmark: str, missing: list[Missing], download: bool = False) -> None:
    """Raise for the first item that blocks a run (downloadable items pass when ``download`` is on)."""
    blocking = [m for m in missing if not (download and m.downloadable)]
    if not blocking:
        return
    first = blocking[0]
    more = len(blocking) - 1
    tail = ""
    if more:
        tail = f" ({more} more missing; `clbench data check --benchmark {benchmark} --root ROOT` lists them)"
    raise MissingResourceError(f"{benchmark}: {first.dataset} not found at {first.path}; {first.hint}{tail}")


def preflight(benchmark: str, options: Any) -> None:
    """Fail fast (before loading a model) when the data of ``benchmark`` is absent."""
    missing = missing_data(options)
    if missing:
        require(benchmark, missing, bool(getattr(options, "download", False)))
