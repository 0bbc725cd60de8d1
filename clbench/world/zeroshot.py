"""Zero-shot accuracy of a world CLIP on the world's tasks: the bundled model's acceptance check.

Scores the way the harness's evaluator does (template ensemble of normalised text embeddings, cosine
argmax), on test images rendered directly, so pre-training can be judged without building a benchmark.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clbench.world.datasets import CLIP_MEAN, CLIP_STD, normalise, to_chw_tensor
from clbench.world.tasks import TASKS, WorldTask, make_split, task


@torch.no_grad()
def zero_shot_accuracy(model: nn.Module, tokenizer: Any, world_task: WorldTask, per_class: int = 40,
                       data_seed: int = 0, image_size: int = 32, batch_size: int = 500) -> float:
    """Top-1 accuracy (0..1) on ``per_class`` test images per class."""
    from clbench.text_heads import class_embeddings

    model.eval()
    device = next(model.parameters()).device
    head = class_embeddings(model, tokenizer, world_task.class_names, world_task.templates, device)
    images, labels = make_split(world_task, "test", per_class, data_seed, image_size)
    x = to_chw_tensor(images)
    correct = 0
    for start in range(0, len(x), batch_size):
        batch = normalise(x[start:start + batch_size], CLIP_MEAN, CLIP_STD).to(device)
        pred = (F.normalize(model.encode_image(batch), dim=-1) @ head.t()).argmax(dim=1).cpu()
        correct += int((pred == torch.from_numpy(labels[start:start + batch_size])).sum())
    return correct / len(x)


def zero_shot_report(model: nn.Module, tokenizer: Any, names: Iterable[str] | None = None,
                     per_class: int = 40) -> dict[str, tuple[float, float]]:
    """Task name -> (accuracy, chance), every world task by default."""
    out = {}
    for name in names if names is not None else TASKS:
        t = task(name)
        out[name] = (zero_shot_accuracy(model, tokenizer, t, per_class), 1.0 / len(t.class_names))
    return out
