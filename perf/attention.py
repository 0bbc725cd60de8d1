"""Which attention kernel the open_clip towers run, and what the alternatives would cost (CPU or GPU).

Training (every layer through ``F.scaled_dot_product_attention``, see ``tests/test_models.py``): finetune
steps with SDPA free to pick its fused kernel (the default) vs SDPA held to its math backend (what attention
costs without a fused kernel). Evaluation: image-tower forwards with PyTorch's default dispatch (unmasked
even-head layers take ``nn.MultiheadAttention``'s fused fast path when autocast is off, as on CPU) vs every
layer forced through SDPA (``torch.backends.mha.set_fastpath_enabled(False)``). Interleaved in one process;
prints ms per step/batch, ratios to the default, and the largest output difference.

    python perf/attention.py [--model ViT-B-16] [--batch 8] [--steps 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator

import torch
from step_timing import make_task, random_batches, step_fn, time_interleaved  # perf/ on sys.path
from torch.nn.attention import SDPBackend, sdpa_kernel

from clbench.context import MethodContext, trainable_parameters
from clbench.engine import precision_context, resolve_device
from clbench.methods.finetune import Finetune
from clbench.models import load_model


@contextlib.contextmanager
def fastpath(enabled: bool) -> Iterator[None]:
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(enabled)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def interleaved(runners: dict[str, Callable[[], object]], warmup: int, steps: int, device: torch.device
                ) -> dict[str, float]:
    """Median seconds per call of each runner, called in turn (step_timing's interleaved timer)."""
    return time_interleaved({k: (lambda _step, run=run: run()) for k, run in runners.items()}, warmup, steps, device)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    autocast, _ = precision_context("auto", device)
    torch.manual_seed(0)
    loaded = load_model(args.model, None, device)
    model = loaded.model.to(device)
    size = loaded.transforms.image_size
    batches = random_batches(args.batch, 10, size, device, torch.Generator().manual_seed(1), count=2)
    task = make_task(10, args.warmup + args.steps)
    ctx = MethodContext(model, loaded.tokenizer, device, 0.2, autocast=autocast, initial_model=lambda: model)
    optimizer = torch.optim.SGD([p for _, p in trainable_parameters(model)], lr=0.0)  # lr 0: same weights each step
    step = step_fn(Finetune(Finetune.Config(), ctx), optimizer, ctx, task, batches)
    counter = iter(range(10 ** 9))

    def math_step() -> None:
        with sdpa_kernel([SDPBackend.MATH]):
            step(next(counter))

    model.train()
    train = interleaved({"sdpa (default)": lambda: step(next(counter)), "sdpa math backend": math_step},
                        args.warmup, args.steps, device)
    model.eval()
    images = batches[0].images

    def forward(fast: bool) -> torch.Tensor:
        with fastpath(fast), torch.inference_mode(), autocast():
            return model.encode_image(images).float()

    diff = float((forward(True) - forward(False)).abs().max())
    ev = interleaved({"default dispatch": lambda: forward(True), "all layers sdpa": lambda: forward(False)},
                     args.warmup, args.steps, device)
    print(f"{args.model} at {size} px, batch {args.batch}, {device}, {torch.get_num_threads()} threads")
    print("training step (finetune, forward + backward)")
    for k, v in train.items():
        print(f"  {k:20s} {1000 * v:9.1f} ms/step   {v / train['sdpa (default)']:5.2f}x default")
    print("evaluation forward (image tower)")
    for k, v in ev.items():
        print(f"  {k:20s} {1000 * v:9.1f} ms/batch  {v / ev['default dispatch']:5.2f}x default")
    print(f"  largest feature difference: {diff:.2e}")
    return {"math_vs_sdpa_train": train["sdpa math backend"] / train["sdpa (default)"],
            "sdpa_vs_default_eval": ev["all layers sdpa"] / ev["default dispatch"], "max_diff": diff}


if __name__ == "__main__":
    main()
