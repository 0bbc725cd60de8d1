"""Leaderboards in the literature's shapes, as format-neutral :class:`Table` objects.

- task-incremental (``mtil``): per method three rows (Transfer, Avg, Last), a column per dataset plus the
  average (ZSCL Table 3);
- class-incremental (``cil``): a row per method, Avg and Last per setting side by side (ZSCL Table 1), the
  settings of one family (``cifar100_10/20/50``) in one table;
- ``medxtreme``: ACC, AUC, BWT per order side by side.

Cells keep numbers, not strings; :mod:`clbench.report.render` and :mod:`clbench.report.html` decide how
they look. Bold (best per column) is decided here, on the values as displayed (rounded), so ties are all bold.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from clbench.metrics import MTIL_LIKE, PROTOCOL_METRICS
from clbench.report.collect import ResultSet, Run
from clbench.report.published import QUALITY, PublishedRow, reference_row
from clbench.report.summary import LOWER_IS_BETTER, OVERALL, STD_DDOF, Stat, aggregate

#: Decimals shown in md / LaTeX / HTML (the CSV keeps full precision).
DECIMALS = 1

#: Methods in the order papers list them (baselines first); others follow alphabetically.
METHOD_ORDER = ("zeroshot", "finetune", "l2", "lwf", "icarl", "lwf_vr", "wise_ft", "zscl", "moe_adapters",
                "snd", "diki", "gift", "primed_dyn")

#: Reference rows left out of bolding: zero-shot is the starting point, not a continual-learning result.
NOT_RANKED = frozenset({"zeroshot"})

METRIC_LABELS = {"transfer": "Transfer", "avg": "Avg", "last": "Last", "acc": "ACC", "auc": "AUC",
                 "bwt": "BWT", "forgetting": "Forgetting"}

TABLE_METRICS = {"mtil": ("transfer", "avg", "last"), "cil": ("avg", "last"), "medxtreme": ("acc", "auc", "bwt"),
                 "xtail": ("transfer", "avg", "last")}


@dataclass
class Cell:
    """One table cell. ``kind``: value (mean ± std), delta (ours − paper), text, pending, blank."""

    kind: str
    value: float | None = None
    std: float | None = None
    n: int = 0
    text: str = ""
    bold: bool = False
    benchmark: str = ""
    metric: str = ""
    task: str = OVERALL

    def shown(self) -> float | None:
        """The value as displayed (rounded), which is what bolding compares."""
        return None if self.value is None else round(self.value, DECIMALS)


@dataclass
class Column:
    key: str
    label: str
    group: str = ""  # spanning header (a setting such as "10 steps"); "" = none
    kind: str = "value"  # value | delta | text


@dataclass
class Row:
    head: list[str]  # one entry per table.row_header
    method: str
    source: str  # "ours" or the published short source
    cells: dict[str, Cell]
    metric: str = ""  # the row's metric in per-dataset tables (transfer / avg / last)
    seeds: int = 0  # runs behind an "ours" row; 0 for published rows
    quality: str = ""
    rule_before: bool = False  # a horizontal rule separates method blocks

    @property
    def published(self) -> bool:
        return self.source != "ours"


@dataclass
class Table:
    id: str
    title: str
    protocol: str
    benchmarks: list[str]
    row_header: list[str]
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_PENDING = Stat(None, None, 0)


def method_sort_key(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def split_setting(benchmark: str) -> tuple[str, str]:
    """``cifar100_10`` -> (``cifar100``, ``10 steps``); ``medxtreme_order2`` -> (``medxtreme``, ``Order 2``)."""
    m = re.fullmatch(r"(.+)_(order)?(\d+)", benchmark)
    if not m:
        return benchmark, benchmark
    family, order, number = m.groups()
    return family, (f"Order {number}" if order else f"{number} steps")


def _setting_sort_key(benchmark: str) -> tuple[str, int, str]:
    m = re.search(r"(\d+)$", benchmark)
    return (split_setting(benchmark)[0], int(m.group(1)) if m else 0, benchmark)


def _value_cell(s: Stat, benchmark: str, metric: str, task: str = OVERALL) -> Cell:
    if s.pending:
        return Cell("pending", benchmark=benchmark, metric=metric, task=task)
    return Cell("value", value=s.mean, std=s.std, n=s.n, benchmark=benchmark, metric=metric, task=task)


def _published_cell(value: float | None, benchmark: str, metric: str, task: str = OVERALL) -> Cell:
    if value is None:
        return Cell("blank", benchmark=benchmark, metric=metric, task=task)
    return Cell("value", value=value, benchmark=benchmark, metric=metric, task=task)


def _delta_cell(ours: Stat, paper: float | None, benchmark: str, metric: str) -> Cell:
    if paper is None:
        return Cell("blank", benchmark=benchmark, metric=metric)
    if ours.pending or ours.mean is None:
        return Cell("pending", benchmark=benchmark, metric=metric)
    return Cell("delta", value=ours.mean - paper, benchmark=benchmark, metric=metric)


def _methods(results: ResultSet, benchmarks: Sequence[str], published: Sequence[PublishedRow]) -> list[str]:
    ours = {r.method for r in results.runs if r.benchmark in benchmarks}
    theirs = {p.method for p in published if p.benchmark in benchmarks}
    return sorted(ours | theirs, key=method_sort_key)


def _incomplete_note(runs: Sequence[Run]) -> list[str]:
    partial = [f"{r.method} seed {r.seed} ({r.completed}/{len(r.tasks)} tasks)" for r in runs if not r.complete]
    return [f"Incomplete runs (their missing values are pending, averages use the seeds that have them): "
            f"{', '.join(partial)}."] if partial else []


def _common_notes(has_published: bool) -> list[str]:
    notes = [f"Mean ± sample standard deviation (ddof={STD_DDOF}) over seeds; no ± with a single seed; "
             "(n=k) marks a value from fewer seeds than the row's.",
             "Bold: best value per column (zero-shot excluded); pending: not evaluated yet."]
    if has_published:
        notes.append("Δ = ours − published (same method and benchmark; the best-quality source).")
    return notes


def _source_notes(rows: Sequence[PublishedRow]) -> list[str]:
    seen: dict[str, str] = {}
    for r in rows:
        seen.setdefault(f"{r.source} [{r.quality}]", r.citation)
    notes = [f"{key}: {citation}." for key, citation in seen.items()]
    notes += [f"{r.method} on {r.benchmark} ({r.source}): {r.note}." for r in rows if r.note]
    return notes


def _published_label(p: PublishedRow) -> str:
    return f"{p.method} · {p.source} [{p.quality}]"


def mtil_table(results: ResultSet, benchmark: str, published: Sequence[PublishedRow] = ()) -> Table:
    """ZSCL Table 3: per method Transfer / Avg / Last rows, a column per dataset, then the average (+ Δ)."""
    tasks = results.tasks(benchmark)
    pub = [p for p in published if p.benchmark == benchmark]
    columns = [Column(f"task:{t}", t) for t in tasks] + [Column("average", "Average")]
    if pub:
        columns.append(Column("delta", "Δ", kind="delta"))
    columns.insert(0, Column("seeds", "Seeds", kind="text"))
    protocol = next((r.protocol for r in results.runs if r.benchmark == benchmark), "mtil")
    title = f"{benchmark}: Transfer / Avg / Last (%)" + (" — task-agnostic, union of all classes" if protocol == "xtail"
                                                        else "")
    table = Table(id=f"mtil-{benchmark}", title=title, protocol=protocol,
                  benchmarks=[benchmark], row_header=["Method", "Metric"], columns=columns)
    runs_all = [r for r in results.runs if r.benchmark == benchmark]
    for method in _methods(results, [benchmark], pub):
        runs = results.select(benchmark, method)
        blocks: list[tuple[str, str, int, str, dict[str, Cell]]] = []  # source, quality, seeds, metric, cells
        ref = reference_row(pub, benchmark, method)
        if runs:
            stats = aggregate(runs)
            for metric in TABLE_METRICS["mtil"]:
                cells = {"seeds": Cell("text", text=str(len(runs)))}
                for j, t in enumerate(tasks):
                    cells[f"task:{t}"] = (Cell("blank", benchmark=benchmark, metric=metric, task=t)
                                          if metric == "transfer" and j == 0
                                          else _value_cell(stats.get((metric, t), _PENDING), benchmark, metric, t))
                overall = stats.get((metric, OVERALL), _PENDING)
                cells["average"] = _value_cell(overall, benchmark, metric)
                if pub:
                    cells["delta"] = _delta_cell(overall, ref.value(metric) if ref else None, benchmark, metric)
                blocks.append(("ours", "", len(runs), metric, cells))
        for p in sorted((p for p in pub if p.method == method), key=lambda p: QUALITY.index(p.quality)):
            for metric in TABLE_METRICS["mtil"]:
                cells = {"seeds": Cell("text", text="–")}
                for j, t in enumerate(tasks):
                    cells[f"task:{t}"] = (Cell("blank", benchmark=benchmark, metric=metric, task=t)
                                          if metric == "transfer" and j == 0
                                          else _published_cell(p.value(metric, t), benchmark, metric, t))
                cells["average"] = _published_cell(p.value(metric), benchmark, metric)
                cells["delta"] = Cell("blank")
                blocks.append((p.source, p.quality, 0, metric, cells))
        for i, (source, quality, seeds, metric, cells) in enumerate(blocks):
            label = f"{method} · {source} [{quality}]" if quality else method
            table.rows.append(Row(head=[label, METRIC_LABELS[metric]], method=method, source=source,
                                  cells=cells, metric=metric, seeds=seeds, quality=quality,
                                  rule_before=i == 0 and bool(table.rows)))
    table.notes = _common_notes(bool(pub)) + _incomplete_note(runs_all) + _source_notes(pub)
    mark_best(table)
    return table


def settings_table(results: ResultSet, benchmarks: Sequence[str],
                   published: Sequence[PublishedRow] = ()) -> Table:
    """A row per method, the protocol's metrics per setting side by side (CIL: Avg/Last; MedXtreme: ACC/AUC/BWT)."""
    benchmarks = sorted(benchmarks, key=_setting_sort_key)
    protocol = results.protocol(benchmarks[0])
    family = split_setting(benchmarks[0])[0]
    metrics_ = TABLE_METRICS[protocol]
    pub = [p for p in published if p.benchmark in benchmarks]
    columns = [Column("seeds", "Seeds", kind="text")]
    for b in benchmarks:
        has_pub = {m for p in pub if p.benchmark == b for m, v in p.values.items() if v is not None}
        for m in metrics_:
            columns.append(Column(f"{b}:{m}", METRIC_LABELS[m], group=split_setting(b)[1]))
            if m in has_pub:
                columns.append(Column(f"{b}:{m}:delta", f"Δ{METRIC_LABELS[m]}", group=split_setting(b)[1],
                                      kind="delta"))
    kind = "class-incremental Avg / Last" if protocol == "cil" else " / ".join(METRIC_LABELS[m] for m in metrics_)
    table = Table(id=f"{protocol}-{family}", title=f"{family}: {kind} (%)", protocol=protocol,
                  benchmarks=list(benchmarks), row_header=["Method"], columns=columns)
    keys = [c.key for c in columns]
    for method in _methods(results, benchmarks, pub):
        per_bench = {b: results.select(b, method) for b in benchmarks}
        if any(per_bench.values()):
            seeds = [len(per_bench[b]) for b in benchmarks]
            cells = {"seeds": Cell("text", text=str(seeds[0]) if len(set(seeds)) == 1 else "/".join(map(str, seeds)))}
            for b in benchmarks:
                stats = aggregate(per_bench[b]) if per_bench[b] else {}
                ref = reference_row(pub, b, method)
                for m in metrics_:
                    s = stats.get((m, OVERALL), _PENDING)
                    cells[f"{b}:{m}"] = (_value_cell(s, b, m) if per_bench[b]
                                         else Cell("blank", benchmark=b, metric=m))
                    if f"{b}:{m}:delta" in keys:
                        cells[f"{b}:{m}:delta"] = (_delta_cell(s, ref.value(m) if ref else None, b, m)
                                                   if per_bench[b] else Cell("blank"))
            table.rows.append(Row(head=[method], method=method, source="ours", cells=cells, seeds=max(seeds),
                                  rule_before=bool(table.rows)))
        by_source: dict[tuple[str, str], list[PublishedRow]] = {}
        for p in pub:
            if p.method == method:
                by_source.setdefault((p.source, p.quality), []).append(p)
        for (source, quality), rows in sorted(by_source.items(), key=lambda kv: QUALITY.index(kv[0][1])):
            cells = {"seeds": Cell("text", text="–")}
            for c in columns[1:]:
                cells[c.key] = Cell("blank")
            for p in rows:
                for m in metrics_:
                    cells[f"{p.benchmark}:{m}"] = _published_cell(p.value(m), p.benchmark, m)
            table.rows.append(Row(head=[_published_label(rows[0])], method=method, source=source, cells=cells,
                                  quality=quality, rule_before=not any(per_bench.values()) and bool(table.rows)))
    runs_all = [r for r in results.runs if r.benchmark in benchmarks]
    table.notes = _common_notes(bool(pub)) + _incomplete_note(runs_all) + _source_notes(pub)
    mark_best(table)
    return table


def mark_best(table: Table) -> None:
    """Bold the best displayed value per column (per row metric in per-dataset tables), ties included.

    Needs two or more ranked rows with a value; zero-shot rows are not ranked; Δ columns are never bold.
    """
    for col in table.columns:
        if col.kind != "value":
            continue
        for row_metric in {r.metric for r in table.rows}:
            cells = [r.cells[col.key] for r in table.rows
                     if r.metric == row_metric and r.method not in NOT_RANKED and col.key in r.cells
                     and r.cells[col.key].kind == "value"]
            if len(cells) < 2:
                continue
            metric = cells[0].metric
            shown = [c.shown() for c in cells]
            best = min(shown) if metric in LOWER_IS_BETTER else max(shown)  # type: ignore[type-var]
            for c, v in zip(cells, shown, strict=True):
                c.bold = v == best


def leaderboards(results: ResultSet, published: Sequence[PublishedRow] = ()) -> list[Table]:
    """Every table for a result set: one per MTIL benchmark, one per CIL / MedXtreme family."""
    tables: list[Table] = []
    families: dict[tuple[str, str], list[str]] = {}
    for b in results.benchmarks():
        protocol = results.protocol(b)
        if protocol in MTIL_LIKE:
            tables.append(mtil_table(results, b, published))
        else:
            families.setdefault((protocol, split_setting(b)[0]), []).append(b)
    for (_, _family), benches in sorted(families.items()):
        tables.append(settings_table(results, benches, published))
    return tables


def diff_table(a: ResultSet, b: ResultSet, label_a: str = "A", label_b: str = "B") -> Table:
    """Metric by metric, every (benchmark, method) present in either result set: A, B and Δ = B − A."""
    columns = [Column("a", "A"), Column("b", "B"), Column("delta", "Δ (B − A)", kind="delta")]
    table = Table(id="diff", title=f"Diff: {label_a} → {label_b}", protocol="", benchmarks=[],
                  row_header=["Benchmark", "Method", "Metric"], columns=columns)
    pairs = sorted({(r.benchmark, r.method) for r in a.runs + b.runs},
                   key=lambda bm: (bm[0], method_sort_key(bm[1])))
    table.benchmarks = sorted({p[0] for p in pairs})
    for bench, method in pairs:
        runs_a, runs_b = a.select(bench, method), b.select(bench, method)
        protocol = (runs_a or runs_b)[0].protocol
        stats_a = aggregate(runs_a) if runs_a else {}
        stats_b = aggregate(runs_b) if runs_b else {}
        for i, metric in enumerate(PROTOCOL_METRICS[protocol]):
            sa = stats_a.get((metric, OVERALL), _PENDING)
            sb = stats_b.get((metric, OVERALL), _PENDING)
            cells = {
                "a": _value_cell(sa, bench, metric) if runs_a else Cell("text", text="no runs"),
                "b": _value_cell(sb, bench, metric) if runs_b else Cell("text", text="no runs"),
                "delta": (Cell("delta", value=sb.mean - sa.mean, benchmark=bench, metric=metric)
                          if sa.mean is not None and sb.mean is not None else Cell("blank")),
            }
            table.rows.append(Row(head=[bench, method, METRIC_LABELS.get(metric, metric)], method=method,
                                  source="ours", cells=cells, metric=metric,
                                  seeds=max(len(runs_a), len(runs_b)), rule_before=i == 0 and bool(table.rows)))
    table.notes = [f"A = {label_a}; B = {label_b}.",
                   f"Mean ± sample standard deviation (ddof={STD_DDOF}) over seeds; Δ compares the means.",
                   "Higher is better except Forgetting."]
    return table
