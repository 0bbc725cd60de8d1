"""``tinyimagenet_5`` / ``_10`` / ``_20``: class-incremental TinyImageNet (Continual-CLIP / ZSCL / MoE-Adapters).

200 classes (labels in ``wnids.txt`` order) shuffled by ``random.Random(0).shuffle(list(range(200)))`` (the
order in ZSCL's ``class_orders/tinyimagenet.yaml``); a first task of 100 classes, then 5/10/20 steps of
20/10/5 classes (6/11/21 evaluation points). Test set: the official ``val`` split (50 images per class).

Class names: ``benchmark.class_names=clip`` (default) uses CLIP's ImageNet names looked up by wnid, which is
exactly ZSCL's ``dataset_reqs/tinyimagenet_classes.txt``; ``words`` uses the first synonym of ``words.txt``
(e.g. "Egyptian cat" instead of "Egyptian Mau").
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from clbench.benchmark import Benchmark, BenchmarkDef, Transforms, load_defaults, remap_labels
from clbench.datasets import tiny_imagenet as fmt
from clbench.datasets.location import default_root, resolve_root
from clbench.datasets.requirements import Missing, absent, require
from clbench.errors import UserError
from clbench.registry import BENCHMARKS

from ._cil import cil_tasks, step_sizes
from .classnames.imagenet import NAME_BY_WNID

NUM_CLASSES = 200
BASE_CLASSES = 100
STEPS = {"tinyimagenet_5": 5, "tinyimagenet_10": 10, "tinyimagenet_20": 20}
HINT = ("download http://cs231n.stanford.edu/tiny-imagenet-200.zip and unzip it into the root "
        "(keep the official train/ and val/ layout)")
NAME_SOURCES = ("clip", "words")


def class_order() -> list[int]:
    """Positions in ``wnids.txt`` order, shuffled with ``random.Random(0)`` (ZSCL / Continual-CLIP)."""
    order = list(range(NUM_CLASSES))
    random.Random(0).shuffle(order)
    return order


@dataclass
class TinyImageNetOptions:
    root: str = field(default_factory=default_root)  # holds tiny-imagenet-200/
    class_names: str = "clip"  # clip (ZSCL's names) | words (first synonym in words.txt)
    eval_transform: str = "eval"  # "train": evaluate with the training transform, as ZSCL's CIL code

    def missing_data(self) -> list[Missing]:
        base = resolve_root(self.root) / fmt.FOLDER
        missing = absent("TinyImageNet", fmt.layout(base), HINT)
        missing += [Missing("TinyImageNet", p, "a class listed in wnids.txt has no training images; " + HINT)
                    for p in fmt.missing_class_folders(base)]
        return missing


def class_names(wnids: list[str], words: dict[str, str], source: str) -> list[str]:
    """Human-readable names by wnid; CLIP's names fall back to ``words.txt`` for non-ImageNet ids."""
    if source not in NAME_SOURCES:
        raise UserError(f"benchmark.class_names must be one of {', '.join(NAME_SOURCES)}, not {source!r}")
    if source == "clip":
        return [NAME_BY_WNID.get(w) or words.get(w, w) for w in wnids]
    return [words.get(w, w) for w in wnids]


def build(options: TinyImageNetOptions, transforms: Transforms, name: str, steps: int) -> Benchmark:
    require(name, options.missing_data())
    from clbench.datasets.labeled import ImageFiles

    base = resolve_root(options.root) / fmt.FOLDER
    wnids = fmt.read_wnids(base)
    if len(wnids) != NUM_CLASSES:
        raise UserError(f"{name}: {base / 'wnids.txt'} lists {len(wnids)} classes, expected {NUM_CLASSES}; "
                        + HINT)
    names = class_names(wnids, fmt.read_words(base), options.class_names)
    order = class_order()
    train_paths, train_labels = fmt.train_samples(base, wnids)
    test_paths, test_labels = fmt.val_samples(base, wnids)
    tasks = cil_tasks([names[c] for c in order], step_sizes(NUM_CLASSES, steps, BASE_CLASSES))
    return Benchmark.class_incremental(
        name, tasks,
        ImageFiles(train_paths, remap_labels(train_labels, order), transforms.train),
        ImageFiles(test_paths, remap_labels(test_labels, order), transforms.for_test(options.eval_transform)),
        info={"class_order": order, "wnids": wnids},
        random_eval=options.eval_transform == "train",
    )


for _name, _steps in STEPS.items():
    BENCHMARKS.register(_name)(BenchmarkDef(
        name=_name,
        summary=(f"TinyImageNet-200, 100 base classes + {_steps} steps of {100 // _steps} (Continual-CLIP/ZSCL/"
                 f"MoE-Adapters); test = official val; prompt 'a bad photo of a {{}}.' [cil]"),
        protocol="cil",
        options=TinyImageNetOptions,
        build=partial(build, name=_name, steps=_steps),
        defaults=load_defaults(Path(__file__).with_suffix(".yaml"), _name),
        data_help=f"<root>/{fmt.FOLDER}/: {HINT}",
    ))
