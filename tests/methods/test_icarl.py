"""iCaRL: herding order, per-class quotas of the memory, replay CE against each exemplar's own task."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clbench.methods.icarl import ICaRL, ICaRLConfig, herding, keep_per_class
from tests.methods.conftest import Tiny, fixed_batches, make_batch, make_task


def test_herding_by_hand() -> None:
    s = math.sqrt(0.5)
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [s, s]])
    # mean (0.569, 0.569): the diagonal point first; then (1,0) and (0,1) tie -> the first; then the last
    assert herding(feats, 3).tolist() == [2, 0, 1]
    assert herding(feats, 1).tolist() == [2]
    assert herding(feats, 10).tolist() == [2, 0, 1]


def test_herding_tracks_the_mean_better_than_random() -> None:
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(200, 8, generator=g) + 0.5, dim=-1)
    mu = feats.mean(0)
    chosen = herding(feats, 10)
    assert len(set(chosen.tolist())) == 10
    herd_err = (feats[chosen].mean(0) - mu).norm()
    random_err = torch.stack([(feats[torch.randperm(200, generator=g)[:10]].mean(0) - mu).norm() for _ in range(50)])
    assert herd_err < random_err.quantile(0.05)


def test_keep_per_class_keeps_the_first_of_each_key() -> None:
    keys = torch.tensor([5, 5, 5, 7, 7, 9])
    assert keep_per_class(keys, 2).tolist() == [True, True, False, True, True, True]


def test_memory_quota_over_tasks_and_replay_loss(tiny: Tiny) -> None:
    method = ICaRL(ICaRLConfig(memory_size=6, replay_batch_size=4), tiny.ctx)
    tasks = [make_task(0, ("cat", "dog", "bird")), make_task(1, ("red", "blue"))]
    data = [[make_batch(6, 3, seed=0), make_batch(6, 3, seed=1)], [make_batch(6, 2, seed=2)]]
    tiny.ctx.task_batches = fixed_batches(data[0])  # type: ignore[method-assign]
    method.before_task(tasks[0])
    assert method.teacher is None  # nothing to replay on the first task
    assert set(method.training_step(data[0][0], tasks[0], 0)) == {"loss", "ce"}
    method.after_task(tasks[0])
    assert len(method.images) == 6 and method.labels.bincount().tolist() == [2, 2, 2]
    first_pick = method.images[::2].clone()  # the herding order is kept per class
    images0 = torch.cat([b.images for b in data[0]])
    for stored, label in zip(method.images, method.labels, strict=True):  # exemplars are task images of that class
        match = (images0.half() == stored).flatten(1).all(1).nonzero().flatten()
        assert len(match) == 1 and int(torch.cat([b.labels for b in data[0]])[match]) == int(label)

    tiny.ctx.task_batches = fixed_batches(data[1])  # type: ignore[method-assign]
    method.before_task(tasks[1])
    assert method.teacher is not None
    logs = method.training_step(data[1][0], tasks[1], 0)
    assert {"replay", "distill_image", "distill_text"} <= set(logs)
    method.after_task(tasks[1])
    assert len(method.images) == 5  # 6 // 5 classes = 1 per class
    assert method.tasks.tolist() == [0, 0, 0, 1, 1]
    assert torch.equal(method.images[:3], first_pick)

    # replay CE: each exemplar against its own task's prompts only
    model, ctx = tiny.ctx.model, tiny.ctx
    images = method.images.float()
    feats = F.normalize(model.encode_image(images), dim=-1)
    ours = method.replay_loss(images, method.tasks, method.labels, feats)
    naive = []
    for f, t, y in zip(feats, method.tasks.tolist(), method.labels, strict=True):
        text = F.normalize(model.encode_text(ctx.tokenize(method.task_prompts[t])), dim=-1)
        naive.append(F.cross_entropy((ctx.logit_scale(model) * f @ text.t())[None], y[None], label_smoothing=0.2))
    assert ours.item() == pytest.approx(torch.stack(naive).mean().item(), rel=1e-5)

    resumed = ICaRL(ICaRLConfig(memory_size=6), tiny.ctx)
    resumed.load_state_dict(method.state_dict())
    assert torch.equal(resumed.images, method.images) and resumed.task_prompts == method.task_prompts
