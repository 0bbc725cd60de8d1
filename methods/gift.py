"""``gift``: GIFT — distil the previous model on synthetic image-prompt pairs, with adaptive weight consolidation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from clbench.context import trainable_parameters
from clbench.errors import UserError
from clbench.losses import distillation
from clbench.method import Batch, Method, TaskState
from clbench.registry import register_method
from clbench.synth.diffusers_backend import DEFAULT_MODEL
from clbench.synthetic_data import SyntheticBatch, SyntheticData, SyntheticTask

FISHER_FLOOR = 1e-6  # importance of tensors the synthetic losses do not reach (official)


# ---- loss terms (pure functions) -----------------------------------------------------------------------
def contrastive_distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 2.0,
                             reverse_kl: bool = False) -> torch.Tensor:
    """L_CD over images -> prompts (rows) plus prompts -> images (columns) of B x B logit matrices.

    Default: CE(S/T, softmax(Tch/T)) T^2 each way (``helpers.distillation``); ``reverse_kl``: KL(student ||
    teacher) T^2, batch mean (``helpers.kl_divergence``, the ``--kl_div`` ablation).
    """
    if not reverse_kl:
        return distillation(student, teacher, temperature) + distillation(student.t(), teacher.t(), temperature)
    t = float(temperature)

    def kl(s: torch.Tensor, tch: torch.Tensor) -> torch.Tensor:
        log_q, log_p = F.log_softmax(s.float() / t, dim=-1), F.log_softmax(tch.detach().float() / t, dim=-1)
        return (log_q.exp() * (log_q - log_p)).sum(dim=-1).mean() * t * t

    return kl(student, teacher) + kl(student.t(), teacher.t())


def feature_mse(student_image: torch.Tensor, teacher_image: torch.Tensor, student_text: torch.Tensor,
                teacher_text: torch.Tensor) -> torch.Tensor:
    """The ``--feature_mse`` ablation: mean squared error of normalised features, image + text."""
    return (F.mse_loss(student_image.float(), teacher_image.detach().float())
            + F.mse_loss(student_text.float(), teacher_text.detach().float()))


def alignment_targets(prompt_ids: torch.Tensor) -> torch.Tensor:
    """Y_ij = 1[p_i = p_j], row-normalised: pairs made from the same prompt share their targets."""
    same = (prompt_ids.view(-1, 1) == prompt_ids.view(1, -1)).float()
    return same / same.sum(dim=1, keepdim=True)


def image_text_alignment(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.2) -> torch.Tensor:
    """L_ITA = CE(S, Y) + CE(S^T, Y) with label smoothing: the hard targets correct the teacher's mistakes."""
    logits = logits.float()
    return (F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
            + F.cross_entropy(logits.t(), targets, label_smoothing=label_smoothing))


def fisher_diagonal(grads: Sequence[torch.Tensor | None], like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per tensor F = g^2 / mean(g^2); tensors without a (non-zero) gradient get 1e-6 everywhere."""
    out = []
    for g, p in zip(grads, like, strict=True):
        sq = g.detach().float().square() if g is not None else None
        mean = sq.mean() if sq is not None else None
        if sq is None or not bool(mean > 0):
            out.append(torch.full_like(p, FISHER_FLOOR, dtype=torch.float32))
        else:
            out.append(sq / mean)
    return out


def awc_terms(fisher: Sequence[torch.Tensor] | None, params: Sequence[torch.Tensor],
              anchors: Sequence[torch.Tensor], weight: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(weight·Σ F⊙(θ − θ_{t−1})^2, its gradient 2·weight·F⊙(θ − θ_{t−1})) with F constant; F None: plain L2."""
    value = torch.zeros((), device=params[0].device)
    grads = []
    for i, (p, a) in enumerate(zip(params, anchors, strict=True)):
        diff = p.detach().float() - a.float()
        weighted = diff if fisher is None else diff * fisher[i]
        value += (weighted * diff).sum()
        grads.append(weighted.mul_(2.0 * weight))
    return value * weight, grads


@dataclass
class GiftConfig:
    cd: bool = True  # contrastive distillation on synthetic pairs (``--distill 1``)
    cd_weight: float = 1.0
    ita: bool = True  # image-text alignment (``--ita 0.25``)
    ita_weight: float = 0.25
    awc: bool = True  # Fisher-weighted consolidation (``--awc``); false: plain L2 to θ_{t-1} (``--l2`` alone)
    wc_weight: float = 1.0  # ``--l2 1``; 0 switches consolidation off entirely
    temperature: float = 2.0  # ``--T``
    static_awc: int = 0  # K > 0: F = running mean of the first K steps of each task, then frozen
    feature_mse: bool = False  # distil normalised features with MSE instead of logits
    reverse_kl: bool = False  # KL(student || teacher) instead of CE against the teacher (``--kl_div``)
    image_only: bool = False  # distil through the image tower only (teacher text features)
    text_only: bool = False  # distil through the text tower only (teacher image features)
    synth_backend: str = "auto"  # auto: the benchmark's (procedural in the offline world), else diffusers
    synth_images_per_task: int = 1000
    synth_seed: int = 0
    synth_batch_size: int | None = None  # None: the task batch size (64 and 64)
    synth_model: str = DEFAULT_MODEL
    synth_steps: int = 50
    synth_guidance: float = 7.5
    synth_size: int = 512
    synth_generation_batch: int = 8
    synth_cache: str | None = None
    synth_allow_download: bool = False


@register_method("gift")
class Gift(Method):
    """GIFT (Wu, Shi, Wang, Ye, CVPR 2025), ``src/models/finetune_gift.py`` as fixed in f1c1e38.

    Teacher = the model after the previous task (pretrained model for task 1). Per step, on a synthetic batch
    of (image, prompt) pairs with S = s f(x) g(p)^T and Tch the teacher's: L_CD (T = 2) + 0.25 L_ITA is
    back-propagated first; F = g^2 / mean(g^2) per tensor from those gradients; then L_task + L_AWC,
    L_AWC = Σ F⊙(θ − θ_{t−1})^2, accumulates into the same gradients; one optimizer step. The AWC gradient
    2F⊙(θ − θ_{t−1}) is added to ``.grad`` analytically (no autograd graph over the parameters).

    Same values, faster than the code: the frozen teacher's features of the task's synthetic images and
    prompts are computed once per task, and the student encodes each distinct prompt of a batch once.
    Deviations: see ``README`` "Synthetic data (GIFT)" (the engine's ``iterations`` steps instead of
    ``iterations + 1``; ``static_awc`` without the skipped ``zero_grad``; all-zero gradients get 1e-6, not NaN).
    """

    paper: ClassVar[str] = ("Wu, Shi, Wang, Ye, Synthetic Data is an Elegant GIFT for Continual Vision-Language "
                            "Models, CVPR 2025")
    Config: ClassVar[type] = GiftConfig
    services: ClassVar[tuple[str, ...]] = ("synthetic_data",)

    def before_run(self) -> None:
        cfg: GiftConfig = self.config
        if cfg.image_only and cfg.text_only:
            raise UserError("gift.image_only and gift.text_only exclude each other")
        if cfg.awc and cfg.wc_weight and not (cfg.cd or cfg.ita):
            raise UserError("gift.awc estimates importance from the CD/ITA gradients: enable cd or ita, or set awc=false")
        self.synthetic: SyntheticData = self.ctx.service("synthetic_data")

    def before_task(self, task: TaskState) -> None:
        teacher = self.ctx.frozen_copy()
        self.params = [p for _, p in trainable_parameters(self.model)]
        anchors = dict(teacher.named_parameters())
        self.anchors = [anchors[n] for n, _ in trainable_parameters(self.model)]
        self.static_fisher: list[torch.Tensor] | None = None
        self.data: SyntheticTask = self.synthetic.task(task.index)
        self.batches: Iterator[SyntheticBatch] = self.synthetic.batches(task.index)
        with torch.inference_mode(), self.ctx.autocast():  # the teacher is frozen for the whole task
            feats = [F.normalize(teacher.encode_image(self.data.images[i:i + 256].to(self.ctx.device, torch.float32)),
                                 dim=-1) for i in range(0, len(self.data), 256)]
        self.teacher_image = torch.cat(feats).float().clone()
        with self.ctx.autocast():  # clone: a normal tensor, not an inference-mode one
            self.teacher_text = self.ctx.encode_texts(teacher, self.data.prompts).clone()

    def synthetic_losses(self, syn: SyntheticBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_CD or its ablation, L_ITA) on one synthetic batch."""
        cfg: GiftConfig = self.config
        t_img, t_txt = self.teacher_image[syn.indices], self.teacher_text[syn.prompt_ids]
        s_img = s_txt = None
        if not cfg.text_only or cfg.feature_mse:
            s_img = F.normalize(self.model.encode_image(syn.images), dim=-1)
        if not cfg.image_only or cfg.feature_mse:
            unique, inverse = torch.unique(syn.prompt_ids, return_inverse=True)
            texts = [self.data.prompts[i] for i in unique.tolist()]
            s_txt = self.ctx.encode_texts(self.model, texts, grad=True)[inverse]
        scale = self.ctx.logit_scale(self.model)
        student = scale * (t_img if cfg.text_only else s_img) @ (t_txt if cfg.image_only else s_txt).t()
        teacher = scale * t_img @ t_txt.t()
        zero = student.new_zeros(())
        if not cfg.cd:
            cd = zero
        elif cfg.feature_mse:
            assert s_img is not None and s_txt is not None
            cd = feature_mse(s_img, t_img, s_txt, t_txt)
        else:
            cd = contrastive_distillation(student, teacher, cfg.temperature, cfg.reverse_kl)
        ita = (image_text_alignment(student, alignment_targets(syn.prompt_ids), self.ctx.label_smoothing)
               if cfg.ita else zero)
        return cd, ita

    def importance(self, step: int) -> list[torch.Tensor] | None:
        """F for this step: fresh from the synthetic gradients, a running mean (static_awc), or None (plain L2)."""
        cfg: GiftConfig = self.config
        if not cfg.awc:
            return None
        if cfg.static_awc and step >= cfg.static_awc and self.static_fisher is not None:
            return self.static_fisher
        fisher = fisher_diagonal([p.grad for p in self.params], self.params)
        if cfg.static_awc:
            if self.static_fisher is None:
                self.static_fisher = fisher
            else:  # running mean over steps 0..K-1 of the task
                for m, f in zip(self.static_fisher, fisher, strict=True):
                    m.mul_(step / (step + 1)).add_(f, alpha=1.0 / (step + 1))
            return self.static_fisher
        return fisher

    def training_step(self, batch: Batch, task: TaskState, step: int) -> dict[str, float]:
        cfg: GiftConfig = self.config
        logs: dict[str, float] = {}
        total = 0.0
        if cfg.cd or cfg.ita:
            cd, ita = self.synthetic_losses(next(self.batches))
            synthetic = cfg.cd_weight * cd + cfg.ita_weight * ita
            self.ctx.backward(synthetic)
            logs.update(cd=float(cd.detach()), ita=float(ita.detach()))
            total += float(synthetic.detach())
        if cfg.wc_weight:  # after the synthetic backward: F comes from exactly those gradients
            awc, grads = awc_terms(self.importance(step), self.params, self.anchors, cfg.wc_weight)
            scale = self.ctx.loss_scale()
            for p, g in zip(self.params, grads, strict=True):
                g = g.mul_(scale) if scale != 1.0 else g
                p.grad = g.to(p.dtype) if p.grad is None else p.grad.add_(g)
            logs["awc" if cfg.awc else "l2"] = float(awc)
            total += float(awc)
        ce = self.task_loss(batch, task)
        self.ctx.backward(ce)
        logs["ce"] = float(ce.detach())
        return {"loss": total + logs["ce"], **logs}

    def after_task(self, task: TaskState) -> None:
        del self.anchors, self.teacher_image, self.teacher_text, self.data, self.batches
        self.static_fisher = None
