"""Suites: a paper table as data — methods × benchmarks × seeds, with per-cell overrides.

A suite is a YAML file (shipped ones live in ``clbench/suites/``; a user's own file works the same way)::

    description: one line
    reproduces: which published table(s) the grid reproduces
    methods: [zeroshot, finetune, zscl]
    benchmarks: [mtil_order1, mtil_order2]
    seeds: [0, 1, 2]
    model: {name: ViT-B-16, pretrained: openai}          # optional; default: each benchmark's
    config: {train: {...}, methods: {zscl: {...}}}        # optional; a ``--config`` layer for every cell
    cells:                                                # optional per-cell overrides, applied in order
      - {method: zscl, benchmark: mtil_order2, config: {zscl: {image_weight: 5}}}
      - {method: icarl, benchmark: mtil_order2, exclude: true}
    executor: {slurm: {partition: gpu, timeout_min: 720}} # optional executor options

Every cell is resolved (exactly as ``clbench run`` would) when the suite is loaded, so any bad name or key is
reported, all at once and on one line, before a single job is submitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from clbench.config import (
    ResolvedConfig,
    check_generic_method_keys,
    check_sections,
    load_yaml_file,
)
from clbench.errors import UserError
from clbench.registry import BENCHMARKS, METHODS, unknown_name_message
from clbench.store import RunDir, config_hash

TOP_KEYS = ("description", "reproduces", "methods", "benchmarks", "seeds", "model", "config", "cells", "executor")
CELL_KEYS = ("method", "benchmark", "seed", "config", "exclude")


@dataclass(frozen=True)
class Cell:
    """One run of the grid: its resolved configuration and where the run store keeps it."""

    config: ResolvedConfig
    config_hash: str

    @property
    def benchmark(self) -> str:
        return self.config.benchmark

    @property
    def method(self) -> str:
        return self.config.method

    @property
    def seed(self) -> int:
        return self.config.seed

    def run_dir(self, out: Path) -> RunDir:
        return RunDir(RunDir.location(out, self.benchmark, self.method, self.seed, self.config_hash))


@dataclass
class Suite:
    name: str
    source: Path
    description: str
    reproduces: str
    methods: list[str]
    benchmarks: list[str]
    seeds: list[int]
    cells: list[Cell]
    executor: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0  # grid cells that resolved to an already-listed configuration


def shipped_dir() -> Path:
    return Path(str(resources.files("clbench") / "suites"))


def shipped_names() -> list[str]:
    return sorted(p.stem for p in shipped_dir().glob("*.yaml"))


def suite_path(name_or_path: str) -> Path:
    """A shipped suite's name, or the path of a user's suite file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists() or "/" in name_or_path:
        if not p.is_file():
            raise UserError(f"suite file {p} does not exist")
        return p
    shipped = shipped_dir() / f"{name_or_path}.yaml"
    if not shipped.is_file():
        raise UserError(unknown_name_message("suite", name_or_path, shipped_names())
                        + " (or give the path of a suite .yaml)")
    return shipped


def load_suite(name_or_path: str) -> Suite:
    """Read, validate and expand a suite; every problem is listed in one UserError."""
    path = suite_path(name_or_path)
    data = load_yaml_file(path)
    name = path.stem
    problems: list[str] = []
    for key in data:
        if key not in TOP_KEYS:
            problems.append(f"unknown key {key!r} (valid: {', '.join(TOP_KEYS)})")

    methods = _names(data, "methods", problems)
    benchmarks = _names(data, "benchmarks", problems)
    for m in methods:
        if m not in METHODS.names():
            problems.append(unknown_name_message("method", m, METHODS.names()))
    for b in benchmarks:
        if b not in BENCHMARKS.names():
            problems.append(unknown_name_message("benchmark", b, BENCHMARKS.names()))
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in seeds):
        problems.append(f"seeds must be a non-empty list of integers, got {seeds!r}")
        seeds = []
    model = data.get("model") or {}
    if not isinstance(model, dict) or set(model) - {"name", "pretrained"}:
        problems.append("model must be a mapping with keys name and/or pretrained")
        model = {}
    config = data.get("config") or {}
    if not isinstance(config, dict):
        problems.append("config must be a mapping of sections (benchmark, model, train, method, methods, <method>)")
        config = {}
    overrides = _cell_overrides(data.get("cells") or [], problems)
    executor = data.get("executor") or {}
    if not isinstance(executor, dict) or not all(isinstance(v, dict) for v in executor.values()):
        problems.append("executor must map an executor name to its options, e.g. {slurm: {partition: gpu}}")
        executor = {}
    known_methods = [m for m in methods if m in METHODS.names()]
    known_benchmarks = [b for b in benchmarks if b in BENCHMARKS.names()]
    if len(known_methods) == len(methods) and len(known_benchmarks) == len(benchmarks):
        for o in overrides:
            for key, kind, valid in (("method", "method", methods), ("benchmark", "benchmark", benchmarks),
                                     ("seed", "seed", seeds)):
                if key in o and o[key] not in valid:
                    problems.append(f"cells: {kind} {o[key]!r} is not in the suite's {kind}s")
    cells, duplicates = _expand(known_methods, known_benchmarks, seeds, model, config, overrides, problems)
    if problems:
        unique = list(dict.fromkeys(problems))
        raise UserError(f"suite {path}: {len(unique)} problem{'s' if len(unique) > 1 else ''}: " + "; ".join(unique))
    if not cells:
        raise UserError(f"suite {path}: the grid is empty (every cell is excluded)")
    return Suite(name=name, source=path, description=str(data.get("description", "")),
                 reproduces=str(data.get("reproduces", "")), methods=methods, benchmarks=benchmarks, seeds=seeds,
                 cells=cells, executor=executor, duplicates=duplicates)


def _names(data: dict[str, Any], key: str, problems: list[str]) -> list[str]:
    value = data.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        problems.append(f"{key} must be a non-empty list of names")
        return []
    return value


def _cell_overrides(raw: Any, problems: list[str]) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        problems.append("cells must be a list of {method, benchmark, seed, config | exclude} entries")
        return []
    out = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            problems.append(f"cells[{i}] must be a mapping")
            continue
        bad = [k for k in entry if k not in CELL_KEYS]
        if bad:
            problems.append(f"cells[{i}]: unknown key {bad[0]!r} (valid: {', '.join(CELL_KEYS)})")
            continue
        if "config" in entry and not isinstance(entry["config"], dict):
            problems.append(f"cells[{i}].config must be a mapping of sections")
            continue
        out.append(entry)
    return out


def _matches(entry: dict[str, Any], method: str, benchmark: str, seed: int) -> bool:
    return (entry.get("method", method) == method and entry.get("benchmark", benchmark) == benchmark
            and entry.get("seed", seed) == seed)


def _expand(methods: list[str], benchmarks: list[str], seeds: list[int], model: dict[str, Any],
            config: dict[str, Any], overrides: list[dict[str, Any]], problems: list[str]) -> tuple[list[Cell], int]:
    """Resolve every (benchmark, method, seed); cells with the same configuration hash are listed once."""
    from clbench.runner import resolve

    cells: dict[str, Cell] = {}
    duplicates = 0
    method_configs = {m: METHODS.get(m).Config for m in methods}
    for benchmark in benchmarks:
        for method in methods:
            for seed in seeds:
                chosen = [o for o in overrides if _matches(o, method, benchmark, seed)]
                if any(o.get("exclude") for o in chosen):
                    continue
                layers = [BENCHMARKS.get(benchmark).defaults]
                try:
                    for origin, layer in [("config", config)] + [(f"cells entry {o}", o.get("config") or {})
                                                                  for o in chosen]:
                        check_sections(layer, methods, f"the suite's {origin}")
                        layers.append(layer)
                    check_generic_method_keys(layers[1:], method_configs)
                    cfg = resolve(benchmark, method, seed, layers, model.get("name"), model.get("pretrained"))
                except UserError as exc:
                    problems.append(f"{benchmark}/{method}/seed {seed}: {exc}")
                    continue
                digest = config_hash(cfg.identity())
                if digest in cells:
                    duplicates += 1
                    continue
                cells[digest] = Cell(cfg, digest)
    return list(cells.values()), duplicates


def describe_suites() -> list[str]:
    """``clbench list suites``: name, grid size and the table each shipped suite reproduces."""
    import yaml

    lines = []
    for name in shipped_names():
        data = yaml.safe_load((shipped_dir() / f"{name}.yaml").read_text()) or {}
        n = len(data.get("methods", [])) * len(data.get("benchmarks", [])) * len(data.get("seeds", [0]))
        what = data.get("reproduces") or data.get("description", "")
        lines.append(f"{name:<14} {n:>4} runs ({len(data.get('methods', []))} methods × "
                     f"{', '.join(data.get('benchmarks', []))} × {len(data.get('seeds', [0]))} seeds) | {what}")
    return lines
