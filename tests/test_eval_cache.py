"""The decoded-set cache: same logits as decoding every time, one decode per run, memory then memory-mapped files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from clbench.classifier import HeadSpec, TextHeadClassifier
from clbench.data import make_loader
from clbench.datasets.labeled import ImageFiles
from clbench.eval_cache import CachePolicy, DecodedLoader, MemoryBudget
from clbench.evaluation import score_task
from clbench.models import load_model
from clbench.text_heads import TextHeadCache
from tests.test_engine import make_engine

CPU = torch.device("cpu")


class Counting(Dataset):
    """Counts item reads (each read = one JPEG decode + resize)."""

    def __init__(self, base: Dataset) -> None:
        self.base = base
        self.reads = 0
        self.targets = base.targets

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        self.reads += 1
        return self.base[index]


@pytest.fixture(scope="module")
def tiny():
    return load_model("clbench-tiny", None)


@pytest.fixture(scope="module")
def jpeg_set(tmp_path_factory, tiny) -> ImageFiles:
    """Real JPEGs of assorted sizes, decoded and bicubic-resized by open_clip's eval transform."""
    root = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for i in range(23):
        h, w = int(rng.integers(20, 70)), int(rng.integers(20, 70))
        path = root / f"{i}.jpg"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
        labels.append(i % 3)
    return ImageFiles(paths, labels, tiny.transforms.eval)


def _decoded(ds: Dataset, tiny, memory: int, cache_dir: Path | None, batch: int = 5) -> DecodedLoader:
    loader = make_loader(ds, batch, CPU)
    return DecodedLoader(loader, CPU, tiny.transforms.mean, tiny.transforms.std, CachePolicy(memory, cache_dir),
                         MemoryBudget(memory), lambda: "jpegs-key")


def _scores(tiny, loader) -> tuple[torch.Tensor, torch.Tensor]:
    clf = TextHeadClassifier(tiny.model, TextHeadCache(tiny.tokenizer, CPU))
    head = HeadSpec.single("t", ("red", "green", "blue"), ("a photo of {}.", "a {}."))
    from contextlib import nullcontext

    return score_task(clf, head, loader, CPU, nullcontext)


def test_cached_logits_equal_uncached_bit_for_bit_in_memory(jpeg_set, tiny):
    want_logits, want_labels = _scores(tiny, make_loader(jpeg_set, 5, CPU))
    counted = Counting(jpeg_set)
    cached = _decoded(counted, tiny, memory=1 << 30, cache_dir=None)
    for _ in range(3):  # recording pass, then two passes from memory
        logits, labels = _scores(tiny, cached)
        assert torch.equal(logits, want_logits) and torch.equal(labels, want_labels)
    assert counted.reads == len(jpeg_set)  # decoded once
    assert cached.where == "memory" and cached.images.dtype == torch.uint8  # type: ignore[union-attr]


def test_over_budget_sets_go_to_a_memory_mapped_file_reused_by_the_next_run(jpeg_set, tiny, tmp_path):
    want_logits, _ = _scores(tiny, make_loader(jpeg_set, 5, CPU))
    first = _decoded(jpeg_set, tiny, memory=0, cache_dir=tmp_path)
    assert torch.equal(_scores(tiny, first)[0], want_logits)
    assert first.where == "file" and sorted(p.name for p in tmp_path.iterdir()) == [
        "jpegs-key.images.npy", "jpegs-key.json", "jpegs-key.labels.npy"]
    assert torch.equal(_scores(tiny, first)[0], want_logits)
    counted = Counting(jpeg_set)
    second = _decoded(counted, tiny, memory=0, cache_dir=tmp_path)  # a later run with the same key
    assert torch.equal(_scores(tiny, second)[0], want_logits) and counted.reads == 0


def test_interrupted_recording_leaves_no_cache_entry(jpeg_set, tiny, tmp_path):
    cached = _decoded(jpeg_set, tiny, memory=0, cache_dir=tmp_path)
    it = iter(cached)
    next(it)
    it.close()  # the consumer stopped (an exception in scoring) after one batch
    assert list(tmp_path.iterdir()) == [] and not cached.cached
    assert torch.equal(_scores(tiny, cached)[0], _scores(tiny, make_loader(jpeg_set, 5, CPU))[0])
    assert cached.where == "file"


class Mixed(Dataset):
    """k/255 images for the first 6 items, arbitrary floats after: not representable as uint8."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.u8 = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8, generator=g)
        self.noise = torch.randn(10, 3, 8, 8, generator=g)
        self.targets = list(range(10))

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int):
        if i < 6:
            return (self.u8[i].float() / 255 - 0.5) / 0.25, i
        return self.noise[i], i


def test_sets_that_are_not_uint8_images_are_kept_exactly_as_float(tmp_path):
    ds = Mixed()
    want = torch.cat([x for x, _ in make_loader(ds, 4, CPU)])
    cached = DecodedLoader(make_loader(ds, 4, CPU), CPU, (0.5,) * 3, (0.25,) * 3, CachePolicy(1 << 20, tmp_path),
                           MemoryBudget(1 << 20), lambda: "mixed")
    for _ in range(2):
        assert torch.equal(torch.cat([x for x, _ in cached]), want)
    assert cached.where == "memory" and cached.images.dtype == torch.float32  # type: ignore[union-attr]


def test_engine_matrix_identical_with_and_without_cache_and_same_run_folder(tmp_path):
    on = make_engine(tmp_path / "on", overrides=("train.iterations=3",))
    off = make_engine(tmp_path / "off", overrides=("train.iterations=3", "train.eval_cache=false"))
    assert on.run_dir.path.name == off.run_dir.path.name  # results-neutral: same run id
    a, b = on.run().record, off.run().record
    assert np.array_equal(a.array(), b.array()) and a.initial == b.initial


def test_bad_cache_budget_is_one_line_error(tmp_path):
    from clbench.errors import UserError

    with pytest.raises(UserError, match="eval_cache_memory_gb"):
        make_engine(tmp_path, overrides=("train.eval_cache_memory_gb=-1",))


def test_random_test_transform_is_never_cached(tmp_path, tiny):
    """benchmark.eval_transform=train (a random crop at test time) draws anew at every evaluation: no cache."""
    from types import SimpleNamespace

    from clbench.eval_cache import DecodedLoader as Cached

    engine = make_engine(tmp_path)
    stream = [SimpleNamespace(dataset=Counting(Mixed()))]
    for random_eval, cached in ((False, True), (True, False)):
        bench = SimpleNamespace(protocol="cil", random_eval=random_eval)
        loaders = engine._eval_loaders(bench, stream, tiny)  # type: ignore[arg-type]
        assert isinstance(loaders[0], Cached) is cached
