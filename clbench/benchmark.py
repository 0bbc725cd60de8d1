"""The benchmark contract: an Avalanche stream plus ordered class names and prompt templates.

Task-incremental builders pass per-task datasets (each with a ``targets`` attribute); class-incremental builders
call :meth:`Benchmark.class_incremental` with whole datasets. A registered benchmark is a :class:`BenchmarkDef` (name, one-line card, protocol, options dataclass,
YAML defaults, builder). Its builder returns a :class:`Benchmark` whose ``tasks[i]`` describes
experience ``i`` of the Avalanche ``train_stream`` / ``test_stream``.

Label conventions (what the engine and evaluator rely on):
- task-incremental protocols (``mtil``, ``medxtreme``) and ``xtail``: labels of task ``i`` are
  ``0..len(tasks[i].class_names)-1``, indexing ``tasks[i].class_names`` (``xtail`` trains like ``mtil``; only its
  evaluation differs: every test image is scored over the union of all tasks' classes, see
  ``clbench.evaluation.head_for``);
- class-incremental (``cil``): labels are global positions in the benchmark's class order, so task ``i`` holds
  labels ``offset_i .. offset_i + len(tasks[i].class_names) - 1`` where ``offset_i`` counts the classes of earlier tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

PROTOCOLS = ("mtil", "cil", "medxtreme", "xtail")


@dataclass(frozen=True)
class TaskSpec:
    """One experience: its name, ordered class names and prompt templates (each with one ``{}``)."""

    name: str
    class_names: tuple[str, ...]
    templates: tuple[str, ...]
    lr: float | None = None  # per-task learning-rate override (MTIL: Aircraft and MNIST use 5e-5)

    def __post_init__(self) -> None:
        if not self.class_names:
            raise ValueError(f"task {self.name!r} has no classes")
        if not self.templates or any("{}" not in t for t in self.templates):
            raise ValueError(f"task {self.name!r}: every template needs one '{{}}'")


@dataclass(frozen=True)
class Transforms:
    """Image preprocessing of the chosen model, handed to benchmark builders.

    ``train`` / ``eval`` map a PIL image to a tensor: the reference code's training augmentation
    (``RandomResizedCrop(image_size, scale=train_crop_scale, bicubic)``, RGB, ``ToTensor``, normalisation) and
    its evaluation preprocess (bicubic ``Resize`` + ``CenterCrop``, RGB, ``ToTensor``, normalisation).
    ``image_size``, ``mean``, ``std`` and ``train_crop_scale`` let datasets that already hold tensors (the
    offline world) apply the same policy without a PIL round trip. The training crop draws from torch's global
    RNG; the engine seeds it per draw (:class:`clbench.data.SeededDraws`).
    """

    train: Callable[[Any], torch.Tensor]
    eval: Callable[[Any], torch.Tensor]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    train_crop_scale: tuple[float, float] | None = None  # None: no training augmentation

    def for_test(self, which: str) -> Callable[[Any], torch.Tensor]:
        """The test sets' transform: ``eval`` (Resize + CenterCrop), or ``train``, the quirk of ZSCL's CIL code
        (``cil/main.py:31-33`` passes ``model.transforms``, the training transform of ``cil/clip/clip.py:233-235``,
        to the test sets: an unseeded random crop at test time), for reproducing its published rows."""
        if which not in ("eval", "train"):
            from clbench.errors import UserError

            raise UserError(f"benchmark.eval_transform must be eval or train, not {which!r}")
        return self.eval if which == "eval" else self.train


@dataclass
class Benchmark:
    """A built benchmark: Avalanche streams and, per experience, the ordered metadata clbench needs."""

    name: str
    protocol: str
    tasks: list[TaskSpec]
    train_datasets: list[Dataset]
    test_datasets: list[Dataset]
    scenario: Any = None  # the Avalanche benchmark, built lazily by :meth:`stream`
    info: dict[str, Any] = field(default_factory=dict)
    random_eval: bool = False  # test sets go through a random transform: never cache their decoded images

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; valid: {', '.join(PROTOCOLS)}")
        if not (len(self.tasks) == len(self.train_datasets) == len(self.test_datasets)):
            raise ValueError("tasks, train_datasets and test_datasets must have the same length")

    def stream(self) -> Any:
        """The Avalanche benchmark (``train_stream`` / ``test_stream``), experience i <-> ``tasks[i]``."""
        if self.scenario is None:
            from clbench.avalanche_streams import streams_from_datasets

            self.scenario = streams_from_datasets(self.train_datasets, self.test_datasets, self.protocol)
        return self.scenario

    @classmethod
    def class_incremental(cls, name: str, tasks: list[TaskSpec], train: Dataset, test: Dataset,
                          info: dict[str, Any] | None = None, random_eval: bool = False) -> Benchmark:
        """A cil benchmark from whole train/test datasets whose labels are positions in the class order.

        The Avalanche stream is built here (``class_incremental_benchmark`` with explicit classes per
        experience and a coverage check); per-task datasets are the experiences' datasets.
        """
        from clbench.avalanche_streams import class_incremental_stream

        scenario = class_incremental_stream(train, test, [len(t.class_names) for t in tasks])
        return cls(
            name=name, protocol="cil", tasks=tasks,
            train_datasets=[e.dataset for e in scenario.train_stream],
            test_datasets=[e.dataset for e in scenario.test_stream],
            scenario=scenario, info=info or {}, random_eval=random_eval,
        )

    def class_offset(self, task_index: int) -> int:
        """Global label of the first class of ``task_index`` under the cil convention (0 otherwise)."""
        if self.protocol != "cil":
            return 0
        return sum(len(t.class_names) for t in self.tasks[:task_index])

    def seen_class_names(self, task_index: int) -> tuple[str, ...]:
        """All class names up to and including ``task_index`` (the cil evaluation head)."""
        return tuple(name for t in self.tasks[: task_index + 1] for name in t.class_names)


@dataclass(frozen=True)
class BenchmarkDef:
    """A registered benchmark: what ``clbench list benchmarks`` shows and how to build it."""

    name: str
    summary: str  # one-line dataset card: source/paper, tasks, protocol
    protocol: str
    options: type  # dataclass of the benchmark's own options (``benchmark.<key>``), e.g. data root
    build: Callable[[Any, Transforms], Benchmark]
    defaults: dict[str, Any] = field(default_factory=dict)  # sections "train", "model", "benchmark", "method"
    data_help: str = ""  # how to obtain the data (printed with missing-data errors)


def load_defaults(yaml_path: Path, name: str) -> dict[str, Any]:
    """Defaults of benchmark ``name`` from a family YAML file: ``common`` merged with the ``name`` section."""
    import yaml

    with open(yaml_path) as fh:
        data = yaml.safe_load(fh) or {}
    common = data.get("common", {}) or {}
    own = data.get(name, {}) or {}
    merged: dict[str, Any] = {}
    for section in set(common) | set(own):
        merged[section] = {**(common.get(section) or {}), **(own.get(section) or {})}
    return merged


def remap_labels(targets: Sequence[int], class_order: Sequence[int]) -> list[int]:
    """Map original labels to positions in ``class_order`` (the cil convention)."""
    position = {c: i for i, c in enumerate(class_order)}
    return [position[int(t)] for t in targets]
