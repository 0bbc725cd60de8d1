"""Every training method resumes from a mid-task checkpoint to the uninterrupted run's matrix and log.

The run is interrupted inside a task (an exception out of ``training_step``: the process state after it is
lost, as after a kill), two steps after its last mid-task checkpoint; ``resume=True`` must start at the
checkpoint's next step (not at the task boundary) and end with byte-identical ``matrix.csv`` and
``log.jsonl``. A method whose ``step_state_dict`` misses what its steps change (ZSCL's running average, the
reference/synthetic batches drawn, GIFT's static importance, iCaRL's exemplar cursor, MoE-Adapters' expert
counts: interrupted in task 1, where they decide which experts task 2 freezes) fails here. Task 1 cuts
also cover the resume without any task checkpoint (only the initial state and the mid-task one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clbench.benchmark import BenchmarkDef
from clbench.engine import Engine
from clbench.registry import METHODS
from clbench.runner import resolve

STEPS = 7  # iterations 6 + the final step; checkpoints after steps 1, 3 and 5
CUT_STEP = 5  # the step whose training_step is interrupted: the last checkpoint is after step 3

CASES: dict[str, dict[str, Any]] = {
    "finetune": {},
    "lwf": {},
    "lwf_vr": {"num_sentences": 20},
    "icarl": {"memory_size": 30, "replay_batch_size": 5, "replay_weight": 1.0},
    "wise_ft": {},
    "magmax": {},
    "l2": {},
    "ewc": {"fisher_batches": 2},
    "zscl": {"avg_freq": 2, "ref_batch_size": 5},
    "snd": {"ref_batch_size": 5},
    "gift": {"synth_backend": "procedural", "synth_images_per_task": 12, "static_awc": 3},
    "moe_adapters": {"experts": 4, "ae_iterations": 20},
    "diki": {"tasks": 4},
    "finetune@first_task": {},
}
CUT_TASK = {"moe_adapters": 0, "finetune@first_task": 0}  # default: the second task (index 1)
NEEDS_REFERENCE = ("zscl", "snd")


class Interrupted(Exception):
    pass


def engine(method: str, bench: BenchmarkDef, out: Path, overrides: dict[str, Any], cls: type | None = None,
           said: list[str] | None = None) -> Engine:
    layers = [bench.defaults, {"train": {"iterations": STEPS - 1, "warmup": 2, "eval_initial": False, "log_every": 1,
                                         "checkpoint_every": 2, "checkpoint_every_s": None}, method: overrides}]
    cfg = resolve("smoke", method, 0, layers)
    return Engine(cfg, bench, cls or METHODS.get(method), out, device="cpu", quiet=True,
                  progress=said.append if said is not None else None)


@pytest.mark.parametrize("case", sorted(CASES))
def test_resume_from_a_midtask_checkpoint_gives_the_uninterrupted_run(
        case: str, smoke_two_tasks: BenchmarkDef, reference_files: tuple[Path, Path], tmp_path: Path) -> None:
    method, cut_task = case.split("@")[0], CUT_TASK.get(case, 1)
    overrides = dict(CASES[case])
    if method in NEEDS_REFERENCE:
        overrides.update(ref_images=str(reference_files[0]), ref_texts=str(reference_files[1]))
    if method == "gift":
        overrides["synth_cache"] = str(tmp_path / "synth")
    whole = engine(method, smoke_two_tasks, tmp_path / "whole", overrides).run()

    base = METHODS.get(method)
    steps_run: list[tuple[int, int]] = []

    class Cut(base):  # type: ignore[misc, valid-type]
        def training_step(self, batch: Any, task: Any, step: int) -> Any:
            if (task.index, step) == (cut_task, CUT_STEP):
                raise Interrupted
            return super().training_step(batch, task, step)

    class Watch(base):  # type: ignore[misc, valid-type]
        def training_step(self, batch: Any, task: Any, step: int) -> Any:
            steps_run.append((task.index, step))
            return super().training_step(batch, task, step)

    out = tmp_path / "cut"
    with pytest.raises(Interrupted):
        engine(method, smoke_two_tasks, out, overrides, Cut).run()
    said: list[str] = []
    resumed = engine(method, smoke_two_tasks, out, overrides, Watch, said).run(resume=True)

    assert steps_run[:STEPS - 4] == [(cut_task, s) for s in range(4, STEPS)], "resumed at the task boundary"
    assert len(steps_run) == (2 - cut_task) * STEPS - 4
    assert any(f"resuming task {cut_task + 1}/2 at step 4/7" in line for line in said), said
    assert resumed.run_dir.path.name == whole.run_dir.path.name  # checkpoint_every is not in the run's identity
    for name in ("matrix.csv", "log.jsonl"):
        assert (resumed.run_dir.path / name).read_bytes() == (whole.run_dir.path / name).read_bytes(), name
    assert not resumed.run_dir.step_checkpoint_path.exists()  # superseded by the task's checkpoint
