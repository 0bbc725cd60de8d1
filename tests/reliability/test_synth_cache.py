"""The synthetic-data cache under hostile or broken states: planted manifests, foreign manifests, a file as cache.

Before the fix, a manifest entry ``"file": "../../victim.txt"`` with a wrong sha256 made a GIFT run delete that
file outside the cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reliability.contract import assert_one_line_error, clbench

SYNTH = ("synth", "--benchmark", "smoke", "--backend", "procedural", "--images-per-task", "2", "--quiet")


def _gift_run(cache: Path, out: Path) -> list[str]:
    return ["run", "--methods", "gift", "--benchmark", "smoke", "--set", "gift.synth_backend=procedural",
            "--set", "gift.synth_images_per_task=2", "--set", f"gift.synth_cache={cache}",
            "--set", "train.iterations=2", "--out", str(out), "--quiet"]


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    root = tmp_path / "cache"
    made = clbench(*SYNTH, "--cache", str(root))
    assert made.returncode == 0, made.stderr
    return root


def _manifest(root: Path) -> Path:
    (path,) = root.glob("*/manifests/*.json")
    return path


def test_manifest_path_traversal_is_refused_and_the_victim_survives(cache, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    manifest_path = _manifest(cache)
    manifest = json.loads(manifest_path.read_text())
    manifest["tasks"][0]["images"][0]["file"] = "../../victim.txt"
    manifest["tasks"][0]["images"][0]["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    result = clbench(*_gift_run(cache, tmp_path / "out"))
    assert_one_line_error(result, str(manifest_path), "../../victim.txt")
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("damage", ["foreign generator", "not a manifest", "absolute file"])
def test_foreign_or_malformed_manifests_are_refused(cache, tmp_path, capsys, damage):
    from tests.cli_runner import invoke

    manifest_path = _manifest(cache)
    manifest = json.loads(manifest_path.read_text())
    if damage == "foreign generator":
        manifest["generator_key"] = "0123456789abcdef"
    elif damage == "not a manifest":
        manifest = [1, 2, 3]
    else:
        manifest["tasks"][1]["images"][0]["file"] = str(tmp_path / "victim.txt")
        (tmp_path / "victim.txt").write_text("x")
    manifest_path.write_text(json.dumps(manifest))
    result = invoke(capsys, *_gift_run(cache, tmp_path / "out"))
    assert_one_line_error(result, str(manifest_path), "not valid for this cache")
    if damage == "absolute file":
        assert (tmp_path / "victim.txt").exists()


def test_synth_leaves_an_unchanged_manifest_alone(cache, capsys):
    from tests.cli_runner import invoke

    path = _manifest(cache)
    before = path.stat()
    assert invoke(capsys, *SYNTH, "--cache", str(cache)).returncode == 0
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "the manifest was rewritten"


def test_a_file_as_cache_root_is_one_line(tmp_path, capsys):
    from tests.cli_runner import invoke

    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    result = invoke(capsys, *SYNTH, "--cache", str(blocker))
    assert_one_line_error(result, str(blocker), unchanged=[blocker], before={str(blocker): b"not a folder"})
