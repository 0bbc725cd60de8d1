"""A split file: ``<dataset>/split.csv`` with columns ``path,label,split`` (header required).

``path`` is relative to the dataset folder, ``label`` a class key, ``split`` ``train`` or ``test``. It serves
data whose images cannot be rearranged into class folders (one image folder plus a label table).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "split.csv"
COLUMNS = ("path", "label", "split")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Row:
    path: Path  # absolute
    label: str
    split: str


def read(csv_path: Path) -> list[Row]:
    """All rows; a missing column or an unknown split value is a ValueError naming the file and line."""
    base = csv_path.parent
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        absent = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if absent:
            raise ValueError(f"{csv_path}: missing column(s) {', '.join(absent)}; "
                             "expected the header path,label,split")
        rows = []
        for line, record in enumerate(reader, start=2):
            split = (record["split"] or "").strip()
            if split not in SPLITS:
                raise ValueError(f"{csv_path}:{line}: split must be train or test, got {split!r}")
            rows.append(Row(base / record["path"].strip(), record["label"].strip(), split))
    return rows
