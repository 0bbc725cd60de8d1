"""Cost of a GIFT training step relative to a finetune step at equal task batch (target: <= 2x).

One process, one model config, steps interleaved (finetune, gift, gift-uncached, finetune, ...) so machine
load hits every variant alike; each step is what the engine does: zero_grad, ``training_step`` under autocast,
optimizer step. GIFT also draws a synthetic batch of the same size (official: 64 + 64). Variants:

- ``gift``: as shipped — the frozen teacher's features of the task's synthetic images and prompts computed
  once per task, each distinct prompt of a batch encoded once by the student, AWC gradient added analytically;
- ``gift-uncached``: the official code's cost — the teacher encodes the synthetic batch at every step.

    python perf/gift_step.py [--model clbench-tiny] [--batch 64] [--images 1000] [--steps 30] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from step_timing import compare, make_task, random_batches  # perf/ is on sys.path when run as a script

from clbench.context import MethodContext, trainable_parameters
from clbench.engine import precision_context
from clbench.method import Method, TaskState
from clbench.methods.finetune import Finetune
from clbench.methods.gift import Gift, GiftConfig
from clbench.models import load_model
from clbench.synth.prompts import imagenet_vocabulary
from clbench.synthetic_data import SyntheticBatch, SyntheticData, SyntheticTask


class UncachedGift(Gift):
    """GIFT paying the official per-step teacher price: the teacher encodes the synthetic batch every step."""

    def before_task(self, task: TaskState) -> None:
        super().before_task(task)
        self.teacher = self.ctx.frozen_copy()

    def synthetic_losses(self, syn: SyntheticBatch) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            image = F.normalize(self.teacher.encode_image(syn.images), dim=-1).float()
            text = self.ctx.encode_texts(self.teacher, list(syn.prompts))
        self.teacher_image[syn.indices] = image.clone()
        self.teacher_text[syn.prompt_ids] = text
        return super().synthetic_losses(syn)


def build(kind: str, args: argparse.Namespace, device: torch.device, synthetic: SyntheticTask
          ) -> tuple[Method, torch.optim.Optimizer, MethodContext]:
    torch.manual_seed(0)
    loaded = load_model(args.model, args.pretrained, device)
    model = loaded.model.to(device)
    initial = copy.deepcopy(model)
    autocast, _ = precision_context("auto", device)
    ctx = MethodContext(model, loaded.tokenizer, device, 0.2, autocast=autocast, initial_model=lambda: initial)
    ctx.services["synthetic_data"] = SyntheticData.from_tasks([synthetic], args.batch, seed=0, device=device)
    method: Method
    if kind == "finetune":
        method = Finetune(Finetune.Config(), ctx)
    else:
        method = (UncachedGift if kind == "gift-uncached" else Gift)(GiftConfig(), ctx)
    method.before_run()
    optimizer = torch.optim.AdamW([p for _, p in trainable_parameters(model)], lr=1e-5)
    return method, optimizer, ctx


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="clbench-tiny")
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--batch", type=int, default=64, help="task batch = synthetic batch")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--images", type=int, default=1000, help="synthetic images of the task")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per variant")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (1 is fastest on a busy box)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    size = load_model(args.model, args.pretrained, "cpu").transforms.image_size
    g = torch.Generator().manual_seed(0)
    names = imagenet_vocabulary().prompts()
    picks = np.random.default_rng(0).integers(0, len(names), args.images)  # GIFT: uniform with replacement
    synthetic = SyntheticTask(torch.randn(args.images, 3, size, size, generator=g), [names[i][0] for i in picks])
    task = make_task(args.classes, args.warmup + args.steps)
    batches = random_batches(args.batch, args.classes, size, device, g)
    header = (f"model {args.model} on {device}, task batch {args.batch} + synthetic batch {args.batch}, "
              f"{args.images} synthetic images, {args.steps} timed steps (median)")
    median = compare(["finetune", "gift", "gift-uncached"], lambda kind: build(kind, args, device, synthetic),
                     task, batches, args.warmup, args.steps, device, header)
    return median


if __name__ == "__main__":
    main()
