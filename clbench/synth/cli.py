"""``clbench synth``: generate a benchmark's synthetic data into the shared cache before training.

It resolves the same configuration as ``clbench run`` (benchmark YAML < ``--config`` < ``--set``, the method's
``synth_*`` keys, then the flags here), so the images it makes are exactly the ones the run will look up.
``--shard i/n`` lets n processes or GPUs split the work without overlap; the last one to finish writes the
manifest. ``--executor local|slurm|ray --shards n`` submits the n shards as jobs of that executor (a SLURM job
array, Ray tasks, local processes) and waits for them. Interrupted runs resume where they stopped.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from clbench.errors import UserError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("synth", help="generate the synthetic data of a benchmark (GIFT) into the cache",
                              description="generate the synthetic data of a benchmark (GIFT) into the shared cache")
    p.add_argument("--benchmark", required=True)
    p.add_argument("--method", default="gift", help="method whose synth_* config to use (default gift)")
    p.add_argument("--config", help="YAML file with sections benchmark/model/train/method/methods")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (repeatable), e.g. gift.synth_steps=25")
    p.add_argument("--model", help="open_clip model of the run (sets the procedural image size)")
    p.add_argument("--backend", choices=["auto", "diffusers", "procedural"])
    p.add_argument("--generator", dest="gen_model", help="diffusers pipeline id or local folder")
    p.add_argument("--steps", type=int)
    p.add_argument("--guidance", type=float)
    p.add_argument("--size", type=int, help="image side in pixels (diffusers)")
    p.add_argument("--images-per-task", type=int)
    p.add_argument("--seed", type=int, help="synthetic-data seed (not the run seed)")
    p.add_argument("--batch-size", type=int,
                   help="prompts per generator call (default: 8 on CPU; on CUDA 8 per 16 GiB of GPU memory, at most 64)")
    p.add_argument("--compile", metavar="MODE",
                   help="torch.compile the diffusers UNet: none (default) | default | reduce-overhead | max-autotune")
    p.add_argument("--shard", default="0/1", help="i/n: this process makes chunk c when c %% n == i")
    p.add_argument("--cache", help="cache root (default $CLBENCH_SYNTH_CACHE or ~/.cache/clbench/synth)")
    p.add_argument("--format", choices=["png", "jpeg"])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--allow-download", action="store_true", default=None, help="let diffusers fetch the model")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--executor", help="submit --shards jobs to local | slurm | ray instead of generating here")
    p.add_argument("--shards", type=int, default=1, help="with --executor: jobs that split the work (default 1)")
    p.add_argument("--jobs", type=int, default=1, help="--executor local: shards at once (default 1)")
    from clbench.executors.options import add_option_flags

    add_option_flags(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from clbench.runner import config_layers, resolve
    from clbench.synth.cache import parse_shard
    from clbench.synth.jobs import generate_shard, prepare, shard_jobs
    from clbench.synthetic_data import backend_for

    try:
        shard = parse_shard(args.shard)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.executor is None and (args.shards != 1 or args.jobs != 1):
        raise UserError("--shards and --jobs go with --executor local|slurm|ray (one process: --shard i/n)")
    if args.executor is not None and args.shard != "0/1":
        raise UserError("--shard i/n is one process's part; with --executor give --shards n")
    if args.shards < 1 or args.jobs < 1:
        raise UserError(f"--shards and --jobs must be at least 1, got {args.shards} and {args.jobs}")
    layers = config_layers(args.benchmark, [args.method], args.config, args.overrides)
    cfg = resolve(args.benchmark, args.method, 0, layers, model=args.model)
    overrides = {k: v for k, v in dict(
        backend=args.backend, model=args.gen_model, steps=args.steps, guidance=args.guidance, size=args.size,
        images_per_task=args.images_per_task, seed=args.seed, generation_batch=args.batch_size, cache=args.cache,
        image_format=args.format, allow_download=args.allow_download, compile=args.compile,
        progress=False if args.quiet else None).items() if v is not None}
    if args.executor is not None:
        from clbench.executors import EXECUTORS, REMOTE, make_executor
        from clbench.executors.options import cli_options, merge_options

        if args.executor not in EXECUTORS:
            raise UserError(f"unknown executor {args.executor!r}; valid: {', '.join(EXECUTORS)}")
        gen = prepare(cfg, {**overrides, "progress": False}, args.device)
        if args.executor in REMOTE and not gen.cache.root.is_absolute():
            raise UserError(f"the synthetic cache {gen.cache.root} is relative: with --executor {args.executor} "
                            "shards run on other machines, so give --cache an absolute path every node can write")
        options = merge_options(args.executor, cli_options(args).get(args.executor, {}))
        jobs = shard_jobs(cfg, args.shards, overrides, args.device, gen=gen)
        print(f"{gen.bench.name}: {len(gen.plan.tasks)} tasks x {gen.options.images_per_task} images, cache "
              f"{gen.cache.dir}: " + (f"{len(jobs)} shard jobs on {args.executor}" if jobs else "complete already")
              + (f" (not {args.shards}: the plan is {len(jobs)} generator call(s))" if 0 < len(jobs) < args.shards
                 else ""))
        if not jobs:
            return 0
        runner = make_executor(args.executor, options, gen.cache.root, args.jobs, args.quiet)
        failed = [o for o in runner.submit(jobs) if o.status != "complete"]
        for o in failed:
            print(f"FAILED {o.label}: {o.error}", file=sys.stderr)
        if failed or gen.cache.read_manifest(gen.plan) is None:
            print(f"{len(failed)} of {len(jobs)} shards failed; run the same command again to make what is missing",
                  file=sys.stderr)
            return 1
        print(f"manifest {gen.manifest}")
        return 0
    gen = prepare(cfg, overrides, args.device)
    print(f"{gen.bench.name}: {len(gen.plan.tasks)} tasks x {gen.options.images_per_task} images, backend "
          f"{backend_for(gen.options, gen.bench)}, cache {gen.cache.dir}")
    generate_shard(gen, shard)
    return 0
