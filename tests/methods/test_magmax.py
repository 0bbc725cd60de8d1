"""MagMax: the max-magnitude merge by hand on three toy task vectors, and the evaluated model it gives."""

from __future__ import annotations

import pytest
import torch

from clbench.errors import UserError
from clbench.methods.magmax import MagMax, MagMaxConfig, merge_max_abs
from clbench.weights import snapshot
from tests.methods.conftest import Tiny, make_task


def test_merge_of_three_task_vectors_by_hand() -> None:
    t1 = {"w": torch.tensor([1.0, -4.0, 0.5, 2.0]), "b": torch.tensor([[3.0]])}
    t2 = {"w": torch.tensor([-2.0, 3.0, 0.5, -2.0]), "b": torch.tensor([[-1.0]])}
    t3 = {"w": torch.tensor([0.5, 1.0, -0.2, 1.0]), "b": torch.tensor([[-3.0]])}
    merged = merge_max_abs(merge_max_abs(merge_max_abs(None, t1), t2), t3)
    # per element the largest |value|; on ties the later task (task_vectors.py:122 uses >=): 0.5 from t2, -2 from
    # t2 over 2 from t1, -3 from t3 over 3 from t1
    assert merged["w"].tolist() == [-2.0, -4.0, 0.5, -2.0]
    assert merged["b"].tolist() == [[-3.0]]
    assert t1["w"].tolist() == [1.0, -4.0, 0.5, 2.0]  # inputs untouched


def test_evaluated_model_is_pretrained_plus_scaled_merge(tiny: Tiny) -> None:
    method = MagMax(MagMaxConfig(scaling_coef=0.5), tiny.ctx)
    method.before_run()
    model = tiny.ctx.model
    assert method.eval_model() is model  # nothing merged yet
    base = snapshot(tiny.initial)
    g = torch.Generator().manual_seed(0)
    thetas = []
    for t in range(3):  # sequential fine-tuning stand-in: each task moves the weights further
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=g))
        thetas.append(snapshot(model))
        method.after_task(make_task(t, ("a", "b"), num_tasks=3))
    evaluated = dict(method.eval_model().named_parameters())
    for name, theta0 in base.items():
        taus = torch.stack([th[name] - theta0 for th in thetas])
        # the largest-magnitude entry over tasks; the last such task on ties
        idx = (taus.abs().flip(0).argmax(0)).neg() + 2
        expected = theta0 + 0.5 * taus.gather(0, idx.unsqueeze(0)).squeeze(0)
        torch.testing.assert_close(evaluated[name].detach(), expected)
    for name, p in model.named_parameters():  # training continues from theta_3, not from the merge
        torch.testing.assert_close(p.detach(), thetas[-1][name])
    restored = MagMax(MagMaxConfig(scaling_coef=0.5), tiny.ctx)
    restored.before_run()
    restored.load_state_dict(method.state_dict())
    for name, p in restored.eval_model().named_parameters():
        torch.testing.assert_close(p.detach(), evaluated[name].detach())


def test_negative_scaling_is_refused(tiny: Tiny) -> None:
    with pytest.raises(UserError, match="scaling_coef"):
        MagMax(MagMaxConfig(scaling_coef=-1.0), tiny.ctx).before_run()
