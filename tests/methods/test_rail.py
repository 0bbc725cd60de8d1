"""RAIL: recursive ridge == batch closed form, primal == dual where they must agree, fusion rule, engine runs."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from clbench.classifier import HeadGroup, HeadSpec
from clbench.errors import UserError
from clbench.method import Batch
from clbench.methods.rail import (
    KernelRidge,
    Rail,
    RailClassifier,
    RailConfig,
    RecursiveRidge,
    gaussian_kernel,
)
from tests.methods.conftest import Tiny, make_task


def closed_form(x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    """RAIL primal_RAIL.py:66-73: W = (X^T X + lambda I)^{-1} X^T Y over all data at once."""
    return torch.linalg.inv(x.t() @ x + lam * torch.eye(x.shape[1], dtype=x.dtype)) @ x.t() @ y


def test_recursive_update_equals_batch_closed_form_across_tasks() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(90, 20, generator=g, dtype=torch.float64).relu()
    labels_a = torch.randint(0, 3, (50,), generator=g)  # task A: 3 classes
    labels_b = torch.randint(0, 4, (40,), generator=g) + 3  # task B: 4 new classes
    ridge = RecursiveRidge(20, 0.1, torch.device("cpu"))
    ridge.add_classes(3)
    for lo in range(0, 50, 16):  # uneven batches
        ridge.update(x[lo:min(lo + 16, 50)], F.one_hot(labels_a[lo:min(lo + 16, 50)], 3))
    torch.testing.assert_close(ridge.W, closed_form(x[:50], F.one_hot(labels_a, 3).double(), 0.1),
                               atol=1e-5, rtol=0)
    ridge.add_classes(4)
    for lo in range(50, 90, 7):
        ridge.update(x[lo:min(lo + 7, 90)], F.one_hot(labels_b[lo - 50:min(lo + 7, 90) - 50], 7))
    y = torch.cat([F.one_hot(labels_a, 7), F.one_hot(labels_b, 7)]).double()
    torch.testing.assert_close(ridge.W, closed_form(x, y, 0.1), atol=1e-5, rtol=0)
    torch.testing.assert_close(ridge.R, torch.linalg.inv(x.t() @ x + 0.1 * torch.eye(20, dtype=x.dtype)),
                               atol=1e-5, rtol=0)


def test_dual_with_linear_kernel_equals_primal_ridge_without_expansion() -> None:
    """x (X^T X + lam I)^{-1} X^T Y == x X^T (X X^T + lam I)^{-1} Y: the two forms agree for the linear kernel."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 12, generator=g, dtype=torch.float64)
    labels = torch.cat([torch.randint(0, 3, (17,), generator=g), torch.randint(3, 5, (13,), generator=g)])
    y = F.one_hot(labels, 5).double()  # task 1: classes 0-2; task 2: classes 3-4
    queries = torch.randn(8, 12, generator=g, dtype=torch.float64)
    primal = RecursiveRidge(12, 0.3, torch.device("cpu"))
    primal.add_classes(5)
    primal.update(x[:17], y[:17])
    primal.update(x[17:], y[17:])
    dual = KernelRidge(0.3, gamma=1.0, kernel="linear", device=torch.device("cpu"))
    dual.add(x[:17], y[:17, :3])  # the first task knows 3 classes; the second widens the label space
    dual.add(x[17:], y[17:])
    dual.fit()
    torch.testing.assert_close(dual.predict(queries), primal.predict(queries), atol=1e-8, rtol=0)


def test_gaussian_kernel_matches_the_reference_formula() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(5, 6, generator=g), torch.randn(70, 6, generator=g)
    # RAIL utils.py:86: exp(-gamma * ((X - x[:, None]) ** 2).sum(-1)), written out
    expected = torch.exp(-0.1 * ((b[None, :, :] - a[:, None, :]) ** 2).sum(-1))
    torch.testing.assert_close(gaussian_kernel(a, b, 0.1), expected, atol=1e-6, rtol=0)


def _rail(tiny: Tiny, **cfg: object) -> Rail:
    method = Rail(RailConfig(**{"hidden_dim": 64, **cfg}), tiny.ctx)  # type: ignore[arg-type]
    method.before_run()
    return method


def _batches(names: tuple[str, ...], n: int, seed: int) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    return [Batch(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, len(names), (n,), generator=g))
            for _ in range(2)]


class FixedZeroShot:
    """Stands in for CLIP's text side: fixed class embeddings per head group and a temperature."""

    def __init__(self, text: dict[str, torch.Tensor], scale: float) -> None:
        self.text = text
        self.model = torch.nn.Module()
        self.model.logit_scale = torch.nn.Parameter(torch.tensor(scale).log())

    def text_head(self, head: HeadSpec) -> torch.Tensor:
        return torch.cat([self.text[g.task] for g in head.groups])


def test_fusion_follows_the_domain_selection_rule(tiny: Tiny) -> None:
    g = torch.Generator().manual_seed(5)
    method = _rail(tiny)
    method.clip_features = lambda images: F.normalize(images, dim=-1)  # "images" are CLIP features here
    a, b = make_task(0, ("cat", "dog")), make_task(1, ("car", "bus", "van"))
    fit = [Batch(torch.randn(6, 8, generator=g), torch.randint(0, 2, (6,), generator=g)) for _ in range(2)]
    method.fit_task(a, iter(fit))
    text = {"task0": F.normalize(torch.randn(2, 8, generator=g), dim=-1),
            "task1": F.normalize(torch.randn(3, 8, generator=g), dim=-1)}
    clf = RailClassifier(FixedZeroShot(text, 100.0), method)  # type: ignore[arg-type]
    head = HeadSpec((HeadGroup("task0", ("cat", "dog"), a.spec.templates),
                     HeadGroup("task1", ("car", "bus", "van"), b.spec.templates)))
    feats = F.normalize(torch.randn(40, 8, generator=g), dim=-1)
    out = clf.logits(feats, head)
    # RAIL primal_RAIL.py:253-254: zero-shot probabilities over every class of the head (union: 5 classes)
    zs = (100.0 * feats @ torch.cat([text["task0"], text["task1"]]).t()).softmax(-1)
    # primal_RAIL.py:62,110: regression output over the learned classes, ReLU(random projection) features
    reg = (torch.relu(feats @ method.projection.weight.t()).double() @ method.ridge.W).float()
    # primal_RAIL.py:264-273: fuse where zero-shot picks a learned class (columns 0-1), zero-padded; else keep zs
    mask = zs.argmax(-1) < 2
    expected = torch.where(mask[:, None], 0.2 * zs + 0.8 * F.pad(reg, (0, 3)), zs)
    assert 0 < int(mask.sum()) < 40  # both branches of the rule are exercised
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    # task-incremental heads: an unseen task's is pure zero-shot, the learned task's always fused
    zs_b = (100.0 * feats @ text["task1"].t()).softmax(-1)
    torch.testing.assert_close(clf.logits(feats, HeadSpec((head.groups[1],))), zs_b, atol=1e-6, rtol=0)
    zs_a = (100.0 * feats @ text["task0"].t()).softmax(-1)
    torch.testing.assert_close(clf.logits(feats, HeadSpec((head.groups[0],))), 0.2 * zs_a + 0.8 * reg,
                               atol=1e-5, rtol=0)


def test_state_round_trip_restores_predictions(tiny: Tiny) -> None:
    for form in ("primal", "dual"):
        method = _rail(tiny, form=form)
        task = make_task(0, ("cat", "dog"))
        method.fit_task(task, iter(_batches(task.train_class_names, 6, 3)))
        width = method.clip_features(torch.zeros(1, 3, 32, 32)).shape[1]
        feats = F.normalize(torch.randn(4, width, generator=torch.Generator().manual_seed(9)), dim=-1)
        before = method.regress(feats)
        state = copy.deepcopy(method.state_dict())
        fresh = _rail(tiny, form=form)
        fresh.load_state_dict(state)
        torch.testing.assert_close(fresh.regress(feats), before)
        assert fresh.class_start == {"task0": 0}


def test_invalid_settings_fail_with_the_valid_values(tiny: Tiny) -> None:
    with pytest.raises(UserError, match="primal, dual"):
        _rail(tiny, form="kernel")
    with pytest.raises(UserError, match="fusion_weight"):
        _rail(tiny, fusion_weight=1.5)
    method = _rail(tiny, form="dual", max_samples=5)
    with pytest.raises(UserError, match="max_samples"):
        method.fit_task(make_task(0, ("a", "b")), iter(_batches(("a", "b"), 6, 0)))
