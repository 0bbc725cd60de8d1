"""The method plugin API: a small class with a typed config that overrides a few hooks.

The engine owns data, devices, precision, schedule, evaluation, checkpointing and logging. A method sees the
model, the current task, a batch, and the services of :class:`clbench.context.MethodContext` (text heads,
frozen snapshots, backward with the right precision, iterators over task/reference/synthetic data). It never
opens files, builds DataLoaders or picks devices.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from clbench.classifier import Classifier, TextHeadClassifier

if TYPE_CHECKING:
    from clbench.benchmark import TaskSpec
    from clbench.context import MethodContext


#: What ``training_step`` returns: loss terms to log, as detached 0-dim tensors (floats are accepted). The
#: engine turns them into numbers only on logged steps: ``float(t)`` waits for the device, and doing it every
#: step would stall a GPU once per iteration.
StepLogs = dict[str, torch.Tensor | float]


@dataclass
class NoConfig:
    """Config of a method without hyper-parameters of its own."""


@dataclass
class Batch:
    """A training batch on the engine's device; ``labels`` index the current task's ``train_class_names``."""

    images: torch.Tensor
    labels: torch.Tensor
    # examples in the step's whole batch: more than ``len(images)`` when ranks share the step (``--nproc``), each
    # holding a contiguous shard; None: this batch is the whole step batch
    full_size: int | None = None

    @property
    def step_size(self) -> int:
        """The step batch size across all ranks (size a replicated auxiliary batch, e.g. ZSCL's reference
        batch, by this, not by ``len(images)``, so that it does not depend on the process count)."""
        return self.full_size if self.full_size is not None else len(self.images)


@dataclass(frozen=True)
class TaskState:
    """What a method knows of the task being trained."""

    index: int  # 0-based position in the stream
    spec: TaskSpec
    num_tasks: int
    steps: int  # optimizer steps this task will take
    train_class_names: tuple[str, ...]  # the classes the training head covers (current task only)
    seen_class_names: tuple[str, ...]  # every class seen so far, this task included

    @property
    def train_template(self) -> str:
        """Training uses the first template (ZSCL convention)."""
        return self.spec.templates[0]


class Method:
    """Base class: plain fine-tuning behaviour; subclasses override what their paper changes."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig
    trains: ClassVar[bool] = True  # False: the engine runs no training iterations (zero-shot, RAIL)
    # True: after before_task the engine calls fit_task once with the task's training data (closed-form
    # learners such as RAIL: no optimizer, no SGD). Usually with trains=False; a method may do both.
    fits: ClassVar[bool] = False
    services: ClassVar[tuple[str, ...]] = ()  # engine services to build for this method (clbench.services)
    # Data parallelism (``--nproc N``, ``clbench.distributed``): True when the method gives the single-process
    # results with the step batch split across ranks and the weighted gradients summed after
    # ``training_step``. That holds when every loss term is either a per-example mean over the step batch
    # (cross-entropy) or computed identically on every rank from data that is not sharded (reference,
    # synthetic or replay batches sized by ``batch.step_size``, anchors, fixed passes of ``ctx.task_batches``,
    # which are whole on every rank), and nothing draws random numbers per shard. False (the default, for
    # plugins nobody has checked): ``--nproc`` > 1 is refused with ``distributed_reason``.
    distributed: ClassVar[bool] = False
    distributed_reason: ClassVar[str] = "it does not declare data-parallel support (Method.distributed)"

    def __init__(self, config: Any, ctx: MethodContext) -> None:
        self.config = config
        self.ctx = ctx

    @property
    def model(self) -> nn.Module:
        return self.ctx.model

    # ---- hooks -----------------------------------------------------------------------------------------
    def patch_model(self, model: nn.Module) -> None:
        """Add the method's own modules to the pretrained ``model`` in place (adapters, prefixes, routers).

        Called once per model the engine builds from the pretrained weights (the trained model, and the fresh copy
        a resumed run reloads as the initial model), before ``before_run``, the optimizer and any snapshot, under
        a fixed random seed: a resumed run rebuilds the same modules. Keep existing parameter names (add
        submodules, do not re-wrap blocks) so a checkpoint stores only what changed or was added. Raise
        :class:`clbench.errors.UserError` (one line) for a model the method cannot patch. Default: nothing.
        """

    def trainable(self, task: TaskState) -> list[tuple[str, nn.Parameter]]:
        """The parameters the optimizer updates during ``task`` (called after ``before_task``).

        The engine turns gradients off for every other parameter of the model, so a frozen backbone stays
        bit-identical. Default: every parameter that requires gradients, except the frozen ``logit_scale``.
        """
        from clbench.context import trainable_parameters

        return trainable_parameters(self.model)

    def task_schedule(self, task: TaskState, lr: float) -> tuple[float, int | None] | None:
        """(learning rate, iterations N or None) for ``task`` where the method's paper sets its own (e.g. a
        per-task lr list); ``lr`` and ``task.steps`` are the benchmark's. N is the schedule length (the engine
        adds the final step N when ``train.final_step``); None keeps the benchmark's. None: the benchmark's."""
        return None

    def optimizer(self, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer | None:
        """The optimizer over ``params`` where the method's paper uses its own (DIKI: plain SGD); None: the
        engine's AdamW (``train.beta1/beta2/eps/weight_decay``). Either way the engine sets every group's lr at
        each step (warm-up + cosine from ``lr``), zeroes, clips and steps it."""
        return None

    def before_run(self) -> None:
        """Once, after the pretrained model is loaded and before the first task."""

    def before_task(self, task: TaskState) -> None:
        """Before the first training iteration of ``task``."""

    def training_step(self, batch: Batch, task: TaskState, step: int) -> StepLogs:
        """One iteration: compute losses and call ``self.ctx.backward`` (possibly several times).

        The engine zeroes gradients before and clips/steps the optimizer after. Returns detached scalar tensors
        to log (:data:`StepLogs`); never ``float(...)`` them here, that synchronises with the device.
        """
        loss = self.task_loss(batch, task)
        self.ctx.backward(loss)
        return {"loss": loss.detach()}

    def fit_task(self, task: TaskState, batches: Iterator[Batch]) -> None:
        """Only when ``fits``: consume the task's training data once (fixed order, the engine's batch size and
        device, labels indexing ``task.train_class_names``) and fit in closed form. No gradients are needed."""
        raise NotImplementedError(f"{type(self).__name__} sets fits=True but does not implement fit_task")

    def after_step(self, task: TaskState, step: int) -> None:
        """After the optimizer step (weight averaging and similar)."""

    def after_task(self, task: TaskState) -> None:
        """After the last iteration of ``task``, before it is evaluated."""

    def eval_model(self) -> nn.Module:
        """The model the default classifier scores (e.g. an averaged copy)."""
        return self.model

    def classifier(self) -> Classifier:
        """What the evaluator scores after a task (``clbench.classifier``): by default CLIP's cosine logits of
        :meth:`eval_model` against cached template-ensemble text heads. Override for per-image routing, fused
        or analytic heads; the evaluator and metrics stay the same."""
        return TextHeadClassifier(self.eval_model(), self.ctx.text_heads)

    def state_dict(self) -> dict[str, Any]:
        """Method state for resume (tensors and plain values only: loaded with ``weights_only=True``)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""

    def step_state_dict(self) -> dict[str, Any]:
        """What this method changed during the current task's steps so far, other than the model's parameters
        and buffers (a running weight average, how many reference/synthetic batches it drew, an accumulated
        importance estimate...): saved in a mid-task checkpoint (tensors and plain values only).

        A resume replays ``before_task`` (same task-start model, same task-seeded RNG), then calls
        :meth:`load_step_state_dict` with this, so state that ``before_task`` rebuilds identically need not be
        here. Default: nothing (right for a method whose steps change only the model)."""
        return {}

    def load_step_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`step_state_dict` output (called after ``before_task`` and the model's weights)."""

    # ---- shared pieces ---------------------------------------------------------------------------------
    def task_logits(self, images: torch.Tensor, task: TaskState, model: nn.Module | None = None) -> torch.Tensor:
        """s * f(x) g(P_t)^T with the (trainable) text encoder of ``model`` over the training prompts."""
        model = self.model if model is None else model
        text = self.ctx.text_features(model, task.train_class_names, (task.train_template,), grad=True)
        image = F.normalize(model.encode_image(images), dim=-1)
        return self.ctx.logit_scale(model) * image @ text.t()

    def task_loss(self, batch: Batch, task: TaskState) -> torch.Tensor:
        """Cross-entropy with label smoothing over the current task's classes."""
        logits = self.task_logits(batch.images, task)
        return F.cross_entropy(logits, batch.labels, label_smoothing=self.ctx.label_smoothing)
