"""Reading accuracy matrices held by other codebases: CSV (optional header), ``.npy``, JSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from clbench.errors import UserError


def read_matrix(path: str | Path) -> tuple[np.ndarray, list[str] | None]:
    """(matrix, task names or None). Empty CSV cells / JSON nulls are NaN (not evaluated)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"matrix file {p} does not exist")
    suffix = p.suffix.lower()
    names: list[str] | None = None
    try:
        if suffix == ".npy":
            matrix = np.load(p, allow_pickle=False).astype(float)
        elif suffix == ".json":
            obj = json.loads(p.read_text())
            if isinstance(obj, dict):
                names = obj.get("tasks")
                obj = obj.get("rows", obj.get("matrix"))
            matrix = np.array([[np.nan if v is None else v for v in row] for row in obj], dtype=float)
        elif suffix == ".csv":
            rows = [r for r in csv.reader(p.read_text().splitlines()) if r]
            if rows and not _numeric(rows[0]):
                names, rows = rows[0], rows[1:]
            matrix = np.array([[float(v) if v.strip() else np.nan for v in r] for r in rows], dtype=float)
        else:
            raise UserError(f"{p}: unknown matrix format {suffix!r}; use .csv, .npy or .json")
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:120]
        raise UserError(f"{p}: not a numeric matrix ({reason})") from None
    except RecursionError:
        raise UserError(f"{p}: nested too deeply to be a T x T matrix") from None
    except MemoryError:
        raise UserError(f"{p}: too large to be an accuracy matrix") from None
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise UserError(f"{p}: expected a square T x T matrix (rows = after task t), got shape {matrix.shape}")
    return matrix, names


def _numeric(row: list[str]) -> bool:
    try:
        [float(v) for v in row if v.strip()]
    except ValueError:
        return False
    return True
