"""``icarl``: iCaRL for CLIP — herding exemplar memory, replayed in training and distilled from the previous model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from clbench.errors import UserError
from clbench.losses import feature_distillation, masked_cross_entropy
from clbench.method import Batch, Method, StepLogs, TaskState
from clbench.methods.lwf import teacher_image_features
from clbench.registry import register_method


@dataclass
class ICaRLConfig:
    memory_size: int = 10000  # K exemplars (MTIL ``--memory_size``, mtil/src/args.py:110; CIL code 5000,
    # cil/continual_clip/dynamic_dataset.py:20). New task t keeps K - K//t, older sets K//t each, as the code.
    teacher: str = "initial"  # MTIL icarl.py:105-111: no --ref-model, the zero-shot CLIP; "previous": the
    # model at the start of the task (the CIL code's intent, cil/continual_clip/models.py:121-128)
    memory_timing: str = "after_task"  # MTIL: exemplars of a task chosen after training it, with the trained
    # model (icarl.py:30-40); "before_task": the CIL code chooses them from the task about to be trained, with
    # the model at its start, and distils on them from the first task on (models.py:58-59, 143)
    herd_first_task: bool = False  # MTIL keeps the first K images of the first task (dynamic_dataset.py:21-25);
    # the CIL code herds there too (m = K, cil/continual_clip/dynamic_dataset.py:63-66)
    candidates: int = 30000  # only a task's first N training images are candidates (MTIL dynamic_dataset.py:95;
    # CIL 10000, dynamic_dataset.py:95)
    replay_batch_size: int | None = None  # exemplars per step (None: the task batch size, ``batch(ref, bs)``)
    replay_weight: float = 0.0  # >0: CE of the exemplars against their own task's classes (iCaRL's paper);
    # neither ZSCL tree classifies exemplars, they only distil on them
    temperature: float = 2.0
    image_weight: float = 1.0  # distillation on the exemplars (the CIL code uses 5)
    text_weight: float = 1.0
    # The code's bugs: the herding loop indexes the shrinking feature array but reads the full image list
    # (cil/continual_clip/dynamic_dataset.py:69-85,
    # mtil/src/dynamic_dataset.py:64-80), and with teacher "previous" the CIL teacher shares the student's
    # storage (models.py:127-128: zero distillation gradient). True reproduces both.
    reference_quirks: bool = False

    def validate(self) -> None:
        if self.teacher not in ("initial", "previous"):
            raise UserError(f"icarl.teacher must be initial or previous, not {self.teacher!r}")
        if self.memory_timing not in ("after_task", "before_task"):
            raise UserError(f"icarl.memory_timing must be after_task or before_task, not {self.memory_timing!r}")
        if self.memory_size <= 0 or self.candidates <= 0:
            raise UserError("icarl.memory_size and icarl.candidates must be positive")


def herding(features: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of ``count`` rows chosen greedily so their running mean tracks the mean of all rows (iCaRL).

    Step k picks the unchosen x minimising ||mu - (sum of chosen + x) / k||; features are L2-normalised first
    (cil/continual_clip/dynamic_dataset.py:58-85). Ties go to the first row, as ``np.argmin``.
    """
    feats = F.normalize(features.float(), dim=-1)
    mu = feats.mean(dim=0)
    chosen: list[int] = []
    total = torch.zeros_like(mu)
    available = torch.ones(len(feats), dtype=torch.bool, device=feats.device)
    for k in range(1, min(count, len(feats)) + 1):
        dist = (mu - (total + feats) / k).pow(2).sum(1).masked_fill(~available, float("inf"))
        i = int(dist.argmin())
        chosen.append(i)
        available[i] = False
        total += feats[i]
    return torch.tensor(chosen, dtype=torch.long)


def shrunken_positions(chosen: torch.Tensor) -> torch.Tensor:
    """Where the code reads each herded image: the row's position in the feature array after the earlier
    picks were deleted (``np.delete``), used as an index into the full image list
    (cil/continual_clip/dynamic_dataset.py:69-85)."""
    out = []
    for k, i in enumerate(chosen.tolist()):
        out.append(i - int((chosen[:k] < i).sum()))
    return torch.tensor(out, dtype=torch.long)


@register_method("icarl")
class ICaRL(Method):
    """iCaRL (Rebuffi et al., CVPR 2017) as ZSCL's code runs it for CLIP (``mtil/src/models/icarl.py``,
    ``mtil/src/dynamic_dataset.py``; CIL ``cil/continual_clip/models.py``, ``dynamic_dataset.py``).

    Memory: one exemplar set per task, K = ``memory_size`` in total as the code counts it: when task t arrives
    the older sets are cut to their first K//t exemplars and the new one gets K - K//t (so the memory holds
    more than K after the second task, as in the code), chosen by herding over the normalised image features of
    the task's first ``candidates`` training images, the first task's set being its first K images (MTIL) or
    herded too (``herd_first_task``, CIL). Training: the exemplars are visited in storage order, one batch per
    step (``batch(ref_images, batch_size)``, cycled); Loss = CE_task + w_img L_img + w_txt L_txt on the
    exemplars (:func:`clbench.losses.feature_distillation`, T = 2) against the teacher's embeddings of the
    current task's prompts; teacher = the zero-shot CLIP (MTIL, ``teacher="initial"``) or the model at the
    start of the task (CIL, ``"previous"``). ``replay_weight`` > 0 adds the paper's exemplar classification.

    Declared deviations: the code stores exemplars through the evaluation transform (MTIL) or one random crop
    (CIL); here they are the engine's seeded training draw of each image (one crop of 90-100%), as fp16. The
    MTIL script ``mtil/scripts/icarl.sh`` is a 5-iteration smoke command without ``--image_loss``/``--text_loss``;
    the weights 1/1 are those of the other MTIL scripts. ``reference_quirks=True`` reproduces the herding
    indexing bug and, with ``teacher="previous"``, the CIL teacher that shares the student's storage.
    """

    paper: ClassVar[str] = ("Rebuffi et al., iCaRL: Incremental Classifier and Representation Learning, CVPR 2017 "
                            "— CLIP baseline of ZSCL (Zheng et al., ICCV 2023)")
    Config: ClassVar[type] = ICaRLConfig
    # CE per example; replay batch (sized by batch.step_size) and herding are the same on every rank
    distributed: ClassVar[bool] = True

    def __init__(self, config: Any, ctx: Any) -> None:
        super().__init__(config, ctx)
        config.validate()
        self.images = torch.empty(0, dtype=torch.float16)  # (N, 3, H, W) exemplars, CPU, in storage order
        self.tasks = torch.empty(0, dtype=torch.long)  # task index of each exemplar (its set)
        self.labels = torch.empty(0, dtype=torch.long)  # label within its task
        self.task_prompts: list[list[str]] = []  # per task seen: its class prompts (first template)
        self.teacher: torch.nn.Module | None = None
        self.cursor = 0  # next exemplar of the storage-order walk

    def before_task(self, task: TaskState) -> None:
        cfg: ICaRLConfig = self.config
        self.task_prompts.append([task.train_template.format(c) for c in task.train_class_names])
        if cfg.memory_timing == "before_task":
            self.update_memory(task)
        self.teacher = None
        if len(self.images):
            if cfg.teacher == "initial":
                self.teacher = self.ctx.initial_model()
            else:
                self.teacher = self.model if cfg.reference_quirks else self.ctx.frozen_copy()
            self.cursor = 0  # a fresh ``batch(ref_images)`` generator per task
            self.encode_teacher_text(task)

    def encode_teacher_text(self, task: TaskState) -> None:
        assert self.teacher is not None
        with self.ctx.autocast():
            self.teacher_text = self.ctx.encode_texts(self.teacher, self.task_prompts[task.index])

    def next_exemplars(self, count: int) -> torch.Tensor:
        """Positions of the next ``count`` exemplars in storage order; a short batch ends a pass (``batch()``)."""
        if self.cursor >= len(self.images):
            self.cursor = 0
        pick = torch.arange(self.cursor, min(self.cursor + count, len(self.images)))
        self.cursor += len(pick)
        return pick

    def replay_loss(self, images: torch.Tensor, tasks: torch.Tensor, labels: torch.Tensor,
                    image_features: torch.Tensor) -> torch.Tensor:
        """CE of exemplars against the prompts of their own task (one text forward over the tasks present)."""
        present = tasks.unique().tolist()
        prompts = [p for t in present for p in self.task_prompts[t]]
        text = self.ctx.encode_texts(self.model, prompts, grad=True)
        column_task = torch.tensor([t for t in present for _ in self.task_prompts[t]], device=images.device)
        offsets = {t: sum(len(self.task_prompts[u]) for u in present[:i]) for i, t in enumerate(present)}
        targets = labels + torch.tensor([offsets[int(t)] for t in tasks], device=images.device)
        logits = self.ctx.logit_scale(self.model) * image_features @ text.t()
        allowed = column_task.view(1, -1) == tasks.to(images.device).view(-1, 1)
        return masked_cross_entropy(logits, targets.to(images.device), allowed, self.ctx.label_smoothing)

    def training_step(self, batch: Batch, task: TaskState, step: int) -> StepLogs:
        cfg: ICaRLConfig = self.config
        ce = self.task_loss(batch, task)
        loss, logs = ce, {"ce": ce.detach()}
        if self.teacher is not None:
            if self.teacher is self.model:  # the shared teacher moves every step (models.py:246-250)
                self.encode_teacher_text(task)
            pick = self.next_exemplars(cfg.replay_batch_size or batch.step_size)
            images = self.images[pick].to(self.ctx.device, non_blocking=True).float()
            feats = F.normalize(self.model.encode_image(images), dim=-1)
            teacher = teacher_image_features(self.teacher, images)
            l_img, l_txt = feature_distillation(feats, teacher, self.teacher_text, self.ctx.logit_scale(self.model),
                                                cfg.temperature)
            loss = ce + cfg.image_weight * l_img + cfg.text_weight * l_txt
            logs.update(distill_image=l_img.detach(), distill_text=l_txt.detach())
            if cfg.replay_weight:
                replay = self.replay_loss(images, self.tasks[pick], self.labels[pick].to(self.ctx.device), feats)
                loss = loss + cfg.replay_weight * replay
                logs["replay"] = replay.detach()
        self.ctx.backward(loss)
        return {"loss": loss.detach(), **logs}

    @torch.no_grad()
    def after_task(self, task: TaskState) -> None:
        self.teacher = None
        if self.config.memory_timing == "after_task":
            self.update_memory(task)

    @torch.no_grad()
    def update_memory(self, task: TaskState) -> None:
        """Cut the older sets to K//t, add the task's K - K//t exemplars (``reduceExampleSet`` /
        ``constructExampleSet``, mtil/src/dynamic_dataset.py:21-81); the first set: its first K images, or herded."""
        cfg: ICaRLConfig = self.config
        sets = int(self.tasks.max()) + 1 if len(self.tasks) else 0
        t = sets + 1
        if sets:
            keep = torch.zeros(len(self.tasks), dtype=torch.bool)
            for s in range(sets):
                keep[(self.tasks == s).nonzero().flatten()[:cfg.memory_size // t]] = True
            self.images, self.tasks, self.labels = self.images[keep], self.tasks[keep], self.labels[keep]
        quota = cfg.memory_size - cfg.memory_size // t or cfg.memory_size
        if sets == 0 and not cfg.herd_first_task:
            order = torch.arange(min(cfg.memory_size, cfg.candidates))
            labels, images = self.gather(order)
        else:
            feats = self.candidate_features()
            chosen = herding(feats, quota)
            order = shrunken_positions(chosen) if cfg.reference_quirks else chosen
            labels, images = self.gather(order)
        self.images = images if not len(self.images) else torch.cat([self.images, images])
        self.tasks = torch.cat([self.tasks, torch.full((len(labels),), task.index, dtype=torch.long)])  # a task
        # smaller than the memory gives fewer than len(order) images (all of them, as the code's slice)
        self.labels = torch.cat([self.labels, labels])

    def candidate_features(self) -> torch.Tensor:
        """Image features of the task's first ``candidates`` training images, by the model as it is now."""
        feats, seen = [], 0
        for b in self.ctx.task_batches():
            with self.ctx.autocast():
                feats.append(self.model.encode_image(b.images).float().cpu())
            seen += len(b.images)
            if seen >= self.config.candidates:
                break
        return torch.cat(feats)[:self.config.candidates]

    def gather(self, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(labels, fp16 CPU images) at positions ``order`` of the task's fixed-order data, in that order;
        positions past the end of the data are dropped."""
        slot = {int(p): i for i, p in enumerate(order)}
        last = int(order.max()) if len(order) else -1
        out: torch.Tensor | None = None
        labels = torch.zeros(len(order), dtype=torch.long)
        filled = torch.zeros(len(order), dtype=torch.bool)
        start = 0
        for b in self.ctx.task_batches():
            if out is None:
                out = torch.empty((len(order), *b.images.shape[1:]), dtype=torch.float16)
            hits = [(j, slot[start + j]) for j in range(len(b.images)) if start + j in slot]
            if hits:
                src, dst = zip(*hits, strict=True)
                out[list(dst)] = b.images[list(src)].to("cpu", torch.float16)
                labels[list(dst)] = b.labels[list(src)].cpu()
                filled[list(dst)] = True
            start += len(b.images)
            if start > last:
                break
        assert out is not None
        return labels[filled], out[filled]

    def step_state_dict(self) -> dict[str, Any]:
        return {"cursor": self.cursor}  # the exemplar walk advances every step; the rest is per task

    def load_step_state_dict(self, state: dict[str, Any]) -> None:
        self.cursor = int(state["cursor"])

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.images, "tasks": self.tasks, "labels": self.labels, "task_prompts": self.task_prompts,
                "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.images, self.tasks, self.labels = state["images"], state["tasks"], state["labels"]
        self.task_prompts = [list(p) for p in state["task_prompts"]]
        self.cursor = int(state.get("cursor", 0))
