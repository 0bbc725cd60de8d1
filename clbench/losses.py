"""Loss functions shared by methods: soft-target cross-entropy and the distillations of the CLIP-CL papers.

Pure functions on tensors (no model, no context), so tests check them against hand-computed values and any
method (LwF, iCaRL, ZSCL, GIFT, ...) reuses them. Conventions: logits are ``(rows, classes)``; "soft-target
CE" is -sum_j p_ij log softmax(z_i)_j averaged over rows, exactly ``F.cross_entropy(z, p)`` with probabilities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_j p_j log softmax(z)_j (the teacher's distribution as soft labels)."""
    return -(target_probs * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                 temperature: float = 2.0) -> torch.Tensor:
    """Hinton distillation as ZSCL's ``helpers.distillation``: CE(S/T, softmax(Tch/T)) * T^2.

    The teacher's logits are treated as constants (detached); the T^2 factor keeps gradient magnitudes
    comparable across temperatures.
    """
    t = float(temperature)
    target = F.softmax(teacher_logits.detach().float() / t, dim=-1)
    return soft_cross_entropy(student_logits.float() / t, target) * t * t


def two_way_distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                         temperature: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(image loss, text loss): :func:`distillation` over rows (images -> texts) and over columns.

    ZSCL's ``image_loss`` / ``text_loss``: the text loss is the same distillation on the transposed
    images x texts logit matrices, so each text also keeps its distribution over the batch's images.
    """
    image = distillation(student_logits, teacher_logits, temperature)
    text = distillation(student_logits.t(), teacher_logits.t(), temperature)
    return image, text


def clip_logits(image_features: torch.Tensor, text_features: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """s * f g^T for normalised image features f (B, D) and text features g (C, D)."""
    return scale * image_features @ text_features.t()


def feature_distillation(student_image: torch.Tensor, teacher_image: torch.Tensor, teacher_text: torch.Tensor,
                         scale: torch.Tensor | float, temperature: float = 2.0
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """ZSCL-family distillation from features: both logit matrices use the teacher's text embeddings.

    Student logits s*f_s g_T^T against teacher logits s*f_T g_T^T (ZSCL ``finetune.py`` and the CIL
    ``models.py``: LwF, LwF-VR, iCaRL and ZSCL all share it); returns (image loss, text loss).
    """
    student = clip_logits(student_image.float(), teacher_text.float(), scale)
    teacher = clip_logits(teacher_image.float(), teacher_text.float(), scale)
    return two_way_distillation(student, teacher, temperature)


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, allowed: torch.Tensor,
                         label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy where row i competes only among the columns with ``allowed[i]`` True.

    Lets one forward pass classify samples of different tasks against their own task's classes (replayed
    exemplars in task-incremental learning): the columns of other tasks get -inf. Label smoothing spreads
    over the allowed columns only.
    """
    masked = logits.float().masked_fill(~allowed, float("-inf"))
    logp = F.log_softmax(masked, dim=-1)
    nll = -logp.gather(1, targets.view(-1, 1)).squeeze(1)
    if label_smoothing == 0.0:
        return nll.mean()
    smooth = -(logp.masked_fill(~allowed, 0.0)).sum(dim=-1) / allowed.sum(dim=-1)
    return ((1.0 - label_smoothing) * nll + label_smoothing * smooth).mean()
