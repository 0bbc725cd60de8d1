"""``l2``: weight consolidation (WC) — an L2 penalty pulling the weights towards those the task started from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from clbench.context import trainable_parameters
from clbench.method import Batch, Method, StepLogs, TaskState
from clbench.registry import register_method
from clbench.weights import Weights, snapshot, squared_distance


@dataclass
class L2Config:
    weight: float = 1.0  # ZSCL ``--l2 1`` (``mtil/scripts/wc.sh``)


@register_method("l2")
class L2(Method):
    """WC / L2 regularisation towards the task-start weights, as ZSCL's ``--l2`` (``helpers.l2_loss``).

    Loss = CE_task + weight * sum_i ||theta_i - theta_i^start||^2 (a sum, not a mean, over every parameter;
    the frozen logit scale contributes zero), theta^start = the weights at the start of the task.
    No deviation from the reference code (``mtil/scripts/wc.sh``; its ``--fair`` is parsed, ``args.py:55``, and
    read nowhere).
    """

    paper: ClassVar[str] = ("Weight consolidation (L2 to the previous weights), baseline of Zheng et al., "
                            "Preventing Zero-Shot Transfer Degradation in Continual Learning of Vision-Language "
                            "Models (ZSCL), ICCV 2023")
    Config: ClassVar[type] = L2Config
    distributed: ClassVar[bool] = True  # CE per example; the L2 anchor is the same on every rank

    anchor: Weights | None = None

    def before_task(self, task: TaskState) -> None:
        self.anchor = snapshot(self.model)

    def training_step(self, batch: Batch, task: TaskState, step: int) -> StepLogs:
        assert self.anchor is not None
        ce = self.task_loss(batch, task)
        l2 = squared_distance(trainable_parameters(self.model), self.anchor)
        loss = ce + self.config.weight * l2
        self.ctx.backward(loss)
        return {"loss": loss.detach(), "ce": ce.detach(), "l2": l2.detach()}

    def after_task(self, task: TaskState) -> None:
        self.anchor = None
