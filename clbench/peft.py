"""What parameter-efficient methods share: the open_clip transformer blocks they patch, checked once.

A method that adds modules to the frozen CLIP (adapters beside the MLP, prefixes in attention) finds the blocks
here; a model it cannot patch (a ResNet image tower, a block type it does not know) is a one-line
:class:`~clbench.errors.UserError` raised from ``Method.patch_model``, i.e. before any training.
"""

from __future__ import annotations

from torch import nn

from clbench.errors import UserError


def transformer_blocks(model: nn.Module, encoder: str, method: str) -> list[nn.Module]:
    """The residual attention blocks of ``model``'s ``encoder`` ("image" or "text"), batch-first.

    Only open_clip's standard ``ResidualAttentionBlock`` (``x + attn(ln_1 x)``, then ``x + mlp(ln_2 x)``)
    qualifies: the patched forward of a method re-implements exactly that block.
    """
    from open_clip.transformer import ResidualAttentionBlock

    tower = model.visual if encoder == "image" else getattr(model, "text", model)
    transformer = getattr(tower, "transformer", None)
    blocks = list(getattr(transformer, "resblocks", []))
    what = f"the {encoder} encoder of this model ({type(tower).__name__})"
    if not blocks:
        raise UserError(f"{method} patches the transformer blocks of open_clip ViT models, but {what} has none; "
                        "choose a ViT model (e.g. --model ViT-B-16)")
    for block in blocks:
        if not isinstance(block, ResidualAttentionBlock) or not getattr(block.attn, "batch_first", False):
            raise UserError(f"{method} patches open_clip's batch-first ResidualAttentionBlock, but {what} uses "
                            f"{type(block).__name__}; choose a standard ViT model (e.g. --model ViT-B-16)")
    return blocks
