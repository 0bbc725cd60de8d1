"""Engine training throughput vs a hand-written PyTorch loop: same tiny model, data and batch size, interleaved.

    python perf/engine_overhead.py [--steps 60] [--repeats 5] [--batch-size 64]

Prints images/s of both and the ratio (engine time / baseline time); the target is an overhead <= 10% on CPU.
Then the fixed cost a run pays once for its safety (run-folder lock, stale-temporary scan, config validation),
measured, in training steps.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from clbench.context import trainable_parameters
from clbench.engine import Engine
from clbench.method import TaskState
from clbench.registry import BENCHMARKS, METHODS
from clbench.runner import config_layers, resolve
from clbench.schedule import cosine_lr, set_lr


def engine_steps(engine: Engine, method, ctx, task: TaskState, dataset, steps: int) -> float:  # noqa: ANN001
    start = time.perf_counter()
    engine._train_task(method, ctx, task, dataset, 0, steps, engine.train_cfg.lr, seed=0)
    return time.perf_counter() - start


def baseline_steps(model, tokenizer, dataset, class_names, template, steps, batch_size, lr) -> float:  # noqa: ANN001
    """What a researcher would write by hand: AdamW, warm-up + cosine, CE with label smoothing."""
    params = [p for n, p in model.named_parameters() if p.requires_grad and not n.endswith("logit_scale")]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    tokens = tokenizer([template.format(c) for c in class_names])
    start = time.perf_counter()
    model.train()
    it = iter(loader)
    for step in range(steps):
        try:
            images, labels = next(it)
        except StopIteration:
            it = iter(loader)
            images, labels = next(it)
        set_lr(opt, cosine_lr(step, lr, 5, steps))
        opt.zero_grad(set_to_none=True)
        text = F.normalize(model.encode_text(tokens), dim=-1)
        image = F.normalize(model.encode_image(images), dim=-1)
        logits = model.logit_scale.exp() * image @ text.t()
        F.cross_entropy(logits, labels, label_smoothing=0.2).backward()
        opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)

    overrides = [f"train.batch_size={args.batch_size}", f"train.iterations={args.steps}",
                 "benchmark.train_per_class=64"]
    layers = config_layers("smoke", ["finetune"], None, overrides)
    cfg = resolve("smoke", "finetune", 0, layers)
    engine = Engine(cfg, BENCHMARKS.get("smoke"), METHODS.get("finetune"), Path(tempfile.mkdtemp()), device="cpu",
                    quiet=True)
    from clbench.context import MethodContext
    from clbench.models import load_model

    loaded = load_model("clbench-tiny", None)
    bench = BENCHMARKS.get("smoke").build(cfg.benchmark_options, loaded.transforms)
    exp_dataset = bench.stream().train_stream[0].dataset
    raw_dataset = bench.train_datasets[0]
    spec = bench.tasks[0]
    ctx = MethodContext(loaded.model, loaded.tokenizer, torch.device("cpu"), 0.2)
    method = METHODS.get("finetune")(cfg.method_config, ctx)
    task = TaskState(index=0, spec=spec, num_tasks=3, steps=args.steps, train_class_names=spec.class_names,
                     seen_class_names=spec.class_names)
    assert len(trainable_parameters(loaded.model)) > 0

    engine_times, base_times = [], []
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
        engine_times.append(engine_steps(engine, method, ctx, task, exp_dataset, args.steps))
        base_times.append(baseline_steps(loaded.model, loaded.tokenizer, raw_dataset, spec.class_names,
                                         spec.templates[0], args.steps, args.batch_size, cfg.train.lr))
    e, b = statistics.median(engine_times), statistics.median(base_times)
    n = args.steps * args.batch_size
    print(f"engine:   {n / e:8.1f} img/s (median of {args.repeats} x {args.steps} steps, batch {args.batch_size})")
    print(f"baseline: {n / b:8.1f} img/s")
    print(f"ratio engine/baseline time: {e / b:.3f}  (overhead {100 * (e / b - 1):+.1f}%)")
    if hasattr(engine.run_dir, "lock"):  # absent before the run-folder lock existed (for before/after runs)
        per_run = run_setup_seconds(engine)
        print(f"per-run lock + temporaries scan + validation: {1e6 * per_run:.0f} us "
              f"= {per_run / (e / args.steps):.4f} training steps")


def run_setup_seconds(engine: Engine, repeats: int = 200) -> float:
    """Median time of what every run does once before training: lock, scan for stale temporaries, validate."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with engine.run_dir.lock():
            engine.run_dir.remove_temporaries()
            engine.config.train.validate()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    main()
