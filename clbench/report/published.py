"""Literature numbers for ``--published``: YAML data files, one per benchmark family.

Each file (``results/published/*.yaml``) holds ``rows``; a row names the clbench method and benchmark it
corresponds to, its metric ``values`` (protocol metric names: transfer/avg/last, acc/auc/bwt), optional
``per_task`` columns (lists in the order of ``per_task_columns[benchmark]``), a short ``source``, the full
``citation`` and a ``quality`` mark (code / paper / secondary). The numbers stay data, not code, so a new
paper is a new row and a review of a number is a diff of one line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clbench.errors import UserError

#: Quality marks, most trustworthy first; Δ is taken against the best-marked row of a method.
QUALITY = ("code", "paper", "secondary")

_ROW_KEYS = {"method", "label", "benchmark", "source", "quality", "citation", "values", "per_task", "note"}

#: Dataset-name spellings that mean the same MTIL/medical dataset (after lower-casing and dropping
#: punctuation), so published per-dataset columns line up with whatever names a benchmark gives its tasks.
_TASK_ALIASES = {
    "fgvcaircraft": "aircraft", "stanfordcars": "cars", "food101": "food", "oxfordpets": "oxfordpet",
    "oxfordiiitpet": "oxfordpet", "pets": "oxfordpet", "flowers102": "flowers", "oxfordflowers": "flowers",
    "oxfordflowers102": "flowers", "sun": "sun397", "caltech": "caltech101", "cifar": "cifar100",
}


def task_key(name: str) -> str:
    """Canonical form of a dataset name, for matching published columns to a benchmark's tasks."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return _TASK_ALIASES.get(key, key)


@dataclass(frozen=True)
class PublishedRow:
    """One method's numbers on one benchmark from one source."""

    method: str
    benchmark: str
    values: dict[str, float | None]
    source: str
    citation: str
    quality: str
    label: str
    per_task: dict[str, dict[str, float | None]] = field(default_factory=dict)  # metric -> task key -> value
    note: str | None = None
    file: str = ""

    def value(self, metric: str, task: str | None = None) -> float | None:
        """The published number for a metric (``task`` = a dataset column, None = the overall number)."""
        if task is None:
            return self.values.get(metric)
        return self.per_task.get(metric, {}).get(task_key(task))


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{where}: {value!r} is not a number; write a number or null")
    return float(value)


def _parse_row(raw: Any, columns: dict[str, list[str]], where: str) -> PublishedRow:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: a row must be a mapping with method, benchmark, values, source, quality")
    unknown = sorted(set(raw) - _ROW_KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(_ROW_KEYS))}")
    missing = [k for k in ("method", "benchmark", "values", "source", "quality", "citation") if k not in raw]
    if missing:
        raise UserError(f"{where}: missing {', '.join(missing)}")
    if raw["quality"] not in QUALITY:
        raise UserError(f"{where}: quality {raw['quality']!r} is not one of {', '.join(QUALITY)}")
    bench = str(raw["benchmark"])
    values = {str(k): _number(v, f"{where} {k}") for k, v in dict(raw["values"]).items()}
    per_task: dict[str, dict[str, float | None]] = {}
    for metric, seq in dict(raw.get("per_task") or {}).items():
        names = columns.get(bench)
        if names is None or len(names) != len(seq):
            raise UserError(f"{where}: per_task.{metric} needs per_task_columns[{bench}] of the same length")
        per_task[str(metric)] = {task_key(n): _number(v, f"{where} {metric}[{n}]") for n, v in zip(names, seq,
                                                                                                   strict=True)}
    return PublishedRow(
        method=str(raw["method"]), benchmark=bench, values=values, source=str(raw["source"]),
        citation=str(raw["citation"]), quality=str(raw["quality"]), label=str(raw.get("label", raw["method"])),
        per_task=per_task, note=raw.get("note"), file=where.split(" ")[0],
    )


def load_published_file(path: Path) -> list[PublishedRow]:
    """All rows of one data file; a malformed file is a :class:`UserError` naming the file and row."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise UserError(f"{path}: expected a mapping with a 'rows' list; see results/published/README.md")
    columns = {str(k): [str(n) for n in v] for k, v in dict(data.get("per_task_columns") or {}).items()}
    return [_parse_row(raw, columns, f"{path.name} row {i + 1}") for i, raw in enumerate(data["rows"])]


def default_dirs(results_root: Path) -> list[Path]:
    """Where data files are looked for: ``<RESULTS_DIR>/published``, then the source tree's copy."""
    bundled = Path(__file__).resolve().parents[2] / "results" / "published"
    dirs = [Path(results_root) / "published", bundled]
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def load_published(dirs: Sequence[Path], benchmarks: Iterable[str] | None = None,
                   methods: Iterable[str] | None = None) -> list[PublishedRow]:
    """Rows from the first folder holding data files, filtered to the benchmarks and methods asked for."""
    files: list[Path] = []
    for d in dirs:
        files = sorted(Path(d).glob("*.yaml"))
        if files:
            break
    if not files:
        looked = ", ".join(str(d) for d in dirs) or "results/published"
        raise UserError(f"--published: no data files (*.yaml) found in {looked}; "
                        "restore results/published/ from the repository")
    rows = [row for f in files for row in load_published_file(f)]
    want_b = set(benchmarks) if benchmarks is not None else None
    want_m = set(methods) if methods is not None else None
    return [r for r in rows
            if (want_b is None or r.benchmark in want_b) and (want_m is None or r.method in want_m)]


def reference_row(rows: Iterable[PublishedRow], benchmark: str, method: str) -> PublishedRow | None:
    """The row Δ is taken against: same benchmark and method, best quality mark first."""
    candidates = [r for r in rows if r.benchmark == benchmark and r.method == method]
    return min(candidates, key=lambda r: QUALITY.index(r.quality)) if candidates else None
