"""SnD: the selective dual-teacher loss against the reference formula; only the image encoder trains."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from clbench.benchmark import BenchmarkDef
from clbench.methods.snd import SnD, SnDConfig, selective_distillation
from clbench.reference_data import TensorReferenceData
from tests.methods.conftest import Tiny, make_batch, make_task
from tests.methods.test_engine_runs import run_method


def test_selective_distillation_matches_the_reference_formula() -> None:
    g = torch.Generator().manual_seed(0)
    student, pre, prev = (F.normalize(torch.randn(5, 4, generator=g), dim=-1) for _ in range(3))
    prev[0] = pre[0]  # teachers agree: the pretrained one is trusted
    l_prev, l_pre, weights = selective_distillation(student, pre, prev, threshold=0.2, scale=6.0)
    exp_prev = exp_pre = 0.0
    for i in range(5):  # src/trainer/snd_trainer.py:51-75 with L2Loss(reduce=None, square=False), written out
        d = math.sqrt(sum((pre[i, k].item() - prev[i, k].item()) ** 2 for k in range(4)))
        s = 1 / (1 + math.exp(-6.0 * (d - 0.2)))
        assert weights[i].item() == pytest.approx(s, rel=1e-5)
        exp_prev += s * sum((student[i, k].item() - prev[i, k].item()) ** 2 for k in range(4)) / 5
        exp_pre += (1 - s) * sum((student[i, k].item() - pre[i, k].item()) ** 2 for k in range(4)) / 5
    assert l_prev.item() == pytest.approx(exp_prev, rel=1e-5)
    assert l_pre.item() == pytest.approx(exp_pre, rel=1e-5)
    assert weights[0].item() == pytest.approx(1 / (1 + math.exp(1.2)), rel=1e-6)


def test_first_task_distils_towards_the_pretrained_model_twice(tiny: Tiny) -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8, generator=g)
    tiny.ctx.services["reference_data"] = TensorReferenceData(images, ["a", "b"], (0.5,) * 3, (0.25,) * 3)
    method = SnD(SnDConfig(ref_batch_size=4), tiny.ctx)
    method.before_run()
    task = make_task(0, ("cat", "dog"))
    method.before_task(task)
    logs = method.training_step(make_batch(4, 2), task, 0)
    # both teachers are the pretrained model and so is the student: zero distillation, every weight sigmoid(-1.2)
    assert float(logs["kd_prev"]) == pytest.approx(0.0, abs=1e-10)
    assert float(logs["kd_pretrained"]) == pytest.approx(0.0, abs=1e-10)
    assert float(logs["selected"]) == 0.0
    names = {n for n, _ in method.trainable(task)}
    assert names and all(n.startswith("visual.") for n in names)


def test_run_changes_only_the_image_encoder(smoke_two_tasks: BenchmarkDef, reference_files: tuple[Path, Path],
                                            tmp_path: Path) -> None:
    run_dir = run_method("snd", smoke_two_tasks, tmp_path, {"ref_images": str(reference_files[0]),
                                                             "ref_texts": str(reference_files[1]),
                                                             "ref_batch_size": 5})
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert ckpt["model"] and all(n.startswith("visual.") for n in ckpt["model"])  # text encoder bit-identical
