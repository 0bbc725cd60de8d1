"""Cost of a parameter-efficient step (``moe_adapters``, ``diki``, ``condu_lora``) and of ``snd`` / ``condu``
relative to a ``finetune`` step (or to the first of ``--kinds``: ``--kinds condu,condu_lora`` gives ConDU's
LoRA / FT ratio).

Time: one process, steps interleaved (finetune, moe_adapters, diki, snd, finetune, ...) so machine load hits every
variant alike; each step is what the engine does (zero_grad, ``training_step`` under autocast, optimizer step over
the method's declared parameters with the method's own optimizer if it has one (DIKI: SGD) else AdamW,
``after_step``). Memory: each variant again in a fresh subprocess (``--only KIND``): peak CUDA memory allocated on
a GPU, else the peak resident set above the level before the model is built (VmHWM after a ``clear_refs``
reset); plus the bytes of gradients and optimizer state the variant actually holds after its steps. Ratios are
to the first kind. ``condu_lora`` uses ``--lora-rank`` (8: the world's setting in benchmarks/shapes.yaml;
ViT-B/16: 64).

    python perf/peft_step.py [--model clbench-world --pretrained bundled:world] [--batch 32] [--steps 20]
                             [--kinds finetune,moe_adapters,diki,snd,condu,condu_lora] [--lora-rank 8]
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from step_timing import compare, make_task, random_batches, step_fn  # perf/ is on sys.path

from clbench.context import MethodContext, freeze
from clbench.engine import precision_context
from clbench.method import Batch, Method
from clbench.methods.condu import ConDU, ConDUConfig
from clbench.methods.condu_lora import ConDULoRA, ConDULoRAConfig
from clbench.methods.diki import DIKI, DIKIConfig
from clbench.methods.finetune import Finetune
from clbench.methods.moe_adapters import MoEAdapters, MoEAdaptersConfig
from clbench.methods.snd import SnD, SnDConfig
from clbench.models import load_model
from clbench.reference_data import TensorReferenceData

KINDS = ["finetune", "moe_adapters", "diki", "snd", "condu", "condu_lora"]


def build(kind: str, args: argparse.Namespace, device: torch.device, batches: list[Batch]
          ) -> tuple[Method, torch.optim.Optimizer, MethodContext]:
    torch.manual_seed(0)
    loaded = load_model(args.model, args.pretrained, device)
    model = loaded.model.to(device)
    initial: list[torch.nn.Module] = []  # as the engine's: a frozen copy of the patched model
    autocast, _ = precision_context("auto", device)
    ctx = MethodContext(model, loaded.tokenizer, device, 0.2, autocast=autocast, initial_model=lambda: initial[0])
    ctx.bind_task_data(lambda max_batches=None: iter(batches[:max_batches]))
    size = loaded.transforms.image_size
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (256, 3, size, size), dtype=torch.uint8, generator=g)
    ctx.services["reference_data"] = TensorReferenceData(images, ["a caption"], (0.48, 0.46, 0.41), (0.27, 0.26, 0.28))
    method: Method
    if kind == "finetune":
        method = Finetune(Finetune.Config(), ctx)
    elif kind == "moe_adapters":
        method = MoEAdapters(MoEAdaptersConfig(ae_iterations=args.ae_iterations), ctx)
    elif kind == "diki":
        method = DIKI(DIKIConfig(), ctx)
    elif kind == "condu":
        method = ConDU(ConDUConfig(), ctx)
    elif kind == "condu_lora":
        method = ConDULoRA(ConDULoRAConfig(rank=args.lora_rank), ctx)
    else:
        method = SnD(SnDConfig(ref_batch_size=args.batch), ctx)
    method.patch_model(model)
    model.to(device)
    initial.append(freeze(copy.deepcopy(model)))
    method.before_run()
    task = make_task(args.classes, args.warmup + args.steps)
    declared = {n for n, _ in method.trainable(task)}
    params = []
    for name, p in model.named_parameters():  # as the engine does: only the declared parameters get gradients
        p.requires_grad_(name in declared)
        if name in declared:
            params.append(p)
    return method, method.optimizer(params, 1e-5) or torch.optim.AdamW(params, lr=1e-5), ctx


def _proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_of(kind: str, args: argparse.Namespace, device: torch.device, batches: list[Batch]) -> dict[str, float]:
    """Peak memory of building one variant and ``warmup + steps`` of its steps, in this (fresh) process.

    CPU: the peak resident set above the level before the model is built (Linux: ``clear_refs`` resets VmHWM);
    CUDA: peak memory allocated.
    """
    if device.type == "cpu":
        Path("/proc/self/clear_refs").write_text("5")
        before = _proc_status_kib("VmRSS")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    method, optimizer, ctx = build(kind, args, device, batches)
    task = make_task(args.classes, args.warmup + args.steps)
    method.before_task(task)
    ctx.model.train()
    run = step_fn(method, optimizer, ctx, task, batches)
    for step in range(args.warmup + args.steps):
        run(step)
    state = sum(t.nbytes for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t))
    grads = sum(p.grad.nbytes for g in optimizer.param_groups for p in g["params"] if p.grad is not None)
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else (_proc_status_kib("VmHWM") - before) * 1024)
    return {"peak_bytes": float(peak), "optimizer_state_bytes": float(state), "grad_bytes": float(grads)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="clbench-world")
    parser.add_argument("--pretrained", default="bundled:world")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per variant")
    parser.add_argument("--ae-iterations", type=int, default=20, help="DDAS autoencoder steps (untimed set-up)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (1 is fastest on a busy box)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated; ratios are to the first")
    parser.add_argument("--lora-rank", type=int, default=8, help="condu_lora's rank (world: 8, ViT-B/16: 64)")
    parser.add_argument("--only", choices=KINDS, help="internal: measure one variant's memory and print JSON")
    args = parser.parse_args(argv)
    kinds = args.kinds.split(",")
    if not kinds or any(k not in KINDS for k in kinds):
        parser.error(f"--kinds takes a comma-separated subset of {','.join(KINDS)}, got {args.kinds!r}")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    size = load_model(args.model, args.pretrained, "cpu").transforms.image_size
    batches = random_batches(args.batch, args.classes, size, device, torch.Generator().manual_seed(0))
    if args.only:
        out = memory_of(args.only, args, device, batches)
        print(json.dumps(out))
        return out
    header = (f"model {args.model} on {device}, batch {args.batch}, {args.steps} timed steps (median)")
    median = compare(kinds, lambda kind: build(kind, args, device, batches), make_task(args.classes, args.warmup
                     + args.steps), batches, args.warmup, args.steps, device, header)
    passthrough = list(argv if argv is not None else sys.argv[1:])
    memory = {}
    for kind in kinds:
        proc = subprocess.run([sys.executable, str(Path(__file__)), *passthrough, "--only", kind],
                              capture_output=True, text=True, check=True)
        memory[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    what = "peak CUDA memory allocated" if device.type == "cuda" else "peak RSS above the pre-build level"
    print(f"memory ({what}; gradients + optimizer state held after the steps)")
    base = memory[kinds[0]]
    for kind in kinds:
        m = memory[kind]
        train_state = m["grad_bytes"] + m["optimizer_state_bytes"]
        base_state = base["grad_bytes"] + base["optimizer_state_bytes"]
        print(f"  {kind:13s} peak {m['peak_bytes'] / 2**20:8.1f} MiB ({m['peak_bytes'] / base['peak_bytes']:5.2f}x "
              f"{kinds[0]})   grads+optim {train_state / 2**20:7.2f} MiB ({train_state / base_state:6.3f}x {kinds[0]})")
    return {"median_s": median, "memory": memory}


if __name__ == "__main__":
    main()
