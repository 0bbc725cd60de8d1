"""iCaRL as ZSCL's code runs it: herding (and its indexing bug), K - K//t memory growth, storage-order walk.

Expected values are derived from the reference code written out here (``Thunderbeee/ZSCL``
``mtil/src/dynamic_dataset.py``, the same loop in ``cil/continual_clip/dynamic_dataset.py``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clbench.errors import UserError
from clbench.methods.icarl import ICaRL, ICaRLConfig, herding, shrunken_positions
from tests.methods.conftest import Tiny, fixed_batches, make_batch, make_task


def reference_herding(features: np.ndarray, m: int, quirk: bool) -> list[int]:
    """``constructExampleSet``, cil/continual_clip/dynamic_dataset.py:58-85: which rows of ``new_dataset`` it stores.

    ``quirk`` keeps the code's indexing: ``index`` is a position in the shrinking ``image_feature`` array but
    reads ``new_dataset[index]``; without it, the row the feature came from.
    """
    image_feature = features / np.linalg.norm(features, axis=-1, keepdims=True)  # :58
    image_feature_average = image_feature.mean(axis=0)  # :60
    rows = list(range(len(features)))  # which original row each remaining feature is
    stored, cur_embedding_sum = [], None
    for k in range(min(m, len(image_feature))):  # :69
        if not k:
            index = int(np.argmin(np.sum((image_feature_average - image_feature) ** 2, axis=1)))  # :71-73
            cur_embedding_sum = image_feature[index].copy()
        else:
            index = int(np.argmin(np.sum((image_feature_average - (1 / (k + 1)) * (image_feature + cur_embedding_sum))
                                         ** 2, axis=1)))  # :77-81
            cur_embedding_sum += image_feature[index]
        stored.append(index if quirk else rows[index])  # :75 / :84 new_dataset[index]
        image_feature = np.delete(image_feature, index, axis=0)
        del rows[index]
    return stored


def test_herding_by_hand() -> None:
    s = math.sqrt(0.5)
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [s, s]])
    # mean (0.569, 0.569): the diagonal point first; then (1,0) and (0,1) tie -> the first; then the last
    assert herding(feats, 3).tolist() == [2, 0, 1]
    assert herding(feats, 1).tolist() == [2]
    assert herding(feats, 10).tolist() == [2, 0, 1]


@pytest.mark.parametrize("quirk", [False, True])
def test_herding_equals_the_reference_loop(quirk: bool) -> None:
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(60, 8, generator=g) + 0.3
    chosen = herding(feats, 25)
    ours = shrunken_positions(chosen) if quirk else chosen
    assert ours.tolist() == reference_herding(feats.numpy().astype(np.float64), 25, quirk)
    if quirk:
        assert ours.tolist() != chosen.tolist()  # the bug changes which images are stored


def test_herding_tracks_the_mean_better_than_random() -> None:
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(200, 8, generator=g) + 0.5, dim=-1)
    mu = feats.mean(0)
    chosen = herding(feats, 10)
    assert len(set(chosen.tolist())) == 10
    herd_err = (feats[chosen].mean(0) - mu).norm()
    random_err = torch.stack([(feats[torch.randperm(200, generator=g)[:10]].mean(0) - mu).norm() for _ in range(50)])
    assert herd_err < random_err.quantile(0.05)


def reference_memory_sizes(memory_size: int, tasks: int, task_size: int, herd_first: bool) -> list[list[int]]:
    """Set sizes after each task: ``update`` / ``reduceExampleSet`` / ``constructExampleSet``
    (mtil/src/dynamic_dataset.py:20-66; the CIL file adds ``if not m: m = memory_size``, :62-63)."""
    sizes: list[int] = []
    out = []
    for _ in range(tasks):
        if not sizes and not herd_first:  # :21-25 first round: new_dataset[:memory_size]
            sizes.append(min(memory_size, task_size))
        else:
            t = len(sizes) + 1  # mtil :34-35
            sizes = [min(s, memory_size // t) for s in sizes]
            m = memory_size - memory_size // t or memory_size  # mtil :60, cil :63-66
            sizes.append(min(m, task_size))
        out.append(list(sizes))
    return out


def set_sizes(method: ICaRL) -> list[int]:
    return method.tasks.bincount().tolist() if len(method.tasks) else []


@pytest.mark.parametrize("memory_size", [10, 30])  # 30: more than a task's 12 images (few-shot protocols)
@pytest.mark.parametrize("timing", ["after_task", "before_task"])
def test_memory_grows_as_the_code_counts_it(tiny: Tiny, timing: str, memory_size: int) -> None:
    herd_first = timing == "before_task"
    method = ICaRL(ICaRLConfig(memory_size=memory_size, memory_timing=timing, herd_first_task=herd_first,
                               teacher="previous"), tiny.ctx)
    expected = reference_memory_sizes(memory_size, 3, 12, herd_first)
    if memory_size == 10:
        assert expected[-1] == [3, 3, 7]  # 13 exemplars for K = 10: the code's memory outgrows K
    else:
        assert expected[-1] == [10, 10, 12]
    for t in range(3):
        data = [make_batch(6, 3, seed=10 * t), make_batch(6, 3, seed=10 * t + 1)]
        tiny.ctx.task_batches = fixed_batches(data)  # type: ignore[method-assign]
        task = make_task(t, ("cat", "dog", "bird"), num_tasks=3)
        method.before_task(task)
        if timing == "before_task":
            assert set_sizes(method) == expected[t]
            assert method.teacher is not None  # distils on the coming task's exemplars from the first task on
        else:
            assert (method.teacher is None) == (t == 0)
        method.training_step(data[0], task, 0)
        method.after_task(task)
        assert set_sizes(method) == expected[t]
        assert len(method.images) == len(method.tasks) == len(method.labels)
        if t == 0 and not herd_first:  # the first set: the task's first K images in order
            first = torch.cat([b.images for b in data])[:memory_size].half()
            assert torch.equal(method.images, first)


def test_exemplars_are_walked_in_storage_order(tiny: Tiny) -> None:
    method = ICaRL(ICaRLConfig(memory_size=5, replay_batch_size=2), tiny.ctx)
    method.images = torch.zeros(5, 3, 32, 32, dtype=torch.float16)
    method.tasks, method.labels = torch.zeros(5, dtype=torch.long), torch.zeros(5, dtype=torch.long)
    # helpers.py:11-14 batch(ref_images, n): slices [0:2], [2:4], [4:5], then a new generator from 0
    assert [method.next_exemplars(2).tolist() for _ in range(4)] == [[0, 1], [2, 3], [4], [0, 1]]


def test_initial_teacher_is_the_zero_shot_model(tiny: Tiny) -> None:
    method = ICaRL(ICaRLConfig(memory_size=4), tiny.ctx)
    tiny.ctx.task_batches = fixed_batches([make_batch(6, 3)])  # type: ignore[method-assign]
    for t in range(2):
        task = make_task(t, ("cat", "dog", "bird"))
        method.before_task(task)
        method.after_task(task)
    method.before_task(make_task(2, ("cat", "dog", "bird"), num_tasks=3))
    assert method.teacher is tiny.initial  # mtil/src/models/icarl.py:105-108: no --ref-model -> zero-shot CLIP


def test_replay_loss_is_optional_and_classifies_against_the_own_task(tiny: Tiny) -> None:
    method = ICaRL(ICaRLConfig(memory_size=6, replay_batch_size=4, replay_weight=1.0), tiny.ctx)
    for t, names in enumerate((("cat", "dog", "bird"), ("red", "blue"))):
        tiny.ctx.task_batches = fixed_batches([make_batch(6, len(names), seed=t)])  # type: ignore[method-assign]
        task = make_task(t, names)
        method.before_task(task)
        logs = method.training_step(make_batch(6, len(names), seed=t), task, 0)
        method.after_task(task)
    assert {"replay", "distill_image", "distill_text"} <= set(logs)
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


def test_bad_choices_are_one_line_errors(tiny: Tiny) -> None:
    with pytest.raises(UserError, match="icarl.teacher must be initial or previous"):
        ICaRL(ICaRLConfig(teacher="zero"), tiny.ctx)
    with pytest.raises(UserError, match="icarl.memory_timing"):
        ICaRL(ICaRLConfig(memory_timing="never"), tiny.ctx)
