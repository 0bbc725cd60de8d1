"""Kill-and-resume check shared by the method tests: interrupt a run as its third task starts, resume it, and
compare the matrix with an uninterrupted run's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from clbench.engine import Engine


def assert_resume_after_two_tasks_is_identical(monkeypatch: pytest.MonkeyPatch, method_cls: type,
                                               make_engine: Callable[[Path], Engine], out: Path,
                                               reference: np.ndarray) -> None:
    """``before_task`` of the third task raises KeyboardInterrupt (as Ctrl-C would); ``--resume`` then starts
    after task 2 and must end with ``reference``, the uninterrupted run's matrix."""
    original = method_cls.before_task
    calls = {"n": 0}

    def cut(self: object, task: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        original(self, task)

    monkeypatch.setattr(method_cls, "before_task", cut)
    with pytest.raises(KeyboardInterrupt):
        make_engine(out).run()
    monkeypatch.undo()
    resumed = make_engine(out)
    assert resumed.run_dir.read_run()["completed_tasks"] == 2
    assert (resumed.run(resume=True).record.array() == reference).all()
