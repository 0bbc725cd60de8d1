"""``ewc``: Elastic Weight Consolidation — a Fisher-weighted quadratic anchor to the previous tasks' weights."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from clbench.context import trainable_parameters
from clbench.method import Batch, Method, StepLogs, TaskState
from clbench.registry import register_method
from clbench.weights import Weights, squared_distance


@dataclass
class EWCConfig:
    lam: float = 1.0e4  # lambda of (lambda/2) sum F (theta - theta*)^2 — not published for CLIP, see the docstring
    gamma: float = 1.0  # online EWC decay of the accumulated Fisher (1: plain sum over tasks)
    fisher_batches: int | None = None  # batches of the task's data for the Fisher (None: all of it)


def diagonal_fisher(params: Sequence[tuple[str, torch.nn.Parameter]], batches: Iterable[Any],
                    loss_fn: Callable[[Any], torch.Tensor]) -> Weights:
    """Empirical diagonal Fisher: the mean over mini-batches of the squared gradient of the batch loss.

    (Avalanche's ``EWCPlugin`` estimate.) Gradients are computed here with a plain ``backward`` and cleared
    afterwards; ``params`` without a gradient get zeros.
    """
    fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params}
    count = 0
    for batch in batches:
        for _, p in params:
            p.grad = None
        loss_fn(batch).backward()
        for n, p in params:
            if p.grad is not None:
                fisher[n] += p.grad.detach().float().pow(2)
        count += 1
    for _, p in params:
        p.grad = None
    if count:
        for f in fisher.values():
            f.div_(count)
    return fisher


@register_method("ewc")
class EWC(Method):
    """EWC (Kirkpatrick et al., PNAS 2017), online form (Schwarz et al., ICML 2018), on both CLIP encoders.

    Training loss = CE_task + (lambda/2) * sum_i F_i (theta_i - theta*_i)^2 where theta* = the weights at the
    end of the previous task and F the accumulated diagonal Fisher: after each task F <- gamma * F +
    F_task, F_task being the mean over the task's mini-batches of the squared gradient of the unsmoothed
    cross-entropy of the labels (the empirical Fisher). The logit scale is frozen and excluded.

    ZSCL's code has no EWC; there is no reference implementation or published hyper-parameter for CLIP.
    Choices made here: the per-batch (not per-sample) squared gradient, as Avalanche's ``EWCPlugin`` (which
    underestimates the per-sample Fisher by about the batch size when the mean gradient is small);
    lambda = 1e4, chosen (not tuned on results) so that the penalty has the order of magnitude of the L2/WC
    penalty at its published weight 1 on the offline world (about 0.05 at the end of a task for both).
    """

    paper: ClassVar[str] = ("Kirkpatrick et al., Overcoming catastrophic forgetting in neural networks (EWC), "
                            "PNAS 2017; online form of Schwarz et al., ICML 2018")
    Config: ClassVar[type] = EWCConfig
    # CE per example; the Fisher pass reads the whole task data on every rank (same F everywhere)
    distributed: ClassVar[bool] = True

    fisher: Weights | None = None
    anchor: Weights | None = None

    def training_step(self, batch: Batch, task: TaskState, step: int) -> StepLogs:
        ce = self.task_loss(batch, task)
        loss = ce
        logs: dict[str, torch.Tensor] = {"ce": ce.detach()}
        if self.fisher is not None and self.anchor is not None:
            penalty = squared_distance(trainable_parameters(self.model), self.anchor, self.fisher)
            loss = ce + 0.5 * self.config.lam * penalty
            logs["ewc"] = penalty.detach()
        self.ctx.backward(loss)
        return {"loss": loss.detach(), **logs}

    def after_task(self, task: TaskState) -> None:
        cfg: EWCConfig = self.config
        model = self.model
        params = trainable_parameters(model)

        def nll(batch: Batch) -> torch.Tensor:
            with self.ctx.autocast():
                return F.cross_entropy(self.task_logits(batch.images, task), batch.labels)

        was_training = model.training
        model.eval()
        fisher = diagonal_fisher(params, self.ctx.task_batches(cfg.fisher_batches), nll)
        model.train(was_training)
        if self.fisher is None:
            self.fisher = fisher
        else:
            self.fisher = {n: cfg.gamma * self.fisher[n] + fisher[n] for n in fisher}
        self.anchor = {n: p.detach().clone() for n, p in params}

    def state_dict(self) -> dict[str, Any]:
        return {"fisher": self.fisher, "anchor": self.anchor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fisher, self.anchor = state.get("fisher"), state.get("anchor")

