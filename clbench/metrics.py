"""Paper metrics as pure functions of an accuracy matrix.

``A[t, j]`` = accuracy (%) on task ``j`` after training task ``t`` (rows and columns in training order).
Entries not evaluated (future tasks under the class-incremental protocol, tasks of an unfinished run) are NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PROTOCOL_METRICS = {
    "mtil": ("transfer", "avg", "last", "bwt", "forgetting"),
    "cil": ("avg", "last", "bwt", "forgetting"),
    "medxtreme": ("acc", "auc", "bwt"),
    "xtail": ("transfer", "avg", "last", "bwt", "forgetting"),
}
#: Protocols whose matrix is read the MTIL way (ZSCL's Transfer/Avg/Last and per-task columns). X-TAIL's matrix
#: is task-agnostic (union head) but RAIL reads it with the same formulas (``primal_RAIL.py:289-297``).
MTIL_LIKE = ("mtil", "xtail")


def _square(matrix: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    a = np.asarray(matrix, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise ValueError(f"expected a square T x T accuracy matrix, got shape {a.shape}")
    return a


def transfer(matrix: np.ndarray) -> float:
    """ZSCL Transfer: mean over tasks j >= 2 of the mean of A[t, j] over t < j (zero-shot before training j)."""
    a = _square(matrix)
    per_task = [np.mean(a[:j, j]) for j in range(1, a.shape[0])]
    return float(np.mean(per_task)) if per_task else float("nan")


def average(matrix: np.ndarray) -> float:
    """ZSCL Avg: mean over tasks j of the mean of A[t, j] over all rows t."""
    a = _square(matrix)
    return float(np.mean(a.mean(axis=0)))


def last(matrix: np.ndarray) -> float:
    """Last: mean of the final row."""
    a = _square(matrix)
    return float(np.mean(a[-1]))


def transfer_per_task(matrix: np.ndarray) -> np.ndarray:
    """Transfer column of each task j (ZSCL Table 3): mean of A[t, j] over t < j; NaN for the first task."""
    a = _square(matrix)
    return np.array([np.nan] + [float(np.mean(a[:j, j])) for j in range(1, a.shape[0])])


def average_per_task(matrix: np.ndarray) -> np.ndarray:
    """Avg column of each task j (ZSCL Table 3): mean of A[t, j] over all rows t."""
    return _square(matrix).mean(axis=0)


def last_per_task(matrix: np.ndarray) -> np.ndarray:
    """Last column of each task j: A[T, j], the final row."""
    return _square(matrix)[-1].copy()


def backward_transfer(matrix: np.ndarray) -> float:
    """BWT: mean over j < T of A[T, j] - A[j, j] (negative = forgetting)."""
    a = _square(matrix)
    t = a.shape[0]
    if t < 2:
        return 0.0
    return float(np.mean([a[-1, j] - a[j, j] for j in range(t - 1)]))


def forgetting(matrix: np.ndarray) -> float:
    """Average forgetting: mean over j < T of max_{j <= t < T} A[t, j] - A[T, j]."""
    a = _square(matrix)
    t = a.shape[0]
    if t < 2:
        return 0.0
    return float(np.mean([np.max(a[j:-1, j]) - a[-1, j] for j in range(t - 1)]))


def seen_accuracy(matrix: np.ndarray, counts: Sequence[float] | None = None) -> np.ndarray:
    """Class-incremental accuracy after each step on the test images of all classes seen so far.

    Row t pools A[t, 0..t] weighted by each task's test-set size (equal weights without ``counts``).
    """
    a = _square(matrix)
    w = np.ones(a.shape[0]) if counts is None else np.asarray(counts, dtype=float)
    return np.array([np.average(a[t, : t + 1], weights=w[: t + 1]) for t in range(a.shape[0])])


def cil_average(seen: Sequence[float]) -> float:
    """CIL Avg: mean of the seen-class accuracy over all steps, the first included."""
    return float(np.mean(np.asarray(seen, dtype=float)))


def cil_last(seen: Sequence[float]) -> float:
    """CIL Last: seen-class accuracy after the final step."""
    return float(np.asarray(seen, dtype=float)[-1])


def compute(protocol: str, matrix: np.ndarray, counts: Sequence[float] | None = None,
            auc_matrix: np.ndarray | None = None) -> dict[str, float]:
    """All metrics of ``protocol`` for a complete matrix."""
    a = _square(matrix)
    if protocol in MTIL_LIKE:
        return {
            "transfer": transfer(a), "avg": average(a), "last": last(a),
            "bwt": backward_transfer(a), "forgetting": forgetting(a),
        }
    if protocol == "cil":
        seen = seen_accuracy(a, counts)
        return {
            "avg": cil_average(seen), "last": cil_last(seen),
            "bwt": backward_transfer(a), "forgetting": forgetting(a),
        }
    if protocol == "medxtreme":
        out = {"acc": last(a), "bwt": backward_transfer(a)}
        out["auc"] = last(_square(auc_matrix)) if auc_matrix is not None else float("nan")
        return out
    raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOL_METRICS)}")


def completed_rows(matrix: np.ndarray) -> int:
    """How many leading rows are evaluated (a row counts if any entry is finite)."""
    a = np.asarray(matrix, dtype=float)
    n = 0
    for row in a:
        if not np.isfinite(row).any():
            break
        n += 1
    return n
