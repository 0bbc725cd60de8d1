"""``gift``: GIFT — distil the previous model on synthetic image-prompt pairs, with adaptive weight consolidation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from clbench.context import trainable_parameters
from clbench.errors import UserError
from clbench.losses import distillation
from clbench.method import Batch, Method, StepLogs, TaskState
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


def _add_grad(p: torch.Tensor, g: torch.Tensor) -> None:
    if p.grad is None:
        p.grad = g.to(p.dtype)
    else:
        p.grad.add_(g)


@torch.no_grad()
def add_awc_gradients_(params: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor], weight: float,
                       fisher: Sequence[torch.Tensor] | None = None, adaptive: bool = True,
                       loss_scale: float = 1.0) -> torch.Tensor:
    """In place, ``p.grad += loss_scale · 2·weight·F⊙(θ − θ_{t−1})``; returns weight·Σ F⊙(θ − θ_{t−1})^2.

    F is ``fisher`` when given (static AWC), else g^2/mean(g^2) of the current ``p.grad`` (``adaptive``: the
    synthetic gradients; gradients carrying a loss scale give the same F), else 1 (plain L2). Same values as
    :func:`fisher_diagonal` + :func:`awc_terms`, in fewer passes over memory: F is never materialised, and
    for embedding tables only the rows with a gradient are touched (F is zero on the others).
    """
    k = 2.0 * weight * loss_scale
    value = torch.zeros((), device=params[0].device)
    grads = [p.grad if adaptive and fisher is None else None for p in params]
    present = [i for i, g in enumerate(grads) if g is not None]
    msq = torch.stack([torch.linalg.vector_norm(grads[i].float()) ** 2 / grads[i].numel() for i in present]).tolist() \
        if present else []
    mean_sq = dict(zip(present, msq, strict=True))
    for i, (p, a) in enumerate(zip(params, anchors, strict=True)):
        g = grads[i]
        if fisher is not None:
            diff = p.float() - a.float()
            weighted = diff * fisher[i]
            value += torch.dot(weighted.reshape(-1), diff.reshape(-1))  # reshape: params may be channels-last
            _add_grad(p, weighted.mul_(k))
        elif not adaptive or g is None or mean_sq[i] <= 0.0:  # plain L2, or F = floor without a gradient
            floor = 1.0 if not adaptive else FISHER_FLOOR
            diff = p.float() - a.float()
            value += floor * torch.dot(diff.reshape(-1), diff.reshape(-1))
            _add_grad(p, diff.mul_(k * floor))
        else:
            c = k / mean_sq[i]
            rows = g.any(dim=1).nonzero().squeeze(1) if g.dim() == 2 and g.shape[0] >= 4096 else None
            if rows is not None and len(rows) < g.shape[0] // 4:  # e.g. the token embedding: few rows used
                g_rows = g[rows]
                weighted = (p[rows].float() - a[rows].float()).mul_(g_rows)
                value += torch.linalg.vector_norm(weighted) ** 2 / mean_sq[i]
                g[rows] = g_rows.addcmul_(weighted, g_rows, value=c)
            else:
                weighted = (p.float() - a.float()).mul_(g)  # (θ − θ_{t−1})·g
                value += torch.linalg.vector_norm(weighted) ** 2 / mean_sq[i]
                g.addcmul_(weighted, g, value=c)  # g + c·g^2·(θ − θ_{t−1})
    return value * weight


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
    synth_generation_batch: int | None = None  # None: 8 (diffusers) or 1000 (procedural) per call
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
    The engine takes the code's ``iterations + 1`` steps (``train.final_step``). Deviations: see ``README``
    "Synthetic data (GIFT)" (``static_awc`` without the skipped ``zero_grad``; all-zero gradients get 1e-6, not NaN).

    Several processes (``--nproc``): F is estimated from the synthetic gradients *before* the all-reduce, which
    the engine does once, after the whole step. Every rank computes the synthetic losses on the same whole
    synthetic batch (only the task batch is sharded), so its local synthetic gradients are already the
    full-batch ones and F, the AWC gradient and ``static_awc``'s running mean equal the single-process values;
    the all-reduce then only completes the task cross-entropy. Reducing first (DDP's hook at each backward)
    would give the same F at the cost of a second all-reduce per step.
    """

    paper: ClassVar[str] = ("Wu, Shi, Wang, Ye, Synthetic Data is an Elegant GIFT for Continual Vision-Language "
                            "Models, CVPR 2025")
    Config: ClassVar[type] = GiftConfig
    # CE per example; synthetic batch, Fisher and AWC are the same on every rank (see the docstring)
    distributed: ClassVar[bool] = True
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
        self.data_index = task.index
        self.batches: Iterator[SyntheticBatch] = self.synthetic.batches(task.index)
        self.drawn = 0  # synthetic batches drawn this task (a mid-task resume skips them)
        with torch.inference_mode(), self.ctx.autocast():  # the teacher is frozen for the whole task
            feats = [F.normalize(teacher.encode_image(self.data.images[i:i + 256].to(self.ctx.device, torch.float32)),
                                 dim=-1) for i in range(0, len(self.data), 256)]
        self.teacher_image = torch.cat(feats).float().clone()
        with self.ctx.autocast():
            self.teacher_text = self.ctx.encode_texts(teacher, self.data.prompts)
        self.tokens = self.ctx.tokenize(self.data.prompts)  # tokenised once per task, not at every step

    def synthetic_losses(self, syn: SyntheticBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_CD or its ablation, L_ITA) on one synthetic batch."""
        cfg: GiftConfig = self.config
        t_img, t_txt = self.teacher_image[syn.indices], self.teacher_text[syn.prompt_ids]
        s_img = s_txt = None
        if not cfg.text_only or cfg.feature_mse:
            s_img = F.normalize(self.model.encode_image(syn.images), dim=-1)
        if not cfg.image_only or cfg.feature_mse:
            unique, inverse = torch.unique(syn.prompt_ids, return_inverse=True)
            s_txt = F.normalize(self.model.encode_text(self.tokens[unique]), dim=-1)[inverse]
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

    def static_importance(self, step: int) -> list[torch.Tensor]:
        """static_awc: F averaged over the first K steps of the task (running mean), then frozen."""
        if step < self.config.static_awc or self.static_fisher is None:
            fisher = fisher_diagonal([p.grad for p in self.params], self.params)
            if self.static_fisher is None:
                self.static_fisher = fisher
            else:
                for m, f in zip(self.static_fisher, fisher, strict=True):
                    m.mul_(step / (step + 1)).add_(f, alpha=1.0 / (step + 1))
        return self.static_fisher

    def training_step(self, batch: Batch, task: TaskState, step: int) -> StepLogs:
        cfg: GiftConfig = self.config
        logs: StepLogs = {}
        total = torch.zeros((), device=batch.images.device)
        if cfg.cd or cfg.ita:
            cd, ita = self.synthetic_losses(next(self.batches))
            self.drawn += 1
            synthetic = cfg.cd_weight * cd + cfg.ita_weight * ita
            self.ctx.backward(synthetic)
            logs.update(cd=cd.detach(), ita=ita.detach())
            total = total + synthetic.detach()
        if cfg.wc_weight:  # after the synthetic backward: F comes from exactly those gradients
            fisher = self.static_importance(step) if cfg.awc and cfg.static_awc else None
            awc = add_awc_gradients_(self.params, self.anchors, cfg.wc_weight, fisher, adaptive=cfg.awc,
                                     loss_scale=self.ctx.loss_scale())
            logs["awc" if cfg.awc else "l2"] = awc.detach()
            total = total + awc.detach()
        ce = self.task_loss(batch, task)
        self.ctx.backward(ce)
        logs["ce"] = ce.detach()
        return {"loss": total + logs["ce"], **logs}

    def step_state_dict(self) -> dict[str, Any]:
        """Synthetic batches drawn and static_awc's running importance; anchors and teacher features are rebuilt
        by the replayed ``before_task`` from the task-start model."""
        return {"drawn": self.drawn, "static_fisher": self.static_fisher}

    def load_step_state_dict(self, state: dict[str, Any]) -> None:
        self.drawn = int(state["drawn"])
        self.batches = self.synthetic.batches(self.data_index, skip=self.drawn)
        fisher = state["static_fisher"]
        self.static_fisher = None if fisher is None else [f.to(self.ctx.device) for f in fisher]

    def after_task(self, task: TaskState) -> None:
        del self.anchors, self.teacher_image, self.teacher_text, self.tokens, self.data, self.batches
        self.static_fisher = None
