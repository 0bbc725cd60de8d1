"""One line per registered method / benchmark, with its paper and defaults (``clbench list``)."""

from __future__ import annotations

import dataclasses

from clbench.registry import BENCHMARKS, METHODS


def _fmt(values: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def describe_methods() -> list[str]:
    lines = []
    for name, cls in METHODS.items():
        defaults = dataclasses.asdict(cls.Config())
        lines.append(f"{name:<12} {cls.paper}" + (f" | defaults: {_fmt(defaults)}" if defaults else ""))
    return lines


def describe_benchmarks() -> list[str]:
    lines = []
    for name, bench in BENCHMARKS.items():
        model = bench.defaults.get("model", {})
        train = bench.defaults.get("train", {})
        keys = ("iterations", "epochs", "batch_size", "lr")
        sched = {k: train[k] for k in keys if train.get(k) is not None}
        model_txt = f"{model.get('name', 'ViT-B-16')}/{model.get('pretrained', 'openai')}"
        lines.append(f"{name:<20} {bench.summary} | model {model_txt}" + (f", {_fmt(sched)}" if sched else ""))
    return lines
