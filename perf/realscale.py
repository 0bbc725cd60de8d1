"""Real-scale speed on this device: ViT-B/16 at 224 px on JPEGs laid out as a real dataset (Food-101's).

The model is a random-initialised ``ViT-B-16`` (the pretrained one's compute, nothing downloaded); the data are
JPEGs of 384-512 px (Food-101's images are at most 512 px) written by this script in Food-101's on-disk
layout and read through clbench's own MTIL loader (torchvision ``Food101`` + the model's eval transform:
decode, bicubic resize, centre crop). Measured, for the current device:

1. evaluation data path, loader alone (model excluded): the decoded-set cache (``train.eval_cache``, the
   default) against decoding and resizing the JPEGs every time -- target >= 5x;
2. loader vs model: training-loader images/s against finetune's training images/s, and the cached eval
   loader against the model's evaluation images/s -- "is the step data-bound?" (target on GPU >= 1.5x);
3. training step images/s (task images) of finetune, zscl and gift (task batch + a synthetic batch of the
   same size; ZSCL with a reference batch of the same size and no teacher cache, as with ImageNet-scale
   reference sets);
4. an extrapolated wall time of a full MTIL Order I run (11 tasks x 1000 steps x batch 64; 12 evaluations of
   the 11 test sets, ~95k images) per method, from the rates above. GIFT's Stable Diffusion generation
   (~11k images) is not measured here (no weights offline).

On CPU the run is shortened (few images, small batches, few steps; training rates measured at a small batch
are extrapolated linearly to batch 64, which flatters nothing on CPU where compute is already saturated).

    python perf/realscale.py                     # device auto; CPU: ~5 minutes on 2 cores
    python perf/realscale.py --device cuda       # the GPU version: full batches
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from clbench.benchmarks.mtil import load_food
from clbench.context import MethodContext, freeze, trainable_parameters
from clbench.data import make_loader, resolve_eval_batch, resolve_workers
from clbench.datasets.labeled import LabeledView
from clbench.engine import make_optimizer, precision_context
from clbench.eval_cache import CachePolicy, DecodedLoader, MemoryBudget, default_memory_bytes
from clbench.method import Batch, Method, TaskState
from clbench.methods.finetune import Finetune
from clbench.methods.gift import Gift, GiftConfig
from clbench.methods.zscl import ZSCL, ZSCLConfig
from clbench.models import LoadedModel, load_model
from clbench.reference_data import TensorReferenceData
from clbench.runner import config_layers, resolve
from clbench.synthetic_data import SyntheticData, SyntheticTask

# A full MTIL Order I run (ZSCL's protocol, README "Benchmarks"): 11 tasks x 1000 iterations x batch 64, an
# evaluation of all 11 test sets before training and after each task. Test-set sizes are the official splits'
# (Caltech101, EuroSAT and SUN397: ZSCL's splits, approximate): ~95k images, as issue 13 states.
MTIL_TASKS, MTIL_ITERATIONS, MTIL_BATCH, MTIL_EVALUATIONS = 11, 1000, 64, 12
MTIL_TEST_IMAGES = {"Aircraft": 3333, "Caltech101": 1829, "CIFAR100": 10000, "DTD": 1880, "EuroSAT": 5400,
                    "Flowers": 6149, "Food": 25250, "MNIST": 10000, "OxfordPet": 3669, "Cars": 8041,
                    "SUN397": 19850}
GIFT_SYNTH_PER_TASK = 1000  # GIFT: 1,000 synthetic images per task, the teacher encodes them once per task
CLASSES = ("apple_pie", "beef_tartare", "ramen", "sushi")


def write_food101(root: Path, train_per_class: int, test_per_class: int, seed: int = 0) -> Path:
    """JPEGs of 384-512 px with photo-like smooth content in Food-101's layout (images/, meta/*.json)."""
    rng = np.random.default_rng(seed)
    base = root / "food-101"
    (base / "meta").mkdir(parents=True, exist_ok=True)
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        meta: dict[str, list[str]] = {}
        for c in CLASSES:
            meta[c] = []
            for i in range(per_class):
                name = f"{split}{i}"
                h, w = (int(v) for v in rng.integers(384, 513, 2))
                coarse = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)  # smooth, not noise: JPEG-like size
                img = Image.fromarray(coarse).resize((w, h), Image.BILINEAR)
                noise = rng.normal(0, 6, (h, w, 3))
                pixels = np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
                path = base / "images" / c / f"{name}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(path, quality=90)
                meta[c].append(f"{c}/{name}")
        (base / "meta" / f"{split}.json").write_text(json.dumps(meta))
    return root


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loader_rate(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> float:
    """Images/s delivered on ``device`` by one pass over ``batches`` (model excluded)."""
    sync(device)
    start, n = time.perf_counter(), 0
    for images, _ in batches:
        images = images.to(device, non_blocking=True)
        n += len(images)
    sync(device)
    return n / (time.perf_counter() - start)


def eval_model_rate(model: torch.nn.Module, size: int, batch: int, batches: int, device: torch.device,
                    autocast: Callable[[], Any]) -> float:
    """Images/s of the image tower in evaluation (inference mode, the run's precision), 1 warm-up batch."""
    x = torch.randn(batch, 3, size, size, device=device)
    model.eval()
    times = []
    with torch.inference_mode():
        for i in range(batches + 1):
            sync(device)
            start = time.perf_counter()
            with autocast():
                model.encode_image(x)
            sync(device)
            if i:
                times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def task_state(steps: int) -> TaskState:
    from clbench.benchmark import TaskSpec

    names = tuple(c.replace("_", " ") for c in CLASSES)
    spec = TaskSpec(name="Food", class_names=names, templates=("a photo of {}, a type of food.",))
    return TaskState(index=0, spec=spec, num_tasks=1, steps=steps, train_class_names=names, seen_class_names=names)


def build_method(kind: str, loaded: LoadedModel, device: torch.device, batch: int, synth_images: int,
                 ref_images: int, ref_captions: int) -> tuple[Method, MethodContext]:
    model = copy.deepcopy(loaded.model).to(device)
    initial = freeze(copy.deepcopy(model))
    autocast, scaler = precision_context("auto", device)
    ctx = MethodContext(model, loaded.tokenizer, device, 0.2, autocast=autocast, scaler=scaler,
                        initial_model=lambda: initial)
    g = torch.Generator().manual_seed(0)
    size = loaded.transforms.image_size
    method: Method
    if kind == "finetune":
        method = Finetune(Finetune.Config(), ctx)
    elif kind == "zscl":
        words = ["a", "photo", "of", "food", "on", "a", "plate", "bowl", "red", "green", "small", "table"]
        captions = [" ".join(words[int(i)] for i in torch.randint(0, len(words), (8,), generator=g))
                    for _ in range(ref_captions)]
        images = torch.randint(0, 256, (ref_images, 3, size, size), dtype=torch.uint8, generator=g)
        ctx.services["reference_data"] = TensorReferenceData(images, captions, loaded.transforms.mean,
                                                             loaded.transforms.std)
        method = ZSCL(ZSCLConfig(cache_teacher=False), ctx)
    else:
        prompts = [f"a photo of a {w}." for w in ("cat", "dog", "car", "tree", "boat", "cup", "chair", "bird")]
        task = SyntheticTask(torch.randn(synth_images, 3, size, size, generator=g),
                             [prompts[i % len(prompts)] for i in range(synth_images)])
        ctx.services["synthetic_data"] = SyntheticData.from_tasks([task], batch, seed=0, device=device)
        method = Gift(GiftConfig(), ctx)
    method.before_run()
    return method, ctx


def train_rate(kind: str, loaded: LoadedModel, device: torch.device, args: argparse.Namespace) -> float:
    """Task images/s of ``kind``'s engine-style step (zero_grad, step under autocast, AdamW, after_step)."""
    method, ctx = build_method(kind, loaded, device, args.train_batch, args.synth_images, args.ref_images,
                               args.ref_captions)
    tcfg = resolve("mtil_order1", "finetune", 0, config_layers("mtil_order1", ["finetune"], None, [])).train
    optimizer = make_optimizer([p for _, p in trainable_parameters(ctx.model)], 1e-5, tcfg, device)
    task = task_state(args.warmup + args.steps)
    method.before_task(task)
    g = torch.Generator().manual_seed(1)
    size = loaded.transforms.image_size
    batch = Batch(torch.randn(args.train_batch, 3, size, size, generator=g).to(device),
                  torch.randint(0, len(CLASSES), (args.train_batch,), generator=g).to(device))
    ctx.model.train()
    times = []
    for step in range(args.warmup + args.steps):
        sync(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with ctx.autocast():
            method.training_step(batch, task, step)
        optimizer.step()
        method.after_step(task, step)
        sync(device)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    del method, ctx, optimizer
    return args.train_batch / statistics.median(times)


def hours(seconds: float) -> str:
    return f"{seconds / 3600:8.2f} h"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--test-images", type=int, default=None, help="JPEGs per test set (CPU 192, GPU 4096)")
    parser.add_argument("--train-images", type=int, default=None, help="training JPEGs (CPU 96, GPU 2048)")
    parser.add_argument("--train-batch", type=int, default=None, help="task batch of the timed steps (CPU 4, GPU 64)")
    parser.add_argument("--eval-batch", type=int, default=None, help="model eval batch (CPU 8, GPU auto = 1024)")
    parser.add_argument("--eval-batches", type=int, default=None, help="timed model eval batches (CPU 2, GPU 5)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per method (CPU 2, GPU 20)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per method (CPU 1, GPU 5)")
    parser.add_argument("--methods", default="finetune,zscl,gift")
    parser.add_argument("--synth-images", type=int, default=None, help="GIFT synthetic set (CPU 16, GPU 1000)")
    parser.add_argument("--ref-images", type=int, default=None, help="ZSCL reference images (CPU 16, GPU 1024)")
    parser.add_argument("--ref-captions", type=int, default=None, help="ZSCL reference captions (CPU 64, GPU 1000)")
    parser.add_argument("--keep", default=None, help="write the JPEGs here and keep them (default: a temp dir)")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    gpu = device.type == "cuda"
    defaults = {"test_images": (192, 4096), "train_images": (96, 2048), "train_batch": (4, 64),
                "eval_batch": (8, resolve_eval_batch("auto", device)), "eval_batches": (2, 5), "steps": (2, 20),
                "warmup": (1, 5), "synth_images": (16, 1000), "ref_images": (16, 1024), "ref_captions": (64, 1000)}
    for key, (cpu_value, gpu_value) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, gpu_value if gpu else cpu_value)
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
    workers = resolve_workers("auto", device)
    print(f"device {device} ({torch.cuda.get_device_name(device) if gpu else f'{torch.get_num_threads()} threads'})"
          f", model {args.model} (random init), loader workers {workers} (train.num_workers=auto)")

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="clbench-realscale-"))
    per_class = (args.train_images // len(CLASSES), args.test_images // len(CLASSES))
    start = time.perf_counter()
    write_food101(root, *per_class)
    print(f"wrote {sum(per_class) * len(CLASSES)} JPEGs (384-512 px) in Food-101's layout under {root} "
          f"in {time.perf_counter() - start:.1f} s")

    loaded = load_model(args.model, None, device)
    size = loaded.transforms.image_size
    food = load_food(str(root), False)
    train_set = LabeledView(food.train, food.train._labels, loaded.transforms.eval)  # type: ignore[attr-defined]
    test_set = LabeledView(food.test, food.test._labels, loaded.transforms.eval)  # type: ignore[attr-defined]
    eval_batch = resolve_eval_batch("auto", device)
    out: dict[str, Any] = {"device": str(device)}

    # 1. evaluation data path, loader alone
    plain = make_loader(test_set, eval_batch, device, num_workers=workers, persistent=False)
    out["eval_uncached"] = statistics.median(loader_rate(plain, device) for _ in range(2))
    budget = default_memory_bytes()
    cached = DecodedLoader(make_loader(test_set, eval_batch, device, num_workers=workers, persistent=False),
                           device, loaded.transforms.mean, loaded.transforms.std,
                           CachePolicy(budget, None, pin=gpu), MemoryBudget(budget), lambda: "realscale")
    out["eval_recording"] = loader_rate(cached, device)  # the one decoding pass per run
    out["eval_cached"] = statistics.median(loader_rate(cached, device) for _ in range(3))
    assert cached.where == "memory", cached.where

    # 2. training loader (decode + transform every time, shuffled, as the training loop reads it)
    train_loader = make_loader(train_set, MTIL_BATCH, device, shuffle=True,
                               generator=torch.Generator().manual_seed(0), num_workers=workers)
    loader_rate(train_loader, device)  # warm: worker start-up, page cache
    out["train_loader"] = loader_rate(train_loader, device)

    # 3. model rates
    autocast, _ = precision_context("auto", device)
    out["eval_model"] = eval_model_rate(loaded.model, size, args.eval_batch, args.eval_batches, device, autocast)
    out["train"] = {}
    for kind in [m for m in args.methods.split(",") if m]:
        out["train"][kind] = train_rate(kind, loaded, device, args)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)

    # report
    print(f"\nevaluation data path, loader alone ({args.test_images} test JPEGs, batch {eval_batch}):")
    print(f"  decode + resize every time   {out['eval_uncached']:10.1f} images/s")
    print(f"  decoded-set cache, recording {out['eval_recording']:10.1f} images/s   (once per run)")
    print(f"  decoded-set cache            {out['eval_cached']:10.1f} images/s   "
          f"{out['eval_cached'] / out['eval_uncached']:8.1f}x decode+resize   (target >= 5x)")
    print(f"\nmodel {args.model}: evaluation {out['eval_model']:.1f} images/s (batch {args.eval_batch}); "
          f"training, task images/s at batch {args.train_batch}:")
    base = out["train"].get("finetune")
    for kind, rate in out["train"].items():
        rel = f"   step {base / rate:5.2f}x finetune" if base else ""
        print(f"  {kind:9s} {rate:10.2f} images/s{rel}")
    print("\nloader vs model (>= 1.5x: the model, not the data, sets the pace):")
    if base:
        print(f"  training loader {out['train_loader']:.1f} images/s vs finetune {base:.2f} images/s: "
              f"{out['train_loader'] / base:.1f}x")
    print(f"  cached eval loader {out['eval_cached']:.1f} images/s vs model eval {out['eval_model']:.1f} images/s: "
          f"{out['eval_cached'] / out['eval_model']:.1f}x;   uncached: "
          f"{out['eval_uncached'] / out['eval_model']:.1f}x")

    test_images = sum(MTIL_TEST_IMAGES.values())
    first = test_images / min(out["eval_recording"], out["eval_model"])
    later = (MTIL_EVALUATIONS - 1) * test_images / min(out["eval_cached"], out["eval_model"])
    uncached_eval = MTIL_EVALUATIONS * test_images / min(out["eval_uncached"], out["eval_model"])
    scale = "" if args.train_batch == MTIL_BATCH else f" (rates at batch {args.train_batch}, scaled linearly)"
    print(f"\nextrapolated MTIL Order I ({MTIL_TASKS} x {MTIL_ITERATIONS} steps x batch {MTIL_BATCH}, "
          f"{MTIL_EVALUATIONS} x {test_images} test images) on {device}{scale}:")
    print(f"  evaluation, all {MTIL_EVALUATIONS}: {hours(first + later)} with the cache, "
          f"{hours(uncached_eval)} decoding every time")
    out["mtil_hours"] = {}
    for kind, rate in out["train"].items():
        train_s = MTIL_TASKS * MTIL_ITERATIONS * MTIL_BATCH / min(rate, out["train_loader"])
        extra = MTIL_TASKS * GIFT_SYNTH_PER_TASK / out["eval_model"] if kind == "gift" else 0.0
        total = train_s + extra + first + later
        out["mtil_hours"][kind] = total / 3600
        note = " + Stable Diffusion generation (not measured)" if kind == "gift" else ""
        print(f"  {kind:9s} training {hours(train_s + extra)}, total {hours(total)}{note}")
    return out


if __name__ == "__main__":
    main()
