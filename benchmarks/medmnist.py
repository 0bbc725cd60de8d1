"""``medmnist_order1`` / ``medmnist_order2``: a public multi-domain medical stream over MedMNIST+ 2D datasets.

New in clbench (no paper defines it): nine single-label MedMNIST datasets as nine tasks, read from MedMNIST's
official ``.npz`` files, size 28/64/128/224 (``benchmark.size``). Train on each ``train`` split (``val`` is not
used), test on ``test``; task-incremental with MTIL's metrics. Order I is the order the issue lists the
datasets in (pathology, dermatology, blood, CT, OCT, fundus, ultrasound, X-ray, kidney microscopy); order II is
alphabetical, mirroring HieraMedTransfer's order II. Data: CC BY 4.0 (Yang et al., Scientific Data 2023).
Default backbone BiomedCLIP, as for the other medical streams. Note: a size-224 file is loaded into memory
whole (TissueMNIST_224's training split alone is about 8 GB).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from clbench.benchmark import Benchmark, BenchmarkDef, TaskSpec, Transforms, load_defaults
from clbench.datasets import medmnist_npz as fmt
from clbench.datasets.location import default_root, resolve_root
from clbench.datasets.requirements import Missing, require
from clbench.errors import UserError
from clbench.registry import BENCHMARKS

from .classnames.medmnist import PROMPT_NAMES, TASK_NAMES, TEMPLATES

FOLDER = "medmnist"
ORDERS: dict[str, tuple[str, ...]] = {
    "medmnist_order1": ("pathmnist", "dermamnist", "bloodmnist", "organamnist", "octmnist", "retinamnist",
                        "breastmnist", "pneumoniamnist", "tissuemnist"),
    "medmnist_order2": ("bloodmnist", "breastmnist", "dermamnist", "octmnist", "organamnist", "pathmnist",
                        "pneumoniamnist", "retinamnist", "tissuemnist"),
}
RECORD = "https://zenodo.org/records/10519652"  # MedMNIST+ (v3) files, all sizes
HINT = f"download it from {RECORD} (MedMNIST+, the files the `medmnist` package fetches)"


def download_hint(path: Path) -> str:
    """The exact download URL of one file."""
    return f"download {RECORD}/files/{path.name}?download=1 into {path.parent}"


@dataclass
class MedMNISTOptions:
    root: str = field(default_factory=default_root)  # holds medmnist/<flag>[_<size>].npz
    size: int = 28  # image side: 28, 64, 128 or 224

    def path(self, flag: str) -> Path:
        try:
            name = fmt.file_name(flag, self.size)
        except ValueError as exc:
            raise UserError(f"benchmark.size: {exc}") from None
        return resolve_root(self.root) / FOLDER / name

    def missing_data(self) -> list[Missing]:
        missing = []
        for flag in ORDERS["medmnist_order1"]:
            path = self.path(flag)
            if not path.is_file():
                missing.append(Missing(TASK_NAMES[flag], path, download_hint(path)))
                continue
            lacking = fmt.missing_keys(path)
            if lacking:
                hint = f"lacks array(s) {', '.join(lacking)}; " + download_hint(path)
                missing.append(Missing(TASK_NAMES[flag], path, hint))
        return missing


def build(options: MedMNISTOptions, transforms: Transforms, name: str) -> Benchmark:
    require(name, options.missing_data())
    from clbench.datasets.labeled import ArrayImages

    tasks, train, test = [], [], []
    for flag in ORDERS[name]:
        names = PROMPT_NAMES[flag]
        splits = {}
        for split in ("train", "test"):
            images, labels = fmt.load_split(options.path(flag), split)
            if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
                raise UserError(f"{name}: {options.path(flag)} {split}_labels run to {labels.max()}, "
                                f"but {TASK_NAMES[flag]} has {len(names)} classes")
            splits[split] = (images, labels)
        tasks.append(TaskSpec(TASK_NAMES[flag], names, TEMPLATES[flag]))
        train.append(ArrayImages(*splits["train"], transforms.train))
        test.append(ArrayImages(*splits["test"], transforms.eval))
    return Benchmark(name=name, protocol="mtil", tasks=tasks, train_datasets=train, test_datasets=test,
                     info={"order": [TASK_NAMES[f] for f in ORDERS[name]], "size": options.size})


for _name, _order in ORDERS.items():
    BENCHMARKS.register(_name)(BenchmarkDef(
        name=_name,
        summary=(f"MedMNIST+ order {'I' if _name.endswith('1') else 'II'} (clbench): 9 public 2D medical "
                 f"datasets, {', '.join(TASK_NAMES[f] for f in _order)}; benchmark.size=28|64|128|224 [mtil]"),
        protocol="mtil",
        options=MedMNISTOptions,
        build=partial(build, name=_name),
        defaults=load_defaults(Path(__file__).with_suffix(".yaml"), _name),
        data_help=f"<root>/{FOLDER}/<flag>.npz (28 px) or <flag>_<size>.npz: {HINT}",
    ))
