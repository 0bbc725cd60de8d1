"""The offline world's benchmarks: registered, stable across builds, disjoint splits, label conventions."""

from __future__ import annotations

import hashlib

import pytest
import torch

from clbench.benchmark import Benchmark, Transforms
from clbench.registry import BENCHMARKS
from clbench.world.datasets import CLIP_MEAN, CLIP_STD

NAMES = ("shapes_mtil_order1", "shapes_mtil_order2", "shapes_cil_5", "shapes_cil_10")
TRANSFORMS = Transforms(train=lambda x: x, eval=lambda x: x, image_size=32, mean=CLIP_MEAN, std=CLIP_STD)


def build(name: str, **options: object) -> Benchmark:
    bdef = BENCHMARKS.get(name)
    return bdef.build(bdef.options(**{"train_per_class": 4, "test_per_class": 3, **options}), TRANSFORMS)


def _hashes(ds: object) -> set[str]:
    return {hashlib.sha1(img.numpy().tobytes()).hexdigest() for img in ds.images}  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", NAMES)
def test_registered_with_world_defaults(name: str) -> None:
    bdef = BENCHMARKS.get(name)
    assert bdef.protocol == ("cil" if "cil" in name else "mtil")
    assert bdef.defaults["model"] == {"name": "clbench-world", "pretrained": "bundled:world"}
    assert bdef.defaults["train"]["iterations"] > 0


def test_mtil_orders_tasks_splits_and_stability() -> None:
    one, two = build("shapes_mtil_order1"), build("shapes_mtil_order2")
    assert len(one.tasks) == 8 and sorted(t.name for t in one.tasks) == sorted(t.name for t in two.tasks)
    assert [t.name for t in one.tasks] != [t.name for t in two.tasks]
    assert set(one.info["novel_tasks"]) == {"letters", "digits"}
    again = build("shapes_mtil_order1")
    by_name = {t.name: i for i, t in enumerate(two.tasks)}
    for i, task in enumerate(one.tasks):
        assert len(task.templates) >= 3
        train, test = one.train_datasets[i], one.test_datasets[i]
        n = len(task.class_names)
        assert len(train) == 4 * n and len(test) == 3 * n
        assert sorted(set(train.targets.tolist())) == list(range(n))
        image, label = train[0]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and 0 <= label < n
        assert torch.equal(train.images, again.train_datasets[i].images)  # same data every build
        assert torch.equal(train.images, two.train_datasets[by_name[task.name]].images)  # order-independent
        assert not _hashes(train) & _hashes(test)


def test_data_seed_not_run_seed_decides_data() -> None:
    a = build("shapes_mtil_order1", data_seed=1)
    b = build("shapes_mtil_order1")
    assert not torch.equal(a.train_datasets[0].images, b.train_datasets[0].images)


@pytest.mark.parametrize(("name", "steps"), [("shapes_cil_5", 5), ("shapes_cil_10", 10)])
def test_cil_global_labels(name: str, steps: int) -> None:
    bench = build(name, train_per_class=2, test_per_class=1)
    assert len(bench.tasks) == steps
    names = [c for t in bench.tasks for c in t.class_names]
    assert len(names) == len(set(names)) == 50
    for i, task in enumerate(bench.tasks):
        offset = bench.class_offset(i)
        expected = set(range(offset, offset + len(task.class_names)))
        assert set(bench.train_datasets[i].targets.tolist()) == expected
        assert set(bench.test_datasets[i].targets.tolist()) == expected
        assert not _hashes(bench.train_datasets[i]) & _hashes(bench.test_datasets[i])


def test_world_services() -> None:
    bench = build("shapes_mtil_order1", reference_size=64)
    ref = bench.info["services"]["reference_data"](None)
    assert ref.num_images == 64 and len(ref.captions) == 64
    assert ref.image_batch(torch.tensor([0, 5])).shape == (2, 3, 32, 32)
    assert bench.info["synthetic_backend"] == "procedural"


def test_bad_option_is_a_user_error() -> None:
    from clbench.errors import UserError

    with pytest.raises(UserError, match="train_per_class"):
        build("shapes_cil_5", train_per_class=0)


@pytest.mark.parametrize(("name", "protocol", "shots"), [("shapes_mtil_order1_5shot", "mtil", 5),
                                                         ("shapes_xtail_order1", "xtail", 16)])
def test_few_shot_variants_draw_shots_per_class_from_order1(name: str, protocol: str, shots: int) -> None:
    bdef = BENCHMARKS.get(name)
    assert bdef.protocol == protocol and bdef.defaults["benchmark"]["shots"] == shots
    assert bdef.defaults["train"]["iterations"] == 75
    full = build("shapes_mtil_order1", train_per_class=20)
    cut = build(name, train_per_class=20, shots=3)
    assert cut.protocol == protocol and [t.name for t in cut.tasks] == [t.name for t in full.tasks]
    for i, task in enumerate(cut.tasks):
        ds = cut.train_datasets[i]
        assert sorted(ds.targets) == sorted(list(range(len(task.class_names))) * 3)
        assert torch.equal(ds[0][0], full.train_datasets[i][ds.indices[0]][0])  # images of the full split
        assert len(cut.test_datasets[i]) == len(full.test_datasets[i])
    assert [d.indices for d in build(name, train_per_class=20, shots=3).train_datasets] == \
        [d.indices for d in cut.train_datasets]


def test_few_shot_variant_without_shots_is_refused() -> None:
    from clbench.errors import UserError

    with pytest.raises(UserError, match="shots"):
        build("shapes_xtail_order1")
