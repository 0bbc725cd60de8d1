"""LwF-VR: the virtual vocabulary's token layout, its fixed draw per run, and its embedding by the teacher."""

from __future__ import annotations

import torch

from clbench.methods.lwf_vr import LwFVR, LwFVRConfig, virtual_vocabulary
from tests.methods.conftest import Tiny, make_batch, make_task


def test_virtual_vocabulary_layout() -> None:
    g = torch.Generator().manual_seed(0)
    tokens = virtual_vocabulary(50, 10, 49408, 49406, 49407, 77, g)
    assert tokens.shape == (50, 77)
    assert (tokens[:, 0] == 49406).all() and (tokens[:, 11] == 49407).all()
    assert (tokens[:, 12:] == 0).all()
    assert tokens[:, 1:11].min() >= 0 and tokens[:, 1:11].max() < 49408
    assert len({tuple(r) for r in tokens[:, 1:11].tolist()}) == 50
    again = virtual_vocabulary(50, 10, 49408, 49406, 49407, 77, torch.Generator().manual_seed(0))
    assert torch.equal(tokens, again)
    short = virtual_vocabulary(3, 10, 100, 98, 99, 8)  # context 8: 6 random tokens fit
    assert (short[:, 7] == 99).all() and short.shape == (3, 8)


def test_sentences_are_drawn_once_and_restored_on_resume(tiny: Tiny) -> None:
    method = LwFVR(LwFVRConfig(num_sentences=30), tiny.ctx)
    method.before_run()
    assert method.tokens is not None and method.tokens.shape == (30, 16)  # tiny model: context length 16
    task = make_task(0, ("cat", "dog"))
    method.before_task(task)
    assert method.teacher_text is not None and method.teacher_text.shape == (30, 32)
    logs = method.training_step(make_batch(4, 2), task, 0)
    assert {"distill_image", "distill_text"} <= set(logs)
    state = method.state_dict()
    resumed = LwFVR(LwFVRConfig(num_sentences=30), tiny.ctx)
    torch.manual_seed(123)
    resumed.before_run()
    resumed.load_state_dict(state)
    assert torch.equal(resumed.tokens, method.tokens)


def test_cil_setting_redraws_the_sentences_every_task(tiny: Tiny) -> None:
    """ZSCL's CIL code calls ``virtual_vocab()`` in every task's ``train`` (cil/continual_clip/models.py:160)."""
    for redraw in (False, True):
        method = LwFVR(LwFVRConfig(num_sentences=30, redraw_sentences=redraw), tiny.ctx)
        method.before_run()
        drawn = []
        for t in range(2):
            method.before_task(make_task(t, ("cat", "dog")))
            drawn.append(method.tokens.clone())
        assert torch.equal(drawn[0], drawn[1]) != redraw
