"""WiSE-FT: after a task the weights are exactly alpha * fine-tuned + (1 - alpha) * base."""

from __future__ import annotations

import pytest
import torch

from clbench.errors import UserError
from clbench.methods.wise_ft import WiSEFT, WiSEFTConfig
from clbench.weights import snapshot
from tests.methods.conftest import Tiny, make_task


def fine_tune(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Stand-in for training: move every trainable weight, return the 'fine-tuned' weights."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g))
    return snapshot(model)


@pytest.mark.parametrize("base", ["task_start", "initial"])
def test_interpolation_after_task(tiny: Tiny, base: str) -> None:
    method = WiSEFT(WiSEFTConfig(alpha=0.8, base=base), tiny.ctx)
    method.before_run()
    model = tiny.ctx.model
    task = make_task(0, ("a", "b"))
    fine_tune(model)  # a previous task moved the weights: task start != initial
    start = snapshot(model)
    method.before_task(task)
    tuned = fine_tune(model)
    method.after_task(task)
    reference = start if base == "task_start" else snapshot(tiny.initial)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), 0.8 * tuned[name] + 0.2 * reference[name])


def test_invalid_settings_fail_with_the_valid_values(tiny: Tiny) -> None:
    with pytest.raises(UserError, match="task_start, initial"):
        WiSEFT(WiSEFTConfig(base="zeroshot"), tiny.ctx).before_run()
    with pytest.raises(UserError, match="alpha"):
        WiSEFT(WiSEFTConfig(alpha=1.5), tiny.ctx).before_run()
