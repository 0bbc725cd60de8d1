"""Per-job overhead of each sweep executor: submit -> run starts -> results collected, minus the run's own time.

    python perf/executor_overhead.py [--executors local,slurm,ray] [--repeats 3] [--cells 1]

One smoke cell (finetune, 3 tasks x 2 iterations: about a second of compute) is swept ``--repeats`` times per
executor into fresh folders. Plain baseline: the same cell through ``run_cell`` in this process (no executor).
Per job it prints: total (submit -> results back), start latency (submit -> the run's config.yaml is written,
just before its first training step), the run's own wall time (run.json) and overhead = total - own time;
then the ratio of each executor's total to the baseline's. Targets (issue 10): SLURM <= 10 s, Ray <= 3 s per job.
For slurm it also splits the time: submit (sweep start -> sbatch accepted, sacct Submit), queue (Submit ->
Start), startup (job start -> the run's config.yaml: python, imports, model and benchmark build), the run's own
time, and collect (run.json's last write -> results back in the sweep). sacct times have 1 s resolution.
``--cells N`` sweeps N seeds of the cell at once and adds per-job figures (total / N): a Ray worker runs cell
after cell with its imports warm, a SLURM array task is a fresh process each time.
The slurm executor needs sbatch (``.ci/slurm_setup.sh start``); ray needs a cluster at $RAY_ADDRESS, e.g. inside
a loopback-only namespace: ``unshare -n python tests/executors/ray_netns.py exec -- python perf/executor_overhead.py
--executors ray``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

SUITE = """
methods: [finetune]
benchmarks: [smoke]
seeds: [SEEDS]
config: {train: {iterations: 2, warmup: 1, eval_initial: false}}
executor: {slurm: {cpus_per_task: 1, mem_gb: 2, timeout_min: 10}}
"""


def slurm_split(out: Path, t0: float, t_end: float, own: float) -> dict[str, float]:
    """submit / queue / startup / own / collect seconds of the sweep's one SLURM job (see the docstring)."""
    import subprocess
    from datetime import datetime

    (job,) = [p.name for p in (out / ".submitit").iterdir() if p.is_dir()]
    line = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job, "-o", "Submit,Start"], capture_output=True,
                          text=True, check=True).stdout.split()[0]
    submit, start = (datetime.fromisoformat(x).timestamp() for x in line.split("|"))
    run = next(p for p in out.rglob("run.json") if ".submitit" not in p.parts)
    started = (run.parent / "config.yaml").stat().st_mtime
    return {"submit": submit - t0, "queue": start - submit, "startup": started - start, "own": own,
            "collect": t_end - run.stat().st_mtime}


SPLITS: list[dict[str, float]] = []


def one(executor: str, suite: Path, out: Path) -> tuple[float, float, float]:
    """(total, start latency, the runs' own wall times summed) of one sweep of the suite."""
    from clbench.suite import load_suite
    from clbench.sweep import sweep

    t0 = time.time()
    if executor == "plain":
        from clbench.executors.job import CellJob, run_cell

        for cell in load_suite(str(suite)).cells:
            outcome = run_cell(CellJob(cell.config, str(out)))
            assert outcome.status == "complete", outcome
    else:
        code = sweep(str(suite), executor=executor, out=str(out), quiet=True, report=False)
        assert code == 0, f"{executor} sweep failed"
    total = time.time() - t0
    runs = [p for p in out.rglob("run.json") if ".submitit" not in p.parts]
    start = min((p.parent / "config.yaml").stat().st_mtime for p in runs) - t0
    own = sum(float(json.loads(p.read_text())["wall_time_s"]) for p in runs)
    if executor == "slurm" and len(runs) == 1:
        SPLITS.append(slurm_split(out, t0, t0 + total, own))
    return total, start, own


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executors", default="local,slurm,ray")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cells", type=int, default=1,
                        help="cells per sweep (seeds 0..N-1): per-job figures where an executor reuses processes")
    args = parser.parse_args()
    executors = ["plain"] + [e for e in args.executors.split(",") if e]
    with tempfile.TemporaryDirectory(prefix="clbench-overhead-", dir="/tmp") as tmp:
        suite = Path(tmp) / "one.yaml"
        suite.write_text(SUITE.replace("SEEDS", ", ".join(str(i) for i in range(args.cells))))
        one("plain", suite, Path(tmp) / "warm")  # imports and first-time caches, not measured
        results: dict[str, list[tuple[float, float, float]]] = {e: [] for e in executors}
        for r in range(args.repeats):  # interleaved, so a load change hits every executor alike
            for e in executors:
                results[e].append(one(e, suite, Path(tmp) / f"{e}-{r}"))
    base = statistics.median(t for t, _, _ in results["plain"])
    print(f"{'executor':<8} {'total s':>8} {'start s':>8} {'own s':>7} {'overhead s':>10} {'vs plain':>9}")
    for e, rows in results.items():
        total, start, own = (statistics.median(x[i] for x in rows) for i in range(3))
        print(f"{e:<8} {total:8.2f} {start:8.2f} {own:7.2f} {total - own:10.2f} {total / base:8.2f}x")
    print(f"(medians of {args.repeats}; plain = run_cell in this process, no executor)")
    if args.cells > 1:
        for e, rows in results.items():
            total = statistics.median(x[0] for x in rows)
            print(f"{e:<8} per job: {total / args.cells:6.2f} s, overhead vs plain {(total - base) / args.cells:6.2f} s")
    if SPLITS:
        print("slurm split (median s): " + ", ".join(
            f"{k} {statistics.median(s[k] for s in SPLITS):.1f}" for k in SPLITS[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
