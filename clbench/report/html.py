"""The HTML report: one self-contained static page (inline CSS, figures as base64 data URIs, no script).

It opens from disk with no server and no network. Leaderboard cells carry ``data-*`` attributes
(benchmark, method, source, metric, task, mean, std, n) so tools and the browser test can read the numbers
back without parsing the formatted text.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from clbench.report.collect import ResultSet, Run
from clbench.report.figures import FigureFile, method_colors
from clbench.report.render import cell_text
from clbench.report.tables import Cell, Table, method_sort_key

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1b1f24;
 background:#fff}
header{background:#1f2937;color:#f9fafb;padding:18px 32px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:2px 0;color:#d1d5db}header code{color:#fde68a}
nav{padding:8px 32px;background:#f3f4f6;border-bottom:1px solid #e5e7eb;position:sticky;top:0}
nav a{margin-right:14px;color:#1d4ed8;text-decoration:none}
main{padding:8px 32px 40px;max-width:1500px}h2{border-bottom:2px solid #e5e7eb;padding-bottom:4px;margin-top:28px}
h3{margin:22px 0 6px;font-size:16px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:13px}
th,td{padding:3px 8px;border-bottom:1px solid #eef0f2;white-space:nowrap}
th{background:#f9fafb;border-bottom:2px solid #d1d5db;text-align:center}
td.num{text-align:right}td.head{text-align:left}
tr.rule td{border-top:2px solid #d1d5db}
tr.published td{color:#4b5563;background:#fbfbf4;font-style:italic}
.leaderboard td.head:first-child{position:sticky;left:0;background:#fff;z-index:1}
.leaderboard tr.published td.head:first-child{background:#fbfbf4}
td.pending{color:#9ca3af;font-style:italic}td.delta{color:#374151}td.delta.neg{color:#b91c1c}
td.delta.pos{color:#047857}
.chip{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:middle}
ul.notes{color:#4b5563;font-size:12px;margin:6px 0 0;padding-left:18px}
figure{margin:10px 0 18px;display:inline-block;vertical-align:top;max-width:100%}
figure img{max-width:100%;border:1px solid #e5e7eb}figcaption{font-size:12px;color:#4b5563}
details{margin:6px 0}summary{cursor:pointer;color:#1d4ed8}
pre{background:#f6f8fa;padding:8px;font-size:12px;overflow:auto;max-height:360px}
.heatmaps figure{width:420px;margin-right:10px}
"""


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _attrs(**values: Any) -> str:
    return "".join(f' data-{k}="{escape(str(v))}"' for k, v in values.items() if v is not None and v != "")


def table_html(table: Table, colors: dict[str, str]) -> str:
    """One leaderboard as an HTML table; every number cell says what it is in data-* attributes."""
    out = [f'<div class="scroll"><table class="leaderboard" id="{escape(table.id)}">', "<thead>"]
    groups: list[tuple[str, int]] = []
    for c in table.columns:
        if groups and groups[-1][0] == c.group:
            groups[-1] = (c.group, groups[-1][1] + 1)
        else:
            groups.append((c.group, 1))
    if any(g for g, _ in groups):
        out.append("<tr>" + f'<th colspan="{len(table.row_header)}"></th>'
                   + "".join(f'<th colspan="{w}">{escape(g)}</th>' for g, w in groups) + "</tr>")
    out.append("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in table.row_header)
               + "".join(f"<th>{escape(c.label)}</th>" for c in table.columns) + "</tr></thead><tbody>")
    for row in table.rows:
        classes = " ".join(x for x in ("published" if row.published else "", "rule" if row.rule_before else "") if x)
        out.append(f'<tr class="{classes}"' + _attrs(method=row.method, source=row.source, metric=row.metric) + ">")
        for i, head in enumerate(row.head):
            chip = (f'<span class="chip" style="background:{colors.get(row.method, "#999")}"></span>'
                    if i == 0 else "")
            out.append(f'<td class="head">{chip}{escape(head)}</td>')
        for c in table.columns:
            cell = row.cells.get(c.key, Cell("blank"))
            out.append(_cell_html(cell, row.method, row.source, cell_text(cell, row, "plain")))
        out.append("</tr>")
    out.append("</tbody></table></div>")
    if table.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in table.notes) + "</ul>")
    return "\n".join(out)


def _cell_html(cell: Cell, method: str, source: str, text: str) -> str:
    if cell.kind == "text":
        return f'<td class="text">{escape(text)}</td>'
    attrs = _attrs(benchmark=cell.benchmark, method=method, source=source, metric=cell.metric, task=cell.task,
                   kind=cell.kind)
    if cell.kind == "value":
        attrs += _attrs(mean=repr(cell.value), std=None if cell.std is None else repr(cell.std), n=cell.n or None)
        body = escape(text)
        if cell.bold:
            mean, _, rest = body.partition(" ")
            body = f"<strong>{mean}</strong>{' ' + rest if rest else ''}"
        return f'<td class="num{" best" if cell.bold else ""}"{attrs}>{body}</td>'
    if cell.kind == "delta":
        sign = "neg" if (cell.value or 0) < 0 else "pos"
        return f'<td class="num delta {sign}"{attrs + _attrs(delta=repr(cell.value))}>{escape(text)}</td>'
    return f'<td class="num {cell.kind}"{attrs}>{escape(text)}</td>'


def _run_rows(runs: Sequence[Run]) -> str:
    import yaml

    out = ['<div class="scroll"><table class="runs"><thead><tr>',
           "".join(f"<th>{h}</th>" for h in ("Benchmark", "Method", "Seed", "Status", "Schema", "Wall time",
                                            "Device", "Model", "clbench", "torch", "open_clip", "Python", "Git")),
           "</tr></thead><tbody>"]
    for r in sorted(runs, key=lambda r: (r.benchmark, method_sort_key(r.method), r.seed)):
        env = r.environment
        pkgs = env.get("packages", {}) if isinstance(env.get("packages"), dict) else {}
        device = r.info.get("device") or env.get("device") or {}
        dev = (device.get("name") or device.get("type", "")) if isinstance(device, dict) else str(device)
        wall = r.wall_time_s
        status = "complete" if r.complete else f"{r.status} ({r.completed}/{len(r.tasks)} tasks)"
        cells = [r.benchmark, r.method, r.seed, status, r.schema_version,
                 "" if wall is None else f"{wall:.1f} s", dev, r.info.get("model", ""),
                 pkgs.get("clbench", ""), pkgs.get("torch", ""), pkgs.get("open_clip_torch", ""),
                 env.get("python", ""), str(env.get("git_sha") or "")[:12]]
        out.append(f"<tr{_attrs(benchmark=r.benchmark, method=r.method, seed=r.seed)}>"
                   + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table></div>")
    for r in sorted(runs, key=lambda r: (r.benchmark, method_sort_key(r.method), r.seed)):
        config = yaml.safe_dump(r.config, sort_keys=False) if r.config else "(no config.yaml)"
        env = json.dumps(r.environment, indent=2) if r.environment else "(no environment.json)"
        out.append(f"<details><summary>{escape(r.label)}: config and environment</summary>"
                   f"<p>{escape(str(r.path))}</p><pre>{escape(config)}</pre><pre>{escape(env)}</pre></details>")
    return "\n".join(out)


def _figure_html(fig: FigureFile) -> str:
    return (f'<figure id="fig-{escape(fig.id)}"><img alt="{escape(fig.title)}" src="{_data_uri(fig.png)}">'
            f"<figcaption>{escape(fig.title)} (also <code>{escape(fig.svg.name)}</code>)</figcaption></figure>")


def _first_seed_each(heatmaps: Sequence[FigureFile]) -> list[FigureFile]:
    """One heatmap per method (its lowest seed): seeds look alike, and each image adds ~50 KB to the page."""
    first: dict[str, FigureFile] = {}
    for f in sorted(heatmaps, key=lambda f: (f.seed is None, f.seed)):
        first.setdefault(f.method, f)
    return [f for f in heatmaps if f in first.values()]


def _page_start(title: str) -> list[str]:
    return ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"]


def diff_html(table: Table) -> str:
    """The ``--diff`` table as a self-contained page."""
    colors = method_colors(r.method for r in table.rows)
    return "\n".join(_page_start(table.title) + [f"<header><h1>{escape(table.title)}</h1></header><main>",
                                                 table_html(table, colors), "</main></body></html>"]) + "\n"


def report_html(results: ResultSet, tables: Sequence[Table], figures: Sequence[FigureFile],
                title: str = "clbench report") -> str:
    """The whole page: leaderboards, then figures per benchmark, then every run's metadata."""
    from clbench import __version__

    colors = method_colors(results.methods() + [r.method for t in tables for r in t.rows])
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = _page_start(title) + [
             f"<header><h1>{escape(title)}</h1>",
             f"<p>results: <code>{escape(str(results.root))}</code> · {len(results.runs)} runs · "
             f"{len(results.benchmarks())} benchmarks · {len(results.methods())} methods</p>",
             f"<p>generated {escape(now)} by clbench {escape(__version__)}</p></header>",
             '<nav><a href="#leaderboards">Leaderboards</a><a href="#figures">Figures</a>'
             '<a href="#runs">Runs</a></nav><main>', '<section id="leaderboards"><h2>Leaderboards</h2>']
    for table in tables:
        parts.append(f"<h3>{escape(table.title)}</h3>")
        parts.append(table_html(table, colors))
    parts.append('</section><section id="figures"><h2>Figures</h2>')
    if not figures:
        parts.append("<p>No figures (run without them).</p>")
    for bench in results.benchmarks():
        mine = [f for f in figures if f.benchmark == bench]
        if not mine:
            continue
        parts.append(f"<h3>{escape(bench)}</h3>")
        parts += [_figure_html(f) for f in mine if f.kind != "heatmap"]
        heat = [f for f in mine if f.kind == "heatmap"]
        shown = _first_seed_each(heat)
        if heat:
            more = (f" (lowest seed per method shown; all {len(heat)} runs in <code>figures/</code>)"
                    if len(shown) < len(heat) else "")
            parts.append(f"<details open><summary>Accuracy matrices{more}</summary>"
                         '<div class="heatmaps">' + "".join(_figure_html(f) for f in shown) + "</div></details>")
    parts.append('</section><section id="runs"><h2>Runs</h2>')
    parts.append(_run_rows(results.runs))
    if results.notes:
        parts.append("<h3>Notes</h3><ul class=\"notes\">"
                     + "".join(f"<li>{escape(n)}</li>" for n in results.notes) + "</ul>")
    parts.append("</section></main></body></html>")
    return "\n".join(parts) + "\n"
