"""LoRA layers: the forward against ConDU's formula, its init, and which layers of a CLIP get factors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clbench.errors import UserError
from clbench.lora import LoRALinear, add_lora, add_lora_to_mlps, is_lora, lora_parameters
from clbench.models import load_model


def test_forward_equals_the_reference_formula_element_by_element() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(5, 3)
    weight, bias = linear.weight.detach().clone(), linear.bias.detach().clone()
    layer = add_lora(linear, rank=2, std=0.5)
    x = torch.randn(4, 5)
    a, b = layer.lora_A.detach(), layer.lora_B.detach()
    out = layer(x)
    # ConDU clip/model_lora.py:19-21: super().forward(x) + (1 / rank ** 0.5) * (x @ lora_A @ lora_B)
    for n in range(4):
        for o in range(3):
            base = sum(x[n, i].item() * weight[o, i].item() for i in range(5)) + bias[o].item()
            low = sum(sum(x[n, i].item() * a[i, j].item() for i in range(5)) * b[j, o].item() for j in range(2))
            assert out[n, o].item() == pytest.approx(base + low / 2 ** 0.5, rel=1e-5, abs=1e-6)


def test_init_draws_a_then_b_from_a_scaled_normal_and_keeps_the_linear() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(40, 30)
    weight = linear.weight.detach().clone()
    torch.manual_seed(7)
    layer = add_lora(linear, rank=6, std=0.01)
    torch.manual_seed(7)  # model_lora.py:15-16: randn(in, rank) * 0.01, then randn(rank, out) * 0.01
    expected_a, expected_b = torch.randn(40, 6) * 0.01, torch.randn(6, 30) * 0.01
    assert isinstance(layer, LoRALinear) and layer is linear
    assert torch.equal(layer.lora_A, expected_a) and torch.equal(layer.lora_B, expected_b)
    assert layer.scaling == 6 ** -0.5
    assert torch.equal(layer.weight, weight)  # the pretrained weight is kept, under its own name
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias", "lora_A", "lora_B"]


def test_clip_gets_factors_on_both_mlp_linears_of_every_block_of_both_encoders() -> None:
    torch.manual_seed(0)
    model = load_model("clbench-tiny", None).model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = model.encode_image(x)
    add_lora_to_mlps(model, rank=4, std=0.01, method="condu_lora")
    names = [n for n, _ in lora_parameters(model)]
    blocks = [f"visual.transformer.resblocks.{i}" for i in range(len(model.visual.transformer.resblocks))] + \
             [f"transformer.resblocks.{i}" for i in range(len(model.transformer.resblocks))]
    assert names == [f"{b}.mlp.{layer}.{f}" for b in blocks for layer in ("c_fc", "c_proj") for f in ("lora_A",
                                                                                                     "lora_B")]
    params = dict(model.named_parameters())
    assert set(params) - set(names) == set(before)  # no pretrained name changed; attention untouched
    assert all(torch.equal(params[n], before[n]) for n in before)
    assert not any(isinstance(m, LoRALinear) for m in model.modules() if isinstance(m, nn.MultiheadAttention))
    with torch.no_grad():  # A and B are both random (not zero-B): the output moves, but only slightly
        patched = model.encode_image(x)
    assert 0 < (patched - plain).abs().max() < 0.05 * plain.abs().max()
    for name in names:
        assert is_lora(name)
    assert not is_lora("visual.transformer.resblocks.0.mlp.c_fc.weight")


def test_a_model_without_vit_mlps_or_a_bad_rank_is_refused_before_anything_changes() -> None:
    model = load_model("clbench-tiny", None).model
    with pytest.raises(UserError, match="rank must be at least 1"):
        add_lora_to_mlps(model, rank=0, std=0.01, method="condu_lora")
    model.transformer.resblocks[-1].mlp.c_proj = nn.Identity()
    with pytest.raises(UserError, match="linear mlp.c_proj .* Identity"):
        add_lora_to_mlps(model, rank=2, std=0.01, method="condu_lora")
    assert not lora_parameters(model)  # every layer is checked before the first one is patched
