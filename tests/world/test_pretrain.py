"""Pre-training is deterministic, and the bundled weights load and know the world's attributes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clbench.world import bundled_weights_path
from clbench.world.pretrain import PretrainConfig, pretrain, save_weights, soft_targets


def test_soft_targets_share_mass_between_repeated_captions() -> None:
    t = soft_targets(["a", "b", "a"])
    assert torch.allclose(t, torch.tensor([[0.5, 0, 0.5], [0, 1, 0], [0.5, 0, 0.5]]))


def test_pretraining_is_deterministic(tmp_path: Path) -> None:
    import io

    cfg = PretrainConfig(steps=2, batch_size=8)
    a = pretrain(cfg, log=io.StringIO())
    b = pretrain(cfg, log=io.StringIO())
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    path = save_weights(a, tmp_path / "w.safetensors", cfg)
    from clbench.models import load_model

    loaded = load_model("clbench-world", str(path))
    assert loaded.transforms.image_size == 32


def test_bundled_weights_load_and_reach_the_zero_shot_bar() -> None:
    from clbench.models import load_model
    from clbench.world.tasks import TASKS
    from clbench.world.zeroshot import zero_shot_accuracy

    path = bundled_weights_path()
    assert path.is_file(), f"bundled weights missing: {path}"
    assert path.stat().st_size <= 15 * 2**20
    loaded = load_model("clbench-world", str(path))
    for name, bar in (("shape", 0.6), ("colour", 0.6)):
        acc = zero_shot_accuracy(loaded.model, loaded.tokenizer, TASKS[name], per_class=25)
        assert acc >= bar, f"{name}: zero-shot {acc:.1%} < {bar:.0%}"


@pytest.mark.parametrize("name", ["letters", "digits"])
def test_bundled_weights_do_not_know_the_novel_families(name: str) -> None:
    from clbench.models import load_model
    from clbench.world.tasks import TASKS
    from clbench.world.zeroshot import zero_shot_accuracy

    loaded = load_model("clbench-world", str(bundled_weights_path()))
    acc = zero_shot_accuracy(loaded.model, loaded.tokenizer, TASKS[name], per_class=20)
    assert acc < 0.3, f"{name}: zero-shot {acc:.1%}, but pre-training never saw it"
