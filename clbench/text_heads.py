"""Text heads: class names x prompt templates -> normalised text embeddings, cached per (model state, classes).

Evaluation uses the template ensemble (mean of normalised per-template embeddings, renormalised); training uses
the first template (ZSCL convention). Cached heads are keyed by the model object, a weights version the engine
bumps whenever parameters change, and the class/template tuples, so unchanged text is never re-encoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def encode_texts(model: nn.Module, tokenizer: Any, texts: Sequence[str], device: torch.device,
                 batch_size: int = 1024) -> torch.Tensor:
    """Normalised text features of ``texts`` (keeps the autograd graph when grad is enabled)."""
    chunks = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(list(texts[start:start + batch_size])).to(device)
        chunks.append(F.normalize(model.encode_text(tokens), dim=-1))
    return torch.cat(chunks)


def class_embeddings(model: nn.Module, tokenizer: Any, class_names: Sequence[str], templates: Sequence[str],
                     device: torch.device) -> torch.Tensor:
    """(C, D) head: per class, the renormalised mean over templates of normalised embeddings."""
    texts = [t.format(c) for c in class_names for t in templates]
    feats = encode_texts(model, tokenizer, texts, device)
    feats = feats.view(len(class_names), len(templates), -1)
    if len(templates) == 1:
        return feats[:, 0]
    return F.normalize(feats.mean(dim=1), dim=-1)


class TextHeadCache:
    """Cache of gradient-free text heads keyed by (model, weights version, classes, templates)."""

    def __init__(self, tokenizer: Any, device: torch.device) -> None:
        self.tokenizer = tokenizer
        self.device = device
        self._cache: dict[tuple[int, int, tuple[str, ...], tuple[str, ...]], torch.Tensor] = {}
        self._versions: dict[int, int] = {}
        self.encodes = 0  # how many heads were actually encoded (for tests and logs)

    def bump(self, model: nn.Module) -> None:
        """Declare that ``model``'s weights changed: its cached heads are stale."""
        key = id(model)
        self._versions[key] = self._versions.get(key, 0) + 1
        self._cache = {k: v for k, v in self._cache.items() if k[0] != key}

    def get(self, model: nn.Module, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        key = (id(model), self._versions.get(id(model), 0), tuple(class_names), tuple(templates))
        head = self._cache.get(key)
        if head is None:
            with torch.inference_mode():
                head = class_embeddings(model, self.tokenizer, class_names, templates, self.device).float()
            head = head.clone()  # leave inference mode so the tensor can enter autograd graphs as a constant
            self._cache[key] = head
            self.encodes += 1
        return head
