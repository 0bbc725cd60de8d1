"""``lwf``: Learning without Forgetting for CLIP — distil the previous-task model on the current task's images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from clbench.losses import feature_distillation
from clbench.method import Batch, Method, StepLogs, TaskState
from clbench.registry import register_method


@dataclass
class LwFConfig:
    temperature: float = 2.0  # ZSCL ``--T``
    image_weight: float = 1.0  # MTIL scripts (the CIL code uses 5)
    text_weight: float = 1.0  # MTIL scripts (the CIL code uses 5)
    # The CIL code's teacher shares the student's storage (cil/continual_clip/models.py:127-128,
    # ``param_q.data = param_k.data``): the distillation has zero gradient and a step equals fine-tuning's.
    # True reproduces that (the published CIL LwF / LwF-VR / iCaRL rows); False distils from a frozen copy.
    reference_quirks: bool = False


def teacher_image_features(teacher: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Normalised image features of a frozen teacher, computed without autograd, as a plain constant tensor."""
    with torch.inference_mode():
        feats = F.normalize(teacher.encode_image(images), dim=-1)
    return feats.float().clone()  # leave inference mode: the tensor may enter the student's graph as a target


@register_method("lwf")
class LwF(Method):
    """LwF (Li & Hoiem, ECCV 2016) as ZSCL re-implements it for CLIP (``mtil/scripts/lwf.sh``, CIL ``models.py``).

    Teacher = the frozen model at the start of the task (the previous task's result; the pretrained model for
    task 1). Loss = CE_task + w_img * L_img + w_txt * L_txt with L = CE(S/T, softmax(Tch/T)) * T^2 over the
    images x prompts logits and their transpose, T = 2; both logit matrices use the *teacher's* embeddings of
    the current task's prompts (first template), so the distillation reaches the student's image encoder only.

    Deviations from the reference code:
    - The reference draws the distillation images from a second, independently shuffled loader over the same
      task data; here they are the training batch itself (same distribution, and the student's image features
      are shared with the CE term instead of a second forward pass).
    - (Not a deviation: the MTIL script's ``--fair`` is parsed, ``mtil/src/args.py:55``, and read nowhere.)
    - The teacher's text embeddings are encoded once per task instead of at every iteration (same values).

    ``reference_quirks=True`` (the CIL code): the teacher *is* the student (shared storage), its text
    embeddings are re-encoded every step as the code does, and the distillation's gradient vanishes.
    """

    paper: ClassVar[str] = ("Li & Hoiem, Learning without Forgetting, ECCV 2016 — CLIP variant of Zheng et al., "
                            "Preventing Zero-Shot Transfer Degradation in Continual Learning of Vision-Language "
                            "Models (ZSCL), ICCV 2023")
    Config: ClassVar[type] = LwFConfig
    distributed_reason: ClassVar[str] = ("its text distillation normalises over the training batch's images "
                                         "(a shard would change it)")

    teacher: nn.Module | None = None
    teacher_text: torch.Tensor | None = None

    def reference_texts(self, task: TaskState) -> torch.Tensor:
        """Teacher embeddings of the texts the distillation scores images against (the task's prompts)."""
        assert self.teacher is not None
        prompts = [task.train_template.format(c) for c in task.train_class_names]
        return self.ctx.encode_texts(self.teacher, prompts)

    def before_task(self, task: TaskState) -> None:
        self.teacher = self.model if self.config.reference_quirks else self.ctx.frozen_copy()
        with self.ctx.autocast():
            self.teacher_text = self.reference_texts(task)

    def training_step(self, batch: Batch, task: TaskState, step: int) -> StepLogs:
        cfg: LwFConfig = self.config
        if cfg.reference_quirks:  # the shared teacher moves every step: its embeddings too (models.py:246-250)
            self.teacher_text = self.reference_texts(task)
        assert self.teacher is not None and self.teacher_text is not None
        model = self.model
        text = self.ctx.text_features(model, task.train_class_names, (task.train_template,), grad=True)
        image = F.normalize(model.encode_image(batch.images), dim=-1)
        scale = self.ctx.logit_scale(model)
        ce = F.cross_entropy(scale * image @ text.t(), batch.labels, label_smoothing=self.ctx.label_smoothing)
        teacher_image = teacher_image_features(self.teacher, batch.images)
        l_img, l_txt = feature_distillation(image, teacher_image, self.teacher_text, scale, cfg.temperature)
        loss = ce + cfg.image_weight * l_img + cfg.text_weight * l_txt
        self.ctx.backward(loss)
        return {"loss": loss.detach(), "ce": ce.detach(), "distill_image": l_img.detach(),
                "distill_text": l_txt.detach()}

    def after_task(self, task: TaskState) -> None:
        self.teacher, self.teacher_text = None, None  # free the copy before evaluation
