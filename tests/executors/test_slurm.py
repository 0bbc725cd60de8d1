"""The slurm executor on a real single-node SLURM cluster: one job array, a pre-empted task is requeued and
resumes, the matrices equal the local executor's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_runner import REPO, run_cli

SUITE = """
methods: [zeroshot, finetune]
benchmarks: [smoke]
seeds: [0]
config: {train: {iterations: 6, warmup: 1}}
executor: {slurm: {cpus_per_task: 1, mem_gb: 2, timeout_min: 10}}
"""


def matrices(root: Path) -> dict[str, list]:
    return {str(p.parent.relative_to(root)): json.loads(p.read_text())["rows"]
            for p in sorted(root.rglob("matrix.json")) if ".submitit" not in p.parts}


@pytest.mark.slow
def test_slurm_array_preempted_task_requeues_and_all_match_local(tmp_path, slurm_cluster):
    """One job array for the smoke suite; the finetune task gets submitit's pre-emption signal in its second
    task, after a mid-task checkpoint, is requeued and resumes in the middle of that task (not at its start);
    both matrices equal the local executor's (``checkpoint_every`` is not part of a run's identity)."""
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE.replace("iterations: 6", "iterations: 40, checkpoint_every: 2"))
    out = tmp_path / "slurm"
    proc = subprocess.Popen([sys.executable, "-m", "clbench.cli", "sweep", str(suite), "--executor", "slurm",
                             "--out", str(out), "--quiet"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline, info = time.time() + 300, None
        run_json = out / "smoke" / "finetune"
        while time.time() < deadline and proc.poll() is None:
            found = list(run_json.glob("*/run.json"))
            if found:
                info = json.loads(found[0].read_text())
                step = found[0].parent / "checkpoint-step.pt"  # one written after run.json: this task's, not
                try:                                           # the previous task's (removed just after run.json)
                    fresh = step.stat().st_mtime_ns > found[0].stat().st_mtime_ns
                except FileNotFoundError:
                    fresh = False
                if info.get("completed_tasks", 0) >= 1 and fresh:
                    break
            time.sleep(0.05)
        assert info is not None and info["status"] == "running", (info, proc.poll())
        cut_at = info["completed_tasks"]
        scripts = list((out / ".submitit").rglob("*_submission.sh"))
        assert len(scripts) == 1 and "#SBATCH --array=0-1" in scripts[0].read_text()  # one job array
        job_id = f"{scripts[0].parent.name}_1"  # array task 1 = the suite's second cell, finetune
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=30)  # submitit's pre-emption signal
        # SLURM holds a requeued job for 120 s (reason BeginTime), on any cluster; here it may start at once.
        while time.time() < deadline and proc.poll() is None:
            state = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T %r"], capture_output=True, text=True,
                                   timeout=30).stdout.split()
            if state[:2] == ["PENDING", "BeginTime"]:
                subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now"], check=True, timeout=30)
                break
            time.sleep(0.2)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert (out / "report" / "leaderboard.md").is_file()
    logs = "".join(p.read_text() for p in (out / ".submitit" / job_id).glob("*_log.*"))
    assert "Calling checkpoint method" in logs and "Requeued job" in logs, logs
    # the signal lands in task cut_at + 1 (1-based), after its first mid-task checkpoint
    resumed = [ln for ln in logs.splitlines() if "resuming task" in ln]
    assert resumed and f"resuming task {cut_at + 1}/3 at step" in resumed[0], logs
    assert not resumed[0].split(" at step ")[1].startswith("0/"), resumed

    ref = run_cli("sweep", str(suite), "--out", str(tmp_path / "local"), "--quiet", "--no-report")
    assert ref.returncode == 0, ref.stderr
    got = matrices(out)
    assert got == matrices(tmp_path / "local") and len(got) == 2


def task_process(out: Path, array_task: int) -> int:
    """The pid of the Python process that runs array task ``array_task`` of the sweep writing to ``out``."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        if (b"submitit.core._submit" in cmdline and str(out).encode() in cmdline
                and f"SLURM_ARRAY_TASK_ID={array_task}".encode() in environ):
            return int(proc.name)
    raise AssertionError(f"no process runs array task {array_task} of {out}")


@pytest.mark.slow
def test_a_killed_job_fails_its_cell_only_and_resume_finishes_it(tmp_path, slurm_cluster):
    """One array task killed mid-run (SIGKILL, as an out-of-memory kill): the sweep lists that cell as
    failed in one line naming the SLURM job, writes its failed.json, finishes the other cell and exits 1;
    ``--resume`` then completes the cell, with the local executor's matrix."""
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE.replace("iterations: 6", "iterations: 120"))
    out = tmp_path / "slurm"
    proc = subprocess.Popen([sys.executable, "-m", "clbench.cli", "sweep", str(suite), "--executor", "slurm",
                             "--out", str(out), "--quiet", "--no-report"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)

    def in_second_task() -> bool:
        try:
            info = json.loads(next(out.glob("smoke/finetune/*/run.json")).read_text())
        except (StopIteration, ValueError):  # not written yet, or being replaced
            return False
        return info["status"] == "running" and info.get("completed_tasks", 0) >= 1

    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and not in_second_task():
            time.sleep(0.05)
        assert in_second_task(), proc.poll()
        (script,) = (out / ".submitit").rglob("*_submission.sh")
        job_id = f"{script.parent.name}_1"  # array task 1 = finetune
        # SIGKILL to the task's Python process, as the out-of-memory killer sends. (scancel is not that: submitit
        # ignores its SIGTERM, and this test cluster's proctrack/linuxproc lets the step finish the run.)
        os.kill(task_process(out, array_task=1), signal.SIGKILL)
        _, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr
    (line,) = [ln for ln in stderr.splitlines() if ln.startswith("FAILED")]
    assert line.startswith(f"FAILED smoke/finetune/seed0: SLURM job {job_id} failed: UncompletedJobError: "), line
    (run_dir,) = out.glob("smoke/finetune/*")
    assert json.loads((run_dir / "failed.json").read_text())["error"] in line
    assert list(out.glob("smoke/zeroshot/*/matrix.json"))  # the other cell finished

    again = run_cli("sweep", str(suite), "--executor", "slurm", "--out", str(out), "--resume", "--quiet",
                    "--no-report")
    assert again.returncode == 0, again.stderr
    ref = run_cli("sweep", str(suite), "--out", str(tmp_path / "local"), "--quiet", "--no-report")
    assert ref.returncode == 0, ref.stderr
    assert matrices(out) == matrices(tmp_path / "local") and len(matrices(out)) == 2


def test_no_sbatch_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE)
    monkeypatch.setenv("PATH", "/nonexistent")
    out = subprocess.run([sys.executable, "-m", "clbench.cli", "sweep", str(suite), "--executor", "slurm", "--out",
                          str(tmp_path / "r")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "needs sbatch on PATH" in out.stderr
    assert not (tmp_path / "r").exists()


SYNTH_SUITE = """
methods: [gift]
benchmarks: [smoke]
seeds: [0]
config:
  train: {iterations: 4, warmup: 1}
  methods: {gift: {synth_backend: procedural, synth_images_per_task: 16, synth_generation_batch: 8}}
executor: {slurm: {cpus_per_task: 1, mem_gb: 2, timeout_min: 10}}
"""


@pytest.mark.slow
def test_slurm_synth_array_runs_before_the_cells_that_need_it(tmp_path, slurm_cluster):
    """GIFT's synthetic data as a job array of 2 shards; the cells' array waits for it (afterany dependency),
    the run finds every image made, and its matrix equals a local sweep's that generated in the run."""
    import os

    suite = tmp_path / "s.yaml"
    suite.write_text(SYNTH_SUITE)
    env = {**os.environ, "CLBENCH_SYNTH_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "slurm"
    res = subprocess.run([sys.executable, "-m", "clbench.cli", "sweep", str(suite), "--executor", "slurm",
                          "--synth-shards", "2", "--out", str(out), "--quiet", "--no-report"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    scripts = {p.parent.name: p.read_text() for p in (out / ".submitit").rglob("*_submission.sh")}
    synth = [j for j, text in scripts.items() if "#SBATCH --array=0-1" in text]
    cells = [j for j, text in scripts.items() if "--dependency=afterany:" in text]
    assert len(synth) == 1 and len(cells) == 1, scripts
    synth_id = synth[0].split("_")[0]
    assert f"#SBATCH --dependency=afterany:{synth_id}" in scripts[cells[0]]

    def times(job: str, count: int) -> list[tuple[float, float]]:
        """Start and end of each of the job's `count` tasks, from accounting. The sweep returns as soon as
        submitit finds the results, which can be before slurmdbd has recorded the end: wait for it."""
        from datetime import datetime

        deadline = time.monotonic() + 60
        while True:
            rows = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job, "-o", "Start,End"], capture_output=True,
                                  text=True, check=True, timeout=30).stdout.split()
            if (len(rows) == count and "Unknown" not in "|".join(rows)) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert len(rows) == count and "Unknown" not in "|".join(rows), rows
        return [tuple(datetime.fromisoformat(t).timestamp() for t in row.split("|")) for row in rows]

    synth_end = max(end for _, end in times(synth_id, 2))
    cell_start = min(start for start, _ in times(cells[0].split("_")[0], 1))
    assert cell_start >= synth_end
    (run,) = [p for p in out.rglob("run.json") if ".submitit" not in p.parts]
    assert json.loads(run.read_text())["cost"]["phases"]["generation"]["images"] == 0  # all made by the shards

    env["CLBENCH_SYNTH_CACHE"] = str(tmp_path / "cache0")
    ref = subprocess.run([sys.executable, "-m", "clbench.cli", "sweep", str(suite), "--synth-shards", "0", "--out",
                          str(tmp_path / "local"), "--quiet", "--no-report"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    assert matrices(out) == matrices(tmp_path / "local") and len(matrices(out)) == 1
