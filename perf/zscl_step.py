"""Cost of a ZSCL training step relative to a finetune step at equal batch size (target: <= 2.5x).

One process, one model config, steps interleaved (finetune, zscl, zscl-cold, zscl-reference, finetune, ...)
so machine load hits every variant alike; each step is what the engine does: zero_grad, ``training_step``
under autocast, optimizer step, ``after_step``. Variants:

- ``zscl``: as shipped — reference captions encoded once per run, teacher image features cached per image
  (warm cache: the reference set is small enough to have been seen, as the world's corpus is after an epoch);
- ``zscl-cold``: teacher cache off (every reference image is new, as with ImageNet-scale reference sets);
- ``zscl-reference``: the official code's cost — the teacher re-encodes every caption at every step.

    python perf/zscl_step.py [--model clbench-tiny] [--batch 64] [--captions 1000] [--steps 30] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import torch
from step_timing import compare, make_task, random_batches  # perf/ is on sys.path when run as a script

from clbench.context import MethodContext, freeze, trainable_parameters
from clbench.engine import precision_context
from clbench.method import Batch, Method, TaskState
from clbench.methods.finetune import Finetune
from clbench.methods.zscl import ZSCL, ZSCLConfig
from clbench.models import load_model
from clbench.reference_data import TensorReferenceData


class ReferenceCostZSCL(ZSCL):
    """ZSCL paying the official code's per-step price: all captions through the teacher every iteration."""

    def training_step(self, batch: Batch, task: TaskState, step: int) -> dict[str, float]:
        with torch.inference_mode():
            self.ref_text = self.ctx.encode_texts(self.teacher, self.reference.captions)
        self.ref_text = self.ref_text.clone()
        return super().training_step(batch, task, step)


def build(kind: str, args: argparse.Namespace, device: torch.device, reference: TensorReferenceData
          ) -> tuple[Method, torch.optim.Optimizer, MethodContext]:
    torch.manual_seed(0)
    loaded = load_model(args.model, args.pretrained, device)
    model = loaded.model.to(device)
    initial = freeze(copy.deepcopy(model))
    autocast, _ = precision_context("auto", device)
    ctx = MethodContext(model, loaded.tokenizer, device, 0.2, autocast=autocast, initial_model=lambda: initial)
    ctx.services["reference_data"] = reference
    method: Method
    if kind == "finetune":
        method = Finetune(Finetune.Config(), ctx)
    else:
        cls = ReferenceCostZSCL if kind == "zscl-reference" else ZSCL
        method = cls(ZSCLConfig(cache_teacher=kind != "zscl-cold"), ctx)
    method.before_run()
    optimizer = torch.optim.AdamW([p for _, p in trainable_parameters(model)], lr=1e-5)
    return method, optimizer, ctx


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="clbench-tiny")
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--images", type=int, default=512, help="reference images")
    parser.add_argument("--captions", type=int, default=1000, help="reference captions")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per variant (warms the cache)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (1 is fastest on a busy box)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    size = load_model(args.model, args.pretrained, "cpu").transforms.image_size
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, size, size), dtype=torch.uint8, generator=g)
    words = ["red", "blue", "small", "striped", "circle", "square", "two", "on", "a", "dark", "background", "star"]
    captions = [" ".join(words[int(i)] for i in torch.randint(0, len(words), (8,), generator=g))
                for _ in range(args.captions)]
    reference = TensorReferenceData(images, captions, (0.48, 0.46, 0.41), (0.27, 0.26, 0.28))
    task = make_task(args.classes, args.warmup + args.steps)
    batches = random_batches(args.batch, args.classes, size, device, g)
    header = (f"model {args.model} on {device}, batch {args.batch}, {args.captions} reference captions, "
              f"{args.images} reference images, {args.steps} timed steps (median)")
    median = compare(["finetune", "zscl", "zscl-cold", "zscl-reference"],
                     lambda kind: build(kind, args, device, reference), task, batches, args.warmup, args.steps,
                     device, header)
    return median


if __name__ == "__main__":
    main()
