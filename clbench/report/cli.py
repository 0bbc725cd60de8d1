"""``clbench report``: leaderboards (md / LaTeX / CSV / HTML), figures and ``--diff`` from a results directory.

Imports of the reporter's modules (numpy, matplotlib, yaml) happen inside :func:`main`, so registering the
subcommand costs nothing for ``clbench --help``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from clbench.errors import UserError

FORMATS = ("md", "latex", "csv", "html")
_EXTENSIONS = {"md": "md", "latex": "tex", "csv": "csv", "html": "html"}


def _formats(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown format {', '.join(bad) or value!r}; valid: {', '.join(FORMATS)}")
    return names


def _methods(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def register(subparsers: Any) -> None:
    """Add ``report`` to the ``clbench`` command's subparsers."""
    p = subparsers.add_parser(
        "report", help="leaderboards (md/latex/csv/html), figures and diffs from a results directory",
        description="Paper-style tables (mean ± sample std over seeds, best per column in bold), figures and a "
                    "self-contained HTML page from the runs below RESULTS_DIR.")
    p.add_argument("results_dir", nargs="?", default="results", metavar="RESULTS_DIR",
                   help="folder `clbench run` wrote (default: results)")
    p.add_argument("--benchmark", action="append", default=[], metavar="NAME",
                   help="only this benchmark (repeatable; default: all)")
    p.add_argument("--methods", type=_methods, default=None, help="comma-separated methods (default: all)")
    p.add_argument("--format", dest="formats", action="append", type=_formats, default=None,
                   help="md, latex, csv, html; repeatable or comma-separated (default: all four)")
    p.add_argument("--published", action="store_true",
                   help="add the literature's rows (results/published/*.yaml) and a Δ column (ours − paper)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: RESULTS_DIR/report)")
    p.add_argument("--figures", action=argparse.BooleanOptionalAction, default=None,
                   help="write figures (PNG+SVG) to OUT/figures (default: on when html is among the formats)")
    p.add_argument("--diff", nargs=2, metavar=("A", "B"),
                   help="compare two results directories metric by metric (Δ = B − A) instead")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Write the requested reports and print the Markdown (or the diff) to stdout."""
    formats = [f for group in (args.formats or [list(FORMATS)]) for f in group]
    formats = list(dict.fromkeys(formats))
    if args.diff:
        return _diff(args, formats)

    from clbench.report.collect import load_results
    from clbench.report.published import default_dirs, load_published
    from clbench.report.render import to_csv, to_latex, to_markdown
    from clbench.report.tables import leaderboards

    root = Path(args.results_dir)
    results = load_results(root, args.benchmark or None, args.methods)
    published = (load_published(default_dirs(root), results.benchmarks(), args.methods)
                 if args.published else [])
    tables = leaderboards(results, published)
    from clbench.report.cost import cost_table

    cost = cost_table(results)
    if cost is not None:  # where the time went, after the leaderboards
        tables.append(cost)
    out = Path(args.out) if args.out else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    md = "\n".join(to_markdown(t) for t in tables)
    if "md" in formats:
        written.append(_write(out / "leaderboard.md", f"# clbench leaderboards\n\n{md}"))
    if "latex" in formats:
        written.append(_write(out / "leaderboard.tex", "% needs \\usepackage{booktabs}\n"
                              + "\n".join(to_latex(t) for t in tables)))
    if "csv" in formats:
        written.append(_write(out / "leaderboard.csv", to_csv(results, published)))
    want_figures = args.figures if args.figures is not None else "html" in formats
    figures = []
    if want_figures:
        from clbench.report.figures import make_figures

        figures = make_figures(results, out / "figures")
    if "html" in formats:
        from clbench.report.html import report_html

        written.append(_write(out / "index.html", report_html(results, tables, figures)))
    if "md" in formats:
        print(md)
    if args.published and not published:
        print("note: no published numbers for these benchmarks (see results/published/*.yaml)")
    for note in results.notes:
        print(f"note: {note}")
    for path in written:
        print(f"wrote {path}")
    if figures:
        print(f"wrote {len(figures)} figures (PNG + SVG) to {out / 'figures'}")
    return 0


def _diff(args: argparse.Namespace, formats: list[str]) -> int:
    from clbench.report.collect import load_results
    from clbench.report.render import diff_csv, to_latex, to_markdown
    from clbench.report.tables import diff_table

    a_dir, b_dir = (Path(p) for p in args.diff)
    a = load_results(a_dir, args.benchmark or None, None)
    b = load_results(b_dir, args.benchmark or None, None)
    if args.methods:
        a.runs = [r for r in a.runs if r.method in args.methods]
        b.runs = [r for r in b.runs if r.method in args.methods]
        if not a.runs and not b.runs:
            raise UserError(f"no runs of --methods {','.join(args.methods)} in {a_dir} or {b_dir}")
    table = diff_table(a, b, str(a_dir), str(b_dir))
    print(diff_csv(table) if formats == ["csv"] else to_markdown(table), end="")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        texts = {"md": to_markdown(table), "latex": to_latex(table), "csv": diff_csv(table)}
        if "html" in formats:
            from clbench.report.html import diff_html

            texts["html"] = diff_html(table)
        for fmt in formats:
            print(f"wrote {_write(out / f'diff.{_EXTENSIONS[fmt]}', texts[fmt])}")
    return 0


def _write(path: Path, text: str) -> Path:
    from clbench.store import write_atomic

    write_atomic(path, text)
    path.chmod(0o644)  # a report is meant to be read and served; the atomic temp file starts out 0600
    return path
