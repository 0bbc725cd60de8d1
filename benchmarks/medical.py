"""HieraMedTransfer and MedXtreme (Chen et al., arXiv 2512.13072): medical task-incremental streams on your data.

``hieramed_order1`` / ``_order2``: nine datasets in three domains (X-ray, pathology, fundus), metrics
Transfer/Avg/Last. ``medxtreme_order1`` / ``_order2``: six harder datasets, metrics ACC/AUC/BWT. The paper's
splits are unreleased and several sources are gated, so you arrange each dataset in the documented layout
(``benchmarks/medical.yaml``: class-folder tree or ``split.csv``); class keys, prompt names, templates and the
paper's class counts live in that YAML, and ``benchmark.class_map`` points to your overrides.
MedXtreme order II is "random" in the paper; the order used here is inferred, not published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import yaml

from clbench.benchmark import Benchmark, BenchmarkDef, TaskSpec, Transforms, load_defaults
from clbench.datasets import class_folders, split_csv
from clbench.datasets.location import default_root, resolve_root
from clbench.datasets.requirements import Missing, require
from clbench.errors import UserError
from clbench.registry import BENCHMARKS

YAML_PATH = Path(__file__).with_suffix(".yaml")
FAMILY_DATASETS: dict[str, tuple[str, ...]] = {
    "hieramed": ("RANZCR", "CheXchoNet", "PD", "BreakHis", "Chaoyang", "GasHisSDB", "EyePACS", "AIROGS",
                 "FARFUM-RoP"),
    "medxtreme": ("AOD", "BMC", "ISIC2024", "NCT100K", "NIH", "PITVIS"),
}
ORDERS: dict[str, tuple[str, ...]] = {
    "hieramed_order1": FAMILY_DATASETS["hieramed"],
    "hieramed_order2": ("AIROGS", "BreakHis", "Chaoyang", "CheXchoNet", "EyePACS", "FARFUM-RoP", "GasHisSDB",
                        "PD", "RANZCR"),
    "medxtreme_order1": FAMILY_DATASETS["medxtreme"],
    # order II is "random" in the paper: this one is inferred, not published
    "medxtreme_order2": ("AOD", "NCT100K", "PITVIS", "ISIC2024", "NIH", "BMC"),
}
MAX_LISTED = 5  # absent files of a split.csv listed one by one before a summary line


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset's entry of ``medical.yaml`` (after ``class_map`` overrides)."""

    name: str
    templates: tuple[str, ...]
    classes: tuple[tuple[str, str], ...] | None  # (class key, prompt name) in label order; None = discover
    num_classes: int | None
    source: str


def load_specs(class_map: str = "") -> dict[str, DatasetSpec]:
    """Dataset entries of ``medical.yaml``, each updated key by key from ``class_map``'s ``datasets:``."""
    entries: dict[str, dict[str, Any]] = yaml.safe_load(YAML_PATH.read_text())["datasets"]
    if class_map:
        path = resolve_root(class_map)
        if not path.is_file():
            raise UserError(f"benchmark.class_map: {path} does not exist")
        user = (yaml.safe_load(path.read_text()) or {}).get("datasets") or {}
        unknown = sorted(set(user) - set(entries))
        if unknown:
            raise UserError(f"{path}: unknown dataset(s) {', '.join(unknown)}; valid: {', '.join(entries)}")
        entries = {k: {**v, **(user.get(k) or {})} for k, v in entries.items()}
    specs = {}
    for name, e in entries.items():
        classes = e.get("classes")
        specs[name] = DatasetSpec(
            name=name,
            templates=tuple(e["templates"]),
            classes=tuple((str(k), str(v)) for k, v in classes.items()) if classes else None,
            num_classes=e.get("num_classes"),
            source=str(e.get("source", "")),
        )
    return specs


@dataclass
class Survey:
    """What one dataset folder holds: class keys, samples per split, and everything missing."""

    keys: list[str]
    samples: dict[str, tuple[list[Path], list[int]]]
    missing: list[Missing]


def _layout_hint(spec: DatasetSpec, folder: Path) -> str:
    if spec.classes:
        keys = "class keys " + ", ".join(k for k, _ in spec.classes)
    else:
        keys = f"{spec.num_classes or 'your'} class keys of your choice"
    return (f"put {folder}/{{train,test}}/<class key>/<images> or {folder}/{split_csv.FILE_NAME} "
            f"(path,label,split) with {keys}; source: {spec.source or 'see benchmarks/medical.yaml'}")


def _survey_csv(spec: DatasetSpec, folder: Path) -> Survey:
    csv_path = folder / split_csv.FILE_NAME
    try:
        rows = split_csv.read(csv_path)
    except ValueError as exc:
        return Survey([], {}, [Missing(spec.name, csv_path, str(exc))])
    keys = [k for k, _ in spec.classes] if spec.classes else sorted({r.label for r in rows})
    index = {k: i for i, k in enumerate(keys)}
    missing: list[Missing] = []
    unknown = sorted({r.label for r in rows} - set(index))
    if unknown:
        missing.append(Missing(spec.name, csv_path, f"labels {', '.join(unknown)} are not class keys "
                                                    f"({', '.join(keys)})"))
    absent_files = [r.path for r in rows if not r.path.is_file()]
    missing += [Missing(spec.name, p, f"listed in {csv_path.name} but absent") for p in absent_files[:MAX_LISTED]]
    if len(absent_files) > MAX_LISTED:
        more = len(absent_files) - MAX_LISTED
        missing.append(Missing(spec.name, csv_path, f"{more} more listed files are absent"))
    samples = {}
    for split in split_csv.SPLITS:
        chosen = [r for r in rows if r.split == split and r.label in index]
        samples[split] = ([r.path for r in chosen], [index[r.label] for r in chosen])
        for key in sorted(set(keys) - {r.label for r in chosen}):
            missing.append(Missing(spec.name, csv_path, f"class {key!r} has no {split} rows"))
    return Survey(keys, samples, missing)


def _survey_folders(spec: DatasetSpec, folder: Path) -> Survey:
    discovered = class_folders.class_dirs(folder / "train") or class_folders.class_dirs(folder / "test")
    keys = [k for k, _ in spec.classes] if spec.classes else discovered
    missing: list[Missing] = []
    samples = {}
    for split in split_csv.SPLITS:
        split_dir = folder / split
        if not split_dir.is_dir():
            missing.append(Missing(spec.name, split_dir, _layout_hint(spec, folder)))
            continue
        for extra in sorted(set(class_folders.class_dirs(split_dir)) - set(keys)):
            missing.append(Missing(spec.name, split_dir / extra, "class folder not in the class map: "
                                   "add it to `classes` (benchmark.class_map) or remove it"))
        paths, labels = class_folders.scan(split_dir, keys)
        for label, key in enumerate(keys):
            if label not in labels:
                missing.append(Missing(spec.name, split_dir / key,
                                       f"no images for class {key!r} (expected class keys: {', '.join(keys)})"))
        samples[split] = (paths, labels)
    return Survey(keys, samples, missing)


def survey(spec: DatasetSpec, folder: Path) -> Survey:
    """Read one dataset folder's layout (``split.csv`` wins over class folders) and list what is missing."""
    if not folder.is_dir():
        return Survey([], {}, [Missing(spec.name, folder, _layout_hint(spec, folder))])
    if (folder / split_csv.FILE_NAME).is_file():
        result = _survey_csv(spec, folder)
    else:
        result = _survey_folders(spec, folder)
    if spec.num_classes and result.keys and len(result.keys) != spec.num_classes:
        result.missing.append(Missing(
            spec.name, folder,
            f"{len(result.keys)} classes found, the paper's task has {spec.num_classes} (fix the folders, "
            f"or set num_classes: null for {spec.name} in a class_map file)"))
    return result


def prompt_names(spec: DatasetSpec, keys: list[str]) -> tuple[str, ...]:
    """Names for prompts: the class map's, else the class keys with underscores as spaces."""
    if spec.classes:
        return tuple(name for _, name in spec.classes)
    return tuple(k.replace("_", " ") for k in keys)


@dataclass
class _MedicalOptions:
    root: str = field(default_factory=default_root)  # holds <family>/<Dataset>/
    class_map: str = ""  # optional YAML with a `datasets:` mapping overriding benchmarks/medical.yaml entries
    family: ClassVar[str] = ""

    def folder(self, dataset: str) -> Path:
        return resolve_root(self.root) / self.family / dataset

    def missing_data(self) -> list[Missing]:
        specs = load_specs(self.class_map)
        return [m for d in FAMILY_DATASETS[self.family] for m in survey(specs[d], self.folder(d)).missing]


@dataclass
class HieraMedOptions(_MedicalOptions):
    family: ClassVar[str] = "hieramed"


@dataclass
class MedXtremeOptions(_MedicalOptions):
    family: ClassVar[str] = "medxtreme"


def build(options: _MedicalOptions, transforms: Transforms, name: str, protocol: str) -> Benchmark:
    from clbench.datasets.labeled import ImageFiles

    specs = load_specs(options.class_map)
    surveys = {d: survey(specs[d], options.folder(d)) for d in ORDERS[name]}
    require(name, [m for s in surveys.values() for m in s.missing])
    tasks, train, test = [], [], []
    for dataset, found in surveys.items():
        spec = specs[dataset]
        tasks.append(TaskSpec(dataset, prompt_names(spec, found.keys), spec.templates))
        train.append(ImageFiles(*found.samples["train"], transforms.train))
        test.append(ImageFiles(*found.samples["test"], transforms.eval))
    return Benchmark(name=name, protocol=protocol, tasks=tasks, train_datasets=train, test_datasets=test,
                     info={"order": list(ORDERS[name]), "class_keys": {d: s.keys for d, s in surveys.items()}})


_CARDS = {
    "hieramed_order1": ("HieraMedTransfer order I (arXiv 2512.13072): 9 datasets, X-ray -> pathology -> fundus; "
                        "bring your own data [mtil]", "mtil", HieraMedOptions),
    "hieramed_order2": ("HieraMedTransfer order II (alphabetical; arXiv 2512.13072): 9 datasets; bring your own "
                        "data [mtil]", "mtil", HieraMedOptions),
    "medxtreme_order1": ("MedXtreme order I (alphabetical; arXiv 2512.13072): 6 datasets, AOD..PITVIS; bring "
                         "your own data [medxtreme]", "medxtreme", MedXtremeOptions),
    "medxtreme_order2": ("MedXtreme order II (inferred 'random' order; arXiv 2512.13072): 6 datasets; bring your "
                         "own data [medxtreme]", "medxtreme", MedXtremeOptions),
}

for _name, (_summary, _protocol, _options) in _CARDS.items():
    BENCHMARKS.register(_name)(BenchmarkDef(
        name=_name,
        summary=_summary,
        protocol=_protocol,
        options=_options,
        build=partial(build, name=_name, protocol=_protocol),
        defaults=load_defaults(YAML_PATH, _name),
        data_help=(f"<root>/{_options.family}/<Dataset>/{{train,test}}/<class>/<images> or .../split.csv; "
                   "class keys in benchmarks/medical.yaml"),
    ))
