"""Results folders that cannot be written: a file, a forbidden place, a too-long name, a full disk.

Before the fix each ended in a traceback (NotADirectoryError, PermissionError, OSError ENAMETOOLONG/ENOSPC).
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from clbench.store import find_runs
from tests.cli_runner import invoke
from tests.reliability.contract import assert_one_line_error, clbench, snapshot

RUN = ("run", "--methods", "zeroshot", "--benchmark", "smoke", "--quiet")


def test_out_is_a_file(tmp_path):
    out = tmp_path / "results"
    out.write_text("not a folder")
    result = clbench(*RUN, "--out", str(out))
    assert_one_line_error(result, str(out), "is a file", unchanged=[out], before={str(out): b"not a folder"})


def test_out_below_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke(capsys, *RUN, "--out", str(blocker / "results"))
    assert_one_line_error(result, str(blocker / "results"), unchanged=[blocker], before={str(blocker): b"x"})


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a place nobody may create folders in (Linux /sys)")
def test_out_where_folders_cannot_be_made(capsys):
    result = invoke(capsys, *RUN, "--out", "/sys/clbench-results")
    assert_one_line_error(result, "/sys/clbench-results", "choose a writable location")


def test_out_name_too_long(tmp_path, capsys):
    out = tmp_path / ("x" * 300)
    result = invoke(capsys, *RUN, "--out", str(out))
    assert_one_line_error(result, "File name too long")
    assert list(tmp_path.iterdir()) == []


def test_full_disk_names_the_path_and_size_and_keeps_earlier_results(tmp_path, capsys, monkeypatch):
    """ENOSPC at a checkpoint's fsync (simulated): one line with path and size, earlier runs untouched."""
    out = tmp_path / "out"
    assert invoke(capsys, *RUN, "--out", str(out)).returncode == 0
    before = {k: v for k, v in snapshot(out).items() if "/zeroshot/" in k}

    import clbench.store as store

    real_fsync = os.fsync

    def full(fd: int) -> None:
        if os.fstat(fd).st_size > 100_000:  # the checkpoint, not the small JSON files
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(store.os, "fsync", full)
    result = invoke(capsys, "run", "--methods", "finetune", "--benchmark", "smoke", "--set", "train.iterations=2",
                    "--out", str(out), "--quiet")
    line = assert_one_line_error(result, "no space left on device", "checkpoint.pt", "bytes")
    assert "needs" in line and "--resume" in line
    assert {k: v for k, v in snapshot(out).items() if "/zeroshot/" in k} == before
    assert not list(out.rglob("*.tmp"))


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


@pytest.mark.slow
def test_real_full_disk(tmp_path):
    """A real 8 MiB file system: the zero-shot run fits (its partial checkpoints hold no unchanged weights), the
    fine-tuned run then fills it at its second checkpoint (6.5 MB each)."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "8m"):
        pytest.skip("cannot mount a small tmpfs here (needs CAP_SYS_ADMIN)")
    try:
        assert clbench(*RUN, "--out", str(disk)).returncode == 0
        before = {k: v for k, v in snapshot(disk).items() if "/zeroshot/" in k}
        result = clbench("run", "--methods", "finetune", "--benchmark", "smoke", "--set", "train.iterations=2",
                         "--out", str(disk), "--quiet")
        assert_one_line_error(result, "no space left on device", "checkpoint.pt", "bytes are free")
        assert {k: v for k, v in snapshot(disk).items() if "/zeroshot/" in k} == before
        assert [r.read_run()["status"] for r in find_runs(disk) if "zeroshot" in str(r.path)] == ["complete"]
        assert not list(disk.rglob("*.tmp"))
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
