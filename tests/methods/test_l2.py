"""L2 (WC): the penalty is the summed squared distance to the task-start weights and adds 2w(theta - theta0)."""

from __future__ import annotations

import pytest
import torch

from clbench.context import trainable_parameters
from clbench.methods.l2 import L2, L2Config
from tests.methods.conftest import Tiny, make_batch, make_task


def test_penalty_value_and_gradient(tiny: Tiny) -> None:
    method = L2(L2Config(weight=0.5), tiny.ctx)
    task = make_task(0, ("cat", "dog"))
    method.before_task(task)
    model = tiny.ctx.model
    g = torch.Generator().manual_seed(1)
    deltas = {}
    with torch.no_grad():
        for name, p in trainable_parameters(model):
            deltas[name] = 0.01 * torch.randn(p.shape, generator=g)
            p.add_(deltas[name])
    batch = make_batch(4, 2)
    logs = {k: float(v) for k, v in method.training_step(batch, task, 0).items()}  # as the engine logs
    expected = sum(float(d.pow(2).sum()) for d in deltas.values())
    assert logs["l2"] == pytest.approx(expected, rel=1e-4)
    assert logs["loss"] == pytest.approx(logs["ce"] + 0.5 * expected, rel=1e-5)
    with_penalty = {n: p.grad.clone() for n, p in trainable_parameters(model)}
    model.zero_grad()
    method.task_loss(batch, task).backward()
    for name, p in trainable_parameters(model):
        torch.testing.assert_close(with_penalty[name] - p.grad, 2 * 0.5 * deltas[name], rtol=1e-4, atol=1e-6)
