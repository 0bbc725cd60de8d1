"""One process vs ``--nproc N`` for the same run: training and evaluation time from ``run.json``'s cost.

    python perf/ddp_scaling.py [--nproc 2] [--iterations 40] [--batch-size 32] [--method finetune] [--device cpu]

Runs ``clbench run`` on the smoke benchmark twice (the baseline with every thread in one process, then N
processes sharing them), interleaved ``--repeats`` times, and prints the training and evaluation seconds of each
(rank 0's clock, start-up excluded: imports, process spawn and data set-up are not in these phases), the
ratios baseline / N processes (> 1: N processes are faster) and whether both matrices are equal. On a CPU the
processes share the same cores, so this measures the overhead of the all-reduce and of sharding rather than a
speed-up; a speed-up needs one device per process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def one_run(out: Path, method: str, iterations: int, batch: int, device: str, nproc: int) -> tuple[dict, list]:
    args = [sys.executable, "-m", "clbench.cli", "run", "--methods", method, "--benchmark", "smoke", "--out",
            str(out), "--quiet", "--device", device, "--set", f"train.iterations={iterations}",
            "--set", f"train.batch_size={batch}", "--set", "train.eval_initial=false"]
    if nproc > 1:
        args += ["--nproc", str(nproc)]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"clbench run failed: {done.stderr.strip()}")
    run = next(out.rglob("run.json"))
    phases = json.loads(run.read_text())["cost"]["phases"]
    matrix = json.loads((run.parent / "matrix.json").read_text())["rows"]
    return phases, matrix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--method", default="finetune")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    times: dict[int, dict[str, list[float]]] = {1: {"training": [], "evaluation": []},
                                                args.nproc: {"training": [], "evaluation": []}}
    matrices: dict[int, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for n in (1, args.nproc):
                phases, matrices[n] = one_run(Path(tmp) / f"{n}-{r}", args.method, args.iterations,
                                              args.batch_size, args.device, n)
                for phase in ("training", "evaluation"):
                    times[n][phase].append(phases[phase]["seconds"])
    steps = 3 * (args.iterations + 1)
    print(f"{args.method} on smoke, {steps} steps of batch {args.batch_size}, device {args.device}, "
          f"median of {args.repeats}")
    for phase in ("training", "evaluation"):
        one, many = statistics.median(times[1][phase]), statistics.median(times[args.nproc][phase])
        extra = f" ({1000 * one / steps:.1f} vs {1000 * many / steps:.1f} ms/step)" if phase == "training" else ""
        print(f"{phase:>10}: 1 process {one:.2f} s, {args.nproc} processes {many:.2f} s, "
              f"ratio 1-proc/{args.nproc}-proc {one / many:.2f}{extra}")
    print(f"matrices equal: {matrices[1] == matrices[args.nproc]}")


if __name__ == "__main__":
    main()
