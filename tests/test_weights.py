"""Weight-space operations: averages are arithmetic means, interpolation is exact, distances are sums."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clbench.weights import (
    RunningAverage,
    interpolate,
    load_weights,
    running_mean_update,
    snapshot,
    squared_distance,
)


def two_layer() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))


def randomize(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    load_weights(model, {n: torch.randn(p.shape, generator=g) for n, p in model.named_parameters()})
    return snapshot(model)


def test_snapshot_is_a_detached_copy() -> None:
    model = two_layer()
    snap = snapshot(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert not torch.equal(snap["0.weight"], model[0].weight)
    assert set(snap) == {n for n, _ in model.named_parameters()}
    assert not any(t.requires_grad for t in snap.values())


def test_running_average_equals_the_arithmetic_mean_of_snapshots() -> None:
    model = two_layer()
    snaps = [randomize(model, 0)]
    average = RunningAverage(snaps[0])
    for seed in range(1, 6):
        snaps.append(randomize(model, seed))
        average.update(model)
    assert average.count == 6
    for name in snaps[0]:
        expected = torch.stack([s[name] for s in snaps]).mean(0)
        torch.testing.assert_close(average.mean[name], expected, rtol=1e-6, atol=1e-6)


def test_running_mean_update_formula() -> None:
    mean = {"w": torch.tensor([2.0, 4.0])}
    running_mean_update(mean, {"w": torch.tensor([5.0, 1.0])}, count=2)  # (2*[2,4] + [5,1]) / 3
    torch.testing.assert_close(mean["w"], torch.tensor([3.0, 3.0]))


def test_interpolate_and_load() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.0])}
    b = {"w": torch.tensor([3.0, -2.0]), "b": torch.tensor([10.0])}
    mixed = interpolate(a, b, 0.8)
    torch.testing.assert_close(mixed["w"], torch.tensor([0.8 * 1 + 0.2 * 3, 0.8 * 2 - 0.2 * 2]))
    torch.testing.assert_close(mixed["b"], torch.tensor([2.0]))
    with pytest.raises(KeyError):
        interpolate(a, {"w": b["w"]}, 0.5)
    model = two_layer()
    target = {n: torch.full_like(p, 0.5) for n, p in model.named_parameters()}
    load_weights(model, target)
    assert all(torch.equal(p, target[n]) for n, p in model.named_parameters())
    with pytest.raises(KeyError):
        load_weights(model, {"nope": torch.zeros(1)})


def test_squared_distance_plain_and_weighted_with_its_gradient() -> None:
    theta = nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
    other = nn.Parameter(torch.tensor([[1.0]]))
    anchor = {"t": torch.tensor([0.0, 2.0, 1.0]), "o": torch.tensor([[3.0]])}
    plain = squared_distance([("t", theta), ("o", other)], anchor)
    assert plain.item() == pytest.approx(1 + 0 + 4 + 4)
    weight = {"t": torch.tensor([2.0, 5.0, 0.5])}  # "o" has no importance: skipped
    weighted = squared_distance([("t", theta), ("o", other)], anchor, weight)
    assert weighted.item() == pytest.approx(2 * 1 + 0 + 0.5 * 4)
    weighted.backward()
    torch.testing.assert_close(theta.grad, 2 * weight["t"] * (theta.detach() - anchor["t"]))
    assert other.grad is None
