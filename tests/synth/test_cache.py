"""The synthetic-image cache with a fast fake generator: batching, reuse, drops, corruption, resume, shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clbench.synth.cache import CorruptCacheError, SyntheticCache, parse_shard
from clbench.synth.prompts import Plan, Vocabulary, make_plan

BASE = Vocabulary("base", ("cat", "dog", "black hole"), "a photo of a {}.")
TASKS = [Vocabulary("one", ("red", "blue"), "a {} thing."), Vocabulary("two", ("star",), "a {} shape.")]


class FakeGenerator:
    """Noise images seeded by the image seed; prompts containing "black" come back all black (as if flagged)."""

    backend = "fake"

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail_after = fail_after

    def config(self) -> dict[str, object]:
        return {"backend": "fake", "size": 8}

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt  # a process killed mid-way
        self.calls.append(list(seeds))
        return [Image.new("RGB", (8, 8)) if "black" in p
                else Image.fromarray(np.random.default_rng(s).integers(0, 256, (8, 8, 3), dtype=np.uint8))
                for p, s in zip(prompts, seeds, strict=True)]


def plan() -> Plan:
    return make_plan(TASKS, BASE, images_per_task=7, seed=0)


def manifest_text(cache: SyntheticCache, p: Plan) -> str:
    return cache.manifest_path(p).read_text()


def test_generates_in_batches_drops_black_and_reuses(tmp_path: Path) -> None:
    cache, p, gen = SyntheticCache(FakeGenerator().config(), tmp_path), plan(), FakeGenerator()
    report = cache.generate(p, lambda: gen, batch_size=3, progress=False)
    assert [len(c) for c in gen.calls] == [3, 3, 3, 3, 2]  # 14 images in fixed chunks of the flattened plan
    black = sum("black" in e.prompt for e in p.flat())
    assert black > 0 and report.dropped == black and report.generated == 14 - black
    cache.write_manifest(p)
    manifest = json.loads(manifest_text(cache, p))
    assert manifest["num_dropped"] == black and manifest["num_images"] == 14 - black
    assert manifest["generator"] == {"backend": "fake", "size": 8}
    first = manifest["tasks"][0]["images"][0]
    assert set(first) == {"j", "prompt", "class", "source", "seed", "file", "sha256"}
    assert all("black" in d["prompt"] for t in manifest["tasks"] for d in t["dropped"])
    again = FakeGenerator()
    report = cache.generate(p, lambda: again, batch_size=3, progress=False)
    assert again.calls == [] and report.reused == 14 - black and report.dropped == black


def test_same_seed_same_bytes_and_config_addressing(tmp_path: Path) -> None:
    a, b = SyntheticCache({"backend": "fake", "size": 8}, tmp_path / "a"), SyntheticCache({"backend": "fake", "size": 8}, tmp_path / "b")
    for cache in (a, b):
        cache.generate(plan(), FakeGenerator, batch_size=4, progress=False)
        cache.write_manifest(plan())
    assert manifest_text(a, plan()) == manifest_text(b, plan())
    other = SyntheticCache({"backend": "fake", "size": 16}, tmp_path / "a")
    assert other.dir != a.dir and other.dir.parent == a.dir.parent


def test_resume_after_interruption_gives_the_same_manifest(tmp_path: Path) -> None:
    whole = SyntheticCache(FakeGenerator().config(), tmp_path / "whole")
    whole.generate(plan(), FakeGenerator, batch_size=3, progress=False)
    whole.write_manifest(plan())
    cache = SyntheticCache(FakeGenerator().config(), tmp_path / "cut")
    with pytest.raises(KeyboardInterrupt):
        cache.generate(plan(), lambda: FakeGenerator(fail_after=2), batch_size=3, progress=False)
    with pytest.raises(RuntimeError):
        cache.write_manifest(plan())  # incomplete
    resumed = FakeGenerator()
    cache.generate(plan(), lambda: resumed, batch_size=3, progress=False)
    assert len(resumed.calls) == 3  # only the chunks the interrupted run had not finished
    cache.write_manifest(plan())
    assert manifest_text(cache, plan()) == manifest_text(whole, plan())


def test_corrupt_and_truncated_files_are_regenerated(tmp_path: Path) -> None:
    cache, p = SyntheticCache(FakeGenerator().config(), tmp_path), plan()
    cache.generate(p, FakeGenerator, batch_size=3, progress=False)
    cache.write_manifest(p)
    before = manifest_text(cache, p)
    kept = [e for e in p.flat() if cache.image_path(e).exists()]
    truncated, garbled = cache.image_path(kept[0]), cache.image_path(kept[1])
    truncated.write_bytes(truncated.read_bytes()[:40])
    data = bytearray(garbled.read_bytes())
    data[60] ^= 0xFF  # inside the pixel data: the PNG chunk CRC no longer matches
    garbled.write_bytes(bytes(data))
    report = cache.generate(p, FakeGenerator, batch_size=3, progress=False)
    assert report.corrupt == 2 and report.generated == 2
    cache.write_manifest(p)
    assert manifest_text(cache, p) == before


def test_reading_checks_the_manifest_hashes(tmp_path: Path) -> None:
    cache, p = SyntheticCache(FakeGenerator().config(), tmp_path), plan()
    cache.generate(p, FakeGenerator, batch_size=3, progress=False)
    cache.write_manifest(p)
    manifest = cache.read_manifest(p)
    assert manifest is not None
    records = [r for r, _ in cache.task_images(manifest, 0)]
    assert len(records) == manifest["tasks"][0]["num_images"]
    victim = cache.dir / records[0]["file"]
    Image.new("RGB", (8, 8), (1, 2, 3)).save(victim)  # a valid PNG, but not the one generated
    with pytest.raises(CorruptCacheError):
        list(cache.task_images(manifest, 0))
    assert not victim.exists()


def test_shards_split_the_work_without_overlap(tmp_path: Path) -> None:
    cache, p = SyntheticCache(FakeGenerator().config(), tmp_path), plan()
    gens = [FakeGenerator(), FakeGenerator()]
    first = cache.generate(p, lambda: gens[0], batch_size=2, shard=(0, 2), progress=False)
    assert first.elsewhere > 0 and cache.missing(p, validate=False)
    cache.generate(p, lambda: gens[1], batch_size=2, shard=(1, 2), progress=False)
    seeds = [set(s for call in g.calls for s in call) for g in gens]
    assert not seeds[0] & seeds[1] and seeds[0] | seeds[1] == {e.seed for e in p.flat()}
    assert not cache.missing(p)


def test_parse_shard() -> None:
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "a/b", "3"):
        with pytest.raises(ValueError):
            parse_shard(bad)
