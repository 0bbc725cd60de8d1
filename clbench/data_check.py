"""``clbench data check --benchmark X [--root R]``: verify a benchmark's dataset folder before a long run.

Lists every missing file or folder, grouped by dataset with how to obtain it; exit code 0 when all is present,
1 when something is missing, 2 on bad input (unknown benchmark or option).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from typing import Any

from clbench.errors import UserError


def register(subparsers: Any) -> None:
    """Add ``data check`` to the ``clbench`` command."""
    data = subparsers.add_parser("data", help="check benchmark datasets on disk")
    sub = data.add_subparsers(dest="data_command", required=True, parser_class=type(data))
    check = sub.add_parser("check", help="verify a benchmark's dataset folder and list what is missing")
    check.add_argument("--benchmark", required=True, help="a benchmark name (see clbench list benchmarks)")
    check.add_argument("--root", help="dataset root (default: $CLBENCH_DATA or ~/data/clbench)")
    check.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="another benchmark option (repeatable), e.g. size=64 or benchmark.class_map=my.yaml")
    check.set_defaults(func=main)


def benchmark_options(bench_def: Any, root: str | None, overrides: list[str]) -> Any:
    """The benchmark's options: dataclass defaults < its YAML ``benchmark`` section < ``--set`` < ``--root``."""
    import yaml

    from clbench.config import apply_overrides

    options = apply_overrides(bench_def.options(), "benchmark", bench_def.defaults.get("benchmark") or {})
    values: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects KEY=VALUE (e.g. size=64), got {item!r}")
        values[key.removeprefix("benchmark.")] = yaml.safe_load(raw) if raw else None
    if root is not None:
        values["root"] = root
    return apply_overrides(options, "benchmark", values)


def main(args: argparse.Namespace) -> int:
    from clbench.datasets.requirements import missing_data
    from clbench.registry import BENCHMARKS

    bench_def = BENCHMARKS.get(args.benchmark)
    overrides = list(getattr(args, "overrides", None) or [])
    options = benchmark_options(bench_def, getattr(args, "root", None), overrides)
    where = getattr(options, "root", None)
    missing = missing_data(options)
    if missing is None:
        print(f"{bench_def.name}: reads no dataset files; nothing to check")
        return 0
    if not missing:
        print(f"{bench_def.name}: all data present under {where}")
        return 0
    by_dataset: dict[str, list[Any]] = defaultdict(list)
    for item in missing:
        by_dataset[item.dataset].append(item)
    print(f"{bench_def.name}: {len(missing)} item(s) missing under {where} ({len(by_dataset)} dataset(s))")
    for dataset, items in by_dataset.items():
        hints = list(dict.fromkeys(m.hint for m in items))
        print(f"  {dataset}:")
        for m in items:
            note = "" if len(hints) == 1 else f"  ({m.hint})"
            print(f"    missing {m.path}{note}")
        if len(hints) == 1:
            print(f"    -> {hints[0]}")
    return 1
