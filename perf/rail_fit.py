"""RAIL's fit throughput (images/s) vs one finetune epoch over the same images (what RAIL saves: SGD).

One task's worth of images (random tensors at the model's input size; data loading is not what this times) is
passed through (a) ``rail.fit_task`` — frozen encoder + recursive ridge update per batch, primal form —, (b)
``rail_dual.fit_task`` — kernel ridge re-solved once per task — and (c) one finetune epoch: the engine's
iteration (zero_grad, ``training_step``, AdamW step) over every batch once. Repeats alternate the variants so
machine load hits all alike; the median of the repeats is printed with the ratio to finetune.

    python perf/rail_fit.py [--model clbench-world] [--images 3000] [--batch 32] [--hidden 2048] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from step_timing import make_task  # perf/ is on sys.path when run as a script

from clbench.context import MethodContext, trainable_parameters
from clbench.engine import precision_context
from clbench.method import Batch
from clbench.methods.finetune import Finetune
from clbench.methods.rail import Rail, RailConfig
from clbench.models import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="clbench-world")
    ap.add_argument("--pretrained", default="bundled:world")
    ap.add_argument("--images", type=int, default=3000, help="one task's training images (world: 10 x 300)")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=1024, help="primal projection width (world YAML: 1024)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    loaded = load_model(args.model, args.pretrained, device)
    size = loaded.transforms.image_size
    g = torch.Generator().manual_seed(0)
    batches = [Batch(torch.randn(min(args.batch, args.images - i), 3, size, size, generator=g).to(device),
                     torch.randint(0, args.classes, (min(args.batch, args.images - i),), generator=g).to(device))
               for i in range(0, args.images, args.batch)]
    task = make_task(args.classes, len(batches))
    autocast, _ = precision_context("auto", device)
    initial = {k: v.clone() for k, v in loaded.model.state_dict().items()}

    def fresh_ctx() -> MethodContext:
        loaded.model.load_state_dict(initial)
        for p in loaded.model.parameters():
            p.requires_grad_(True)
        return MethodContext(loaded.model, loaded.tokenizer, device, 0.2, autocast=autocast)

    def rail(form: str) -> None:
        method = Rail(RailConfig(form=form, hidden_dim=args.hidden), fresh_ctx())
        method.before_run()
        method.fit_task(task, iter(batches))

    def finetune_epoch() -> None:
        ctx = fresh_ctx()
        method = Finetune(None, ctx)
        optimizer = torch.optim.AdamW([p for _, p in trainable_parameters(ctx.model)], lr=1e-5, weight_decay=0.0)
        ctx.model.train()
        for step, batch in enumerate(batches):
            optimizer.zero_grad(set_to_none=True)
            with ctx.autocast():
                method.training_step(batch, task, step)
            optimizer.step()

    variants = {"finetune epoch": finetune_epoch, "rail (primal)": lambda: rail("primal"),
                "rail_dual": lambda: rail("dual")}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, run in variants.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["finetune epoch"])
    print(f"{args.images} images, batch {args.batch}, {args.model} on {device}, hidden {args.hidden}, "
          f"median of {args.repeats}:")
    for name, values in times.items():
        t = statistics.median(values)
        print(f"  {name:15s} {t:7.2f} s  {args.images / t:8.0f} images/s   {base / t:5.2f}x the finetune epoch's speed")


if __name__ == "__main__":
    main()
