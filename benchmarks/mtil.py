"""``mtil_order1`` / ``mtil_order2``: Multi-domain Task-Incremental Learning (ZSCL, Zheng et al., ICCV 2023).

Eleven datasets in sequence (also the protocol of MoE-Adapters and GIFT), each read with torchvision from its
official files under ``benchmark.root``; Caltech101, EuroSAT and SUN397 have no official test set and are split
80/20 by ZSCL's seeded ``random_split`` (:mod:`clbench.datasets.split`). Class names and prompt templates are
ZSCL's (:mod:`classnames.mtil`); Aircraft and MNIST train with lr 5e-5, the others with the YAML's 1e-5. Splits
follow ZSCL: Aircraft ``train``/``test``, DTD ``train1``/``test1``, Flowers ``train``/``test``, Pets
``trainval``/``test``, Cars/Food/MNIST/CIFAR100 ``train``/``test``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from clbench.benchmark import Benchmark, BenchmarkDef, TaskSpec, Transforms, load_defaults
from clbench.datasets.location import default_root, resolve_root
from clbench.datasets.requirements import Missing, absent, require
from clbench.errors import UserError
from clbench.registry import BENCHMARKS

from .classnames.mtil import CALTECH101, EUROSAT, FLOWERS102, TEMPLATES

ORDERS: dict[str, tuple[str, ...]] = {
    "mtil_order1": ("Aircraft", "Caltech101", "CIFAR100", "DTD", "EuroSAT", "Flowers", "Food", "MNIST",
                    "OxfordPet", "Cars", "SUN397"),
    "mtil_order2": ("Cars", "Food", "MNIST", "OxfordPet", "Flowers", "SUN397", "Aircraft", "Caltech101", "DTD",
                    "EuroSAT", "CIFAR100"),
}
TASK_LR: dict[str, float] = {"Aircraft": 5e-5, "MNIST": 5e-5}  # ZSCL's scripts; other tasks use train.lr
# Few-shot MTIL (MoE-Adapters ``mtil/scripts/train/train_few_shot_router11_experts22_1000iters.sh``: --few_shot=5,
# --iterations 500): ZSCL's orders, 5 training images per class.
FEW_SHOT: dict[str, tuple[str, int]] = {"mtil_order1_5shot": ("mtil_order1", 5), "mtil_order2_5shot": ("mtil_order2", 5)}
# X-TAIL (RAIL, ``configs/analytic_clip.yaml:3-4``): ten domains, CIFAR100 left out, 16 shots per class, one
# template (``primal_RAIL.py:234``), scored over the union of all ten domains' classes.
XTAIL_ORDERS: dict[str, tuple[str, ...]] = {
    "xtail_order1": ("Aircraft", "Caltech101", "DTD", "EuroSAT", "Flowers", "Food", "MNIST", "OxfordPet", "Cars",
                     "SUN397"),
}
XTAIL_SHOTS = 16
XTAIL_TEMPLATES = ("a photo of a {}.",)

TV = "set benchmark.download=true (torchvision downloads it) or place the official files there"


@dataclass(frozen=True)
class Source:
    """Where one dataset lives under the root, and how to get it there."""

    paths: tuple[str, ...]  # relative to the root; the first is the dataset's folder
    hint: str
    downloadable: bool = True


SOURCES: dict[str, Source] = {
    "Aircraft": Source(
        ("fgvc-aircraft-2013b/data/images", "fgvc-aircraft-2013b/data/variants.txt",
         "fgvc-aircraft-2013b/data/images_variant_train.txt", "fgvc-aircraft-2013b/data/images_variant_test.txt"),
        f"{TV} (fgvc-aircraft-2013b.tar.gz, https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/)"),
    "Caltech101": Source(
        ("caltech101/101_ObjectCategories", "caltech101/101_ObjectCategories/BACKGROUND_Google"),
        f"{TV} (101_ObjectCategories/ from caltech-101.zip, https://data.caltech.edu/records/mzrjq-6wc02)"),
    "CIFAR100": Source(
        ("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"),
        f"{TV} (cifar-100-python.tar.gz, https://www.cs.toronto.edu/~kriz/cifar.html)"),
    "DTD": Source(
        ("dtd/dtd/images", "dtd/dtd/labels/train1.txt", "dtd/dtd/labels/test1.txt"),
        f"{TV} (dtd-r1.0.1.tar.gz extracted into <root>/dtd/, https://www.robots.ox.ac.uk/~vgg/data/dtd/)"),
    "EuroSAT": Source(
        ("eurosat/2750",),
        f"{TV} (EuroSAT.zip RGB, extracted to <root>/eurosat/2750/<Class>/*.jpg)"),
    "Flowers": Source(
        ("flowers-102/jpg", "flowers-102/imagelabels.mat", "flowers-102/setid.mat"),
        f"{TV} (102flowers.tgz + imagelabels.mat + setid.mat, "
        "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/)"),
    "Food": Source(
        ("food-101/images", "food-101/meta/train.json", "food-101/meta/test.json"),
        f"{TV} (food-101.tar.gz, https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/)"),
    "MNIST": Source(
        tuple(f"MNIST/raw/{n}" for n in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")),
        f"{TV} (the four idx files, un-gzipped, in <root>/MNIST/raw/)"),
    "OxfordPet": Source(
        ("oxford-iiit-pet/images", "oxford-iiit-pet/annotations/trainval.txt",
         "oxford-iiit-pet/annotations/test.txt"),
        f"{TV} (images.tar.gz + annotations.tar.gz, https://www.robots.ox.ac.uk/~vgg/data/pets/)"),
    "Cars": Source(
        ("stanford_cars/devkit/cars_meta.mat", "stanford_cars/devkit/cars_train_annos.mat",
         "stanford_cars/cars_train", "stanford_cars/cars_test", "stanford_cars/cars_test_annos_withlabels.mat"),
        "torchvision can no longer download Stanford Cars: get a copy of the original release (e.g. the Kaggle "
        "dataset rickyyyyyyy/torchvision-stanford-cars) and place devkit/, cars_train/, cars_test/ and "
        "cars_test_annos_withlabels.mat in <root>/stanford_cars/",
        downloadable=False),
    "SUN397": Source(
        ("SUN397/ClassName.txt",),
        f"{TV} (SUN397.tar.gz extracted to <root>/SUN397/ with ClassName.txt, "
        "https://vision.princeton.edu/projects/2010/SUN/)"),
}


@dataclass
class Loaded:
    """One dataset's train and test sources (the same dataset with index lists when ZSCL splits it)."""

    train: Any
    test: Any
    class_names: tuple[str, ...]
    train_indices: list[int] | None = None
    test_indices: list[int] | None = None


def _spaces(names: Sequence[str]) -> tuple[str, ...]:
    """ZSCL's ``process_labels``: underscores to spaces."""
    return tuple(n.replace("_", " ") for n in names)


def _expect(task: str, found: Sequence[str], names: Sequence[str], where: str) -> None:
    if len(found) != len(names):
        raise UserError(f"{task}: {where} has {len(found)} classes, ZSCL's class list has {len(names)}")


def _seeded(full: Any, names: tuple[str, ...]) -> Loaded:
    from clbench.datasets.split import seeded_split

    train_idx, test_idx = seeded_split(len(full))
    return Loaded(full, full, names, train_idx, test_idx)


def load_aircraft(root: str, download: bool) -> Loaded:
    from torchvision.datasets import FGVCAircraft

    train = FGVCAircraft(root, split="train", download=download)
    return Loaded(train, FGVCAircraft(root, split="test"), _spaces(train.classes))


def load_caltech101(root: str, download: bool) -> Loaded:
    from torchvision.datasets import Caltech101

    full = Caltech101(root, target_type="category", download=download)
    _expect("Caltech101", full.categories, CALTECH101, f"{root}/caltech101/101_ObjectCategories")
    return _seeded(full, CALTECH101)


def load_cifar100(root: str, download: bool, verify_checksums: bool = True) -> Loaded:
    from clbench.datasets.torchvision_sets import CIFAR100

    train = CIFAR100(root, train=True, download=download, verify_checksums=verify_checksums)
    return Loaded(train, CIFAR100(root, train=False, verify_checksums=verify_checksums), _spaces(train.classes))


def load_dtd(root: str, download: bool) -> Loaded:
    from torchvision.datasets import DTD

    train = DTD(root, split="train", partition=1, download=download)
    return Loaded(train, DTD(root, split="test", partition=1), _spaces(train.classes))


def load_eurosat(root: str, download: bool) -> Loaded:
    from torchvision.datasets import EuroSAT

    full = EuroSAT(root, download=download)
    _expect("EuroSAT", full.classes, EUROSAT, f"{root}/eurosat/2750")
    return _seeded(full, EUROSAT)


def load_flowers(root: str, download: bool) -> Loaded:
    from clbench.datasets.torchvision_sets import Flowers102

    return Loaded(Flowers102(root, split="train", download=download), Flowers102(root, split="test"), FLOWERS102)


def load_food(root: str, download: bool) -> Loaded:
    from torchvision.datasets import Food101

    train = Food101(root, split="train", download=download)
    return Loaded(train, Food101(root, split="test"), _spaces(train.classes))


def load_mnist(root: str, download: bool) -> Loaded:
    from torchvision.datasets import MNIST

    train = MNIST(root, train=True, download=download)
    return Loaded(train, MNIST(root, train=False), _spaces(train.classes))


def load_pets(root: str, download: bool) -> Loaded:
    from torchvision.datasets import OxfordIIITPet

    train = OxfordIIITPet(root, split="trainval", download=download)
    return Loaded(train, OxfordIIITPet(root, split="test"), _spaces(train.classes))


def load_cars(root: str, download: bool) -> Loaded:
    from torchvision.datasets import StanfordCars

    train = StanfordCars(root, split="train")
    return Loaded(train, StanfordCars(root, split="test"), _spaces(train.classes))


def load_sun397(root: str, download: bool) -> Loaded:
    from clbench.datasets.torchvision_sets import SUN397

    full = SUN397(root, download=download)
    return _seeded(full, _spaces(full.classes))


LOADERS: dict[str, Callable[[str, bool], Loaded]] = {
    "Aircraft": load_aircraft, "Caltech101": load_caltech101, "CIFAR100": load_cifar100, "DTD": load_dtd,
    "EuroSAT": load_eurosat, "Flowers": load_flowers, "Food": load_food, "MNIST": load_mnist,
    "OxfordPet": load_pets, "Cars": load_cars, "SUN397": load_sun397,
}


@dataclass
class MtilOptions:
    root: str = field(default_factory=default_root)  # holds the eleven torchvision dataset folders
    download: bool = False  # let torchvision fetch what it can (all but Stanford Cars; needs internet)
    verify_checksums: bool = True  # MD5 of the official CIFAR-100 pickles; false reads a copy made another way

    def missing_data(self) -> list[Missing]:
        root = resolve_root(self.root)
        missing: list[Missing] = []
        for task, src in SOURCES.items():
            missing += absent(task, [root / p for p in src.paths], src.hint, src.downloadable)
        return missing


def _view(task: str, dataset: Any, names: tuple[str, ...], transform: Any, indices: list[int] | None) -> Any:
    from clbench.datasets.labeled import LabeledView
    from clbench.datasets.torchvision_sets import targets_of

    targets = targets_of(dataset)
    if targets and (min(targets) < 0 or max(targets) >= len(names)):
        raise UserError(f"{task}: labels run to {max(targets)} but the task has {len(names)} class names")
    return LabeledView(dataset, targets, transform, indices)


@dataclass
class FewShotOptions(MtilOptions):
    """MTIL's options plus the few-shot draw (``clbench.few_shot``): images per class and the draw's seed."""

    shots: int = 5
    shot_seed: int = 1  # the draw never depends on the run seed: every method trains on the same images

    def validate(self) -> None:
        if self.shots <= 0:
            raise UserError(f"benchmark.shots must be positive, got {self.shots}")


def build(options: MtilOptions, transforms: Transforms, name: str, order: Sequence[str] | None = None,
          protocol: str = "mtil", templates: tuple[str, ...] | None = None) -> Benchmark:
    require(name, options.missing_data(), options.download)
    root = str(resolve_root(options.root))
    tasks, train, test = [], [], []
    for task in order or ORDERS[name]:
        loaded = (load_cifar100(root, options.download, options.verify_checksums) if task == "CIFAR100"
                  else LOADERS[task](root, options.download))
        tasks.append(TaskSpec(task, loaded.class_names, templates or TEMPLATES[task], lr=TASK_LR.get(task)))
        train.append(_view(task, loaded.train, loaded.class_names, transforms.train, loaded.train_indices))
        test.append(_view(task, loaded.test, loaded.class_names, transforms.eval, loaded.test_indices))
    return Benchmark(name=name, protocol=protocol, tasks=tasks, train_datasets=train, test_datasets=test,
                     info={"order": list(order or ORDERS[name])})


def build_few_shot(options: FewShotOptions, transforms: Transforms, name: str) -> Benchmark:
    """Few-shot MTIL: ZSCL's order, ``options.shots`` training images per class (5), full test sets."""
    from clbench.few_shot import few_shot

    options.validate()
    base, _ = FEW_SHOT[name]
    return few_shot(build(options, transforms, base, ORDERS[base]), options.shots, options.shot_seed, name=name)


def build_xtail(options: FewShotOptions, transforms: Transforms, name: str) -> Benchmark:
    """X-TAIL: RAIL's ten domains, 16 shots per class, one template; every test image scored over all classes."""
    from clbench.few_shot import few_shot

    options.validate()
    full = build(options, transforms, name, XTAIL_ORDERS[name], protocol="xtail", templates=XTAIL_TEMPLATES)
    return few_shot(full, options.shots, options.shot_seed)


for _name, _order in ORDERS.items():
    BENCHMARKS.register(_name)(BenchmarkDef(
        name=_name,
        summary=(f"MTIL order {'I' if _name.endswith('1') else 'II'} (ZSCL): 11 datasets, {', '.join(_order)}; "
                 "1000 iterations/task [mtil]"),
        protocol="mtil",
        options=MtilOptions,
        build=partial(build, name=_name),
        defaults=load_defaults(Path(__file__).with_suffix(".yaml"), _name),
        data_help="torchvision's folders under <root>: "
                  + ", ".join(s.paths[0].split("/")[0] for s in SOURCES.values()),
    ))
_DATA_HELP = "torchvision's folders under <root>: " + ", ".join(s.paths[0].split("/")[0] for s in SOURCES.values())
for _name, (_base, _shots) in FEW_SHOT.items():
    BENCHMARKS.register(_name)(BenchmarkDef(
        name=_name,
        summary=(f"few-shot MTIL ({_base}, MoE-Adapters): 11 datasets, {_shots} training images per class; "
                 "500 iterations/task [mtil]"),
        protocol="mtil",
        options=FewShotOptions,
        build=partial(build_few_shot, name=_name),
        defaults=load_defaults(Path(__file__).with_suffix(".yaml"), _name),
        data_help=_DATA_HELP,
    ))
for _name, _order in XTAIL_ORDERS.items():
    BENCHMARKS.register(_name)(BenchmarkDef(
        name=_name,
        summary=(f"X-TAIL (RAIL): {len(_order)} domains, {XTAIL_SHOTS} shots/class, test over the union of all "
                 "classes, no domain label [xtail]"),
        protocol="xtail",
        options=FewShotOptions,
        build=partial(build_xtail, name=_name),
        defaults=load_defaults(Path(__file__).with_suffix(".yaml"), _name),
        data_help=_DATA_HELP,
    ))
