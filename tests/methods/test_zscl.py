"""ZSCL: cached teacher == uncached teacher, texts encoded once, weight ensemble = mean, reference data service."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clbench.errors import UserError
from clbench.methods.zscl import ZSCL, TeacherFeatureCache, ZSCLConfig
from clbench.reference_data import TensorReferenceData, load_reference_data
from clbench.weights import load_weights, snapshot
from tests.cli_runner import run_cli
from tests.methods.conftest import Tiny, make_batch, make_task

CAPTIONS = ["a red circle", "two blue squares", "a striped star on a dark background", "three small triangles"]


def zscl(tiny: Tiny, **overrides: object) -> ZSCL:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8, generator=g)
    tiny.ctx.services["reference_data"] = TensorReferenceData(images, CAPTIONS, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    method = ZSCL(ZSCLConfig(**overrides), tiny.ctx)  # type: ignore[arg-type]
    method.before_run()
    return method


def test_cached_teacher_loss_equals_uncached(tiny: Tiny) -> None:
    cached, uncached = zscl(tiny), zscl(tiny, cache_teacher=False)
    reference = cached.reference
    with torch.no_grad():  # move the student away from the teacher so the loss is not the teacher's entropy
        for p in tiny.ctx.model.visual.parameters():
            p.mul_(1.1)
    for indices in (torch.tensor([0, 3, 5]), torch.tensor([5, 0, 7, 9]), torch.tensor([3, 7])):
        images = reference.image_batch(indices)
        ours = cached.zscl_loss(indices, images)
        theirs = uncached.zscl_loss(indices, images)
        for a, b in zip(ours, theirs, strict=True):
            assert a.item() == pytest.approx(b.item(), rel=1e-6)
    assert cached.cache is not None and cached.cache.encoded == 10  # one block of 256 holds all 10 images: once


def test_teacher_features_do_not_depend_on_the_batch_that_first_asks(tiny: Tiny) -> None:
    """Fixed blocks of indices: a resumed run, whose cache starts empty and is filled by other batches,
    gets the uninterrupted run's features to the bit; each image is still encoded once."""
    method = zscl(tiny)
    encode, load = method.teacher_features, method.load_reference
    first, second = TeacherFeatureCache(encode, load, 10, block=4), TeacherFeatureCache(encode, load, 10, block=4)
    a = first.get(torch.tensor([0, 3, 5]))
    assert first.encoded == 8  # blocks {0..3} and {4..7}
    b = second.get(torch.tensor([9, 5, 3, 0]))
    assert second.encoded == 10  # and {8, 9}
    assert torch.equal(a, b[[3, 2, 1]])
    assert torch.equal(first.get(torch.tensor([1, 9])), second.get(torch.tensor([1, 9])))
    assert first.encoded == 10 and second.encoded == 10


def test_reference_texts_are_encoded_once_per_run(tiny: Tiny) -> None:
    method = zscl(tiny, ref_batch_size=4)
    assert method.ref_text is not None and method.ref_text.shape == (len(CAPTIONS), 32)
    teacher = method.teacher
    calls = []
    original = teacher.encode_text
    teacher.encode_text = lambda *a, **k: calls.append(1) or original(*a, **k)  # type: ignore[method-assign]
    task = make_task(0, ("cat", "dog"), steps=5)
    method.before_task(task)
    for step in range(5):
        logs = method.training_step(make_batch(6, 2, seed=step), task, step)
    assert calls == []
    assert {"ce", "zscl_image", "zscl_text", "l2"} <= set(logs)
    assert method.cache is not None and method.cache.encoded == 10  # 5 steps x 4 over 10 images: all seen once


def test_weight_ensemble_is_the_mean_of_start_and_snapshots(tiny: Tiny) -> None:
    method = zscl(tiny, avg_freq=3)
    model = tiny.ctx.model
    task = make_task(0, ("cat", "dog"), steps=8)
    method.before_task(task)
    snaps = [snapshot(model)]
    g = torch.Generator().manual_seed(2)
    for step in range(8):
        load_weights(model, {n: torch.randn(p.shape, generator=g) for n, p in model.named_parameters()})
        method.after_step(task, step)
        if step in (0, 3, 6):  # iteration % avg_freq == 0 (ZSCL mtil/src/models/finetune.py:310); 7 is not
            snaps.append(snapshot(model))
    method.after_task(task)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), torch.stack([s[name] for s in snaps]).mean(0), rtol=1e-5, atol=1e-6)


def test_l2_and_weight_average_can_be_switched_off(tiny: Tiny) -> None:
    method = zscl(tiny, l2_weight=0.0, weight_average=False)
    task = make_task(0, ("cat", "dog"), steps=2)
    method.before_task(task)
    assert "l2" not in method.training_step(make_batch(4, 2), task, 0)
    before = snapshot(tiny.ctx.model)
    method.after_step(task, 0)
    method.after_task(task)
    assert all(torch.equal(p, before[n]) for n, p in tiny.ctx.model.named_parameters())


def test_reference_data_from_folder_and_caption_file(reference_files: tuple[Path, Path]) -> None:
    import torchvision.transforms as T

    data = load_reference_data(str(reference_files[0]), str(reference_files[1]),
                               T.Compose([T.Resize(32), T.ToTensor()]), method="zscl")
    assert data.num_images == 12  # nested folders searched, notes.txt ignored
    assert data.captions[1] == "three blue squares on a dark background" and len(data.captions) == 4
    g = torch.Generator().manual_seed(0)
    batches = data.batches(5, g)
    epoch = [next(batches) for _ in range(3)]  # 5 + 5 + 2
    assert sorted(torch.cat([i for i, _ in epoch]).tolist()) == list(range(12))
    assert epoch[0][1].shape == (5, 3, 32, 32)
    torch.testing.assert_close(epoch[0][1][1], data.image_batch(epoch[0][0][1:2])[0])


def test_missing_reference_data_is_one_clear_line(tmp_path: Path, reference_files: tuple[Path, Path]) -> None:
    with pytest.raises(UserError, match=r"zscl\.ref_images.*zscl\.ref_texts") as err:
        load_reference_data(None, None, lambda x: x, method="zscl")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="is not a folder"):
        load_reference_data(str(tmp_path / "nope"), str(reference_files[1]), lambda x: x, method="zscl")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(UserError, match="no captions"):
        load_reference_data(str(reference_files[0]), str(tmp_path / "empty.txt"), lambda x: x, method="zscl")


def test_tensor_reference_data_normalises_uint8() -> None:
    images = torch.full((2, 3, 2, 2), 255, dtype=torch.uint8)
    data = TensorReferenceData(images, ["x"], mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.5))
    out = data.image_batch(torch.tensor([1]))
    assert torch.equal(out[0, 1], torch.full((2, 2), 2.0)) and torch.equal(out[0, 0], torch.ones(2, 2))


def test_cli_unknown_key_lists_the_valid_ones() -> None:
    out = run_cli("run", "--methods", "zscl", "--benchmark", "smoke", "--set", "zscl.nope=1")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert "zscl.nope" in out.stderr and "avg_freq" in out.stderr and "ref_images" in out.stderr
