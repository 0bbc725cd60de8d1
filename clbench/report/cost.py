"""The cost table: where each method's time goes, from the ``cost`` block of ``run.json`` (``clbench.cost``).

One row per (benchmark, method): seconds of generation / training / evaluation, images/s of training and
evaluation, peak host and GPU memory, mean ± std over the seeds that recorded a cost; then the parameter counts
(total / trainable / added) the engine records in ``run.json``. Runs written before
cost accounting show blank cells; the table is left out when no run has a cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from clbench.report.collect import ResultSet, Run
from clbench.report.summary import stat
from clbench.report.tables import Cell, Column, Row, Table, method_sort_key

Getter = Callable[[dict[str, Any]], Any]


def _phase(name: str, key: str) -> Getter:
    return lambda cost: ((cost.get("phases") or {}).get(name) or {}).get(key)


def _mb_to_gb(key: str) -> Getter:
    return lambda cost: None if cost.get(key) is None else float(cost[key]) / 1024


#: (column key, label, how to read it from a run's cost block)
COLUMNS: tuple[tuple[str, str, Getter], ...] = (
    ("generation_s", "Generation s", _phase("generation", "seconds")),
    ("training_s", "Training s", _phase("training", "seconds")),
    ("evaluation_s", "Evaluation s", _phase("evaluation", "seconds")),
    ("training_ips", "Train img/s", _phase("training", "images_per_s")),
    ("evaluation_ips", "Eval img/s", _phase("evaluation", "images_per_s")),
    ("host_gb", "Peak host GB", _mb_to_gb("peak_host_memory_mb")),
    ("gpu_gb", "Peak GPU GB", _mb_to_gb("peak_gpu_memory_mb")),
)


#: run.json ``parameters`` (engine): trainable = updated by the optimizer in some task, added = not in the
#: pretrained model (adapters, routers), as parameter-efficient papers compare them
PARAMETER_COLUMNS: tuple[tuple[str, str], ...] = (("trainable", "Trainable params"), ("added", "Added params"),
                                                  ("total", "Total params"))


def run_cost(run: Run) -> dict[str, Any] | None:
    cost = run.info.get("cost")
    return cost if isinstance(cost, dict) else None


def _device(runs: Sequence[Run]) -> str:
    names = set()
    for r in runs:
        dev = r.info.get("device") or {}
        names.add((dev.get("name") or dev.get("type", "")) if isinstance(dev, dict) else str(dev))
    return ", ".join(sorted(n for n in names if n)) or "–"


def cost_table(results: ResultSet) -> Table | None:
    """Per (benchmark, method) cost, or None when no run recorded one."""
    if not any(run_cost(r) for r in results.runs):
        return None
    columns = [Column("seeds", "Seeds", kind="text"), Column("device", "Device", kind="text")]
    columns += [Column(key, label) for key, label, _ in COLUMNS]
    columns += [Column(key, label, kind="text") for key, label in PARAMETER_COLUMNS]
    table = Table(id="cost", title="Cost per run: wall time by phase, throughput, peak memory", protocol="",
                  benchmarks=results.benchmarks(), row_header=["Benchmark", "Method"], columns=columns)
    for bench in results.benchmarks():
        for method in sorted(results.methods(), key=method_sort_key):
            runs = [r for r in results.select(bench, method) if run_cost(r)]
            if not runs:
                continue
            cells = {"seeds": Cell("text", text=str(len(runs))), "device": Cell("text", text=_device(runs))}
            for key, _, get in COLUMNS:
                values = [get(run_cost(r) or {}) for r in runs]
                s = stat(float(v) for v in values if v is not None)
                cells[key] = (Cell("blank") if s.pending
                              else Cell("value", value=s.mean, std=s.std, n=s.n, benchmark=bench, metric=key))
            counts = runs[0].info.get("parameters")  # the same for every seed of a (benchmark, method)
            for key, _ in PARAMETER_COLUMNS:
                value = counts.get(key) if isinstance(counts, dict) else None
                cells[key] = Cell("text", text="–" if value is None else f"{int(value):,}")
            table.rows.append(Row(head=[bench, method], method=method, source="ours", cells=cells, seeds=len(runs)))
    table.notes = ["Seconds per phase summed over the run (generation: synthetic images / reference data "
                   "before the first task; training: task hooks and optimizer steps; evaluation: every "
                   "accuracy row). Train img/s counts task images only. A resumed run adds up its parts. Trainable params: "
                   "updated by the optimizer in some task; added: put into the pretrained model by the method."]
    return table
