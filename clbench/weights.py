"""Weight-space operations shared by methods: snapshots, interpolation, running averages, quadratic anchors.

Pure functions on ``{name: tensor}`` dicts (and the named parameters of a model), so WiSE-FT, ZSCL's weight
ensemble, L2 (WC) and EWC share one tested implementation. Snapshots hold detached copies; writing weights
back goes through :func:`load_weights` (in place, no autograd), after which a method must call
``ctx.weights_changed()`` so cached text heads are re-encoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

Weights = dict[str, torch.Tensor]


def snapshot(model: nn.Module, device: torch.device | str | None = None) -> Weights:
    """Detached copies of every parameter of ``model`` (frozen ones included, as ZSCL's ``zip(parameters())``)."""
    return {n: p.detach().to(device, copy=True) if device is not None else p.detach().clone()
            for n, p in model.named_parameters()}


@torch.no_grad()
def load_weights(model: nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
    """Copy ``weights`` into the matching parameters of ``model`` in place (optimizer state stays attached)."""
    params = dict(model.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise KeyError(f"weights for unknown parameters: {', '.join(missing[:5])}")
    for name, value in weights.items():
        params[name].copy_(value.to(params[name].device, params[name].dtype))


def interpolate(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], alpha: float) -> Weights:
    """alpha * a + (1 - alpha) * b for every key (WiSE-FT with a = fine-tuned, b = the base weights)."""
    if a.keys() != b.keys():
        raise KeyError("interpolate needs two state dicts with the same keys")
    return {n: alpha * a[n] + (1.0 - alpha) * b[n].to(a[n].device, a[n].dtype) for n in a}


@torch.no_grad()
def running_mean_update(mean: Mapping[str, torch.Tensor], new: Mapping[str, torch.Tensor], count: int) -> None:
    """In place: mean <- (mean * count + new) / (count + 1), where ``count`` snapshots are already averaged.

    ZSCL's ``merge_we``: after k updates from a start point the mean is the arithmetic mean of the k + 1
    snapshots (start included).
    """
    for name, m in mean.items():
        m.mul_(count).add_(new[name].to(m.device, m.dtype)).div_(count + 1)


class RunningAverage:
    """Arithmetic mean of weight snapshots, started from one snapshot (ZSCL's weight ensemble)."""

    def __init__(self, start: Mapping[str, torch.Tensor]) -> None:
        self.mean: Weights = {n: t.detach().clone() for n, t in start.items()}
        self.count = 1  # snapshots in the mean

    def update(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        running_mean_update(self.mean, {n: params[n].detach() for n in self.mean}, self.count)
        self.count += 1


def squared_distance(params: Iterable[tuple[str, torch.Tensor]], anchor: Mapping[str, torch.Tensor],
                     importance: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    """sum over tensors of sum(w * (theta - theta*)^2), differentiable in ``theta``.

    ``importance`` None gives the plain L2 distance of L2/WC (ZSCL ``l2_loss``: ``mse_loss(reduction='sum')``);
    a Fisher diagonal gives EWC's quadratic penalty (before its lambda/2). Parameters absent from
    ``anchor`` (or from ``importance``) contribute nothing.
    """
    total: torch.Tensor | None = None
    for name, p in params:
        if name not in anchor or (importance is not None and name not in importance):
            continue
        diff = (p.float() - anchor[name].float()).pow(2)
        if importance is not None:
            diff = importance[name].float() * diff
        term = diff.sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("squared_distance: no parameter matches the anchor")
    return total
