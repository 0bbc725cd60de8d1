"""Figures and the self-contained HTML page, the latter rendered in a real headless Chromium."""

from __future__ import annotations

import argparse
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from clbench import metrics
from clbench.report.cli import main, register
from clbench.report.figures import METHOD_COLORS
from clbench.store import find_runs
from tests.report.chromium_setup import HEADLESS_FLAGS, ensure_chromium
from tests.report.report_fixtures import build_results


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default report (all formats, figures) of the shapes result set (6 MTIL tasks: faster); built once."""
    root = build_results(tmp_path_factory.mktemp("html") / "results", n_tasks=6)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    assert main(parser.parse_args(["report", str(root)])) == 0
    return root


@pytest.fixture(scope="session")
def chromium() -> str:
    path, reason = ensure_chromium()
    if path is None:
        pytest.skip(f"headless Chromium unavailable: {reason}")
    return path


class Cells(HTMLParser):
    """Collects leaderboard cells (their data-* attributes and text), images and links."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str]] = []
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self._cell: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "td" and "data-kind" in a:
            self._cell = {**a, "text": "", "strong": ""}
        if tag == "strong" and self._cell is not None:
            self._cell["strong"] = "1"
        if tag in ("img", "script", "link") and ("src" in a or "href" in a):
            self.srcs.append(a.get("src") or a.get("href", ""))
        if tag == "a":
            self.hrefs.append(a.get("href", ""))

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.cells.append(self._cell)
            self._cell = None


def parse_cells(html: str) -> Cells:
    p = Cells()
    p.feed(html)
    return p


def expected_from_store(root: Path) -> dict[tuple[str, str, str], list[float]]:
    """(benchmark, method, metric) -> per-seed values, straight from the stored matrices."""
    out: dict[tuple[str, str, str], list[float]] = {}
    for rd in find_runs(root):
        info = rd.read_run()
        if "benchmark" not in info:
            continue
        rec = rd.read_matrix()
        values = metrics.compute(info["protocol"], rec.array(), rec.counts)
        for name, value in values.items():
            out.setdefault((info["benchmark"], info["method"], name), []).append(value)
    return out


def test_figures_exist_in_png_and_svg_with_one_colour_per_method(report: Path) -> None:
    figs = report / "report" / "figures"
    pngs = sorted(p.stem for p in figs.glob("*.png"))
    assert sorted(p.stem for p in figs.glob("*.svg")) == pngs
    assert {"forgetting-shapes_mtil_order1", "bars-shapes_mtil_order1", "seen-shapes_cil_5",
            "bars-shapes_cil_5"} <= set(pngs)
    assert len([p for p in pngs if p.startswith("matrix-")]) == len(find_runs(report))  # a heatmap per run
    assert all((figs / f"{p}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    finetune = METHOD_COLORS["finetune"]
    for name in ("forgetting-shapes_mtil_order1", "bars-shapes_mtil_order1", "seen-shapes_cil_5"):
        assert finetune in (figs / f"{name}.svg").read_text(), name


def test_html_is_self_contained(report: Path) -> None:
    html = (report / "report" / "index.html").read_text()
    page = parse_cells(html)
    assert page.srcs and all(s.startswith("data:image/png;base64,") for s in page.srcs)
    assert all(h.startswith("#") for h in page.hrefs)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script" not in html


def test_chromium_renders_leaderboard_matching_the_run_store(report: Path, chromium: str, tmp_path: Path) -> None:
    page_url = (report / "report" / "index.html").resolve().as_uri()
    base = [chromium, *HEADLESS_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", page_url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    cells = parse_cells(dom.stdout).cells
    assert cells, "the browser's DOM has no leaderboard cells"

    expected = expected_from_store(report)
    overall = [c for c in cells if c["data-kind"] == "value" and not c.get("data-task")]
    checked = 0
    for c in overall:
        values = expected[(c["data-benchmark"], c["data-method"], c["data-metric"])]
        assert float(c["data-mean"]) == pytest.approx(np.mean(values))
        shown = f"{np.mean(values):.1f}"
        if len(values) > 1:
            shown += f" ± {np.std(values, ddof=1):.1f}"
        assert c["text"].strip() == shown
        checked += 1
    assert checked >= 10
    pending = [c for c in cells if c["data-method"] == "lwf" and c["data-kind"] == "pending"]
    assert pending and all(c["text"] == "pending" for c in pending)
    best = [c for c in cells if "best" in c.get("class", "")]
    assert best and all(c["strong"] for c in best)

    shot = tmp_path / "report.png"
    run = subprocess.run([*base, f"--screenshot={shot}", "--window-size=1280,2000", page_url],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2000, 1280)
    assert (pixels < 200).mean() > 0.05  # tables and figures drawn, not a blank page


def test_html_lists_run_metadata(report: Path) -> None:
    html = (report / "report" / "index.html").read_text()
    runs = re.search(r'<table class="runs">.*?</table>', html, re.S)
    assert runs is not None
    body = runs.group(0)
    for text in ("shapes_mtil_order1", "finetune", "14.5 s", "cpu", "2.14.1", "0123456789ab", "3/6 tasks"):
        assert text in body, text
    assert "batch_size: 64" in html  # the resolved config of every run
