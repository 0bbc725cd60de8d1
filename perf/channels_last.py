"""channels-last image towers vs the default (contiguous) layout: training step and evaluation forward.

Two copies of one random-initialised model (same seed), one with its image tower converted by
:func:`clbench.models.to_channels_last` (what ``train.channels_last=true`` does), stepped interleaved in one
process (finetune: zero_grad, ``training_step`` under the run's autocast, AdamW); then the image tower's
evaluation forward, interleaved as well. Prints ms per step, the ratio channels-last / contiguous (< 1: faster)
and the largest difference between the two layouts' image features (the layout only reorders the convolution's
arithmetic; it must not change results beyond float rounding).

    python perf/channels_last.py [--models RN50,ViT-B-16] [--batch 8] [--steps 4] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from step_timing import compare, make_task, random_batches  # perf/ is on sys.path when run as a script

from clbench.context import MethodContext, trainable_parameters
from clbench.engine import precision_context, resolve_device
from clbench.method import Method
from clbench.methods.finetune import Finetune
from clbench.models import load_model, to_channels_last


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="RN50,ViT-B-16")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    autocast, _ = precision_context("auto", device)
    out: dict[str, dict[str, float]] = {}
    print(f"device {device}, {torch.get_num_threads()} threads, batch {args.batch}")
    for name in args.models.split(","):
        torch.manual_seed(0)
        loaded = load_model(name, None, device)
        base = loaded.model.to(device)
        size = loaded.transforms.image_size
        models = {"contiguous": base, "channels_last": to_channels_last(copy.deepcopy(base))}
        task = make_task(10, args.warmup + args.steps)
        batches = random_batches(args.batch, 10, size, device, torch.Generator().manual_seed(1), count=2)

        def build(kind: str, models=models, loaded=loaded) -> tuple[Method, torch.optim.Optimizer, MethodContext]:  # noqa: ANN001
            model = models[kind]
            ctx = MethodContext(model, loaded.tokenizer, device, 0.2, autocast=autocast, initial_model=lambda: model)
            optimizer = torch.optim.AdamW([p for _, p in trainable_parameters(model)], lr=1e-5)
            return Finetune(Finetune.Config(), ctx), optimizer, ctx

        # features before any training step: the two layouts must agree up to float rounding
        images = batches[0].images
        with torch.inference_mode(), autocast():
            feats = {k: m.eval().encode_image(images).float() for k, m in models.items()}
        diff = float((feats["channels_last"] - feats["contiguous"]).abs().max())
        scale = float(feats["contiguous"].abs().max())
        train = compare(list(models), build, task, batches, args.warmup, args.steps, device,
                        f"{name} at {size} px: finetune training step")
        times: dict[str, list[float]] = {k: [] for k in models}
        for model in models.values():
            model.eval()
        for i in range(args.warmup + args.steps):
            for kind, model in models.items():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                with torch.inference_mode(), autocast():
                    model.encode_image(images)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if i >= args.warmup:
                    times[kind].append(time.perf_counter() - start)
        ev = {k: statistics.median(v) for k, v in times.items()}
        print(f"{name}: evaluation forward (image tower)")
        for kind in models:
            print(f"  {kind:14s} {1000 * ev[kind]:8.1f} ms/batch   {ev[kind] / ev['contiguous']:5.2f}x contiguous")
        print(f"  largest feature difference channels_last vs contiguous: {diff:.2e} (features up to {scale:.2f})")
        out[name] = {"train_ratio": train["channels_last"] / train["contiguous"],
                     "eval_ratio": ev["channels_last"] / ev["contiguous"], "max_diff": diff}
    return out


if __name__ == "__main__":
    main()
