"""Contrastive pre-training of the world's tiny CLIP: the reproducible recipe behind the bundled weights.

Why it matters: continual-learning methods are only told apart by what zero-shot knowledge they keep, so the
world's model must *know* shapes, colours, textures... (but not letters or digits) before any task is learned.
Deterministic for a fixed seed and thread count on CPU: images come from seeded rendering, the model from a
seeded init, and ``torch.use_deterministic_algorithms`` rules out racy kernels.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

import torch
import torch.nn.functional as F
from torch import nn

from clbench.world.corpus import corpus_pairs, pretraining_seeds
from clbench.world.datasets import normalise, to_chw_tensor
from clbench.world.recipe import PretrainConfig

MODEL_NAME = "clbench-world"


def create_model(seed: int) -> tuple[nn.Module, object]:
    """A randomly initialised world CLIP (seeded) and its tokenizer."""
    import open_clip

    from clbench.models import register_model_configs

    register_model_configs()
    torch.manual_seed(seed)
    quiet = logging.getLogger()  # open_clip warns that no pretrained weights were loaded: that is the point
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        model = open_clip.create_model(MODEL_NAME, pretrained=None)
    finally:
        quiet.setLevel(level)
    return model, open_clip.get_tokenizer(MODEL_NAME)


def soft_targets(captions: list[str]) -> torch.Tensor:
    """Row-normalised 'same caption' matrix: repeated captions are positives of each other, not negatives."""
    ids: dict[str, int] = {}
    index = torch.tensor([ids.setdefault(c, len(ids)) for c in captions])
    same = (index[:, None] == index[None, :]).float()
    return same / same.sum(dim=1, keepdim=True)


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor,
                     targets: torch.Tensor) -> torch.Tensor:
    """Symmetric CLIP loss with soft targets (``targets`` is symmetric up to row normalisation)."""
    logits = scale * image @ text.t()
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets))


def _lr_factor(step: int, cfg: PretrainConfig) -> float:
    warmup = max(1, int(cfg.warmup_fraction * cfg.steps))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def pretrain(cfg: PretrainConfig, log: TextIO = sys.stderr, log_every: int = 50) -> nn.Module:
    """Train the world CLIP from scratch on the pre-training corpus; returns the model (fp32, eval mode)."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return _train(cfg, log, log_every)
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(deterministic)


def _train(cfg: PretrainConfig, log: TextIO, log_every: int) -> nn.Module:
    model, tokenizer = create_model(cfg.seed)
    model.train()
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6,
                                  fused=True)
    start = time.perf_counter()
    running = 0.0
    for step in range(cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * _lr_factor(step, cfg)
        images, captions = corpus_pairs(pretraining_seeds(cfg.seed, cfg.batch_size, step * cfg.batch_size),
                                        cfg.image_size)
        x = normalise(to_chw_tensor(images))
        tokens = tokenizer(captions)
        image = F.normalize(model.encode_image(x), dim=-1)
        text = F.normalize(model.encode_text(tokens), dim=-1)
        loss = contrastive_loss(image, text, model.logit_scale.exp(), soft_targets(captions))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        running += float(loss.detach())
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
            elapsed = time.perf_counter() - start
            eta = elapsed / (step + 1) * (cfg.steps - step - 1)
            n = (step % log_every) + 1
            print(f"step {step + 1}/{cfg.steps}  loss {running / n:.3f}  scale {model.logit_scale.exp():.1f}  "
                  f"{elapsed:.0f}s elapsed, ETA {eta:.0f}s", file=log, flush=True)
            running = 0.0
    model.eval()
    return model


def save_weights(model: nn.Module, path: Path, cfg: PretrainConfig | None = None) -> Path:
    """Write the state dict as fp16 safetensors (halves the 49408-row token table; accuracy unchanged)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    # One metadata key: safetensors writes several in hash order, which made equal weights differ in bytes.
    recipe = {"model": MODEL_NAME, **(asdict(cfg) if cfg is not None else {})}
    metadata = {"clbench": json.dumps(recipe, sort_keys=True)}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path
