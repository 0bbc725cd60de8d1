"""Synthetic-data generation speed of the real diffusers code path (images/s), on a tiny random pipeline.

A Stable-Diffusion-shaped pipeline with a tiny random-initialised UNet, VAE and CLIP text encoder is built and
saved locally (``tests/synth/tiny_pipeline.py``: no download), then loaded and run by clbench's
:class:`clbench.synth.diffusers_backend.DiffusersGenerator` exactly as ``clbench synth`` does (classifier-free
guidance, per-image CPU generators, PIL output). Variants, timed interleaved (every repeat runs each once, so
machine load hits all alike):

- prompts per call (``--batches``, default 1 and 8) with the pipeline's own 50-step scheduler (GIFT's default);
- DPM-Solver++ with 25 steps (what ``synth_steps < 50`` selects) at the largest batch;
- with ``--compile MODE``: the same as the largest-batch 50-step variant with the UNet under ``torch.compile``
  (first call, compilation included, reported apart).

Prints images/s per variant and the ratios batch 8 vs 1 and DPM-Solver 25 steps vs default 50.
The tiny UNet makes per-call overheads (Python, scheduler, VAE, PIL) weigh more than on SD 1.5, whose UNet
dominates: the batch ratio here is a lower bound of what batching buys on a GPU.

    python perf/generation.py [--images 16] [--batches 1,8] [--size 64] [--repeats 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for the tiny pipeline builder

from clbench.synth.diffusers_backend import DiffusersGenerator, DiffusersOptions  # noqa: E402
from tests.synth.tiny_pipeline import save_tiny_pipeline  # noqa: E402


def rate(generator: DiffusersGenerator, images: int, batch: int) -> float:
    """Images/s of ``images`` prompts generated ``batch`` per call."""
    prompts = [f"a photo of a class {i}." for i in range(images)]
    device = generator.device
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(0, images, batch):
        generator.generate(prompts[i:i + batch], list(range(i, min(i + batch, images))))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return images / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16, help="images per variant and repeat")
    parser.add_argument("--batches", default="1,8", help="prompts per call, comma-separated")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", default="none", help="also time the UNet under torch.compile in this mode")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    big = max(batches)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_tiny_pipeline(Path(tmp) / "tiny-sd")

        def generator(steps: int, compile: str = "none") -> DiffusersGenerator:
            options = DiffusersOptions(model=str(folder), steps=steps, size=args.size, safety_checker=False)
            return DiffusersGenerator(options, device=args.device, compile=compile)

        variants = {f"batch {b}, 50 steps ({generator(50).pipeline.scheduler.__class__.__name__})": (generator(50), b)
                    for b in batches}
        variants[f"batch {big}, 25 steps (DPMSolverMultistepScheduler)"] = (generator(25), big)
        compile_first = None
        if args.compile != "none":
            compiled = generator(50, args.compile)
            start = time.perf_counter()
            rate(compiled, big, big)  # compiles
            compile_first = time.perf_counter() - start
            variants[f"batch {big}, 50 steps, UNet compiled ({args.compile})"] = (compiled, big)
        for gen, b in variants.values():  # warm-up: one call each (pipeline load, first-call allocations)
            rate(gen, b, b)
        rates: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.repeats):
            for name, (gen, b) in variants.items():
                rates[name].append(rate(gen, args.images, b))
    median = {k: statistics.median(v) for k, v in rates.items()}
    print(f"tiny random SD pipeline at {args.size} px on {args.device} ({torch.get_num_threads()} threads), "
          f"{args.images} images per variant, median of {args.repeats}")
    for name, value in median.items():
        print(f"  {name:58s} {value:8.2f} images/s")
    names = list(median)
    one = f"batch {min(batches)}, 50 steps"
    first = next(n for n in names if n.startswith(one + " "))
    last = next(n for n in names if n.startswith(f"batch {big}, 50 steps ("))
    dpm = next(n for n in names if "25 steps" in n)
    out = {"batch_ratio": median[last] / median[first], "dpm25_vs_50": median[dpm] / median[last]}
    print(f"  batch {big} vs {min(batches)} (50 steps): {out['batch_ratio']:.2f}x images/s")
    print(f"  DPM-Solver 25 steps vs default 50 (batch {big}): {out['dpm25_vs_50']:.2f}x images/s")
    if compile_first is not None:
        comp = next(n for n in names if "compiled" in n)
        out["compile_vs_eager"] = median[comp] / median[last]
        print(f"  UNet compiled vs eager (batch {big}, 50 steps): {out['compile_vs_eager']:.2f}x images/s; "
              f"first call with compilation {compile_first:.1f} s")
    return out


if __name__ == "__main__":
    main()
