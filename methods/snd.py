"""``snd``: Select and Distill (Yu et al., ECCV 2024) — selective dual-teacher distillation on reference images."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from clbench.context import trainable_parameters
from clbench.method import Batch, Method, StepLogs, TaskState
from clbench.reference_data import ReferenceData
from clbench.registry import register_method


@dataclass
class SnDConfig:
    ref_images: str | None = None  # folder of reference images (when the benchmark offers no reference data)
    ref_texts: str | None = None  # the reference-data service wants captions too; SnD does not use them
    ref_batch_size: int = 64  # ref_dataset_config.batch_size (configs/snd_config_1_gpu.yaml)
    ratio_prev: float = 9.0  # method.params (configs/snd_config_1_gpu.yaml)
    ratio_pretrained: float = 0.5
    threshold: float = 0.2
    scale: float = 6.0
    ce_smoothing: float = 0.0  # method.params.label_smoothing
    freeze_text: bool = True  # model.freeze_classification_head: only the image encoder trains


def selective_distillation(student: torch.Tensor, pretrained: torch.Tensor, previous: torch.Tensor,
                           threshold: float, scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(L_prev, L_pretrained, selection weights) on normalised reference embeddings (src/trainer/snd_trainer.py:51-75).

    s_i = sigmoid(scale (||p_i - q_i|| - threshold)) with p the pretrained and q the previous teacher: where the
    teachers disagree the previous model already changed there, so it is trusted; L_prev = mean s_i ||z_i - q_i||^2,
    L_pretrained = mean (1 - s_i) ||z_i - p_i||^2 (``L2Loss``, src/trainer/utils.py:13-25).
    """
    weights = torch.sigmoid(scale * ((pretrained - previous).norm(dim=-1) - threshold))
    to_prev = (student - previous).norm(dim=-1).pow(2)
    to_pretrained = (student - pretrained).norm(dim=-1).pow(2)
    return (weights * to_prev).mean(), ((1 - weights) * to_pretrained).mean(), weights


@register_method("snd")
class SnD(Method):
    """SnD (Yu et al., ECCV 2024; github.com/chu0802/SnD), ``configs/snd_config_1_gpu.yaml``.

    Full fine-tuning of the image encoder (the text encoder is the frozen classification head). Per step a task
    batch (CE over the task's classes with the first template, no label smoothing) and a batch of 64 reference
    images whose normalised embeddings are distilled towards two frozen teachers, the pretrained model and the
    model after the previous task (the pretrained model during the first task, as the code's ``prev`` checkpoint
    is then the pretrained one): loss = CE + 9 L_prev + 0.5 L_pretrained, each reference image weighted by
    ``selective_distillation``. Reference images: the reference-data service ZSCL uses.

    Deviations from the reference code: the engine's schedule (the benchmark's lr, warm-up and weight decay;
    the SnD config has lr 1e-5, no warm-up, weight decay 5e-4 and batch 32); the training template is the
    benchmark's first one (the code: "a photo of a {}."); the reference images are the benchmark's or the user's
    (the code: 100,000 ImageNet training images).
    """

    paper: ClassVar[str] = ("Yu et al., Select and Distill: Selective Dual-Teacher Knowledge Transfer for Continual "
                            "Learning on Vision-Language Models, ECCV 2024")
    Config: ClassVar[type] = SnDConfig
    # CE per example; the reference batch and both teachers are the same on every rank
    distributed: ClassVar[bool] = True
    services: ClassVar[tuple[str, ...]] = ("reference_data",)

    _ref_iter: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None

    def before_run(self) -> None:
        self.reference: ReferenceData = self.ctx.service("reference_data")
        self.pretrained = self.ctx.initial_model()

    def before_task(self, task: TaskState) -> None:
        self.previous = self.ctx.frozen_copy()
        self._generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        self._ref_iter = None
        self._ref_drawn = 0  # reference batches drawn this task (a mid-task resume skips them)

    def trainable(self, task: TaskState) -> list[tuple[str, nn.Parameter]]:
        params = trainable_parameters(self.model)
        return [(n, p) for n, p in params if n.startswith("visual.")] if self.config.freeze_text else params

    def reference_images(self) -> torch.Tensor:
        if self._ref_iter is None:
            self._ref_iter = self.reference.batches(self.config.ref_batch_size, self._generator,
                                                    skip=self._ref_drawn)
        _, images = next(self._ref_iter)
        self._ref_drawn += 1
        return images.to(self.ctx.device, non_blocking=True)

    def teacher_features(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), self.ctx.autocast():
            feats = F.normalize(model.encode_image(images), dim=-1)
        return feats.float().clone()

    def training_step(self, batch: Batch, task: TaskState, step: int) -> StepLogs:
        cfg: SnDConfig = self.config
        if cfg.freeze_text:  # frozen head: the cached (gradient-free) text features
            text = self.ctx.text_features(self.model, task.train_class_names, (task.train_template,))
            image = F.normalize(self.model.encode_image(batch.images), dim=-1)
            logits = self.ctx.logit_scale(self.model) * image @ text.t().to(image.dtype)
        else:
            logits = self.task_logits(batch.images, task)
        ce = F.cross_entropy(logits, batch.labels, label_smoothing=cfg.ce_smoothing)
        ref = self.reference_images()
        student = F.normalize(self.model.encode_image(ref), dim=-1).float()
        l_prev, l_pre, weights = selective_distillation(student, self.teacher_features(self.pretrained, ref),
                                                        self.teacher_features(self.previous, ref), cfg.threshold,
                                                        cfg.scale)
        loss = ce + cfg.ratio_prev * l_prev + cfg.ratio_pretrained * l_pre
        self.ctx.backward(loss)
        return {"loss": loss.detach(), "ce": ce.detach(), "kd_prev": l_prev.detach(), "kd_pretrained": l_pre.detach(),
                "selected": (weights > 0.5).float().mean().detach()}

    def step_state_dict(self) -> dict[str, Any]:
        return {"ref_drawn": self._ref_drawn}  # teachers and generator: rebuilt by the replayed before_task

    def load_step_state_dict(self, state: dict[str, Any]) -> None:
        self._ref_drawn, self._ref_iter = int(state["ref_drawn"]), None

    def after_task(self, task: TaskState) -> None:
        self.previous, self._ref_iter = None, None
