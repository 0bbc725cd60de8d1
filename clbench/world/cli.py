"""``clbench world pretrain | show | zeroshot``: rebuild the bundled weights, picture the world, check the model."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from clbench.errors import UserError


def register(subparsers: Any) -> None:
    """Add the ``world`` command to the top-level parser."""
    from clbench.world.recipe import PretrainConfig

    defaults = PretrainConfig()
    world = subparsers.add_parser("world", help="the offline shapes world: pre-train its CLIP, show samples",
                                  description="The offline shapes world (procedural images, bundled tiny CLIP).")
    sub = world.add_subparsers(dest="world_command", metavar="{pretrain,show,zeroshot}", required=True)

    pretrain = sub.add_parser("pretrain", help="contrastive pre-training of the world CLIP (deterministic)",
                              description="Reproduces the bundled weights with the default options.")
    pretrain.add_argument("--out", type=Path, default=None,
                          help="safetensors file to write (default: the bundled weights file)")
    pretrain.add_argument("--steps", type=int, default=defaults.steps, help=f"(default {defaults.steps})")
    pretrain.add_argument("--seed", type=int, default=defaults.seed, help=f"(default {defaults.seed})")
    pretrain.add_argument("--batch-size", type=int, default=defaults.batch_size,
                          help=f"(default {defaults.batch_size})")
    pretrain.add_argument("--lr", type=float, default=defaults.lr, help=f"(default {defaults.lr})")
    pretrain.add_argument("--threads", type=int, default=defaults.threads,
                          help=f"torch threads; results are reproducible per thread count (default {defaults.threads})")
    pretrain.add_argument("--no-eval", action="store_true", help="skip the zero-shot report at the end")

    show = sub.add_parser("show", help="write a grid of sample images with their captions (PNG)")
    show.add_argument("--out", type=Path, required=True, help="PNG file to write")
    show.add_argument("--n", type=int, default=24, help="number of samples (default 24)")
    show.add_argument("--seed", type=int, default=0, help="(default 0)")
    show.add_argument("--image-size", type=int, default=32, help="rendered size in pixels (default 32)")
    show.add_argument("--novel", action="store_true", help="show letters and digits (never in pre-training)")

    zeroshot = sub.add_parser("zeroshot", help="zero-shot accuracy of a world CLIP on every world task")
    zeroshot.add_argument("--pretrained", default=None, help="safetensors file (default: the bundled weights)")
    zeroshot.add_argument("--per-class", type=int, default=40, help="test images per class (default 40)")
    world.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    command = args.world_command
    if command == "pretrain":
        return _pretrain(args)
    if command == "show":
        return _show(args)
    if command == "zeroshot":
        return _zeroshot(args)
    raise UserError(f"unknown world command {command!r}; valid: pretrain, show, zeroshot")


def _positive(name: str, value: int) -> None:
    if value <= 0:
        raise UserError(f"--{name} must be positive, got {value}")


def _pretrain(args: argparse.Namespace) -> int:
    from clbench.world import bundled_weights_path
    from clbench.world.pretrain import pretrain, save_weights
    from clbench.world.recipe import PretrainConfig

    for name in ("steps", "batch_size", "threads"):
        _positive(name.replace("_", "-"), getattr(args, name))
    cfg = PretrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         threads=args.threads)
    out = args.out or bundled_weights_path()
    print(f"pre-training the world CLIP: {cfg}", file=sys.stderr)
    start = time.perf_counter()
    model = pretrain(cfg)
    save_weights(model, out, cfg)
    size = out.stat().st_size / 2**20
    print(f"wrote {out} ({size:.1f} MiB) after {time.perf_counter() - start:.0f}s", file=sys.stderr)
    if not args.no_eval:
        _report(str(out), per_class=40)
    return 0


def _report(pretrained: str, per_class: int) -> None:
    from clbench.models import load_model
    from clbench.world.zeroshot import zero_shot_report

    loaded = load_model("clbench-world", pretrained)
    print(f"zero-shot accuracy ({per_class} test images per class)")
    for name, (acc, chance) in zero_shot_report(loaded.model, loaded.tokenizer, per_class=per_class).items():
        print(f"  {name:<9} {100 * acc:5.1f}%   chance {100 * chance:4.1f}%")


def _zeroshot(args: argparse.Namespace) -> int:
    from clbench.world import bundled_weights_path

    _positive("per-class", args.per_class)
    path = Path(args.pretrained).expanduser() if args.pretrained else bundled_weights_path()
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist; run `clbench world pretrain --out {path}`")
    _report(str(path), args.per_class)
    return 0


def _show(args: argparse.Namespace) -> int:
    from clbench.world.show import sample_sheet

    _positive("n", args.n)
    if args.image_size < 16:
        raise UserError(f"--image-size must be at least 16, got {args.image_size}")
    if args.out.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file, got {args.out}")
    sheet = sample_sheet(args.n, args.seed, args.image_size, novel=args.novel)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")
    return 0
