"""What the evaluator scores: a classifier that maps a batch of images to logits over the classes asked for.

The evaluator never computes logits itself. It asks the method for a :class:`Classifier` (``Method.classifier``)
and calls ``logits(images, head)``, where :class:`HeadSpec` names the classes to score, grouped by the task
they belong to, each group with its task's prompt templates. The default, :class:`TextHeadClassifier`, is
CLIP's: cosine similarity of the image features with the cached template-ensemble text head of each group.

A method whose inference is not "one image encoder, one text head" returns its own classifier: per-image
routing to task-specific modules or to the zero-shot model (MoE-Adapters' auto-selector, DIKI's calibration),
logits fused with an analytic head (RAIL), a union head over every task's classes (X-TAIL). The evaluator, the
accuracy matrix and the metrics stay the same for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from clbench.text_heads import TextHeadCache


@dataclass(frozen=True)
class HeadGroup:
    """Classes of one task, scored with that task's prompt templates."""

    task: str
    class_names: tuple[str, ...]
    templates: tuple[str, ...]


@dataclass(frozen=True)
class HeadSpec:
    """The classes to score, in logit order: the groups' classes concatenated."""

    groups: tuple[HeadGroup, ...]

    @classmethod
    def single(cls, task: str, class_names: Sequence[str], templates: Sequence[str]) -> HeadSpec:
        return cls((HeadGroup(task, tuple(class_names), tuple(templates)),))

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(name for g in self.groups for name in g.class_names)

    @property
    def num_classes(self) -> int:
        return sum(len(g.class_names) for g in self.groups)

    def offsets(self) -> list[int]:
        """Logit index of each group's first class."""
        out, start = [], 0
        for g in self.groups:
            out.append(start)
            start += len(g.class_names)
        return out


@runtime_checkable
class Classifier(Protocol):
    """Anything the evaluator can score: ``logits(images, head)`` -> (batch, ``head.num_classes``)."""

    def logits(self, images: torch.Tensor, head: HeadSpec) -> torch.Tensor: ...


class TextHeadClassifier:
    """CLIP zero-shot style: normalised image features @ cached per-group text heads (template ensembles).

    Logits are cosine similarities (no temperature: argmax and the ranks AUC needs do not depend on it); the
    product is taken in fp32 even under autocast, as the evaluator did before this interface existed.
    """

    def __init__(self, model: nn.Module, heads: TextHeadCache) -> None:
        self.model = model.eval()  # dropout/batch-norm in inference mode while scored
        self.heads = heads

    def text_head(self, head: HeadSpec) -> torch.Tensor:
        """(num_classes, D) normalised class embeddings, each group from the cache."""
        parts = [self.heads.get(self.model, g.class_names, g.templates) for g in head.groups]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_image(images).float(), dim=-1)

    def logits(self, images: torch.Tensor, head: HeadSpec) -> torch.Tensor:
        feats = self.image_features(images)
        text = self.text_head(head)
        with torch.autocast(device_type=feats.device.type, enabled=False):
            return feats.float() @ text.float().t()
