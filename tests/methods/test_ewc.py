"""EWC: the diagonal Fisher against brute force on a 2-parameter model; the penalty; online accumulation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clbench.context import trainable_parameters
from clbench.methods.ewc import EWC, EWCConfig, diagonal_fisher
from tests.methods.conftest import Tiny, fixed_batches, make_batch, make_task


class TwoParams(nn.Module):
    """logits = [a * x, b * x^2]: two parameters, a softmax classifier over 2 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.7, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(-0.3, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.a * x, self.b * x * x], dim=1)


def test_fisher_matches_brute_force_on_two_parameters() -> None:
    model = TwoParams()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(5, generator=g, dtype=torch.float64), torch.randint(0, 2, (5,), generator=g))
               for _ in range(4)]

    def loss(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(model(batch[0]), batch[1])

    fisher = diagonal_fisher(list(model.named_parameters()), batches, loss)
    # brute force: central finite differences of each batch loss, squared, averaged over batches
    eps = 1e-6
    brute = {}
    for name, p in model.named_parameters():
        squares = []
        for batch in batches:
            with torch.no_grad():
                p += eps
                up = loss(batch).item()
                p -= 2 * eps
                down = loss(batch).item()
                p += eps
            squares.append(((up - down) / (2 * eps)) ** 2)
        brute[name] = sum(squares) / len(squares)
    for name in brute:
        assert fisher[name].item() == pytest.approx(brute[name], rel=1e-5)
    assert all(p.grad is None for p in model.parameters())


def test_online_fisher_and_penalty(tiny: Tiny) -> None:
    method = EWC(EWCConfig(lam=100.0, gamma=0.5, fisher_batches=2), tiny.ctx)
    model, ctx = tiny.ctx.model, tiny.ctx
    tasks = [make_task(0, ("cat", "dog")), make_task(1, ("red", "blue", "green"))]
    data = [[make_batch(4, 2, seed=s) for s in range(3)], [make_batch(6, 3, seed=s) for s in range(3, 6)]]
    assert set(method.training_step(data[0][0], tasks[0], 0)) == {"loss", "ce"}  # no penalty before a Fisher
    fishers = []
    for task, batches in zip(tasks, data, strict=True):
        ctx.task_batches = fixed_batches(batches)  # type: ignore[method-assign]
        method.after_task(task)
        params = trainable_parameters(model)
        fishers.append(diagonal_fisher(params, batches[:2],
                                       lambda b, t=task: F.cross_entropy(method.task_logits(b.images, t), b.labels)))
    for name, f in method.fisher.items():
        torch.testing.assert_close(f, 0.5 * fishers[0][name] + fishers[1][name])
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for _, p in trainable_parameters(model):
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    logs = {k: float(v) for k, v in method.training_step(data[1][0], tasks[1], 0).items()}  # as the engine logs
    expected = sum(float((method.fisher[n] * (p.detach() - method.anchor[n]).pow(2)).sum())
                   for n, p in trainable_parameters(model))
    assert logs["ewc"] == pytest.approx(expected, rel=1e-4)
    assert logs["loss"] == pytest.approx(logs["ce"] + 50.0 * expected, rel=1e-4)
    resumed = EWC(EWCConfig(), ctx)
    resumed.load_state_dict(method.state_dict())
    assert resumed.fisher is method.fisher and resumed.anchor is method.anchor
