"""Executor options (``--slurm.partition``, ``--ray.address``, ...): their names and types, and how the layers
merge — user config file (``~/.config/clbench/executors.yaml``) < suite ``executor:`` section < command line.
Shared by ``clbench sweep`` and ``clbench synth --executor``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from clbench.errors import UserError

#: Executor options: name -> type.
OPTIONS: dict[str, dict[str, type]] = {
    "slurm": {"partition": str, "gpus_per_node": int, "cpus_per_task": int, "mem_gb": float, "timeout_min": int,
              "account": str, "qos": str, "constraint": str, "setup": list},
    "ray": {"address": str, "num_cpus": float, "num_gpus": float, "max_retries": int},
    "local": {},
}


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "clbench" / "executors.yaml"


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """``--<executor>.<key>`` flags for every option (read back by :func:`cli_options`)."""
    for executor, keys in OPTIONS.items():
        for key, tp in keys.items():
            kwargs: dict[str, Any] = ({"action": "append"} if tp is list else {"type": tp})
            parser.add_argument(f"--{executor}.{key}", dest=f"opt_{executor}__{key}", default=None,
                                metavar=key.upper(), help=f"{executor} executor: {key}" + (" (repeatable)" if tp is list
                                                                                            else ""), **kwargs)


def cli_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """executor -> {key: value} of the ``--<executor>.<key>`` flags given."""
    options: dict[str, dict[str, Any]] = {}
    for dest, value in vars(args).items():
        if dest.startswith("opt_") and value is not None:
            executor, key = dest[4:].split("__", 1)
            options.setdefault(executor, {})[key] = value
    return options


def merge_options(executor: str, cli: dict[str, Any], middle: tuple[str, Any] | None = None) -> dict[str, Any]:
    """User config file < ``middle`` (origin, mapping: a suite's section) < command line; unknown keys are
    one-line errors."""
    from clbench.config import load_yaml_file

    layers: list[tuple[str, Any]] = []
    path = user_config_path()
    if path.is_file():
        layers.append((str(path), (load_yaml_file(path).get(executor) or {})))
    if middle is not None:
        layers.append(middle)
    layers.append(("the command line", {k: v for k, v in cli.items() if v is not None}))
    valid = OPTIONS[executor]
    merged: dict[str, Any] = {}
    for origin, layer in layers:
        if not isinstance(layer, dict):
            raise UserError(f"{origin}: the {executor} section must be a mapping")
        for key, value in layer.items():
            if key not in valid:
                raise UserError(f"unknown {executor} option {key!r} in {origin}; valid: {', '.join(valid) or '(none)'}")
            merged[key] = _coerce_option(executor, key, value, valid[key], origin)
    return merged


def _coerce_option(executor: str, key: str, value: Any, tp: type, origin: str) -> Any:
    if tp is list:
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    try:
        return tp(value)
    except (TypeError, ValueError):
        raise UserError(f"{executor}.{key} in {origin} expects {tp.__name__}, got {value!r}") from None
