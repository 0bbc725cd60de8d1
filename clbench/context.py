"""Services the engine offers to a method: the only door between a method and the engine's resources."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

from clbench.method import Batch
from clbench.text_heads import TextHeadCache, class_embeddings


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every parameter that trains: all but the frozen ``logit_scale`` (ZSCL/GIFT)."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and not n.endswith("logit_scale")]


def freeze(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode with gradients off (teachers, snapshots)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class MethodContext:
    """What a method may use: the model, text heads, precision-aware backward, snapshots and data iterators."""

    def __init__(self, model: nn.Module, tokenizer: Any, device: torch.device, label_smoothing: float,
                 autocast: Callable[[], AbstractContextManager[Any]] | None = None,
                 scaler: torch.amp.GradScaler | None = None,
                 initial_model: Callable[[], nn.Module] | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.label_smoothing = label_smoothing
        self.text_heads = TextHeadCache(tokenizer, device)
        self._autocast = autocast or nullcontext
        self._scaler = scaler
        self._initial_model = initial_model
        self._task_batches: Callable[[int | None], Iterator[Batch]] | None = None
        self.services: dict[str, Any] = {}

    # ---- precision --------------------------------------------------------------------------------------
    @property
    def scaler(self) -> torch.amp.GradScaler | None:
        """The fp16 loss scaler the engine unscales and steps with (None in fp32/bf16)."""
        return self._scaler

    def autocast(self) -> AbstractContextManager[Any]:
        return self._autocast()

    def backward(self, loss: torch.Tensor, retain_graph: bool = False) -> None:
        """Backward with the run's precision (loss scaling under fp16); gradients accumulate."""
        if self._scaler is not None:
            self._scaler.scale(loss).backward(retain_graph=retain_graph)
        else:
            loss.backward(retain_graph=retain_graph)

    def loss_scale(self) -> float:
        """The factor ``backward`` multiplies losses by (fp16 loss scaling; 1.0 otherwise).

        A method that adds an analytic gradient to ``.grad`` by hand (GIFT's AWC) multiplies it by this, so the
        engine's unscale/step treats it like the gradients of scaled losses.
        """
        return float(self._scaler.get_scale()) if self._scaler is not None else 1.0

    # ---- model pieces -----------------------------------------------------------------------------------
    @staticmethod
    def logit_scale(model: nn.Module) -> torch.Tensor:
        """The frozen temperature s = exp(logit_scale), as a constant."""
        return model.logit_scale.detach().exp()

    def text_features(self, model: nn.Module, class_names: Sequence[str], templates: Sequence[str],
                      grad: bool = False) -> torch.Tensor:
        """(C, D) normalised class embeddings; ``grad=True`` keeps the graph (student's trainable head)."""
        if grad:
            return class_embeddings(model, self.tokenizer, class_names, templates, self.device)
        return self.text_heads.get(model, class_names, templates)

    def encode_texts(self, model: nn.Module, texts: Sequence[str], grad: bool = False) -> torch.Tensor:
        """Normalised embeddings of free texts (reference captions, synthetic prompts)."""
        from clbench.text_heads import encode_texts

        if grad:
            return encode_texts(model, self.tokenizer, texts, self.device)
        with torch.inference_mode():
            feats = encode_texts(model, self.tokenizer, texts, self.device).float()
        return feats.clone()  # outside inference mode: a normal tensor that autograd and in-place ops accept

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts)).to(self.device)

    def frozen_copy(self, model: nn.Module | None = None) -> nn.Module:
        """A frozen deep copy of ``model`` (default: the model being trained), e.g. the previous-task teacher."""
        return freeze(copy.deepcopy(self.model if model is None else model))

    def initial_model(self) -> nn.Module:
        """The frozen pretrained model the run started from (ZSCL's fixed teacher)."""
        if self._initial_model is None:
            raise RuntimeError("the engine offers no initial model")
        return self._initial_model()

    def weights_changed(self, model: nn.Module | None = None) -> None:
        """Tell the text-head cache that ``model``'s weights changed outside the optimizer step."""
        self.text_heads.bump(self.model if model is None else model)

    # ---- data -------------------------------------------------------------------------------------------
    def bind_task_data(self, batches: Callable[[int | None], Iterator[Batch]] | None) -> None:
        """The engine hands over (or, with None, takes back) the current task's data."""
        self._task_batches = batches

    def task_batches(self, max_batches: int | None = None) -> Iterator[Batch]:
        """Batches of the current task's training data in a fixed order (Fisher estimates, herding)."""
        if self._task_batches is None:
            raise RuntimeError("task data is only available during a task")
        return self._task_batches(max_batches)

    def service(self, name: str) -> Any:
        """An optional engine service (e.g. ``reference_data``, ``synthetic_data``) by name."""
        if name not in self.services:
            raise KeyError(f"the engine offers no {name!r} service in this run")
        return self.services[name]
