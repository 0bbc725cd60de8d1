"""``magmax``: MagMax (Marczak et al., ECCV 2024) — sequential fine-tuning, then max-magnitude task-vector merging."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from clbench.errors import UserError
from clbench.method import Method, TaskState
from clbench.registry import register_method
from clbench.weights import Weights, load_weights, snapshot


@dataclass
class MagMaxConfig:
    scaling_coef: float = 0.5  # lambda of theta_0 + lambda * tau_merged (merge_splitted.py:70: (merge_max_abs, [0.5]))


def merge_max_abs(merged: Weights | None, tau: Weights) -> Weights:
    """Element-wise: keep whichever of ``merged`` and ``tau`` has the larger magnitude, ``tau`` on ties.

    MagMax ``src/merging/task_vectors.py:104-127`` folds ``torch.where(cur.abs() >= acc.abs(), cur, acc)`` over
    the task vectors in task order; folding one new vector into the running result is the same loop.
    """
    if merged is None:
        return {n: t.clone() for n, t in tau.items()}
    return {n: torch.where(tau[n].abs() >= merged[n].abs(), tau[n], merged[n]) for n in tau}


@register_method("magmax")
class MagMax(Method):
    """MagMax: train each task as ``finetune`` from the previous task's weights (sequential fine-tuning); after
    task t the task vector tau_t = theta_t - theta_0 (pretrained) is folded into the running max-magnitude merge,
    and the model evaluated is theta_0 + lambda * merge(tau_1..tau_t), lambda = 0.5 (MagMax
    ``merge_splitted.py:37-53``, ``task_vectors.py:73-85``). Training continues from theta_t, not from the merge.

    Deviations: MagMax fine-tunes the image encoder under frozen class heads; here every trainable parameter
    (both encoders, ZSCL's training recipe) is fine-tuned and merged — integer buffers are not parameters and
    never merged (the reference skips int64/uint8 keys, ``task_vectors.py:30``). The merge is kept as one running
    tensor per parameter instead of every task vector (the same result, one model's memory instead of T).
    """

    paper: ClassVar[str] = ("Marczak et al., MagMax: Leveraging Model Merging for Seamless Continual Learning, "
                            "ECCV 2024")
    Config: ClassVar[type] = MagMaxConfig
    # CE per example; the merge uses weights that are identical on every rank
    distributed: ClassVar[bool] = True

    def before_run(self) -> None:
        if self.config.scaling_coef < 0:
            raise UserError(f"magmax.scaling_coef must be non-negative, not {self.config.scaling_coef}")
        self.merged: Weights | None = None
        self._merged_model: nn.Module | None = None

    def after_task(self, task: TaskState) -> None:
        base = snapshot(self.ctx.initial_model())
        current = snapshot(self.model)
        self.merged = merge_max_abs(self.merged, {n: current[n] - base[n] for n in current})
        self._merged_model = None

    def merged_weights(self) -> Weights:
        """theta_0 + lambda * tau_merged."""
        assert self.merged is not None
        base = snapshot(self.ctx.initial_model())
        return {n: base[n] + self.config.scaling_coef * self.merged[n] for n in base}

    def eval_model(self) -> nn.Module:
        if self.merged is None:
            return self.model
        if self._merged_model is None:
            model = self.ctx.frozen_copy(self.ctx.initial_model())
            load_weights(model, self.merged_weights())
            self.ctx.weights_changed(model)
            self._merged_model = model
        return self._merged_model

    def state_dict(self) -> dict[str, Any]:
        return {"merged": self.merged} if self.merged is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.merged = state.get("merged")
        self._merged_model = None
