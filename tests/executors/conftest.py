"""Executor tests need real clusters: a single-node SLURM (``.ci/slurm_setup.sh``, started by ``.ci/run``)."""

from __future__ import annotations

import shutil
import subprocess

import pytest


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """Skip (with the reason) only when there is no SLURM here; a cluster that is installed must answer."""
    if shutil.which("sbatch") is None:
        pytest.skip("sbatch is not on PATH: run .ci/slurm_setup.sh start (CI's .ci/run does) for the SLURM tests")
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    assert "UP" in ping.stdout, f"sbatch exists but slurmctld does not answer (.ci/slurm_setup.sh start): {ping.stdout}"
    pytest.importorskip("submitit", reason="the slurm extra is not installed (pip install 'clbench[slurm]')")
