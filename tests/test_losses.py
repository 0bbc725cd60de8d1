"""The shared losses against values computed by hand on 1x2 / 2x2 tensors, and against their reference forms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clbench.losses import (
    clip_logits,
    distillation,
    feature_distillation,
    masked_cross_entropy,
    soft_cross_entropy,
    two_way_distillation,
)

LN3 = math.log(3.0)


def test_soft_cross_entropy_by_hand() -> None:
    # softmax([0, ln 3]) = [1/4, 3/4]; targets [1/2, 1/2] -> -(ln(1/4) + ln(3/4)) / 2
    logits = torch.tensor([[0.0, LN3]])
    expected = -(math.log(0.25) + math.log(0.75)) / 2
    assert soft_cross_entropy(logits, torch.tensor([[0.5, 0.5]])).item() == pytest.approx(expected, rel=1e-6)
    # rows are averaged: a second row [0, 0] against one-hot [1, 0] adds ln 2
    two = soft_cross_entropy(torch.tensor([[0.0, LN3], [0.0, 0.0]]), torch.tensor([[0.5, 0.5], [1.0, 0.0]]))
    assert two.item() == pytest.approx((expected + math.log(2.0)) / 2, rel=1e-6)


def test_distillation_by_hand_with_temperature() -> None:
    # student [0, 2 ln 3] / T=2 -> softmax [1/4, 3/4]; teacher [0, 0] -> [1/2, 1/2]; times T^2 = 4
    student, teacher = torch.tensor([[0.0, 2 * LN3]]), torch.tensor([[0.0, 0.0]])
    expected = 4 * -(math.log(0.25) + math.log(0.75)) / 2
    assert distillation(student, teacher, 2.0).item() == pytest.approx(expected, rel=1e-6)
    assert distillation(student, teacher, 1.0).item() == pytest.approx(
        -(math.log(0.1) + math.log(0.9)) / 2, rel=1e-6)  # softmax([0, ln 9]) = [0.1, 0.9]


def test_distillation_is_zscl_formula_and_only_trains_the_student() -> None:
    g = torch.Generator().manual_seed(0)
    student = torch.randn(5, 7, generator=g, requires_grad=True)
    teacher = torch.randn(5, 7, generator=g, requires_grad=True)
    reference = F.cross_entropy(student / 2, F.softmax(teacher / 2, dim=1), reduction="mean") * 4
    ours = distillation(student, teacher, 2.0)
    assert ours.item() == pytest.approx(reference.item(), rel=1e-6)
    ours.backward()
    assert teacher.grad is None and student.grad is not None


def test_two_way_distillation_text_term_is_the_transpose() -> None:
    # 2 images x 2 texts: rows of the transpose are columns; by hand for T = 1
    student = torch.tensor([[0.0, LN3], [0.0, 0.0]])
    teacher = torch.zeros(2, 2)
    image, text = two_way_distillation(student, teacher, 1.0)
    row0 = -(math.log(0.25) + math.log(0.75)) / 2  # softmax([0, ln 3]) against [1/2, 1/2]
    assert image.item() == pytest.approx((row0 + math.log(2.0)) / 2, rel=1e-6)
    # columns: [0, 0] -> ln 2 ; [ln 3, 0] -> same as row0
    assert text.item() == pytest.approx((math.log(2.0) + row0) / 2, rel=1e-6)


def test_feature_distillation_uses_the_teacher_text_for_both_sides() -> None:
    g = torch.Generator().manual_seed(1)
    f_s = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    f_t = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    text = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    image, txt = feature_distillation(f_s, f_t, text, 10.0, 2.0)
    s, t = clip_logits(f_s, text, 10.0), clip_logits(f_t, text, 10.0)
    assert image.item() == pytest.approx(distillation(s, t, 2.0).item(), rel=1e-6)
    assert txt.item() == pytest.approx(distillation(s.t(), t.t(), 2.0).item(), rel=1e-6)
    # equal features: the loss is the teacher's entropy (times T^2) and its gradient vanishes
    f = f_t.clone().requires_grad_(True)
    image, txt = feature_distillation(f, f_t, text, 10.0, 2.0)
    p = F.softmax(t / 2, dim=1)
    assert image.item() == pytest.approx(4 * -(p * p.log()).sum(1).mean().item(), rel=1e-5)
    (image + txt).backward()
    assert f.grad.abs().max().item() < 1e-6


def test_masked_cross_entropy_equals_ce_over_each_rows_own_columns() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0, 0.5], [0.2, -1.0, 0.3, 2.0]])
    allowed = torch.tensor([[True, True, False, False], [False, False, True, True]])
    targets = torch.tensor([1, 3])
    for eps in (0.0, 0.2):
        ours = masked_cross_entropy(logits, targets, allowed, label_smoothing=eps)
        row0 = F.cross_entropy(logits[:1, :2], torch.tensor([1]), label_smoothing=eps)
        row1 = F.cross_entropy(logits[1:, 2:], torch.tensor([1]), label_smoothing=eps)
        assert ours.item() == pytest.approx(((row0 + row1) / 2).item(), rel=1e-6)
    # by hand, no smoothing: row 0 softmax([1, 2]) -> -ln(e^2 / (e + e^2))
    row0 = -math.log(math.exp(2) / (math.exp(1) + math.exp(2)))
    row1 = -math.log(math.exp(2.0) / (math.exp(0.3) + math.exp(2.0)))
    assert masked_cross_entropy(logits, targets, allowed).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
