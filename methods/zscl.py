"""``zscl``: ZSCL — distil the pretrained CLIP on reference data, plus weight ensemble and an L2 anchor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from clbench.context import trainable_parameters
from clbench.losses import feature_distillation
from clbench.method import Batch, Method, StepLogs, TaskState
from clbench.reference_data import ReferenceData
from clbench.registry import register_method
from clbench.weights import RunningAverage, Weights, load_weights, snapshot, squared_distance


@dataclass
class ZSCLConfig:
    ref_images: str | None = None  # folder of reference images (when the benchmark offers no reference data)
    ref_texts: str | None = None  # file of reference captions, one per line
    ref_batch_size: int | None = None  # reference images per step (None: the task batch size, as ZSCL)
    temperature: float = 2.0  # ``--T``
    image_weight: float = 1.0  # ``--image_loss`` (MTIL 1; CIL code 5)
    text_weight: float = 1.0  # ``--text_loss`` (MTIL 1; CIL code 5)
    weight_average: bool = True  # ``--we``
    avg_freq: int = 100  # ``--avg_freq`` (MTIL 100; CIL 10)
    l2_weight: float = 1.0  # ``--l2 1`` of the released MTIL script; 0 switches it off
    cache_teacher: bool = True  # cache the teacher's image features per reference image


class TeacherFeatureCache:
    """Frozen-teacher features per reference-image index: each image is encoded at most once per run.

    Images are encoded in fixed blocks of the index space (``block`` consecutive indices, loaded by ``load``),
    not in the batch that first asks for them: a feature's value (float rounding depends on the batch it is
    computed in) is then the same whatever the history, so a resumed run (which starts with an empty cache)
    computes exactly the features of the uninterrupted one.
    """

    def __init__(self, encode: Callable[[torch.Tensor], torch.Tensor], load: Callable[[torch.Tensor], torch.Tensor],
                 num_images: int, block: int = 256) -> None:
        self.encode, self.load = encode, load
        self.num_images, self.block = num_images, block
        self.features: torch.Tensor | None = None
        self.known = torch.zeros(num_images, dtype=torch.bool)
        self.encoded = 0  # images actually encoded (for tests and logs)

    def get(self, indices: torch.Tensor) -> torch.Tensor:
        """Features of the reference images ``indices``, encoding the blocks of the unseen ones."""
        missing = indices[~self.known[indices]]
        for b in torch.unique(missing // self.block).tolist():
            block = torch.arange(b * self.block, min((b + 1) * self.block, self.num_images))
            new = self.encode(self.load(block))
            if self.features is None:
                self.features = torch.zeros(self.num_images, new.shape[1], dtype=new.dtype, device=new.device)
            self.features[block.to(new.device)] = new
            self.known[block] = True
            self.encoded += len(block)
        assert self.features is not None
        return self.features[indices.to(self.features.device)]


@register_method("zscl")
class ZSCL(Method):
    """ZSCL (Zheng et al., ICCV 2023), the released MTIL configuration (``mtil/scripts/ZSCL.sh``).

    Teacher = the pretrained model, fixed for the whole run. Each step adds a batch of reference images
    scored against all reference captions: L_img = CE(S/T, softmax(Tch/T)) T^2 over images x captions and
    L_txt the same on the transposed logits (T = 2), student logits s f_student(x) g_teacher^T, teacher logits
    s f_teacher(x) g_teacher^T. Loss = CE_task + L_img + L_txt + l2 * sum ||theta - theta_task-start||^2.
    Weight ensemble: theta_bar starts at the task-start weights and absorbs the weights every ``avg_freq``
    steps, theta_bar <- (theta_bar n + theta) / (n + 1); at the end of the task the model takes theta_bar (it is
    evaluated and starts the next task). CIL settings of the code: weights 5/5, ``avg_freq`` 10, no l2.

    Faster than the reference, same values: the reference captions are encoded by the teacher once per run
    (the code re-encodes them every iteration) and the teacher's image features are cached per reference
    image (encoded in fixed blocks of 256 indices, so that a resumed run gets the same features to the bit);
    the teacher runs under ``inference_mode`` (and bf16 autocast on CUDA, as the student does).

    Averaging schedule as the code: the engine takes ``iterations + 1`` steps (``train.final_step``, the code's
    ``range(total_iterations + 1)``) and the average absorbs the weights after step ``i`` whenever
    ``i % avg_freq == 0`` (MTIL: 0, 100, ..., 1000, i.e. 11 snapshots plus the start; CIL with 79 steps and
    ``avg_freq`` 10: 0, 10, ..., 70, so the last weights are not included, as in the code).

    Declared deviation from the reference code:
    - The reference images are whatever the benchmark offers (the world's corpus) or the user's folder, and
      the captions any one-per-line file (the code: ImageNet train images, Conceptual Captions captions).
    """

    paper: ClassVar[str] = ("Zheng et al., Preventing Zero-Shot Transfer Degradation in Continual Learning of "
                            "Vision-Language Models (ZSCL), ICCV 2023")
    Config: ClassVar[type] = ZSCLConfig
    # CE per example; the reference batch (sized by batch.step_size) is the same on every rank, so are the
    # parameters after every step and hence the weight average
    distributed: ClassVar[bool] = True
    services: ClassVar[tuple[str, ...]] = ("reference_data",)

    ref_text: torch.Tensor | None = None
    cache: TeacherFeatureCache | None = None
    anchor: Weights | None = None
    average: RunningAverage | None = None
    _ref_iter: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None

    def before_run(self) -> None:
        self.reference: ReferenceData = self.ctx.service("reference_data")
        self.teacher = self.ctx.initial_model()
        with self.ctx.autocast():
            self.ref_text = self.ctx.encode_texts(self.teacher, self.reference.captions)
        self.cache = TeacherFeatureCache(self.teacher_features, self.load_reference, self.reference.num_images)

    def load_reference(self, indices: torch.Tensor) -> torch.Tensor:
        return self.reference.image_batch(indices).to(self.ctx.device, non_blocking=True)

    def teacher_features(self, images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), self.ctx.autocast():
            feats = F.normalize(self.teacher.encode_image(images), dim=-1)
        return feats.float().clone()

    def before_task(self, task: TaskState) -> None:
        self._generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        self._ref_iter = None
        self._ref_drawn = 0  # reference batches drawn this task (a mid-task resume skips them)
        start = snapshot(self.model)
        self.anchor = {n: start[n] for n, _ in trainable_parameters(self.model)} if self.config.l2_weight else None
        self.average = RunningAverage(start) if self.config.weight_average else None

    def reference_batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._ref_iter is None:
            self._ref_iter = self.reference.batches(self.config.ref_batch_size or batch_size, self._generator,
                                                    skip=self._ref_drawn)
        indices, images = next(self._ref_iter)
        self._ref_drawn += 1
        return indices, images.to(self.ctx.device, non_blocking=True)

    def zscl_loss(self, indices: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_img, L_txt) on one reference batch; the teacher's features come from the cache when enabled."""
        assert self.cache is not None and self.ref_text is not None
        teacher = self.cache.get(indices) if self.config.cache_teacher else self.teacher_features(images)
        student = F.normalize(self.model.encode_image(images), dim=-1)
        scale = self.ctx.logit_scale(self.model)
        return feature_distillation(student, teacher, self.ref_text, scale, self.config.temperature)

    def training_step(self, batch: Batch, task: TaskState, step: int) -> StepLogs:
        cfg: ZSCLConfig = self.config
        ce = self.task_loss(batch, task)
        l_img, l_txt = self.zscl_loss(*self.reference_batch(batch.step_size))
        loss = ce + cfg.image_weight * l_img + cfg.text_weight * l_txt
        logs = {"ce": ce.detach(), "zscl_image": l_img.detach(), "zscl_text": l_txt.detach()}
        if self.anchor is not None:
            l2 = squared_distance(trainable_parameters(self.model), self.anchor)
            loss = loss + cfg.l2_weight * l2
            logs["l2"] = l2.detach()
        self.ctx.backward(loss)
        return {"loss": loss.detach(), **logs}

    def after_step(self, task: TaskState, step: int) -> None:
        # mtil/src/models/finetune.py:310 and cil/continual_clip/models.py:274: ``iteration % avg_freq == 0`` only
        if self.average is not None and step % self.config.avg_freq == 0:
            self.average.update(self.model)

    def step_state_dict(self) -> dict[str, Any]:
        """The running average (mean, count) and the reference batches drawn; anchor and generator are rebuilt
        by the replayed ``before_task``; the teacher-feature cache refills on demand with the same values
        (fixed blocks, :class:`TeacherFeatureCache`)."""
        average = None if self.average is None else {"mean": self.average.mean, "count": self.average.count}
        return {"average": average, "ref_drawn": self._ref_drawn}

    def load_step_state_dict(self, state: dict[str, Any]) -> None:
        if state["average"] is not None:
            assert self.average is not None
            self.average.mean = {n: t.to(self.ctx.device) for n, t in state["average"]["mean"].items()}
            self.average.count = int(state["average"]["count"])
        self._ref_drawn, self._ref_iter = int(state["ref_drawn"]), None

    def after_task(self, task: TaskState) -> None:
        if self.average is not None:
            load_weights(self.model, self.average.mean)
            self.ctx.weights_changed()
        self.anchor, self.average, self._ref_iter = None, None, None
