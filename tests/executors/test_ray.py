"""The ray executor on a real local Ray cluster, inside a network namespace with only loopback (no traffic
leaves 127.0.0.1): a worker SIGKILLed mid-run is retried, resumes from the store, and every matrix equals the
local executor's."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import REPO, invoke

HELPER = Path(__file__).with_name("ray_netns.py")
SUITE = """
methods: [zeroshot, finetune]
benchmarks: [smoke]
seeds: [0]
config: {train: {iterations: 60, warmup: 1}}
"""


@pytest.fixture(scope="module")
def netns() -> None:
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'clbench[ray]')")
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare/ip (util-linux, iproute2) are needed to keep the test cluster on loopback")
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here (unshare -n: {probe.stderr.strip()})")


def matrices(root: Path) -> dict[str, list]:
    return {str(p.parent.relative_to(root)): json.loads(p.read_text())["rows"] for p in sorted(root.rglob("matrix.json"))}


@pytest.mark.slow
def test_ray_sweep_survives_a_killed_worker_and_matches_local(tmp_path, netns, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    res = subprocess.run(["unshare", "-n", sys.executable, str(HELPER), "kill-worker", str(suite),
                          str(tmp_path / "ray")], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "killed worker None" not in res.stdout, res.stdout
    assert "will be retried" in res.stdout  # Ray's own report of the retry
    assert "resuming" in res.stdout and "after task" in res.stdout, res.stdout  # the retry resumed from the store
    local = invoke(capsys, "sweep", str(suite), "--out", str(tmp_path / "local"), "--quiet", "--no-report")
    assert local.returncode == 0, local.stderr
    got = matrices(tmp_path / "ray")
    assert got == matrices(tmp_path / "local") and len(got) == 2


def test_unreachable_ray_address_is_one_line(capsys, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'clbench[ray]')")
    out = invoke(capsys, "sweep", "smoke", "--executor", "ray", "--ray.address", "127.0.0.1:9",
                 "--out", str(tmp_path / "r"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "cannot reach the Ray cluster at 127.0.0.1:9" in out.stderr
    assert not (tmp_path / "r").exists()


SYNTH_SUITE = """
methods: [gift]
benchmarks: [smoke]
seeds: [0, 1]
config:
  train: {iterations: 4, warmup: 1}
  methods: {gift: {synth_backend: procedural, synth_images_per_task: 16, synth_generation_batch: 8}}
"""


@pytest.mark.slow
def test_ray_synth_shards_end_before_the_runs_that_need_them(tmp_path, netns, capsys, monkeypatch):
    """Two generation tasks, then the two GIFT runs, which find every image made (they generate none); the
    matrices equal a local sweep's whose runs generated themselves."""
    import os

    suite = tmp_path / "s.yaml"
    suite.write_text(SYNTH_SUITE)
    env = {**os.environ, "CLBENCH_SYNTH_CACHE": str(tmp_path / "cache")}
    res = subprocess.run(["unshare", "-n", sys.executable, str(HELPER), "exec", "--", sys.executable, "-m",
                          "clbench.cli", "sweep", str(suite), "--executor", "ray", "--synth-shards", "2", "--out",
                          str(tmp_path / "ray"), "--no-report"], capture_output=True, text=True, cwd=REPO, env=env,
                         timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "after 2 synthetic-data shard job(s)" in res.stderr, res.stderr
    runs = sorted((tmp_path / "ray").rglob("run.json"))
    assert len(runs) == 2
    assert all(json.loads(p.read_text())["cost"]["phases"]["generation"]["images"] == 0 for p in runs)
    monkeypatch.setenv("CLBENCH_SYNTH_CACHE", str(tmp_path / "cache0"))
    local = invoke(capsys, "sweep", str(suite), "--out", str(tmp_path / "local"), "--synth-shards", "0", "--quiet",
                   "--no-report")
    assert local.returncode == 0, local.stderr
    assert matrices(tmp_path / "ray") == matrices(tmp_path / "local")
