"""DDAS, MoE-Adapters' Distribution Discriminative Auto-Selector: per-task autoencoders on frozen image features
decide, per image, which task's modules to use, or none (the zero-shot model). Pure pieces tests can call
(JiazuoYu/MoE-Adapters4CL, mtil/src/models/AutoEncoder.py and evaluation.py)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Autoencoder(nn.Module):
    """DDAS's task autoencoder: Linear-ReLU to ``code`` dims, Linear-Sigmoid back (src/models/AutoEncoder.py:13-31)."""

    def __init__(self, dims: int, code: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dims, code), nn.ReLU())
        self.decoder = nn.Sequential(nn.Linear(code, dims), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def reconstruction_error(ae: Autoencoder, features: torch.Tensor) -> torch.Tensor:
    """(B,) per-image MSE of the autoencoder on sigmoid(features) (AutoEncoder.py:185-189)."""
    target = torch.sigmoid(features.float())
    return (ae(target) - target).pow(2).mean(dim=1)


def train_autoencoder(features: torch.Tensor, code: int, iterations: int, batch_size: int, lr: float,
                      weight_decay: float, decay_epochs: int, generator: torch.Generator) -> Autoencoder:
    """Adam, lr decayed x0.1 every ``decay_epochs`` epochs, MSE on shuffled batches (AutoEncoder.py:160-191)."""
    ae = Autoencoder(features.shape[1], code).to(features.device)
    target = torch.sigmoid(features.float())
    optimizer = torch.optim.Adam(ae.parameters(), lr=lr, weight_decay=weight_decay)
    per_epoch = math.ceil(len(target) / batch_size)
    order = torch.randperm(len(target), generator=generator)
    for it in range(iterations):
        if it % per_epoch == 0 and it:
            order = torch.randperm(len(target), generator=generator)
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.1 ** ((it // per_epoch) // decay_epochs)
        rows = order[(it % per_epoch) * batch_size:(it % per_epoch + 1) * batch_size].to(target.device)
        loss = F.mse_loss(ae(target[rows]), target[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return ae.eval().requires_grad_(False)


def select_routes(errors: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """(T, B) errors -> (B,) task of the lowest error, or -1 (zero-shot) where it exceeds that task's threshold."""
    best, task = errors.min(dim=0)
    return torch.where(best > thresholds.to(best)[task], torch.full_like(task, -1), task)
