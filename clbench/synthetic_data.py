"""The ``synthetic_data`` service: GIFT's generated image-prompt pairs, per task, from the shared cache.

The provider runs before training: it plans every task's prompts (:mod:`clbench.synth.prompts`), generates
what the cache lacks (:mod:`clbench.synth.cache`) with the benchmark's backend — the procedural one in the
offline world (``bench.info["synthetic_backend"] == "procedural"``), diffusers otherwise — and hands the method
a :class:`SyntheticData`. A method reads it through ``ctx.service("synthetic_data")``: ``task(i)`` holds task
``i``'s images (decoded once, at the model's resolution) and ``batches(i)`` gives endless shuffled batches.

Options come from the method config's ``synth_*`` fields (see :class:`SyntheticOptions`), so ``clbench synth``
and ``clbench run`` resolve the same config and address the same cache.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from PIL import Image

from clbench.benchmark import Benchmark
from clbench.errors import UserError
from clbench.services import ServiceRequest, register_service
from clbench.synth.base import ImageGenerator
from clbench.synth.cache import CorruptCacheError, SyntheticCache
from clbench.synth.diffusers_backend import (
    DEFAULT_MODEL,
    DiffusersGenerator,
    DiffusersOptions,
    check_compile,
    default_generation_batch,
)
from clbench.synth.prompts import Plan, Vocabulary, imagenet_vocabulary, make_plan

BACKENDS = ("auto", "diffusers", "procedural")


@dataclass(frozen=True)
class SyntheticOptions:
    """How the synthetic data are made and served; a method config sets them as ``synth_<name>``."""

    backend: str = "auto"  # auto: the benchmark's hint (procedural in the offline world), else diffusers
    images_per_task: int = 1000
    seed: int = 0  # the synthetic-data seed (official formula), independent of the run seed: one cache per benchmark
    batch_size: int | None = None  # pairs per training step; None: the task batch size (GIFT: 64 and 64)
    model: str = DEFAULT_MODEL  # diffusers pipeline id or local folder
    steps: int = 50
    guidance: float = 7.5
    size: int = 512
    dtype: str = "auto"
    safety_checker: bool = True
    generation_batch: int | None = None  # prompts per generator call; None: 1000 (procedural), diffusers: 8 on
    # CPU, 8 per 16 GiB of GPU memory on CUDA (at most 64)
    compile: str = "none"  # torch.compile mode of the diffusers UNet (none | default | reduce-overhead | max-autotune)
    cache: str | None = None  # cache root; None: $CLBENCH_SYNTH_CACHE or ~/.cache/clbench/synth
    image_format: str = "png"
    allow_download: bool = False
    progress: bool = True


def options_from(method_config: Any, **overrides: Any) -> SyntheticOptions:
    """The ``synth_<name>`` fields of a method config (defaults for the absent ones), then ``overrides``."""
    values = {f.name: getattr(method_config, f"synth_{f.name}") for f in fields(SyntheticOptions)
              if hasattr(method_config, f"synth_{f.name}")}
    values.update({k: v for k, v in overrides.items() if v is not None})
    options = SyntheticOptions(**values)
    if options.backend not in BACKENDS:
        raise UserError(f"synth_backend must be one of {', '.join(BACKENDS)}, not {options.backend!r}")
    check_compile(options.compile)
    return options


def backend_for(options: SyntheticOptions, bench: Benchmark) -> str:
    if options.backend != "auto":
        return options.backend
    return str(bench.info.get("synthetic_backend", "diffusers"))


def task_vocabularies(bench: Benchmark) -> list[Vocabulary]:
    """Each task's class names with its first template (the prompts GIFT adds for earlier tasks)."""
    return [Vocabulary(t.name, tuple(t.class_names), t.templates[0]) for t in bench.tasks]


def base_vocabulary(bench: Benchmark) -> Vocabulary:
    """The "pre-training vocabulary": ImageNet-1k, or the benchmark's own (``bench.info["synthetic_vocabulary"]``)."""
    hint = bench.info.get("synthetic_vocabulary")
    if hint is None:
        return imagenet_vocabulary()
    if isinstance(hint, Vocabulary):
        return hint
    name, class_names, template = hint
    return Vocabulary(str(name), tuple(class_names), str(template))


def plan_for(bench: Benchmark, options: SyntheticOptions) -> Plan:
    return make_plan(task_vocabularies(bench), base_vocabulary(bench), options.images_per_task, options.seed)


def make_generator(options: SyntheticOptions, bench: Benchmark, image_size: int,
                   device: str | torch.device = "auto") -> ImageGenerator:
    """The backend's generator; nothing heavy happens until its first ``generate`` call."""
    backend = backend_for(options, bench)
    if backend == "procedural":
        from clbench.synth.procedural import ProceduralGenerator

        return ProceduralGenerator(image_size=image_size, **dict(bench.info.get("synthetic_generator", {})))
    if backend == "diffusers":
        return DiffusersGenerator(
            DiffusersOptions(model=options.model, steps=options.steps, guidance=options.guidance, size=options.size,
                             dtype=options.dtype, safety_checker=options.safety_checker),
            device=device, allow_download=options.allow_download, compile=options.compile)
    raise UserError(f"unknown synthetic backend {backend!r}; valid: diffusers, procedural")


def generation_batch(options: SyntheticOptions, generator: ImageGenerator) -> int:
    if options.generation_batch is not None:
        return options.generation_batch
    if generator.backend == "procedural":
        return 1000
    return default_generation_batch(getattr(generator, "device", torch.device("cpu")))


def ensure_generated(cache: SyntheticCache, plan: Plan, generator: ImageGenerator, options: SyntheticOptions,
                     desc: str = "synthetic data", counts: dict[str, int] | None = None) -> dict[str, Any]:
    """The plan's manifest, generating whatever the cache lacks first (no-op when the manifest exists).

    ``counts["generated"]`` (when given) grows by the images generated here (the run's cost accounting).
    """
    manifest = cache.read_manifest(plan)
    if manifest is not None:
        return manifest
    try:
        report = cache.generate(plan, lambda: generator, batch_size=generation_batch(options, generator),
                                progress=options.progress, desc=desc)
        if counts is not None:
            counts["generated"] = counts.get("generated", 0) + report.generated
    finally:
        close = getattr(generator, "close", None)
        if callable(close):  # e.g. free the diffusion pipeline before training starts
            close()
    cache.write_manifest(plan)
    manifest = cache.read_manifest(plan)
    assert manifest is not None
    return manifest


@dataclass
class SyntheticBatch:
    """Image-prompt pairs on the training device.

    ``prompt_ids`` index :attr:`SyntheticTask.prompts` (equal ids = equal prompts: GIFT's alignment targets);
    ``indices`` are the pairs' fixed positions in the task's set (a frozen teacher's features can be cached).
    """

    images: torch.Tensor
    prompts: tuple[str, ...]
    prompt_ids: torch.Tensor
    indices: torch.Tensor


class SyntheticTask:
    """One task's synthetic set in memory: preprocessed images and the distinct prompts they were made from.

    Images are kept as float16 after the model's evaluation transform (GIFT uses the test preprocess): the
    rounding (< 2e-3 in normalised units) is far below one 8-bit step of the source image.
    """

    def __init__(self, images: torch.Tensor, prompts: Sequence[str], classes: Sequence[str] | None = None) -> None:
        if images.ndim != 4 or len(images) != len(prompts):
            raise ValueError("one (3, H, W) image per prompt expected")
        if len(images) == 0:
            raise ValueError("the synthetic set is empty")
        self.images = images.to(torch.float16)
        self.prompts: tuple[str, ...] = tuple(dict.fromkeys(prompts))
        position = {p: i for i, p in enumerate(self.prompts)}
        self.prompt_ids = torch.tensor([position[p] for p in prompts], dtype=torch.long)
        self.classes = tuple(classes) if classes is not None else tuple(prompts)

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, indices: torch.Tensor, device: torch.device) -> SyntheticBatch:
        ids = self.prompt_ids[indices]
        return SyntheticBatch(images=self.images[indices].to(device, torch.float32),
                              prompts=tuple(self.prompts[int(i)] for i in ids),
                              prompt_ids=ids.to(device), indices=indices.to(device))


class SyntheticData:
    """Synthetic sets of every task, decoded one task at a time, with reproducible batch orders."""

    def __init__(self, load_task: Callable[[int], SyntheticTask], num_tasks: int, batch_size: int, seed: int,
                 device: torch.device | str = "cpu") -> None:
        self._load_task = load_task
        self.num_tasks = num_tasks
        self.batch_size = batch_size
        self.seed = seed
        self.device = torch.device(device)
        self._current: tuple[int, SyntheticTask] | None = None
        self.generated_images = 0  # images the provider generated for this run (0: all found in the cache)

    @classmethod
    def from_tasks(cls, tasks: Sequence[SyntheticTask], batch_size: int, seed: int = 0,
                   device: torch.device | str = "cpu") -> SyntheticData:
        """In-memory sets (tests, custom data)."""
        return cls(lambda i: tasks[i], len(tasks), batch_size, seed, device)

    def task(self, index: int) -> SyntheticTask:
        """Task ``index``'s (0-based) set; only the latest one is kept in memory."""
        if not 0 <= index < self.num_tasks:
            raise IndexError(f"no synthetic set for task {index}")
        if self._current is None or self._current[0] != index:
            self._current = None
            self._current = (index, self._load_task(index))
        return self._current[1]

    def batches(self, index: int, skip: int = 0) -> Iterator[SyntheticBatch]:
        """Endless epochs of task ``index``'s pairs; each a permutation drawn from (run seed, task).

        The last short batch of an epoch is kept, as a ``DataLoader`` over the set would. ``skip`` leaves out
        the first ``skip`` batches without building them (a mid-task resume continues the same sequence).
        """
        data = self.task(index)
        generator = torch.Generator().manual_seed(self.seed * 1009 + index + 7919)
        while True:
            order = torch.randperm(len(data), generator=generator)
            for start in range(0, len(order), self.batch_size):
                if skip:
                    skip -= 1
                    continue
                yield data.batch(order[start:start + self.batch_size], self.device)


def decode_task(cache: SyntheticCache, manifest: dict[str, Any], index: int,
                transform: Callable[[Image.Image], torch.Tensor]) -> SyntheticTask:
    """Task ``index``'s images from the cache through ``transform`` (raises CorruptCacheError on bad files)."""
    images, prompts, classes = [], [], []
    for record, data in cache.task_images(manifest, index):
        with Image.open(io.BytesIO(data)) as im:
            images.append(transform(im.convert("RGB")))
        prompts.append(record["prompt"])
        classes.append(record["class"])
    if not images:
        raise UserError(f"every synthetic image of task {index + 1} was dropped by the safety checker")
    return SyntheticTask(torch.stack(images), prompts, classes)


@register_service("synthetic_data")
def provide_synthetic_data(request: ServiceRequest) -> SyntheticData:
    """Generate (once, for all tasks) and serve the synthetic data of ``request.benchmark``."""
    bench = request.benchmark
    options = options_from(request.method_config)
    if options.progress and not (sys.stderr.isatty() and not request.quiet):
        options = replace(options, progress=False)  # no bar in logs or quiet runs
    plan = plan_for(bench, options)
    generator = make_generator(options, bench, request.transforms.image_size, request.device)
    cache = SyntheticCache(generator.config(), options.cache, options.image_format)
    counts = {"generated": 0}
    manifest = ensure_generated(cache, plan, generator, options, desc=f"synthetic data for {bench.name}",
                                counts=counts)

    def load(index: int) -> SyntheticTask:
        nonlocal manifest
        try:
            return decode_task(cache, manifest, index, request.transforms.eval)
        except CorruptCacheError:  # files were damaged since the manifest: regenerate them, once
            cache.manifest_path(plan).unlink(missing_ok=True)
            manifest = ensure_generated(cache, plan, generator, options, desc="regenerating damaged images")
            return decode_task(cache, manifest, index, request.transforms.eval)

    data = SyntheticData(load, len(bench.tasks), options.batch_size or request.batch_size, request.seed,
                         request.device)
    data.generated_images = counts["generated"]
    return data
