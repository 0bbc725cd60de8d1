"""The offline shapes world's benchmarks: ``shapes_mtil_order1/2`` (8 world "datasets"), their few-shot and
X-TAIL variants (``shapes_mtil_order1_5shot``, ``shapes_xtail_order1``), and ``shapes_cil_5/10``.

A miniature of the paper settings that runs on a 2-core CPU in minutes with the bundled pre-trained tiny CLIP
(:mod:`clbench.world`): MTIL-style tasks the model partly knows (shape, colour, texture, count, position, size)
interleaved with novel ones it must learn (letters, digits), and a 50-class shape x colour class-incremental
stream. Images are rendered in memory from ``benchmark.data_seed`` (never from the run seed), at the model's
image size; nothing is downloaded or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clbench.benchmark import Benchmark, BenchmarkDef, TaskSpec, Transforms, load_defaults
from clbench.errors import UserError
from clbench.registry import BENCHMARKS
from clbench.world.attributes import COLOUR_NAMES, SHAPES
from clbench.world.datasets import ImageLabelDataset, to_chw_tensor
from clbench.world.tasks import CIL_TASK, TASKS, make_split

YAML = Path(__file__).with_suffix(".yaml")
MTIL_ORDERS: dict[str, tuple[str, ...]] = {
    "shapes_mtil_order1": ("letters", "colour", "shape", "digits", "texture", "count", "position", "size"),
    "shapes_mtil_order2": ("shape", "position", "digits", "size", "colour", "letters", "count", "texture"),
}
CIL_STEPS: dict[str, int] = {"shapes_cil_5": 5, "shapes_cil_10": 10}
# Few-shot variants (clbench.few_shot): (base order, protocol). The shots are options (YAML: 5 and 16, as
# few-shot MTIL and X-TAIL). Caveat of the world's X-TAIL: its tasks are attributes of one image domain (a
# red striped circle is "red", "circle" and "striped" at once), so the union head is ambiguous where real
# X-TAIL's domains (aircraft, food, digits) are not; it exercises the protocol's mechanics, not its difficulty.
FEW_SHOT: dict[str, tuple[str, str]] = {"shapes_mtil_order1_5shot": ("shapes_mtil_order1", "mtil"),
                                        "shapes_xtail_order1": ("shapes_mtil_order1", "xtail")}
CIL_CLASS_ORDER_SEED = 1993  # the class-incremental literature's conventional class-order seed
# GIFT's "pre-training vocabulary" (ImageNet's class names for real CLIP): the world's colour-shape pairs.
SYNTHETIC_VOCABULARY = ("shapes-world", tuple(f"{c} {s}" for c in COLOUR_NAMES for s in SHAPES), "a photo of a {}.")


@dataclass
class ShapesOptions:
    """``benchmark.<key>`` options of the world benchmarks."""

    train_per_class: int = 300
    test_per_class: int = 40
    data_seed: int = 0  # the images depend on this only, never on the run seed
    # MTIL's convention (ZSCL trains Aircraft and MNIST at 5x the base lr): the novel tasks, letters and digits,
    # train at this lr; null -> train.lr like the others.
    novel_lr: float | None = 5e-4
    reference_size: int = 5000  # image-caption pairs of the reference corpus (ZSCL's distillation data)
    synth_drop_prob: float = 0.1  # procedural generator's fidelity knob: chance to ignore a prompt attribute
    shots: int | None = None  # few-shot variants: training images per class drawn from the train split
    shot_seed: int = 1  # the few-shot draw's seed (never the run seed)

    def validate(self) -> None:
        for key in ("train_per_class", "test_per_class", "reference_size"):
            if getattr(self, key) <= 0:
                raise UserError(f"benchmark.{key} must be positive, got {getattr(self, key)}")
        if self.novel_lr is not None and self.novel_lr <= 0:
            raise UserError(f"benchmark.novel_lr must be positive or null, got {self.novel_lr}")
        if self.shots is not None and self.shots <= 0:
            raise UserError(f"benchmark.shots must be positive, got {self.shots}")
        if not 0.0 <= self.synth_drop_prob <= 1.0:
            raise UserError(f"benchmark.synth_drop_prob must be in [0, 1], got {self.synth_drop_prob}")


def _dataset(images: np.ndarray, labels: np.ndarray, transforms: Transforms, split: str) -> ImageLabelDataset:
    """Training sets take the model's crop policy (the reference code's RandomResizedCrop); test sets none."""
    crop = transforms.train_crop_scale if split == "train" else None
    return ImageLabelDataset(to_chw_tensor(images), labels, transforms.mean, transforms.std, crop_scale=crop)


def _world_info(options: ShapesOptions, transforms: Transforms) -> dict[str, Any]:
    """What the engine's services read: the reference corpus (built on first use) and the synthetic backend."""

    def reference_data(_request: Any) -> Any:
        from clbench.reference_data import TensorReferenceData
        from clbench.world.corpus import reference_corpus

        corpus = reference_corpus(options.reference_size, transforms.image_size, options.data_seed)
        return TensorReferenceData(corpus.images, corpus.captions, transforms.mean, transforms.std)

    return {
        "services": {"reference_data": reference_data},
        "synthetic_backend": "procedural",
        "synthetic_generator": {"drop_prob": options.synth_drop_prob},
        "synthetic_vocabulary": SYNTHETIC_VOCABULARY,
        "data_seed": options.data_seed,
    }


def build_mtil(name: str, options: ShapesOptions, transforms: Transforms) -> Benchmark:
    options.validate()
    tasks, train, test = [], [], []
    for task_name in MTIL_ORDERS[name]:
        world_task = TASKS[task_name]
        tasks.append(world_task.spec(options.novel_lr if world_task.novel else None))
        for split, per_class, out in (("train", options.train_per_class, train),
                                      ("test", options.test_per_class, test)):
            images, labels = make_split(world_task, split, per_class, options.data_seed, transforms.image_size)
            out.append(_dataset(images, labels, transforms, split))
    info = _world_info(options, transforms)
    info["novel_tasks"] = [t for t in MTIL_ORDERS[name] if TASKS[t].novel]
    return Benchmark(name=name, protocol="mtil", tasks=tasks, train_datasets=train, test_datasets=test, info=info)


def build_few_shot(name: str, options: ShapesOptions, transforms: Transforms) -> Benchmark:
    """The base order's tasks with ``options.shots`` training images per class, under the variant's protocol."""
    from clbench.few_shot import few_shot

    options.validate()
    base, protocol = FEW_SHOT[name]
    if options.shots is None:
        raise UserError(f"{name} needs benchmark.shots (training images per class)")
    return few_shot(build_mtil(base, options, transforms), options.shots, options.shot_seed, name=name,
                    protocol=protocol)


def cil_class_order() -> list[int]:
    """The fixed order of the 50 shape-colour classes (indices into ``CIL_TASK.class_names``)."""
    return [int(i) for i in np.random.default_rng(CIL_CLASS_ORDER_SEED).permutation(len(CIL_TASK.classes))]


def build_cil(name: str, options: ShapesOptions, transforms: Transforms) -> Benchmark:
    """Step i holds the next 50/steps classes of the class order; labels are positions in that order."""
    options.validate()
    order = cil_class_order()
    steps = CIL_STEPS[name]
    per_step = len(order) // steps
    tasks, train, test = [], [], []
    for i in range(steps):
        ids = order[i * per_step:(i + 1) * per_step]
        tasks.append(TaskSpec(f"step{i + 1}", tuple(CIL_TASK.class_names[c] for c in ids), CIL_TASK.templates))
        position = {c: i * per_step + k for k, c in enumerate(ids)}
        for split, per_class, out in (("train", options.train_per_class, train),
                                      ("test", options.test_per_class, test)):
            images, labels = make_split(CIL_TASK, split, per_class, options.data_seed, transforms.image_size, ids)
            out.append(_dataset(images, np.array([position[int(c)] for c in labels]), transforms, split))
    return Benchmark(name=name, protocol="cil", tasks=tasks, train_datasets=train, test_datasets=test,
                     info=_world_info(options, transforms))


def _register(name: str, summary: str, protocol: str, builder: Any) -> None:
    BENCHMARKS.register(name)(BenchmarkDef(
        name=name,
        summary=summary,
        protocol=protocol,
        options=ShapesOptions,
        build=lambda options, transforms: builder(name, options, transforms),
        defaults=load_defaults(YAML, name),
        data_help="rendered in memory by clbench.world; nothing to download",
    ))


for _name, _order in MTIL_ORDERS.items():
    _register(_name, f"offline shapes world, {len(_order)} tasks ({', '.join(_order)}), bundled tiny CLIP [mtil]",
              "mtil", build_mtil)
_register("shapes_mtil_order1_5shot", "offline shapes world, few-shot MTIL: shapes_mtil_order1 with 5 training "
          "images per class, bundled tiny CLIP [mtil]", "mtil", build_few_shot)
_register("shapes_xtail_order1", "offline shapes world, X-TAIL: shapes_mtil_order1's tasks, 16 shots/class, test "
          "over the union of all classes, no domain label [xtail]", "xtail", build_few_shot)
for _name, _steps in CIL_STEPS.items():
    _register(_name, f"offline shapes world, 50 shape-colour classes in {_steps} steps, bundled tiny CLIP [cil]",
              "cil", build_cil)
