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
    again = save_weights(b, tmp_path / "again.safetensors", cfg)
    assert path.read_bytes() == again.read_bytes()  # byte-identical files, not just equal tensors
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
    # Acceptance: every attribute task at least twice chance. Floors sit a few points under what 25 images per
    # class measured (shape 45.6%, colour 99.6%, texture 60.0%, count 99.0%, position 79.2%, size 96.0%), so a
    # regression in pre-training or rendering shows.
    floors = {"shape": 0.4, "colour": 0.9, "texture": 0.5, "count": 0.9, "position": 0.7, "size": 0.85}
    for name, floor in floors.items():
        task = TASKS[name]
        acc = zero_shot_accuracy(loaded.model, loaded.tokenizer, task, per_class=25)
        bar = max(floor, 2.0 / len(task.class_names))
        assert acc >= bar, f"{name}: zero-shot {acc:.1%} < {bar:.0%}"


@pytest.mark.parametrize("name", ["letters", "digits"])
def test_bundled_weights_do_not_know_the_novel_families(name: str) -> None:
    from clbench.models import load_model
    from clbench.world.tasks import TASKS
    from clbench.world.zeroshot import zero_shot_accuracy

    loaded = load_model("clbench-world", str(bundled_weights_path()))
    acc = zero_shot_accuracy(loaded.model, loaded.tokenizer, TASKS[name], per_class=20)
    assert acc < 0.3, f"{name}: zero-shot {acc:.1%}, but pre-training never saw it"
