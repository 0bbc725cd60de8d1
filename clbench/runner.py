"""Resolve configurations for (method, seed) pairs, run them through the engine, print a leaderboard."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from clbench.benchmark import BenchmarkDef
from clbench.config import (
    ModelConfig,
    ResolvedConfig,
    TrainConfig,
    apply_overrides,
    check_generic_method_keys,
    check_sections,
    load_yaml_file,
    method_section,
    parse_set,
)
from clbench.errors import UserError
from clbench.registry import BENCHMARKS, METHODS
from clbench.store import RunDir


def resolve(benchmark: str, method: str, seed: int, layers: list[dict[str, Any]],
            model: str | None = None, pretrained: str | None = None) -> ResolvedConfig:
    """One run's configuration: dataclass defaults, then each layer in order (benchmark YAML first)."""
    bench_def: BenchmarkDef = BENCHMARKS.get(benchmark)
    method_cls = METHODS.get(method)
    options = bench_def.options()
    model_cfg = ModelConfig()
    train_cfg = TrainConfig()
    for layer in layers:
        bench_values = {k: v for k, v in (layer.get("benchmark") or {}).items() if k != "name"}
        options = apply_overrides(options, "benchmark", bench_values)
        model_cfg = apply_overrides(model_cfg, "model", layer.get("model") or {})
        train_cfg = apply_overrides(train_cfg, "train", layer.get("train") or {})
    method_values, method_train = method_section(layers, method, method_cls.Config)
    method_cfg = apply_overrides(method_cls.Config(), method, method_values)
    train_cfg = apply_overrides(train_cfg, "train", method_train)
    if model is not None:
        model_cfg = apply_overrides(model_cfg, "model", {"name": model})
    if pretrained is not None:
        model_cfg = apply_overrides(model_cfg, "model", {"pretrained": pretrained})
    train_cfg.validate()
    return ResolvedConfig(benchmark=benchmark, method=method, seed=seed, benchmark_options=options,
                          model=model_cfg, train=train_cfg, method_config=method_cfg)


def config_layers(benchmark: str, methods: list[str], config_file: str | None,
                  overrides: list[str]) -> list[dict[str, Any]]:
    bench_def: BenchmarkDef = BENCHMARKS.get(benchmark)
    layers = [bench_def.defaults]
    if config_file:
        layer = load_yaml_file(config_file)
        check_sections(layer, methods, config_file)
        layers.append(layer)
    if overrides:
        layer = parse_set(overrides)
        check_sections(layer, methods, "--set")
        layers.append(layer)
    check_generic_method_keys(layers[1:], {m: METHODS.get(m).Config for m in methods})
    return layers


def run_one(cfg: ResolvedConfig, out: str, device: str, resume: bool, force: bool, quiet: bool,
            threads: int | None = None) -> tuple[dict[str, float], str, str, bool]:
    """One (method, seed) run in a worker process of ``--jobs``: (metrics, protocol, run dir, skipped)."""
    import torch

    from clbench.engine import Engine

    if threads is not None:
        torch.set_num_threads(threads)

    def say(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    engine = Engine(cfg, BENCHMARKS.get(cfg.benchmark), METHODS.get(cfg.method), Path(out), device=device,
                    quiet=True, progress=say)
    result = engine.run(resume=resume, force=force)
    return result.metrics, result.protocol, str(result.run_dir.path), result.skipped


def run_many(methods: list[str], benchmark: str, seeds: list[int], model: str | None, pretrained: str | None,
             config_file: str | None, overrides: list[str], out: str, device: str, resume: bool, force: bool,
             quiet: bool, jobs: int = 1, nproc: int | None = None, argv: list[str] | None = None) -> int:
    """Resolve every configuration first (so bad input fails before any work), then run them in turn.

    ``nproc`` > 1 (or the torchrun variables): every run trains and evaluates in that many data-parallel
    processes (``clbench.distributed``); this process spawns them (re-running ``argv``) once all is checked.
    """
    from clbench.distributed import World, launch
    from clbench.engine import Engine

    world = World.from_env()
    if nproc is not None and nproc < 1:
        raise UserError(f"--nproc must be at least 1, got {nproc}")
    if world.active and nproc is not None and nproc != world.size:
        raise UserError(f"--nproc {nproc} disagrees with WORLD_SIZE={world.size} set by the launcher; drop --nproc "
                        "under torchrun")
    size = world.size if world.active else (nproc or 1)
    if size > 1 and jobs > 1:
        raise UserError("--jobs and --nproc exclude each other; run the configurations one after another with "
                        "--nproc, or in parallel with --jobs")
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    if not methods:
        raise UserError("--methods is empty; give at least one method name (see clbench list methods)")
    twice = sorted({m for m in methods if methods.count(m) > 1})
    if twice:
        raise UserError(f"--methods lists {', '.join(twice)} more than once; name each method once")
    if not seeds:
        raise UserError("--seeds is empty; give at least one seed, e.g. --seeds 0,1,2")
    bench_def = BENCHMARKS.get(benchmark)
    for m in methods:
        METHODS.get(m)
    layers = config_layers(benchmark, methods, config_file, overrides)
    configs = [resolve(benchmark, m, s, layers, model, pretrained) for m in methods for s in seeds]
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out} is a file, not a folder; pass a results folder")
    for cfg in configs:  # a plugin name that would write outside --out fails before any run starts
        RunDir.location(Path(out), cfg.benchmark, cfg.method, cfg.seed, "")
    from clbench.datasets.requirements import preflight
    from clbench.models import check_model

    preflight(benchmark, configs[0].benchmark_options)
    if size > 1:
        check_distributable(configs, size, device)

    for name, tag in sorted({(c.model.name, c.model.pretrained) for c in configs if not c.model.download},
                            key=str):
        check_model(name, tag)

    def say(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    if jobs > 1:
        return _run_parallel(benchmark, configs, out, device, resume, force, quiet, jobs)
    if size > 1 and not world.active:  # checked: now the ranks run this same command
        if argv is None:
            raise UserError("--nproc needs the command line to re-run in each process (call clbench.cli.main)")
        return launch(size, argv)
    if world.active:
        import os

        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world.size))
        quiet = quiet or not world.is_main  # one process prints progress
    results = []
    benchmarks: dict = {}  # datasets are built once and shared by every run of this command
    try:
        for cfg in configs:
            engine = Engine(cfg, bench_def, METHODS.get(cfg.method), Path(out), device=device, quiet=quiet,
                            progress=say if world.is_main else None, benchmark_cache=benchmarks, world=world)
            result = engine.run(resume=resume, force=force)
            if result.skipped:
                say(f"   already complete: {result.run_dir.path} (pass --force to run it again)")
            results.append((cfg, result))
    finally:
        world.close()
    if world.is_main:
        print(leaderboard(benchmark, results))
    return 0


def check_distributable(configs: list[ResolvedConfig], size: int, device: str) -> None:
    """Bad input for a data-parallel run, before any process starts: a method that does not support it, a batch
    the ranks cannot share evenly, one named GPU for several processes."""
    for cfg in configs:
        method_cls = METHODS.get(cfg.method)
        if not method_cls.distributed:
            raise UserError(f"method {cfg.method} cannot run with --nproc {size}: {method_cls.distributed_reason}; "
                            "use --nproc 1")
        if cfg.train.batch_size % size:
            raise UserError(f"train.batch_size {cfg.train.batch_size} is not divisible by --nproc {size}; choose a "
                            "batch size that is a multiple of the process count")
    if device.startswith("cuda:"):
        raise UserError(f"--device {device} names one GPU, but --nproc {size} gives each process its own "
                        "(cuda:LOCAL_RANK); pass --device cuda or auto")


def _run_parallel(benchmark: str, configs: list[ResolvedConfig], out: str, device: str, resume: bool, force: bool,
                  quiet: bool, jobs: int) -> int:
    """Runs in ``jobs`` worker processes, each with its share of the CPU threads (CPU runs of small models)."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor
    from types import SimpleNamespace

    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(run_one, cfg, out, device, resume, force, quiet, threads) for cfg in configs]
        outcomes = [f.result() for f in futures]
    results = [(cfg, SimpleNamespace(metrics=m, protocol=p)) for cfg, (m, p, _, _) in zip(configs, outcomes, strict=True)]
    print(leaderboard(benchmark, results))
    return 0


def die_with_parent(parent: int) -> None:
    """Worker initializer (Linux): SIGTERM when the runner dies, so a killed ``clbench run --jobs N`` leaves no
    worker training on (and writing results) in the background."""
    import os
    import signal

    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # the runner died before the request took effect
        os._exit(1)


def leaderboard(benchmark: str, results: list[tuple[ResolvedConfig, Any]]) -> str:
    """Mean (± std over seeds) of each method's metrics, as a small Markdown table."""
    import numpy as np

    by_method: dict[str, list[dict[str, float]]] = {}
    protocol = ""
    for cfg, res in results:
        by_method.setdefault(cfg.method, []).append(res.metrics)
        protocol = res.protocol
    names = [k for k in (results[0][1].metrics if results else {})]
    lines = [f"{benchmark} ({protocol})", "| method | seeds | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for method, runs in by_method.items():
        cells = []
        for name in names:
            vals = np.array([r.get(name, np.nan) for r in runs], dtype=float)
            cell = f"{vals.mean():.1f}"
            if len(vals) > 1:
                cell += f" ± {vals.std(ddof=1):.1f}"
            cells.append(cell)
        lines.append(f"| {method} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
