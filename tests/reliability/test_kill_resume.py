"""Kills timed to each file write of the final task, then ``--resume``: the results match an uninterrupted run.

Before the fix, a kill after the last checkpoint but before ``run.json``/``matrix.csv``/``metrics.json`` were
rewritten left them at "running 2/3" for ever: resume saw a complete checkpoint, trained nothing and wrote nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clbench.store import find_runs
from tests.reliability.contract import clbench, fault_injected

ARGS = ("run", "--methods", "finetune", "--benchmark", "smoke", "--seeds", "0", "--set", "train.iterations=4",
        "--quiet")
FINAL_TASK_WRITES = ["checkpoint.pt", "matrix.json", "matrix.csv", "metrics.json", "run.json"]
VOLATILE = ("created", "updated", "wall_time_s")  # differ between any two runs


def _results(out: Path) -> dict[str, object]:
    (run,) = find_runs(out)
    info = {k: v for k, v in run.read_run().items() if k not in VOLATILE}
    # the cost block's seconds, rates and peaks are timings; its image counts must survive the kill
    info["cost"] = {phase: spent["images"] for phase, spent in info["cost"]["phases"].items()}
    files = {name: (run.path / name).read_bytes() for name in ("matrix.csv", "matrix.json", "metrics.json",
                                                                "log.jsonl", "config.yaml")}
    return {"run": info, **files}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], list[str]]:
    """An uninterrupted run and the file names it wrote, in order."""
    tmp = tmp_path_factory.mktemp("reference")
    writes = tmp / "writes.txt"
    done = fault_injected(*ARGS, "--out", str(tmp / "out"), kill_at=0, writes_log=writes)
    assert done.returncode == 0, done.stderr
    return _results(tmp / "out"), writes.read_text().split()


def test_final_task_writes_checkpoint_first_then_results_then_run_json(reference):
    _, names = reference
    last_checkpoint = len(names) - 1 - names[::-1].index("checkpoint.pt")
    assert names[last_checkpoint:] == FINAL_TASK_WRITES


@pytest.mark.slow
@pytest.mark.parametrize("write", FINAL_TASK_WRITES)
def test_kill_at_each_final_task_write_then_resume_completes_identically(reference, tmp_path, write):
    expected, names = reference
    kill_at = len(names) - len(FINAL_TASK_WRITES) + FINAL_TASK_WRITES.index(write) + 1
    out = tmp_path / "out"
    killed = fault_injected(*ARGS, "--out", str(out), kill_at=kill_at, writes_log=tmp_path / "writes.txt")
    assert killed.returncode == -9, killed.stderr
    (run,) = find_runs(out)
    assert run.read_run()["status"] == "running"
    assert list(run.path.glob(".*.tmp")), "the kill left a half-written temporary"

    resumed = clbench(*ARGS, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _results(out) == expected
    assert json.loads((run.path / "metrics.json").read_text())["complete"] is True
    assert not list(run.path.glob("*.tmp")) and not list(run.path.glob(".*.tmp")), "stale temporaries remain"


def _reference_corpus(root: Path) -> tuple[Path, Path]:
    """Six small PNGs and a caption file: ZSCL's reference data on the smoke benchmark."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
    (root / "captions.txt").write_text("a red circle\na blue square\na small star\n")
    return root / "images", root / "captions.txt"


MIDTASK = {  # method -> its settings: a mid-task checkpoint every 3 steps
    "finetune": ("--set", "train.checkpoint_every=3"),
    "zscl": ("--set", "train.checkpoint_every=3", "--set", "zscl.ref_batch_size=4", "--set", "zscl.avg_freq=2"),
}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(MIDTASK))
def test_sigkill_after_a_midtask_checkpoint_resumes_at_the_next_step(method: str, tmp_path: Path, capsys,
                                                                      monkeypatch) -> None:
    """SIGKILL while task 2 writes its second mid-task checkpoint (a half-written temporary left behind), then
    ``--resume``: it continues after the first one (not at the task boundary), to byte-identical results.
    (Every training method's step state: ``tests/methods/test_midtask_resume.py``.)"""
    import clbench.store as store
    from tests.cli_runner import invoke

    args = ["run", "--methods", method, "--benchmark", "smoke", "--seeds", "0", "--set", "train.iterations=8",
            "--set", "train.log_every=1", *MIDTASK[method]]
    if method == "zscl":
        images, captions = _reference_corpus(tmp_path / "reference")
        args += ["--set", f"zscl.ref_images={images}", "--set", f"zscl.ref_texts={captions}"]
    names: list[str] = []  # the uninterrupted run in this process, its writes in order

    def logged(path: Path, data: bytes | str, write: object = store.write_atomic) -> None:
        names.append(Path(path).name)
        write(path, data)  # type: ignore[operator]

    monkeypatch.setattr(store, "write_atomic", logged)
    whole = invoke(capsys, *args, "--out", str(tmp_path / "whole"), "--quiet")
    monkeypatch.undo()
    assert whole.returncode == 0, whole.stderr
    after_task_1 = names.index("checkpoint.pt")
    second_step_write = [i for i, n in enumerate(names) if n == "checkpoint-step.pt" and i > after_task_1][1]

    out = tmp_path / "killed"
    killed = fault_injected(*args, "--out", str(out), "--quiet", kill_at=second_step_write + 1,
                            writes_log=tmp_path / "k.txt")
    assert killed.returncode == -9, killed.stderr
    assert (tmp_path / "k.txt").read_text().split() == names[:second_step_write + 1]
    (run,) = find_runs(out)
    assert run.read_run()["completed_tasks"] == 1 and run.step_checkpoint_path.exists()
    resumed = clbench(*args, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming task 2/3 at step 3/9" in resumed.stderr, resumed.stderr  # the first was after step 2
    (expected,) = find_runs(tmp_path / "whole")
    for name in ("matrix.csv", "log.jsonl"):
        assert (run.path / name).read_bytes() == (expected.path / name).read_bytes(), name
    assert run.read_run()["status"] == "complete" and not run.step_checkpoint_path.exists()
    assert not list(run.path.glob(".*.tmp")), "stale temporaries remain"
