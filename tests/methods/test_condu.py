"""ConDU: unify/decouple round trips on toy weights, a hand-worked unification, and its routing classifier."""

from __future__ import annotations

import pytest
import torch

from clbench.classifier import HeadGroup, HeadSpec, TextHeadClassifier
from clbench.errors import UserError
from clbench.method import Batch
from clbench.methods.condu import ConDU, ConDUConfig, decouple, unify
from clbench.weights import snapshot
from tests.methods.conftest import Tiny, make_task


def test_single_task_round_trip_is_exact() -> None:
    delta = {"w": torch.tensor([[0.5, -1.5], [2.0, -0.25]]), "b": torch.tensor([-3.0, 1.0, 0.75])}
    unified, masks, rescalers = unify([delta])
    assert rescalers == [pytest.approx(1.0)]
    for n, d in decouple(unified, masks[0], rescalers[0]).items():
        torch.testing.assert_close(d, delta[n])


def test_tasks_with_disjoint_supports_round_trip_exactly() -> None:
    d1 = {"w": torch.tensor([1.0, 0.0, -2.0, 0.0])}
    d2 = {"w": torch.tensor([0.0, -3.0, 0.0, 0.5])}
    unified, masks, rescalers = unify([d1, d2])
    torch.testing.assert_close(unified["w"], torch.tensor([1.0, -3.0, -2.0, 0.5]))
    torch.testing.assert_close(decouple(unified, masks[0], rescalers[0])["w"], d1["w"])
    torch.testing.assert_close(decouple(unified, masks[1], rescalers[1])["w"], d2["w"])


def test_overlapping_tasks_by_hand() -> None:
    """delta_models.py:102-124 worked by hand: mean [0, -3, 2, .5] -> flag [-1, -1, 1, 1] (0 is not > 0)."""
    d1 = {"w": torch.tensor([1.0, -2.0, 3.0, 0.5])}
    d2 = {"w": torch.tensor([-1.0, -4.0, 1.0, 0.5])}
    unified, masks, rescalers = unify([d1, d2])
    assert masks[0]["w"].tolist() == [False, True, True, True]  # d1 * flag > 0
    assert masks[1]["w"].tolist() == [True, True, True, True]
    torch.testing.assert_close(unified["w"], torch.tensor([-1.0, -4.0, 3.0, 0.5]))  # flag * max |mask d|
    # rescaler = mean|d_m| / mean|unified * mask_m|: 1.625 / 1.875 and 1.625 / 2.125
    assert rescalers == [pytest.approx(1.625 / 1.875), pytest.approx(1.625 / 2.125)]
    torch.testing.assert_close(decouple(unified, masks[0], rescalers[0])["w"],
                               torch.tensor([0.0, -4.0, 3.0, 0.5]) * (1.625 / 1.875))


def _train(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))


def test_tasks_restart_from_pretrained_and_heads_pick_the_decoupled_model(tiny: Tiny) -> None:
    method = ConDU(ConDUConfig(logits_num=1), tiny.ctx)
    method.before_run()
    pretrained = snapshot(tiny.initial)
    g = torch.Generator().manual_seed(0)
    data = [Batch(torch.randn(6, 3, 32, 32, generator=g), torch.tensor([0, 1, 0, 1, 0, 1]))]
    tiny.ctx.bind_task_data(lambda max_batches: iter(data))
    tuned = []
    for t, names in enumerate((("cat", "dog"), ("car", "bus"))):
        task = make_task(t, names)
        _train(tiny.ctx.model, 99)  # drift the weights: before_task must undo it
        method.before_task(task)
        for n, p in tiny.ctx.model.named_parameters():
            torch.testing.assert_close(p.detach(), pretrained[n])
        _train(tiny.ctx.model, t)
        tuned.append(snapshot(tiny.ctx.model))
        method.after_task(task)
    assert method.tasks == ["task0", "task1"] and method.prototypes["task0"].shape[0] == 2
    deltas = [{n: th[n] - pretrained[n] for n in pretrained} for th in tuned]
    unified, masks, rescalers = unify(deltas)  # task 0's delta is exact after one unification (single task)
    model1 = dict(method.task_model("task1").named_parameters())
    for n in pretrained:
        torch.testing.assert_close(model1[n].detach(), pretrained[n] + unified[n] * masks[1][n] * rescalers[1])
    images = torch.randn(4, 3, 32, 32, generator=g)
    clf = method.classifier()
    own = HeadSpec((HeadGroup("task1", ("car", "bus"), make_task(1, ("car", "bus")).spec.templates),))
    expected = TextHeadClassifier(method.task_model("task1"), tiny.ctx.text_heads).logits(images, own)
    torch.testing.assert_close(clf.logits(images, own), expected)
    unseen = HeadSpec((HeadGroup("task9", ("owl",), ("a photo of a {}.",)),))
    torch.testing.assert_close(clf.logits(images, unseen),
                               TextHeadClassifier(tiny.initial, tiny.ctx.text_heads).logits(images, unseen))
    union = HeadSpec((own.groups[0], HeadGroup("task0", ("cat", "dog"), own.groups[0].templates)))
    out = clf.logits(images, union)  # evaluation.py:216-237: pretrained + best-matching task model, averaged
    feats = TextHeadClassifier(tiny.initial, tiny.ctx.text_heads).image_features(images)
    best = torch.stack([(feats @ method.prototypes[t].t()).max(1).values for t in ("task0", "task1")], 1).argmax(1)
    scores = [TextHeadClassifier(m, tiny.ctx.text_heads).logits(images, union)
              for m in (method.task_model("task0"), method.task_model("task1"))]
    zs = TextHeadClassifier(tiny.initial, tiny.ctx.text_heads).logits(images, union)
    for i in range(4):
        torch.testing.assert_close(out[i], (zs[i] + scores[int(best[i])][i]) / 2)
    restored = ConDU(ConDUConfig(logits_num=1), tiny.ctx)
    restored.before_run()
    restored.load_state_dict(method.state_dict())
    torch.testing.assert_close(restored.classifier().logits(images, union), out)


def test_invalid_logits_num_is_refused(tiny: Tiny) -> None:
    with pytest.raises(UserError, match="logits_num"):
        ConDU(ConDUConfig(logits_num=0), tiny.ctx).before_run()
