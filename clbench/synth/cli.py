"""``clbench synth``: generate a benchmark's synthetic data into the shared cache before training.

It resolves the same configuration as ``clbench run`` (benchmark YAML < ``--config`` < ``--set``, the method's
``synth_*`` keys, then the flags here), so the images it makes are exactly the ones the run will look up.
``--shard i/n`` lets n processes or GPUs split the work without overlap; the last one to finish writes the
manifest. Interrupted runs resume where they stopped.
"""

from __future__ import annotations

import argparse
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
    p.set_defaults(func=main)


def _image_size(model_name: str) -> int | None:
    """The model's input resolution from its open_clip config (no weights needed); None when unknown."""
    import open_clip

    from clbench.models import register_model_configs

    register_model_configs()
    cfg = open_clip.get_model_config(model_name)
    if not cfg:
        return None
    size = cfg["vision_cfg"]["image_size"]
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def _identity(image: Any) -> Any:
    return image


def main(args: argparse.Namespace) -> int:
    from clbench.benchmark import Transforms
    from clbench.registry import BENCHMARKS
    from clbench.runner import config_layers, resolve
    from clbench.synth.cache import SyntheticCache, parse_shard
    from clbench.synthetic_data import backend_for, generation_batch, make_generator, options_from, plan_for

    try:
        shard = parse_shard(args.shard)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    layers = config_layers(args.benchmark, [args.method], args.config, args.overrides)
    cfg = resolve(args.benchmark, args.method, 0, layers, model=args.model)
    options = options_from(cfg.method_config, backend=args.backend, model=args.gen_model, steps=args.steps,
                           guidance=args.guidance, size=args.size, images_per_task=args.images_per_task,
                           seed=args.seed, generation_batch=args.batch_size, cache=args.cache,
                           image_format=args.format, allow_download=args.allow_download, compile=args.compile,
                           progress=not args.quiet)
    size = _image_size(cfg.model.name)
    # the data are never read here: the benchmark is built for its task list only
    transforms = Transforms(train=_identity, eval=_identity, image_size=size or 224,
                            mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    bench = BENCHMARKS.get(args.benchmark).build(cfg.benchmark_options, transforms)
    backend = backend_for(options, bench)
    if backend == "procedural" and size is None:
        raise UserError(f"cannot read the image size of model {cfg.model.name} without loading it; pass --model")
    plan = plan_for(bench, options)
    generator = make_generator(options, bench, size or 224, args.device)
    cache = SyntheticCache(generator.config(), options.cache, options.image_format)
    n = len(plan.flat())
    print(f"{bench.name}: {len(plan.tasks)} tasks x {options.images_per_task} images, backend {backend}, "
          f"cache {cache.dir}")
    try:
        report = cache.generate(plan, lambda: generator, batch_size=generation_batch(options, generator), shard=shard,
                                progress=options.progress, desc=f"synth {bench.name} {shard[0]}/{shard[1]}")
    finally:
        close = getattr(generator, "close", None)
        if callable(close):
            close()
    print(report.line())
    if cache.missing(plan, validate=False):
        print(f"manifest not written yet: other shards still have images to make (of {n})")
        return 0
    path = cache.write_manifest(plan)
    manifest = cache.read_manifest(plan) or {}
    print(f"manifest {path}: {manifest.get('num_images', 0)} images, {manifest.get('num_dropped', 0)} dropped")
    return 0
