"""Procedural synthetic-data throughput on the offline world (target: >= 2,000 images/s).

Two numbers on the real GIFT plan of ``shapes_mtil_order1`` (8 tasks x 1,000 prompts, the world's vocabulary
plus earlier tasks' classes, official seeds):

- ``generator``: :class:`clbench.synth.procedural.ProceduralGenerator` alone, prompts -> PIL images;
- ``cache``: what ``clbench synth`` / the GIFT service do on a cold cache — generate, check for black
  images, encode PNGs, write them atomically, then the manifest (with a sha256 per file).

    python perf/procedural_generation.py [--images-per-task 1000] [--batch 1000] [--size 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

from clbench.synth.cache import SyntheticCache
from clbench.synth.procedural import ProceduralGenerator
from clbench.synth.prompts import Vocabulary, make_plan


def world_plan(images_per_task: int) -> Any:
    from clbench.benchmarks.shapes import MTIL_ORDERS, SYNTHETIC_VOCABULARY
    from clbench.world.tasks import TASKS

    tasks = [TASKS[name].spec() for name in MTIL_ORDERS["shapes_mtil_order1"]]
    base = Vocabulary(SYNTHETIC_VOCABULARY[0], tuple(SYNTHETIC_VOCABULARY[1]), SYNTHETIC_VOCABULARY[2])
    vocabularies = [Vocabulary(t.name, t.class_names, t.templates[0]) for t in tasks]
    return make_plan(vocabularies, base, images_per_task, seed=0)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-per-task", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1000, help="prompts per generator call")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--drop-prob", type=float, default=0.1)
    args = parser.parse_args(argv)
    plan = world_plan(args.images_per_task)
    flat = plan.flat()
    generator = ProceduralGenerator(image_size=args.size, drop_prob=args.drop_prob)
    generator.generate([e.prompt for e in flat[:64]], [e.seed for e in flat[:64]])  # warm the mask banks
    start = time.perf_counter()
    for i in range(0, len(flat), args.batch):
        chunk = flat[i:i + args.batch]
        generator.generate([e.prompt for e in chunk], [e.seed for e in chunk])
    raw = len(flat) / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as root:
        cache = SyntheticCache(generator.config(), root)
        start = time.perf_counter()
        report = cache.generate(plan, lambda: generator, batch_size=args.batch, progress=False)
        cache.write_manifest(plan)
        cached = len(flat) / (time.perf_counter() - start)
        start = time.perf_counter()
        again = cache.generate(plan, lambda: generator, batch_size=args.batch, progress=False)
        check = len(flat) / (time.perf_counter() - start)
    print(f"shapes_mtil_order1 plan: {len(plan.tasks)} tasks x {args.images_per_task} images at {args.size} px, "
          f"batches of {args.batch}")
    print(f"  generator alone           {raw:9.0f} images/s")
    print(f"  cold cache (PNG+manifest) {cached:9.0f} images/s   ({report.generated} written, {report.dropped} dropped)")
    print(f"  warm cache (validate)     {check:9.0f} images/s   ({again.reused} reused)")
    return {"generator": raw, "cache": cached, "validate": check}


if __name__ == "__main__":
    main()
