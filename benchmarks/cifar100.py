"""``cifar100_10`` / ``_20`` / ``_50``: class-incremental CIFAR-100 (Continual-CLIP / ZSCL / MoE-Adapters).

100 classes in the iCaRL order, split into 10/20/50 steps of 10/5/2 classes; train on a step's classes, then
evaluate on all classes seen so far with "a bad photo of a {}.". Data: torchvision's official
``cifar-100-python/`` pickles under ``benchmark.root``. Class names are torchvision's, underscores kept
("aquarium_fish"), as Continual-CLIP and ZSCL's ``cil`` code prompt them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from clbench.benchmark import Benchmark, BenchmarkDef, Transforms, load_defaults, remap_labels
from clbench.datasets.location import default_root, resolve_root
from clbench.datasets.requirements import Missing, absent, require
from clbench.registry import BENCHMARKS

from ._cil import cil_tasks, step_sizes
from .classnames.cifar100 import ICARL_ORDER

FOLDER = "cifar-100-python"
HINT = ("set benchmark.download=true, or extract cifar-100-python.tar.gz "
        "(https://www.cs.toronto.edu/~kriz/cifar.html) into the root")
STEPS = {"cifar100_10": 10, "cifar100_20": 20, "cifar100_50": 50}


@dataclass
class Cifar100Options:
    root: str = field(default_factory=default_root)  # holds cifar-100-python/
    download: bool = False  # let torchvision fetch the archive (needs internet)
    eval_transform: str = "eval"  # "train": evaluate with the training transform, as ZSCL's CIL code
    verify_checksums: bool = True  # MD5 of the official files; false reads a copy made another way

    def missing_data(self) -> list[Missing]:
        base = resolve_root(self.root) / FOLDER
        return absent("CIFAR100", [base / "train", base / "test", base / "meta"], HINT, downloadable=True)


def build(options: Cifar100Options, transforms: Transforms, name: str, steps: int) -> Benchmark:
    require(name, options.missing_data(), options.download)
    from clbench.datasets.labeled import LabeledView
    from clbench.datasets.torchvision_sets import CIFAR100

    root = str(resolve_root(options.root))
    train = CIFAR100(root, train=True, download=options.download, verify_checksums=options.verify_checksums)
    test = CIFAR100(root, train=False, verify_checksums=options.verify_checksums)
    order = list(ICARL_ORDER)
    tasks = cil_tasks([train.classes[c] for c in order], step_sizes(len(order), steps))
    return Benchmark.class_incremental(
        name, tasks,
        LabeledView(train, remap_labels(train.targets, order), transforms.train),
        LabeledView(test, remap_labels(test.targets, order), transforms.for_test(options.eval_transform)),
        info={"class_order": order, "source": "iCaRL order (Rebuffi et al., 2017)"},
        random_eval=options.eval_transform == "train",
    )


for _name, _steps in STEPS.items():
    BENCHMARKS.register(_name)(BenchmarkDef(
        name=_name,
        summary=(f"CIFAR-100, {_steps} steps of {100 // _steps} classes in iCaRL order (Continual-CLIP/ZSCL/"
                 f"MoE-Adapters); prompt 'a bad photo of a {{}}.' [cil]"),
        protocol="cil",
        options=Cifar100Options,
        build=partial(build, name=_name, steps=_steps),
        defaults=load_defaults(Path(__file__).with_suffix(".yaml"), _name),
        data_help=f"<root>/{FOLDER}/{{train,test,meta}}: {HINT}",
    ))
