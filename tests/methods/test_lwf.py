"""LwF: teacher = the task-start model, its prompt embeddings encoded once per task, loss assembled as documented."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clbench.methods.lwf import LwF, LwFConfig
from tests.methods.conftest import Tiny, make_batch, make_task


def test_first_step_distils_the_teachers_own_distribution(tiny: Tiny) -> None:
    method = LwF(LwFConfig(), tiny.ctx)
    task = make_task(0, ("cat", "dog", "bird"))
    method.before_task(task)
    assert method.teacher is not tiny.ctx.model
    batch = make_batch(6, 3)
    logs = {k: float(v) for k, v in method.training_step(batch, task, 0).items()}  # as the engine logs
    # student == teacher at the first step: each term is the teacher's entropy times T^2
    model, ctx = tiny.ctx.model, tiny.ctx
    with torch.no_grad():
        image = F.normalize(model.encode_image(batch.images), dim=-1)
        prompts = [task.train_template.format(c) for c in task.train_class_names]
        text = F.normalize(model.encode_text(ctx.tokenize(prompts)), dim=-1)
        logits = ctx.logit_scale(model) * image @ text.t()
        ce = F.cross_entropy(logits, batch.labels, label_smoothing=0.2)
        p = F.softmax(logits / 2, dim=1)
        entropy_rows = 4 * -(p * p.log()).sum(1).mean()
        q = F.softmax(logits.t() / 2, dim=1)
        entropy_cols = 4 * -(q * q.log()).sum(1).mean()
    assert logs["ce"] == pytest.approx(ce.item(), rel=1e-5)
    assert logs["distill_image"] == pytest.approx(entropy_rows.item(), rel=1e-5)
    assert logs["distill_text"] == pytest.approx(entropy_cols.item(), rel=1e-5)
    assert logs["loss"] == pytest.approx(logs["ce"] + logs["distill_image"] + logs["distill_text"], rel=1e-5)


def test_teacher_is_frozen_and_its_texts_are_not_re_encoded(tiny: Tiny) -> None:
    method = LwF(LwFConfig(image_weight=5.0, text_weight=5.0), tiny.ctx)
    task = make_task(0, ("cat", "dog"))
    method.before_task(task)
    teacher = method.teacher
    assert teacher is not None and not any(p.requires_grad for p in teacher.parameters())
    calls = []
    original = teacher.encode_text
    teacher.encode_text = lambda *a, **k: calls.append(1) or original(*a, **k)  # type: ignore[method-assign]
    optimizer = torch.optim.SGD(tiny.ctx.model.parameters(), lr=0.5)
    for step in range(3):
        optimizer.zero_grad()
        logs = method.training_step(make_batch(4, 2, seed=step), task, step)
        optimizer.step()
    assert calls == []
    # the student moved, the teacher did not: the distillation now pulls the student back
    images = make_batch(4, 2).images
    with torch.no_grad():
        student = F.normalize(tiny.ctx.model.encode_image(images), dim=-1)
        teacher_feats = F.normalize(teacher.encode_image(images), dim=-1)
        initial = F.normalize(tiny.initial.encode_image(images), dim=-1)
    assert not torch.allclose(student, teacher_feats) and torch.allclose(teacher_feats, initial)
    assert logs["loss"] > logs["ce"]
    method.after_task(task)
    assert method.teacher is None
