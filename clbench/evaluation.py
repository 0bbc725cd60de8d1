"""Evaluation: one accuracy-matrix row per call, scored by the method's classifier (``clbench.classifier``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from clbench.benchmark import Benchmark
from clbench.classifier import Classifier, HeadGroup, HeadSpec
from clbench.distributed import World


@dataclass
class RowResult:
    """Accuracy (%) per task (NaN where not evaluated), test-set sizes, and macro AUC (%) where asked."""

    accuracy: list[float]
    counts: list[int]
    auc: list[float] | None


def macro_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Macro one-vs-rest ROC AUC over the classes present in ``labels`` (rank statistic, ties averaged)."""
    from scipy.stats import rankdata

    values = []
    for c in np.unique(labels):
        pos = labels == c
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = rankdata(scores[:, c])
        values.append((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(values)) if values else float("nan")


def head_for(bench: Benchmark, task_index: int, after_task: int | None) -> HeadSpec | None:
    """The classes task ``task_index``'s test images are scored over, or None when it is not evaluated.

    Task-incremental protocols: the task's own classes and templates. Class-incremental: every class seen up to
    ``after_task`` (before training: up to the task itself), each task's classes with its templates; tasks not
    yet seen have no head. X-TAIL (RAIL, ``primal_RAIL.py:236``: ``clip_classifier(merged_classnames, ...)``): the
    union of every task's classes, seen and not yet seen, in task order, at every step — no domain label.
    """
    task = bench.tasks[task_index]
    if bench.protocol == "xtail":
        return HeadSpec(tuple(HeadGroup(t.name, t.class_names, t.templates) for t in bench.tasks))
    if bench.protocol != "cil":
        return HeadSpec.single(task.name, task.class_names, task.templates)
    upto = task_index if after_task is None else after_task
    if task_index > upto:
        return None
    return HeadSpec(tuple(HeadGroup(t.name, t.class_names, t.templates) for t in bench.tasks[: upto + 1]))


def label_offset(bench: Benchmark, task_index: int) -> int:
    """What to add to task ``task_index``'s test labels to index its :func:`head_for` logits.

    X-TAIL's test labels are task-local (as MTIL's) but its head is the union of all tasks: shift by the classes
    of earlier tasks (RAIL, ``primal_RAIL.py:250``: ``targets += tested_cls_num``). Class-incremental labels are
    already global and task-incremental heads are the task's own: no shift.
    """
    if bench.protocol != "xtail":
        return 0
    return sum(len(t.class_names) for t in bench.tasks[:task_index])


@torch.inference_mode()
def score_task(classifier: Classifier, head: HeadSpec, loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
               device: torch.device,
               autocast: object) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of every test image of one task, batch by batch."""
    logits, labels = [], []
    for images, y in loader:
        with autocast():  # type: ignore[operator]
            out = classifier.logits(images.to(device, non_blocking=True), head)
        logits.append(out.float())
        labels.append(y)
    return torch.cat(logits), torch.cat(labels).to(device)


def evaluate_row(classifier: Classifier, bench: Benchmark, after_task: int | None, loaders: Sequence[Any],
                 device: torch.device, autocast: object, with_auc: bool = False,
                 world: World | None = None) -> RowResult:
    """Accuracy on every task's test set after training ``after_task`` (None = before any training).

    Task-incremental protocols score task j over its own classes with all its templates (future tasks
    included: zero-shot Transfer needs them). Class-incremental scores tasks j <= t over every class seen so
    far; future tasks are NaN (they have no head yet). Before training, cil scores each task over the classes
    seen up to it (the zero-shot reference of each step). X-TAIL scores every task over the union of all
    tasks' classes at every step. See :func:`head_for`.

    ``loaders[j]`` yields (images, labels) batches of task j's test set and has ``dataset`` (for its size): a
    DataLoader or a :class:`clbench.eval_cache.DecodedLoader`. Under several processes (``world``) each rank's
    loaders hold its contiguous part of every set: the correct counts and sizes are summed over the ranks (one
    collective per row) and, for AUC, the scores gathered, so every rank returns the single-process row.
    """
    world = world or World()
    heads = [head_for(bench, j, after_task) for j in range(len(bench.tasks))]
    tally = torch.zeros(len(heads), 2, dtype=torch.float64)  # per task: correct predictions, test examples
    scores: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for j, head in enumerate(heads):
        tally[j, 1] = len(loaders[j].dataset)  # type: ignore[arg-type]
        if head is None or len(loaders[j].dataset) == 0:  # type: ignore[arg-type]
            continue
        logits, labels = score_task(classifier, head, loaders[j], device, autocast)
        labels = labels + label_offset(bench, j)
        tally[j, 0] = int((logits.argmax(dim=1) == labels).sum())
        if with_auc:
            scores[j] = (logits.mul(100.0).softmax(dim=1).cpu().numpy(), labels.cpu().numpy())
    world.sum(tally)
    if with_auc and world.active:  # contiguous shards in rank order: the sets in their own order
        parts = world.gather_objects(scores)
        scores = {j: (np.concatenate([p[j][0] for p in parts if j in p]),
                      np.concatenate([p[j][1] for p in parts if j in p]))
                  for j in sorted({j for p in parts for j in p})}
    acc: list[float] = []
    aucs: list[float] = []
    for j, head in enumerate(heads):
        if head is None:
            acc.append(math.nan)
            aucs.append(math.nan)
            continue
        # float32 correct / n: bit-equal to the float32 mean of the 0/1 hits (checked for n up to 50,000)
        acc.append(100.0 * float(torch.tensor(float(tally[j, 0])) / int(tally[j, 1])))
        if with_auc:
            aucs.append(100.0 * macro_auc(*scores[j]) if j in scores else math.nan)
    counts = [int(n) for n in tally[:, 1].tolist()]
    return RowResult(accuracy=acc, counts=counts, auc=aucs if with_auc else None)
