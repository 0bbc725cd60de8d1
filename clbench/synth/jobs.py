"""Synthetic-data generation as executor jobs: ``clbench synth --executor slurm --shards 8`` and the first phase
of a sweep whose methods need synthetic data (GIFT), so the runs find their images made instead of each making
them.

A :class:`SynthShardJob` makes shard i of n of one benchmark's plan in the shared cache: exactly the images a run
would make itself (same resolved configuration, same cache key). Generation skips what the cache holds, so a
retried or requeued shard only makes what is missing; the shard that finds nothing missing writes the manifest.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clbench.config import ResolvedConfig
from clbench.executors.job import CellOutcome, error_line


def _identity(image: Any) -> Any:
    return image


def image_size(model_name: str) -> int | None:
    """The model's input resolution from its open_clip config (no weights needed); None when unknown."""
    import open_clip

    from clbench.models import register_model_configs

    register_model_configs()
    cfg = open_clip.get_model_config(model_name)
    if not cfg:
        return None
    size = cfg["vision_cfg"]["image_size"]
    return int(size[0] if isinstance(size, (list, tuple)) else size)


@dataclass
class Generation:
    """One benchmark's synthetic plan with its generator (not loaded yet) and cache."""

    bench: Any
    options: Any
    plan: Any
    generator: Any
    cache: Any

    @property
    def manifest(self) -> Path:
        return Path(self.cache.manifest_path(self.plan))


def prepare(config: ResolvedConfig, overrides: dict[str, Any] | None = None, device: str = "auto") -> Generation:
    """What ``config``'s run would generate (its method's ``synth_*`` keys, then ``overrides``: the flags of
    ``clbench synth``). The benchmark is built for its task list only; no data are read."""
    from clbench.benchmark import Transforms
    from clbench.errors import UserError
    from clbench.registry import BENCHMARKS
    from clbench.synth.cache import SyntheticCache
    from clbench.synthetic_data import backend_for, make_generator, options_from, plan_for

    options = options_from(config.method_config, **(overrides or {}))
    size = image_size(config.model.name)
    transforms = Transforms(train=_identity, eval=_identity, image_size=size or 224,
                            mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    bench = BENCHMARKS.get(config.benchmark).build(config.benchmark_options, transforms)
    if backend_for(options, bench) == "procedural" and size is None:
        raise UserError(f"cannot read the image size of model {config.model.name} without loading it; pass --model")
    plan = plan_for(bench, options)
    generator = make_generator(options, bench, size or 224, device)
    return Generation(bench, options, plan, generator, SyntheticCache(generator.config(), options.cache,
                                                                      options.image_format))


def generate_shard(gen: Generation, shard: tuple[int, int], say: Any = print) -> bool:
    """Make ``gen``'s shard; write the manifest when the cache then holds the whole plan. True when it did."""
    from clbench.synthetic_data import generation_batch

    try:
        report = gen.cache.generate(gen.plan, lambda: gen.generator, batch_size=generation_batch(gen.options,
                                                                                                 gen.generator),
                                    shard=shard, progress=gen.options.progress,
                                    desc=f"synth {gen.bench.name} {shard[0]}/{shard[1]}")
    finally:
        close = getattr(gen.generator, "close", None)
        if callable(close):
            close()
    say(report.line())
    if gen.cache.missing(gen.plan, validate=False):
        say(f"manifest not written yet: other shards still have images to make (of {len(gen.plan.flat())})")
        return False
    path = gen.cache.write_manifest(gen.plan)
    manifest = gen.cache.read_manifest(gen.plan) or {}
    say(f"manifest {path}: {manifest.get('num_images', 0)} images, {manifest.get('num_dropped', 0)} dropped")
    return True


@dataclass(frozen=True)
class SynthShardJob:
    """Shard ``shard`` of the synthetic data that ``config``'s run needs (an executor :class:`~clbench.executors.job.Job`)."""

    config: ResolvedConfig
    shard: tuple[int, int]
    cache_dir: str
    overrides: tuple[tuple[str, Any], ...] = ()
    device: str = "auto"
    quiet: bool = True
    threads: int | None = None
    resume: bool = True  # generation always continues from what the cache holds

    @property
    def label(self) -> str:
        return f"synth {self.config.benchmark} {self.shard[0]}/{self.shard[1]}"

    @property
    def record_dir(self) -> str:
        return self.cache_dir

    def run(self, benchmark_cache: dict[Any, Any] | None = None) -> CellOutcome:
        host = socket.gethostname()
        try:
            import torch

            if self.threads is not None:
                torch.set_num_threads(self.threads)
            overrides = dict(self.overrides)
            if self.quiet or not sys.stderr.isatty():  # no bars in job logs
                overrides["progress"] = False
            gen = prepare(self.config, overrides, self.device)

            def say(msg: str) -> None:
                if not self.quiet:
                    print(f"{self.label}: {msg}", file=sys.stderr, flush=True)

            generate_shard(gen, self.shard, say)
        except Exception as exc:  # noqa: BLE001 - a failed shard is an outcome; the runs make what it left out
            return CellOutcome(self.label, self.cache_dir, "failed", error=error_line(exc), host=host)
        return CellOutcome(self.label, self.cache_dir, "complete", host=host)


def shard_jobs(config: ResolvedConfig, shards: int, overrides: dict[str, Any] | None = None,
               device: str = "auto", gen: Generation | None = None) -> list[SynthShardJob]:
    """``shards`` jobs that make ``config``'s synthetic data; none when its manifest exists already. At most one
    per generator call: shards split the plan by call, so more would have nothing to make (the offline world's
    procedural generator makes a whole small plan in one call)."""
    from clbench.synthetic_data import generation_batch

    gen = gen or prepare(config, overrides, device)
    if gen.cache.read_manifest(gen.plan) is not None:
        return []
    calls = -(-len(gen.plan.flat()) // generation_batch(gen.options, gen.generator))
    shards = max(1, min(shards, calls))
    items = tuple(sorted((overrides or {}).items()))
    return [SynthShardJob(config, (i, shards), str(gen.cache.dir), items, device) for i in range(shards)]


def needs_synthetic_data(config: ResolvedConfig) -> bool:
    from clbench.registry import METHODS

    return "synthetic_data" in getattr(METHODS.get(config.method), "services", ())


def sweep_shard_jobs(configs: Iterable[ResolvedConfig], shards: int,
                     device: str = "auto") -> tuple[list[SynthShardJob], list[str]]:
    """The generation jobs of a sweep's runs: ``shards`` per distinct plan that some run needs and the cache
    lacks (runs that differ only in seed or training keys share one plan, prepared once); and one note per
    benchmark whose plan cannot be made here (e.g. its data live only on the compute nodes): its runs then
    generate their images themselves, as without this phase."""
    from clbench.errors import UserError

    jobs: list[SynthShardJob] = []
    notes: list[str] = []
    prepared: set[tuple[str, ...]] = set()
    plans: set[Path] = set()
    for config in configs:
        key = (config.benchmark, repr(config.benchmark_options), repr(config.method_config), config.model.name)
        if key in prepared or not needs_synthetic_data(config):
            continue
        prepared.add(key)
        try:
            gen = prepare(config, {"progress": False}, device)
        except UserError as exc:
            notes.append(f"synthetic data of {config.benchmark} not planned here ({exc}); its runs make it")
            continue
        if gen.manifest not in plans:  # e.g. GIFT configs that differ in a loss weight only
            plans.add(gen.manifest)
            jobs += shard_jobs(config, shards, device=device, gen=gen)
    return jobs, notes
