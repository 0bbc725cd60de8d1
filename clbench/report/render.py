"""Text renderings of :class:`~clbench.report.tables.Table`: Markdown, LaTeX (booktabs) and a tidy CSV.

Markdown is for READMEs and issues, LaTeX for pasting into a paper (needs ``\\usepackage{booktabs}``), the
CSV for further analysis: one line per number, full precision, nothing merged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from clbench.report.collect import ResultSet
from clbench.report.published import PublishedRow
from clbench.report.summary import OVERALL, aggregate
from clbench.report.tables import DECIMALS, Cell, Row, Table

PENDING = "pending"


def _num(value: float, signed: bool = False) -> str:
    text = f"{value:+.{DECIMALS}f}" if signed else f"{value:.{DECIMALS}f}"
    return "0.0" if text in ("-0.0", "+0.0") else text


def cell_text(cell: Cell, row: Row, style: str) -> str:
    """A cell as shown in ``style`` (md / latex / plain): mean, ``± std`` from 2 seeds, ``(n=k)`` when partial."""
    latex = style == "latex"
    if cell.kind == "text":
        return latex_escape(cell.text) if latex else cell.text
    if cell.kind == "blank":
        return "" if latex else "–"
    if cell.kind == "pending":
        return r"\textit{pending}" if latex else PENDING
    if cell.kind == "delta":
        assert cell.value is not None
        text = _num(cell.value, signed=True)
        return text.replace("-", "$-$") if latex else text
    assert cell.value is not None
    mean = _num(cell.value)
    if latex:
        mean = mean.replace("-", "$-$")
        mean = rf"\textbf{{{mean}}}" if cell.bold else mean
    elif style == "md" and cell.bold:
        mean = f"**{mean}**"
    out = mean
    if cell.std is not None:
        out += rf" {{\scriptsize $\pm$ {_num(cell.std)}}}" if latex else f" ± {_num(cell.std)}"
    if not row.published and 0 < cell.n < row.seeds:
        out += f" (n={cell.n})"
    return out


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "Δ": r"$\Delta$", "−": "$-$", "±": r"$\pm$", "·": r"$\cdot$", "–": "--", "→": r"$\to$"}


def latex_escape(text: str) -> str:
    """Plain text (method names with underscores, Δ, ±) made safe for LaTeX."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _md_escape(text: str) -> str:
    return text.replace("|", r"\|")


def to_markdown(table: Table) -> str:
    """A GitHub Markdown table; setting groups go into the header (``10 steps Avg``)."""
    heads = list(table.row_header) + [f"{c.group} {c.label}".strip() for c in table.columns]
    lines = [f"### {table.title}", "", "| " + " | ".join(_md_escape(h) for h in heads) + " |",
             "|" + "|".join(":---" if i < len(table.row_header) else "---:" for i in range(len(heads))) + "|"]
    previous = ""
    for row in table.rows:
        head = list(row.head)
        if head[0] == previous and len(head) > 1:
            head[0] = ""  # method blocks: name on the first row only, as in the papers
        else:
            previous = head[0]
        cells = [cell_text(row.cells.get(c.key, Cell("blank")), row, "md") for c in table.columns]
        lines.append("| " + " | ".join(_md_escape(x) for x in head + cells) + " |")
    lines.append("")
    lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment; a ``\\cmidrule`` row spans each setting group."""
    n_head = len(table.row_header)
    spec = "l" * n_head + "".join("c" if c.kind == "text" else "r" for c in table.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    groups: list[tuple[str, int]] = []
    for c in table.columns:
        if groups and groups[-1][0] == c.group:
            groups[-1] = (c.group, groups[-1][1] + 1)
        else:
            groups.append((c.group, 1))
    if any(g for g, _ in groups):
        cells, rules, pos = [""] * n_head, [], n_head + 1
        for g, width in groups:
            if g:
                cells.append(rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(g)}}}")
                rules.append(rf"\cmidrule(lr){{{pos}-{pos + width - 1}}}")
            else:
                cells += [""] * width
            pos += width
        lines.append(" & ".join(cells) + r" \\")
        lines.append(" ".join(rules))
    lines.append(" & ".join(latex_escape(h) for h in list(table.row_header) + [c.label for c in table.columns])
                 + r" \\")
    lines.append(r"\midrule")
    previous = ""
    for row in table.rows:
        if row.rule_before:
            lines.append(r"\midrule")
        head = list(row.head)
        if head[0] == previous and len(head) > 1:
            head[0] = ""
        else:
            previous = head[0]
        cells = [cell_text(row.cells.get(c.key, Cell("blank")), row, "latex") for c in table.columns]
        lines.append(" & ".join([latex_escape(h) for h in head] + cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}",
              rf"\caption{{{latex_escape(table.title)}. {latex_escape(' '.join(table.notes[:2]))}}}",
              rf"\label{{tab:{table.id}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("benchmark", "protocol", "method", "source", "quality", "metric", "task", "mean", "std", "n_seeds",
              "status", "published", "delta")


def to_csv(results: ResultSet, published: Sequence[PublishedRow] = ()) -> str:
    """Tidy CSV: one line per (benchmark, method, source, metric, task); task empty = protocol-level metric.

    ``status`` is ``ok`` or ``pending``; ``published`` / ``delta`` are filled on our rows where the
    literature has the same method and benchmark.
    """
    from clbench.report.published import reference_row

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for bench in results.benchmarks():
        protocol = results.protocol(bench)
        for method in sorted({r.method for r in results.runs if r.benchmark == bench}):
            runs = results.select(bench, method)
            ref = reference_row(published, bench, method)
            for (metric, task), s in sorted(aggregate(runs).items()):
                paper = ref.value(metric, task or None) if ref else None
                writer.writerow({
                    "benchmark": bench, "protocol": protocol, "method": method, "source": "ours", "quality": "",
                    "metric": metric, "task": task, "mean": "" if s.mean is None else repr(s.mean),
                    "std": "" if s.std is None else repr(s.std), "n_seeds": s.n,
                    "status": "pending" if s.pending else "ok",
                    "published": "" if paper is None else paper,
                    "delta": "" if paper is None or s.mean is None else repr(s.mean - paper),
                })
        tasks = results.tasks(bench)
        for p in (p for p in published if p.benchmark == bench):
            entries = [(m, OVERALL, v) for m, v in p.values.items()]
            entries += [(m, t, p.value(m, t)) for m in p.per_task for t in tasks]  # our task names
            for metric, task, value in entries:
                if value is None:
                    continue
                writer.writerow({"benchmark": bench, "protocol": protocol, "method": p.method, "source": p.source,
                                 "quality": p.quality, "metric": metric, "task": task, "mean": value, "std": "",
                                 "n_seeds": "", "status": "published", "published": "", "delta": ""})
    return buf.getvalue()


def diff_csv(table: Table) -> str:
    """The ``--diff`` table as CSV (benchmark, method, metric, mean_a, mean_b, delta)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["benchmark", "method", "metric", "mean_a", "std_a", "n_a", "mean_b", "std_b", "n_b", "delta"])
    for row in table.rows:
        a, b, d = row.cells["a"], row.cells["b"], row.cells["delta"]
        writer.writerow([row.cells["a"].benchmark or row.head[0], row.method, row.metric,
                         "" if a.value is None else a.value, "" if a.std is None else a.std, a.n,
                         "" if b.value is None else b.value, "" if b.std is None else b.std, b.n,
                         "" if d.value is None else d.value])
    return buf.getvalue()
