"""Report figures (matplotlib, PNG + SVG), one colour per method everywhere.

- forgetting curves: accuracy on each task across training steps, a panel per task, the zero-shot level dashed;
- class-incremental: accuracy on all seen classes per step, one line per method;
- accuracy-matrix heatmap per run, the upper triangle (zero-shot on tasks not trained yet) greyed and fenced off;
- grouped bars of the protocol's headline metrics (Transfer / Avg / Last) per method.

Uses ``matplotlib.figure.Figure`` directly (no pyplot): no global state, no GUI backend, safe in tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clbench.report.collect import ResultSet, Run
from clbench.report.summary import OVERALL, aggregate, seen_curve, zero_shot_level
from clbench.report.tables import METRIC_LABELS, TABLE_METRICS, method_sort_key

#: Fixed colours for the methods clbench ships, so a method looks the same in every report.
METHOD_COLORS = {
    "zeroshot": "#7f7f7f", "finetune": "#d62728", "l2": "#ff9896", "lwf": "#ff7f0e", "icarl": "#8c564b",
    "lwf_vr": "#e377c2", "wise_ft": "#bcbd22", "zscl": "#1f77b4", "moe_adapters": "#9467bd", "snd": "#c49c94",
    "diki": "#17becf", "gift": "#2ca02c", "primed_dyn": "#393b79",
}
_SPARE_COLORS = ("#aec7e8", "#98df8a", "#c5b0d5", "#ffbb78", "#f7b6d2", "#dbdb8d", "#9edae5", "#637939",
                 "#8c6d31", "#843c39", "#7b4173", "#3182bd")


def method_colors(methods: Iterable[str]) -> dict[str, str]:
    """Colour per method: the fixed table for known methods, spare colours (in name order) for the rest."""
    names = sorted(set(methods), key=method_sort_key)
    colors = {m: METHOD_COLORS[m] for m in names if m in METHOD_COLORS}
    spare = [c for c in _SPARE_COLORS if c not in colors.values()]
    for i, m in enumerate(m for m in names if m not in colors):
        colors[m] = spare[i % len(spare)]
    return colors


#: Heatmaps of longer streams (CIFAR100 50 steps) get colours only: 2,500 numbers would not be readable.
ANNOTATE_MAX_TASKS = 16


@dataclass(frozen=True)
class FigureFile:
    """A written figure: both formats, and what it shows (for the HTML page)."""

    id: str
    kind: str  # forgetting | seen | heatmap | bars
    benchmark: str
    title: str
    png: Path
    svg: Path
    method: str = ""
    seed: int | None = None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def _save(fig: Any, out_dir: Path, name: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    fig.savefig(png, dpi=110, metadata={"Software": None})
    if fig.get_layout_engine() is not None:
        fig.set_layout_engine("none")  # the layout is computed once, for the PNG; the SVG reuses it
    fig.savefig(svg, metadata={"Date": None})
    return png, svg


def _new_figure(width: float, height: float, layout: str | None = "constrained") -> Any:
    import matplotlib

    matplotlib.rcParams["svg.hashsalt"] = "clbench"  # stable SVG ids: reruns give identical files
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, faster, searchable SVG
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout=layout)


def _mean_std(curves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    stack = np.stack(curves)
    with np.errstate(all="ignore"):
        finite = np.isfinite(stack).sum(axis=0)
        mean = np.where(finite > 0, np.nansum(stack, axis=0) / np.maximum(finite, 1), np.nan)
        if len(curves) < 2:
            return mean, None
        dev = np.where(np.isfinite(stack), (stack - mean) ** 2, 0.0).sum(axis=0)
        std = np.where(finite > 1, np.sqrt(dev / np.maximum(finite - 1, 1)), np.nan)
    return mean, std


def _methods(results: ResultSet, benchmark: str) -> list[str]:
    return sorted({r.method for r in results.runs if r.benchmark == benchmark}, key=method_sort_key)


def forgetting_curves(results: ResultSet, benchmark: str, colors: dict[str, str], out_dir: Path) -> FigureFile:
    """A panel per task: its accuracy after each training step, per method; dashed = zero-shot level."""
    tasks = results.tasks(benchmark)
    runs = [r for r in results.runs if r.benchmark == benchmark]
    zs = zero_shot_level(runs)
    n = len(tasks)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    height = 2.3 * rows + 0.9
    fig = _new_figure(3.1 * cols, height, layout=None)  # fixed margins: constrained layout costs seconds here
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.45 / height + 0.02, top=1 - 0.85 / height,
                        wspace=0.28, hspace=0.45)
    axes = fig.subplots(rows, cols, sharex=True, squeeze=False)
    steps = np.arange(1, n + 1)
    for j, task in enumerate(tasks):
        ax = axes[j // cols][j % cols]
        ax.axvspan(j + 0.5, j + 1.5, color="#f0f0f0", zorder=0)  # the step that trains this task
        for method in _methods(results, benchmark):
            mean, std = _mean_std([r.matrix[:, j] for r in results.select(benchmark, method)])
            ax.plot(steps, mean, marker="o", ms=2.5, lw=1.4, color=colors[method], label=method)
            if std is not None:
                ax.fill_between(steps, mean - std, mean + std, color=colors[method], alpha=0.15, lw=0)
        if zs is not None and np.isfinite(zs[j]):
            ax.axhline(zs[j], color="black", ls="--", lw=0.9, label="zero-shot")
        ax.set_title(f"{j + 1}. {task}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("after training task", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy (%)", fontsize=8)
    axes[0][0].set_xticks(steps)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.3 / height),
               ncol=min(len(labels), 7), fontsize=8, frameon=False)
    fig.suptitle(f"{benchmark}: accuracy on each task across training (shaded: the task's own step)",
                 fontsize=10, y=1 - 0.05 / height, va="top")
    png, svg = _save(fig, out_dir, f"forgetting-{_slug(benchmark)}")
    return FigureFile(f"forgetting-{_slug(benchmark)}", "forgetting", benchmark,
                      f"{benchmark}: forgetting curves", png, svg)


def seen_class_curves(results: ResultSet, benchmark: str, colors: dict[str, str], out_dir: Path) -> FigureFile:
    """Class-incremental: accuracy on all classes seen so far after each step, one line per method."""
    n = len(results.tasks(benchmark))
    fig = _new_figure(5.5, 3.6)
    ax = fig.add_subplot()
    steps = np.arange(1, n + 1)
    for method in _methods(results, benchmark):
        mean, std = _mean_std([seen_curve(r) for r in results.select(benchmark, method)])
        ax.plot(steps, mean, marker="o", ms=3, lw=1.6, color=colors[method], label=method)
        if std is not None:
            ax.fill_between(steps, mean - std, mean + std, color=colors[method], alpha=0.15, lw=0)
    ax.set_xticks(steps)
    ax.set_xlabel("step (classes seen so far)")
    ax.set_ylabel("accuracy on seen classes (%)")
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(f"{benchmark}: class-incremental accuracy", fontsize=10)
    png, svg = _save(fig, out_dir, f"seen-{_slug(benchmark)}")
    return FigureFile(f"seen-{_slug(benchmark)}", "seen", benchmark, f"{benchmark}: seen-class accuracy", png, svg)


def matrix_heatmap(run: Run, out_dir: Path) -> FigureFile:
    """Rows: after task t; columns: task j. Lower triangle in colour, upper (not trained yet) in grey."""
    import matplotlib.patheffects as pe
    from matplotlib.colors import Normalize

    a = run.matrix
    n = len(run.tasks)
    size = min(12.0, max(3.8, 0.45 * n + 2.2))
    annotate = n <= ANNOTATE_MAX_TASKS
    fig = _new_figure(size + 0.9, size)
    ax = fig.add_subplot()
    norm = Normalize(0, 100)
    lower = np.where(np.tril(np.ones((n, n), bool)), a, np.nan)
    upper = np.where(np.triu(np.ones((n, n), bool), 1), a, np.nan)
    image = ax.imshow(np.ma.masked_invalid(lower), cmap="viridis", norm=norm)
    ax.imshow(np.ma.masked_invalid(upper), cmap="Greys", norm=Normalize(-40, 160), alpha=0.8)
    pending = [t for t in range(n) if not np.isfinite(a[t]).any()]
    for t in range(n):
        for j in range(n):
            if t in pending or not annotate:
                continue
            v = a[t, j]
            if not np.isfinite(v):
                ax.text(j, t, "–", ha="center", va="center", fontsize=7, color="#999999")
                continue
            color = "white" if (j <= t and v < 60) else "black"
            ax.text(j, t, f"{v:.0f}", ha="center", va="center", fontsize=7 if n <= 12 else 5.5, color=color,
                    style="italic" if j > t else "normal")
    for t in pending:
        ax.add_patch(_rect(-0.5, t - 0.5, n, 1, "#fafafa", hatch="////"))
        ax.text((n - 1) / 2, t, "pending", ha="center", va="center", fontsize=8, color="#666666",
                path_effects=[pe.withStroke(linewidth=3, foreground="white")])
    # staircase between the diagonal (just trained) and the upper triangle (zero-shot on future tasks)
    xs, ys = [-0.5], [-0.5]
    for t in range(n):
        xs += [t + 0.5, t + 0.5]
        ys += [t - 0.5, t + 0.5]
    ax.plot(xs, ys, color="#d62728", lw=2)
    labels = [f"{i + 1}. {name}" for i, name in enumerate(run.tasks)]
    tick = 7 if n <= 20 else 5
    ax.set_xticks(range(n), labels, rotation=55, ha="right", fontsize=tick)
    ax.set_yticks(range(n), [f"after {i + 1}" for i in range(n)], fontsize=tick)
    ax.set_xlabel("evaluated on task", fontsize=8)
    ax.set_ylabel("after training task", fontsize=8)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    cbar = fig.colorbar(image, ax=ax, shrink=0.8)
    cbar.set_label("accuracy (%)", fontsize=8)
    future = ("above the red line: classes not seen yet (not evaluated)" if run.protocol == "cil"
              else "grey, italic above the red line: tasks not trained yet (zero-shot)")
    ax.set_title(f"{run.benchmark} · {run.method} · seed {run.seed}\n{future}", fontsize=8)
    name = f"matrix-{_slug(run.benchmark)}-{_slug(run.method)}-seed{run.seed}"
    png, svg = _save(fig, out_dir, name)
    return FigureFile(name, "heatmap", run.benchmark, f"{run.benchmark} / {run.method} / seed {run.seed}",
                      png, svg, method=run.method, seed=run.seed)


def _rect(x: float, y: float, w: float, h: float, color: str, hatch: str = "") -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, facecolor=color, edgecolor="#cccccc", hatch=hatch, lw=0, zorder=3)


def metric_bars(results: ResultSet, benchmark: str, colors: dict[str, str], out_dir: Path) -> FigureFile:
    """Grouped bars: a group per headline metric (Transfer / Avg / Last), a bar per method, ± std whiskers."""
    protocol = results.protocol(benchmark)
    names = TABLE_METRICS[protocol]
    methods = _methods(results, benchmark)
    fig = _new_figure(max(4.8, 1.0 + 0.35 * len(methods) * len(names)), 3.4)
    ax = fig.add_subplot()
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(names))
    for i, method in enumerate(methods):
        stats = aggregate(results.select(benchmark, method))
        means = [stats[(m, OVERALL)].mean for m in names]
        stds = [stats[(m, OVERALL)].std for m in names]
        heights = [np.nan if v is None else v for v in means]
        errs = [0.0 if s is None else s for s in stds]
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, heights, width * 0.92, color=colors[method], label=method, yerr=errs, capsize=2,
               error_kw={"lw": 0.8})
        for p, v in zip(pos, means, strict=True):
            if v is None:
                ax.text(p, 1, "pending", rotation=90, ha="center", va="bottom", fontsize=6, color="#666666")
    ax.set_xticks(x, [METRIC_LABELS[m] for m in names])
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel("%")
    ax.grid(axis="y", alpha=0.3, lw=0.5)
    ax.legend(fontsize=7, frameon=False, ncol=min(len(methods), 4), loc="upper left", bbox_to_anchor=(0, -0.12))
    ax.set_title(f"{benchmark}: {' / '.join(METRIC_LABELS[m] for m in names)} (mean ± std over seeds)",
                 fontsize=10)
    png, svg = _save(fig, out_dir, f"bars-{_slug(benchmark)}")
    return FigureFile(f"bars-{_slug(benchmark)}", "bars", benchmark, f"{benchmark}: headline metrics", png, svg)


def make_figures(results: ResultSet, out_dir: Path) -> list[FigureFile]:
    """Every figure of a result set, written below ``out_dir``; colours are fixed once for all of them."""
    colors = method_colors(results.methods())
    figures: list[FigureFile] = []
    for bench in results.benchmarks():
        if results.protocol(bench) == "cil":
            figures.append(seen_class_curves(results, bench, colors, out_dir))
        else:
            figures.append(forgetting_curves(results, bench, colors, out_dir))
        figures.append(metric_bars(results, bench, colors, out_dir))
        for run in sorted((r for r in results.runs if r.benchmark == bench),
                          key=lambda r: (method_sort_key(r.method), r.seed)):
            figures.append(matrix_heatmap(run, out_dir))
    return figures
