"""LoRA (Hu et al., 2022) on the MLP layers of open_clip's transformer blocks, in ConDU's layout and init.

Why a module of its own: low-rank factors beside a frozen linear layer are a building block any
parameter-efficient method can patch in; ``condu_lora`` is the first user. The layer is converted in place
(its ``weight``/``bias`` keep their names and values, ``lora_A``/``lora_B`` are added), so the frozen backbone's
parameter names do not change and a partial checkpoint stores only the factors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clbench.errors import UserError
from clbench.peft import transformer_blocks


class LoRALinear(nn.Linear):
    """y = x W^T + b + scaling * (x A) B with A (in, r), B (r, out), scaling = 1 / sqrt(r)
    (ConDU ``clip/model_lora.py:11-21``: factors stored input-major, no dropout). Built by :func:`add_lora`."""

    lora_A: nn.Parameter
    lora_B: nn.Parameter
    scaling: float

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) + self.scaling * (x @ self.lora_A @ self.lora_B)


@torch.no_grad()
def add_lora(linear: nn.Linear, rank: int, std: float) -> LoRALinear:
    """Turn ``linear`` into a :class:`LoRALinear` in place: A and B both drawn N(0, std^2), A first
    (``model_lora.py:15-16``; not the zero-B init of the LoRA paper, so the factors change the output slightly
    from the start). Drawn on the CPU generator, so the engine's seeded ``patch_model`` is reproducible on any
    device."""
    w = linear.weight
    linear.lora_A = nn.Parameter((torch.randn(linear.in_features, rank) * std).to(w.device, w.dtype))
    linear.lora_B = nn.Parameter((torch.randn(rank, linear.out_features) * std).to(w.device, w.dtype))
    linear.scaling = rank ** -0.5
    linear.__class__ = LoRALinear
    return linear  # type: ignore[return-value]


def add_lora_to_mlps(model: nn.Module, rank: int, std: float, method: str) -> list[LoRALinear]:
    """LoRA on ``mlp.c_fc`` and ``mlp.c_proj`` of every block of the image, then the text encoder — the only
    ``LoRALinear`` layers of ConDU's ViT CLIP (``model_lora.py:186-190``; attention stays a plain
    ``nn.MultiheadAttention``). A model without those layers is a one-line :class:`UserError`."""
    if rank < 1:
        raise UserError(f"{method}.rank must be at least 1, got {rank}")
    if std < 0:
        raise UserError(f"{method}.init_std must be non-negative, got {std}")
    layers = []
    for encoder in ("image", "text"):
        for block in transformer_blocks(model, encoder, method):
            for name in ("c_fc", "c_proj"):
                layer = getattr(getattr(block, "mlp", None), name, None)
                if type(layer) is not nn.Linear:
                    raise UserError(f"{method} adds LoRA to the linear mlp.{name} of each transformer block, but "
                                    f"the {encoder} encoder's is {type(layer).__name__}; choose a standard ViT "
                                    "model (e.g. --model ViT-B-16)")
                layers.append(layer)
    return [add_lora(layer, rank, std) for layer in layers]


def is_lora(name: str) -> bool:
    """A LoRA factor's parameter name (ConDU trains the parameters with ``'lora' in name``, finetune.py:68-71)."""
    return name.endswith((".lora_A", ".lora_B"))


def lora_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The LoRA factors of ``model``, in module order."""
    return [(n, p) for n, p in model.named_parameters() if is_lora(n)]
