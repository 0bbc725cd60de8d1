"""The ``clbench`` command: a thin layer over the library (run, list, score, report, world, data, synth).

Bad input ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from clbench.errors import UserError

# Subcommands implemented in their own packages: module path -> exposes register(subparsers).
PLUGGED_COMMANDS = ("clbench.report.cli", "clbench.world.cli", "clbench.data_check", "clbench.synth.cli")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (and exit 2)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


MAX_SEED = 2**31 - 1  # engine seeds are derived as seed * 1009 + task: this keeps them inside torch's range


def _seeds(value: str) -> list[int]:
    try:
        seeds = [int(v) for v in _split(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds expects integers separated by commas, got {value!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds is empty; give at least one seed, e.g. --seeds 0,1,2")
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:
        raise argparse.ArgumentTypeError(f"seed {bad[0]} is outside 0..{MAX_SEED}")
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds lists a seed twice: {value!r}")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="clbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    run = sub.add_parser("run", help="train and evaluate methods on a benchmark")
    run.add_argument("--methods", required=True, type=_split, help="comma-separated method names")
    run.add_argument("--benchmark", required=True)
    run.add_argument("--seeds", type=_seeds, default=[0], help="comma-separated seeds (default 0)")
    run.add_argument("--model", help="open_clip model name or hf-hub: id (default: the benchmark's)")
    run.add_argument("--pretrained", help="pretrained tag or local checkpoint path (default: the benchmark's)")
    run.add_argument("--config", help="YAML file with sections benchmark/model/train/method/methods")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override one config value (repeatable), e.g. train.lr=1e-4 or zscl.weight_image=5")
    run.add_argument("--out", default="results", help="results root (default: results/)")
    run.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    run.add_argument("--resume", action="store_true", help="continue runs after their last completed task")
    run.add_argument("--force", action="store_true", help="delete existing runs of the same config and start over")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--jobs", type=int, default=1,
                     help="run the (method, seed) pairs in N processes, sharing the CPU threads (default 1)")
    run.add_argument("--logger", type=_split, default=None, metavar="NAMES",
                     help="also log steps and accuracies to csv,tensorboard,wandb (= --set train.loggers=[...])")
    run.add_argument("--nproc", type=int, default=None, metavar="N",
                     help="train and evaluate each run with N data-parallel processes (one GPU each on CUDA; "
                          "also set by torchrun); same batch and schedule as one process")
    run.set_defaults(func=cmd_run)

    lst = sub.add_parser("list", help="list methods, benchmarks or suites")
    lst.add_argument("what", choices=["methods", "benchmarks", "suites"])
    lst.set_defaults(func=cmd_list)

    sw = sub.add_parser("sweep", help="run a suite (a paper table) on an executor, then write its report")
    sw.add_argument("suite", help="a shipped suite (clbench list suites) or the path of a suite .yaml")
    sw.add_argument("--executor", default="local", help="local (default) | slurm | ray")
    sw.add_argument("--jobs", type=int, default=1, help="local executor: runs at once (default 1)")
    sw.add_argument("--dry-run", action="store_true", help="print the runs to do with cost estimates; run nothing")
    sw.add_argument("--resume", action="store_true", help="continue incomplete runs after their last task")
    sw.add_argument("--out", default="results", help="results root (default: results/; absolute for slurm/ray)")
    sw.add_argument("--device", default="auto", help="auto | cpu | cuda[:N], where each run happens")
    sw.add_argument("--quiet", action="store_true", help="no progress output")
    sw.add_argument("--no-report", dest="report", action="store_false", help="skip the closing report")
    sw.add_argument("--logger", type=_split, default=None, metavar="NAMES",
                    help="also log steps and accuracies to csv,tensorboard,wandb in every run (results-neutral)")
    sw.add_argument("--synth-shards", type=int, default=1, metavar="N",
                    help="synthetic data (GIFT) the runs need and the cache lacks: N generation jobs first on the "
                         "same executor (default 1; 0: each run makes its own)")
    from clbench.executors.options import add_option_flags

    add_option_flags(sw)
    sw.set_defaults(func=cmd_sweep)

    st = sub.add_parser("status", help="one line per run of a results folder: done / running / failed / pending")
    st.add_argument("results_dir", nargs="?", default="results", metavar="RESULTS_DIR")
    st.add_argument("--stale-after", type=float, default=600.0, metavar="SECONDS",
                    help="a running run whose files have not changed for this long is stale (default 600)")
    st.set_defaults(func=cmd_status)

    score = sub.add_parser("score", help="paper metrics of an accuracy matrix (csv, npy or json)")
    score.add_argument("matrix", help="rows = after task t, columns = tasks, both in training order")
    score.add_argument("--protocol", required=True, choices=["mtil", "cil", "medxtreme", "xtail"])
    score.add_argument("--json", action="store_true", help="print one machine-readable JSON object")
    score.set_defaults(func=cmd_score)

    for module in PLUGGED_COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from clbench.runner import run_many

    overrides = list(args.overrides)
    if args.logger is not None:
        overrides.append(f"train.loggers=[{','.join(args.logger)}]")
    return run_many(
        methods=args.methods, benchmark=args.benchmark, seeds=args.seeds, model=args.model,
        pretrained=args.pretrained, config_file=args.config, overrides=overrides, out=args.out,
        device=args.device, resume=args.resume, force=args.force, quiet=args.quiet, jobs=args.jobs,
        nproc=args.nproc, argv=args.argv,
    )


def cmd_sweep(args: argparse.Namespace) -> int:
    from clbench.executors.options import cli_options
    from clbench.sweep import sweep

    options = cli_options(args)
    return sweep(args.suite, executor=args.executor, jobs=args.jobs, dry_run=args.dry_run, resume=args.resume,
                 out=args.out, device=args.device, cli_options=options, quiet=args.quiet, report=args.report,
                 loggers=args.logger, synth_shards=args.synth_shards)


def cmd_status(args: argparse.Namespace) -> int:
    from clbench.status import status

    return status(args.results_dir, stale_after=args.stale_after)


def cmd_list(args: argparse.Namespace) -> int:
    from clbench.listing import describe_benchmarks, describe_methods
    from clbench.suite import describe_suites

    lines = {"methods": describe_methods, "benchmarks": describe_benchmarks, "suites": describe_suites}[args.what]()
    print("\n".join(lines))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from clbench.matrix_io import read_matrix
    from clbench.metrics import compute

    matrix, names = read_matrix(args.matrix)
    outside = np.argwhere(~np.isnan(matrix) & ((matrix < 0) | (matrix > 100)))
    if len(outside):
        t, j = outside[0]
        raise UserError(f"{args.matrix}: accuracy {float(matrix[t, j])!r} at row {t + 1}, column {j + 1} is outside "
                        "[0, 100]; the matrix must hold percentages")
    try:
        values = compute(args.protocol, matrix)
    except ValueError as exc:
        raise UserError(f"{args.matrix}: {exc}") from None
    if args.json:  # JSON has no NaN: an undefined metric (e.g. transfer of one task) is null
        clean = {k: (v if np.isfinite(v) else None) for k, v in values.items()}
        print(json.dumps({"protocol": args.protocol, "tasks": names, "metrics": clean}, allow_nan=False))
    else:
        print("  ".join(f"{k}={v:.2f}" for k, v in values.items()))
    return 0


def report_error(line: str) -> None:
    """Where ``main`` sends its one error line: stderr (a rank spawned by ``--nproc`` sends it to the launcher,
    which prints one line for the whole command)."""
    rank = os.environ.get("RANK", "0") if "WORLD_SIZE" in os.environ else "0"
    if rank != "0":  # under torchrun every rank reports: say which one
        line = line.replace("clbench: ", f"clbench (rank {rank}): ", 1)
    sys.stderr.write(line + "\n")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _save_traceback() -> str | None:
    """Write the current exception's traceback to a file for a bug report; its path, or None if unwritable."""
    import tempfile
    import traceback

    try:
        fd, path = tempfile.mkstemp(prefix="clbench-crash-", suffix=".log")
        with os.fdopen(fd, "w") as fh:
            fh.write(f"clbench {' '.join(sys.argv[1:])}\n\n")
            traceback.print_exc(file=fh)
        return path
    except OSError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Bad input: one line, exit 2. A bug: one line naming a saved traceback, exit 1. Never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        code: Any = args.func(args)
    except UserError as exc:
        report_error(f"clbench: error: {_one_line(exc)}")
        return 2
    except KeyboardInterrupt:
        report_error("clbench: interrupted")
        return 130
    except OSError as exc:  # a file the command reads or writes: predictable, not a bug
        where = f" ({exc.filename})" if exc.filename else ""
        report_error(f"clbench: error: {_one_line(exc.strerror or exc)}{where}; check the path and its "
                     "permissions")
        return 2
    except Exception as exc:  # noqa: BLE001 - last resort: a genuine bug must still not spill a traceback
        saved = _save_traceback()
        where = f"full traceback in {saved}" if saved else "no traceback file could be written"
        report_error(f"clbench: internal error: {type(exc).__name__}: {_one_line(exc)[:300]} ({where}; "
                     "please report it)")
        return 1
    return int(code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
