"""Session fixtures: the tiny diffusers pipeline on disk, and one uninterrupted ``clbench synth`` run with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.synth.tiny_pipeline import SYNTH_FLAGS, save_tiny_pipeline


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> Iterator[None]:
    """Diffusion outputs depend on the thread count at the last bit: pin it (subprocesses get OMP_NUM_THREADS=1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("pipeline") / "tiny-sd")


@pytest.fixture(scope="session")
def reference_cache(tiny_pipeline_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cache root after an uninterrupted in-process ``clbench synth`` of the smoke benchmark."""
    from clbench.cli import main

    root = tmp_path_factory.mktemp("synth-reference")
    assert main(["synth", *SYNTH_FLAGS, "--generator", str(tiny_pipeline_dir), "--cache", str(root)]) == 0
    return root
