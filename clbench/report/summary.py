"""Metric values per run and their mean ± std over seeds.

Per-run numbers come from :mod:`clbench.metrics` only, so the report can never disagree with the engine's
end-of-run summary. A value that cannot be computed yet (a row not evaluated) is NaN here and "pending" in
every table: it is never shown as 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from clbench import metrics
from clbench.report.collect import Run

#: Column key of a protocol-level metric (the "Average" column of per-dataset tables).
OVERALL = ""

#: Metrics where a smaller number is better; every other metric is "higher is better".
LOWER_IS_BETTER = frozenset({"forgetting"})

#: Standard deviation convention of every ± in the report: the sample std over seeds.
STD_DDOF = 1


@dataclass(frozen=True)
class Stat:
    """Mean ± sample std (ddof=1) of one value over the seeds that have it; ``n`` = 0 means pending."""

    mean: float | None
    std: float | None
    n: int

    @property
    def pending(self) -> bool:
        return self.n == 0


def stat(values: Iterable[float]) -> Stat:
    """Aggregate finite values; NaN (not evaluated yet) is left out, so partial seeds still count."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return Stat(None, None, 0)
    std = float(np.std(xs, ddof=STD_DDOF)) if len(xs) > 1 else None
    return Stat(float(np.mean(xs)), std, len(xs))


def run_values(run: Run) -> dict[tuple[str, str], float]:
    """Every number a table may show for one run, keyed by (metric, column); column ``OVERALL`` = protocol metric.

    Task-incremental protocols also get the per-dataset Transfer/Avg/Last columns of ZSCL's Table 3,
    keyed by task name. Unevaluated values are NaN.
    """
    counts = run.counts if run.counts and len(run.counts) == len(run.tasks) else None
    overall = metrics.compute(run.protocol, run.matrix, counts, run.auc)
    out: dict[tuple[str, str], float] = {(name, OVERALL): value for name, value in overall.items()}
    if run.protocol in metrics.MTIL_LIKE:
        columns = {
            "transfer": metrics.transfer_per_task(run.matrix),
            "avg": metrics.average_per_task(run.matrix),
            "last": metrics.last_per_task(run.matrix),
        }
        for name, values in columns.items():
            for task, value in zip(run.tasks, values, strict=True):
                out[(name, task)] = float(value)
    return out


def aggregate(runs: Sequence[Run]) -> dict[tuple[str, str], Stat]:
    """Mean ± std over the runs (seeds) of one (benchmark, method) for every (metric, column)."""
    per_run = [run_values(r) for r in runs]
    keys = {k for values in per_run for k in values}
    return {k: stat(values.get(k, float("nan")) for values in per_run) for k in keys}


def seen_curve(run: Run) -> np.ndarray:
    """Class-incremental accuracy on all seen classes after each step (NaN once rows are pending)."""
    counts = run.counts if run.counts and len(run.counts) == len(run.tasks) else None
    return metrics.seen_accuracy(run.matrix, counts)


def zero_shot_level(runs: Sequence[Run]) -> np.ndarray | None:
    """Per-task accuracy before any training: the stored ``initial`` row, else a ``zeroshot`` run's first row."""
    initial = [r.initial for r in runs if r.initial is not None and len(r.initial) == len(r.tasks)]
    if initial:
        return np.nanmean(np.stack(initial), axis=0)
    zs = [r.matrix[0] for r in runs if r.method == "zeroshot" and np.isfinite(r.matrix[0]).any()]
    return np.nanmean(np.stack(zs), axis=0) if zs else None
