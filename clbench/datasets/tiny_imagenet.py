"""TinyImageNet's official ``tiny-imagenet-200/`` layout (Stanford CS231n release).

```
tiny-imagenet-200/wnids.txt                       200 WordNet ids, one per line: label i = line i
tiny-imagenet-200/words.txt                       "<wnid>\\t<comma-separated synonyms>" (all of WordNet)
tiny-imagenet-200/train/<wnid>/images/*.JPEG      500 training images per class
tiny-imagenet-200/val/val_annotations.txt         "<file>\\t<wnid>\\t<x>\\t<y>\\t<w>\\t<h>"
tiny-imagenet-200/val/images/*.JPEG               50 images per class (used as the test set)
```
"""

from __future__ import annotations

from pathlib import Path

from clbench.errors import UserError

FOLDER = "tiny-imagenet-200"
IMAGE_SUFFIX = ".JPEG"


def layout(base: Path) -> list[Path]:
    """The files and folders the reader needs under ``base`` (= ``<root>/tiny-imagenet-200``)."""
    return [base / "wnids.txt", base / "words.txt", base / "train", base / "val" / "val_annotations.txt",
            base / "val" / "images"]


def _lines(path: Path) -> list[str]:
    """The lines of one of the release's text lists; a binary or unreadable file is a one-line error."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text list of the TinyImageNet release; re-extract "
                        "tiny-imagenet-200.zip") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None


def read_wnids(base: Path) -> list[str]:
    """Class ids in ``wnids.txt`` order (the label of ``wnids[i]`` is ``i``)."""
    return [line.strip() for line in _lines(base / "wnids.txt") if line.strip()]


def read_words(base: Path) -> dict[str, str]:
    """``wnid -> first synonym`` from ``words.txt`` (e.g. ``n02124075 -> "Egyptian cat"``)."""
    words: dict[str, str] = {}
    for line in _lines(base / "words.txt"):
        wnid, sep, synonyms = line.partition("\t")
        if sep:
            words[wnid.strip()] = synonyms.split(",")[0].strip()
    return words


def train_samples(base: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    """Training image paths (sorted per class) and labels."""
    paths: list[Path] = []
    labels: list[int] = []
    for label, wnid in enumerate(wnids):
        files = sorted((base / "train" / wnid / "images").glob(f"*{IMAGE_SUFFIX}"))
        paths += files
        labels += [label] * len(files)
    return paths, labels


def val_samples(base: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    """Validation (= clbench test) image paths and labels, in ``val_annotations.txt`` order."""
    index = {wnid: i for i, wnid in enumerate(wnids)}
    paths: list[Path] = []
    labels: list[int] = []
    annotations = base / "val" / "val_annotations.txt"
    for number, line in enumerate(_lines(annotations), start=1):
        fields = line.split("\t")
        if len(fields) < 2:
            continue
        if fields[1] not in index:
            raise UserError(f"{annotations}:{number} names class {fields[1][:40]!r}, which wnids.txt does not "
                            "list; re-extract tiny-imagenet-200.zip")
        if not fields[0] or "/" in fields[0] or fields[0] in (".", ".."):
            raise UserError(f"{annotations}:{number} names image {fields[0][:40]!r}, not a file of val/images/")
        paths.append(base / "val" / "images" / fields[0])
        labels.append(index[fields[1]])
    return paths, labels


def missing_class_folders(base: Path) -> list[Path]:
    """``train/<wnid>/images`` folders named in ``wnids.txt`` but absent."""
    if not (base / "wnids.txt").is_file():
        return []
    folders = [base / "train" / wnid / "images" for wnid in read_wnids(base)]
    return [f for f in folders if not f.is_dir()]
