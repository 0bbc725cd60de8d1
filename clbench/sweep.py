"""``clbench sweep SUITE``: a whole paper table in one command.

Expands the suite's grid (identical cells collapse on the run store's config hash), skips complete runs, resumes
incomplete ones, hands the rest to an executor (which only decides where runs happen) and ends with the
report (``clbench report OUT --published``). Failed cells are listed and never stop the others. When runs need
synthetic data (GIFT) that the cache lacks, ``--synth-shards`` generation jobs go first on the same executor
(:mod:`clbench.synth.jobs`), so the runs find their images instead of each making them.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clbench.errors import UserError
from clbench.executors import EXECUTORS, REMOTE, make_executor
from clbench.executors.job import FAILED_FILE, CellJob
from clbench.executors.options import merge_options
from clbench.store import config_hash, find_runs, write_json
from clbench.suite import Cell, Suite, load_suite

PLAN_DIR = ".sweeps"


@dataclass
class CellState:
    cell: Cell
    state: str  # new | resume | done | failed
    done: int = 0
    total: int = 0
    wall_time_s: float | None = None  # of this run so far (resume/done)
    estimate_s: float | None = None  # remaining cost, from this run or a sibling seed's complete run
    estimate_from: str = ""


def plan_cells(suite: Suite, out: Path) -> list[CellState]:
    """Each cell's state in the store, with a cost estimate where a comparable run exists."""
    siblings = _complete_runs_by_seedless_hash(out, suite)
    states = []
    for cell in suite.cells:
        rd = cell.run_dir(out)
        twin = siblings.get(_seedless_hash(cell.config.to_dict()))
        if rd.exists():
            info = rd.read_run()
            done, total = int(info.get("completed_tasks", 0)), len(info.get("tasks", []))
            wall = float(info.get("wall_time_s", 0.0))
            if info.get("status") == "complete":
                states.append(CellState(cell, "done", done, total, wall, 0.0, "complete"))
                continue
            state = "failed" if (rd.path / FAILED_FILE).exists() else "resume"
            est, src = None, ""
            if twin is not None:
                est, src = twin[0] * (total - done) / max(total, 1), twin[1]
            elif done > 0:
                est, src = wall * (total - done) / done, "this run's pace"
            states.append(CellState(cell, state, done, total, wall, est, src))
            continue
        state = "failed" if (rd.path / FAILED_FILE).exists() else "new"
        est, src = (twin[0], twin[1]) if twin is not None else (None, "")
        states.append(CellState(cell, state, estimate_s=est, estimate_from=src))
    return states


def _seedless_hash(cfg: dict[str, Any]) -> str:
    """The configuration without its seed and results-neutral train keys (loggers, checkpoint cadence, caches)."""
    from clbench.config import RESULTS_NEUTRAL_TRAIN_KEYS

    train = {k: v for k, v in (cfg.get("train") or {}).items() if k not in RESULTS_NEUTRAL_TRAIN_KEYS}
    return config_hash({**cfg, "train": train, "seed": None})


def _complete_runs_by_seedless_hash(out: Path, suite: Suite) -> dict[str, tuple[float, str]]:
    """Complete runs of the suite's benchmarks: seed-free config hash -> (wall time, where from)."""
    found: dict[str, tuple[float, str]] = {}
    for bench in suite.benchmarks:
        for rd in find_runs(out / bench):
            try:
                info = rd.read_run()
                if info.get("status") != "complete":
                    continue
                cfg = yaml.safe_load((rd.path / "config.yaml").read_text())
            except (OSError, ValueError, yaml.YAMLError):
                continue
            found.setdefault(_seedless_hash(cfg), (float(info.get("wall_time_s", 0.0)), str(rd.path)))
    return found


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}min"
    return f"{seconds / 3600:.1f}h"


def dry_run_lines(states: list[CellState], out: Path) -> list[str]:
    lines = []
    for s in states:
        c = s.cell
        what = {"new": "run", "resume": f"resume after task {s.done}/{s.total}", "done": "skip (complete)",
                "failed": f"retry (failed before; {s.done}/{s.total} tasks kept)" if s.total else
                          "retry (failed before)"}[s.state]
        est = "" if s.state == "done" else (
            f"  est {_fmt_duration(s.estimate_s)} (from {s.estimate_from})" if s.estimate_s is not None
            else "  est ? (no previous run of this cell)")
        lines.append(f"{c.benchmark:<20} {c.method:<10} seed {c.seed:<3} {what}{est}  -> {c.run_dir(out).path}")
    todo = [s for s in states if s.state != "done"]
    known = [s.estimate_s for s in todo if s.estimate_s is not None]
    lines.append(f"{len(todo)} of {len(states)} runs to do; estimated {_fmt_duration(sum(known))} of run time "
                 f"for {len(known)} of them" + (f", {len(todo) - len(known)} without an estimate"
                                                if len(todo) > len(known) else ""))
    return lines


def write_plan(out: Path, suite: Suite, executor: str) -> Path:
    """The sweep's cell list, so ``clbench status OUT`` can show cells that have not started yet."""
    path = out / PLAN_DIR / f"{suite.name}.json"
    cells = [{"benchmark": c.benchmark, "method": c.method, "seed": c.seed, "run_dir": str(c.run_dir(out).path)}
             for c in suite.cells]
    write_json(path, {"suite": suite.name, "source": str(suite.source), "executor": executor,
                      "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cells": cells})
    return path


def sweep(suite_name: str, executor: str = "local", jobs: int = 1, dry_run: bool = False, resume: bool = False,
          out: str = "results", device: str = "auto", cli_options: dict[str, dict[str, Any]] | None = None,
          quiet: bool = False, report: bool = True, loggers: list[str] | None = None, synth_shards: int = 1) -> int:
    """Validate everything, run what is missing, write the report; exit code 1 when a cell failed.

    ``loggers`` (``--logger``) replaces ``train.loggers`` in every cell (results-neutral: same run folders).
    ``synth_shards``: generation jobs per synthetic plan the runs need and the cache lacks (0: the runs make it)."""
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    if synth_shards < 0:
        raise UserError(f"--synth-shards must be 0 (runs generate their own) or more, got {synth_shards}")
    suite = load_suite(suite_name)
    if loggers is not None:
        from dataclasses import replace

        from clbench.loggers import check_loggers

        check_loggers(loggers)
        suite.cells = [replace(c, config=replace(c.config, train=replace(c.config.train, loggers=list(loggers))))
                       for c in suite.cells]
    if executor in REMOTE and not Path(out).is_absolute():
        raise UserError(f"--out {out!r} is relative: with --executor {executor} runs happen on other machines, so "
                        "give an absolute path on a filesystem every node can write (e.g. /shared/results)")
    options = merge_options(executor, (cli_options or {}).get(executor, {}),
                            (f"suite {suite.source}", suite.executor.get(executor) or {}))
    root = Path(out)
    states = plan_cells(suite, root)
    todo = [s for s in states if s.state != "done"]
    unfinished = [s for s in states if s.state in ("resume", "failed") and s.total]
    if unfinished and not resume and not dry_run:
        raise UserError(f"{len(unfinished)} run(s) of this suite are incomplete (e.g. {unfinished[0].cell.run_dir(root).path}); "
                        "pass --resume to continue them")
    synth_jobs, synth_notes = [], []
    if synth_shards and todo:
        from clbench.synth.jobs import sweep_shard_jobs

        synth_jobs, synth_notes = sweep_shard_jobs([s.cell.config for s in todo], synth_shards, device)
    for note in synth_notes:
        print(f"note: {note}", file=sys.stderr)
    if dry_run:
        print(f"suite {suite.name}: {len(suite.cells)} runs"
              + (f" ({suite.duplicates} duplicate cells collapsed)" if suite.duplicates else "")
              + f", executor {executor}" + (f" {options}" if options else ""))
        for bench, plan_dir in dict.fromkeys((j.config.benchmark, j.cache_dir) for j in synth_jobs):
            shards = sum(j.config.benchmark == bench and j.cache_dir == plan_dir for j in synth_jobs)
            print(f"first: synthetic data of {bench} in {shards} shard job(s) -> {plan_dir}")
        print("\n".join(dry_run_lines(states, root)))
        return 0
    if executor in REMOTE:
        for j in synth_jobs:
            if not Path(j.cache_dir).is_absolute():
                raise UserError(f"the synthetic cache {j.cache_dir} is relative: with --executor {executor} runs "
                                "happen on other machines, so set $CLBENCH_SYNTH_CACHE (or synth_cache) to an "
                                "absolute path every node can read")
    runner = make_executor(executor, options, root, jobs, quiet)  # fails (one line) before anything is written
    say = (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    say(f"suite {suite.name}: {len(todo)} of {len(states)} runs to do on {executor}"
        f" ({len(states) - len(todo)} already complete)"
        + (f", after {len(synth_jobs)} synthetic-data shard job(s)" if synth_jobs else ""))
    write_plan(root, suite, executor)
    cell_jobs = [CellJob(config=s.cell.config, out=str(root), device=device, resume=True,
                         threads=options.get("cpus_per_task")) for s in todo]
    t0 = time.time()
    outcomes = runner.submit(cell_jobs, first=synth_jobs) if cell_jobs else []
    for o in outcomes[:len(synth_jobs)]:
        if o.status != "complete":
            print(f"WARNING {o.label} failed: {o.error}; the runs make the images it left out", file=sys.stderr)
    outcomes = outcomes[len(synth_jobs):]
    failed = [o for o in outcomes if o.status == "failed"]
    say(f"{len(outcomes) - len(failed)} runs finished, {len(failed)} failed, "
        f"{len(states) - len(todo)} skipped (complete) in {time.time() - t0:.1f}s on {executor}")
    for o in failed:
        marker = Path(o.run_dir) / FAILED_FILE
        if not marker.exists():  # the job died without a word (killed, out of memory, node lost)
            write_json(marker, {"error": o.error, "traceback": "", "host": o.host,
                                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        print(f"FAILED {o.label}: {o.error} (see {Path(o.run_dir) / FAILED_FILE})", file=sys.stderr)
    if report and len(failed) < len(states):
        _report(root, suite)
    return 1 if failed else 0


def _report(root: Path, suite: Suite) -> None:
    """``clbench report OUT --published`` restricted to the suite's benchmarks and methods."""
    from clbench.cli import build_parser

    argv = ["report", str(root), "--published", "--methods", ",".join(suite.methods)]
    for b in suite.benchmarks:
        argv += ["--benchmark", b]
    args = build_parser().parse_args(argv)
    args.func(args)


def read_plans(root: Path) -> list[dict[str, Any]]:
    plans = []
    for path in sorted((Path(root) / PLAN_DIR).glob("*.json")):
        try:
            plans.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return plans
