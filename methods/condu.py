"""``condu``: ConDU (Gao et al., ICLR 2026) — continual decoupling and unifying of task models, full fine-tuning.

Reference: ``zhangzicong518/ConDU`` (``src/delta_models.py``, ``src/main.py``, ``src/models/finetune.py``,
``src/models/evaluation.py``). Each task is fine-tuned from the pretrained model with ZSCL's loss and schedule
(``scripts/MTIL_FT.sh``: no ``--load``, 1000 iterations, lr 1e-5 / 5e-5, label smoothing 0.2). Its delta
theta_t - theta_0 is unified with the deltas decoupled from the previous unified model; only the unified delta,
one sign mask and one rescaler per task (the "task triggers") and each task's class prototypes are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from clbench.classifier import Classifier, HeadSpec, TextHeadClassifier
from clbench.errors import UserError
from clbench.method import Method, TaskState
from clbench.registry import register_method
from clbench.weights import Weights, load_weights, snapshot


@dataclass
class ConDUConfig:
    logits_num: int = 4  # task-agnostic: how many routed task models vote beside the pretrained one (args.py:74)


def unify(deltas: list[Weights]) -> tuple[Weights, list[dict[str, torch.Tensor]], list[float]]:
    """ConDU ``unify_delta_models`` (``src/delta_models.py:86-126``), per parameter tensor n:

    flag = +1 where mean_m delta_m > 0, else -1; mask_m = delta_m * flag > 0; unified = flag * max_m |mask_m delta_m|;
    rescaler_m = sum_n mean|delta_m| / sum_n mean|unified * mask_m|. Returns (unified, masks, rescalers).
    """
    unified: Weights = {}
    masks: list[dict[str, torch.Tensor]] = [{} for _ in deltas]
    scales = [0.0 for _ in deltas]
    for n in deltas[0]:
        stacked = torch.stack([d[n] for d in deltas])
        flag = torch.where(stacked.mean(0) > 0, 1.0, -1.0).to(stacked.dtype)
        param_max = torch.zeros_like(stacked[0])
        for m, d in enumerate(deltas):
            mask = (d[n] * flag) > 0
            masks[m][n] = mask
            param_max = torch.maximum(param_max, (mask * d[n]).abs())
            scales[m] += float(d[n].abs().mean())
        unified[n] = param_max * flag
    new_scales = [sum(float((unified[n] * masks[m][n]).abs().mean()) for n in unified) for m in range(len(deltas))]
    rescalers = [s / ns if ns > 0 else 0.0 for s, ns in zip(scales, new_scales, strict=True)]
    return unified, masks, rescalers


def decouple(unified: Weights, mask: dict[str, torch.Tensor], rescaler: float) -> Weights:
    """Task m's delta from the unified model (``src/main.py:72-75``): unified * mask_m * rescaler_m."""
    return {n: unified[n] * mask[n] * rescaler for n in unified}


class ConDUClassifier:
    """Task-aware heads (one task: MTIL) use that task's decoupled model, or the pretrained model for a task not
    learned yet (``evaluation.py:94-130``). Heads over several tasks (X-TAIL's union, cil) have no domain label:
    each image is routed by its pretrained features' best cosine similarity to each task's prototypes, and the
    logits of the pretrained model and of the ``logits_num`` best-matching task models are averaged
    (``evaluation.py:132-243``)."""

    def __init__(self, method: ConDU) -> None:
        self.method = method

    def _scorer(self, model: nn.Module) -> TextHeadClassifier:
        return TextHeadClassifier(model, self.method.ctx.text_heads)

    def logits(self, images: torch.Tensor, head: HeadSpec) -> torch.Tensor:
        m = self.method
        pretrained = m.ctx.initial_model()
        if len(head.groups) == 1:
            name = head.groups[0].task
            model = m.task_model(name) if name in m.tasks else pretrained
            return self._scorer(model).logits(images, head)
        zero_shot = self._scorer(pretrained)
        if not m.tasks:
            return zero_shot.logits(images, head)
        feats = zero_shot.image_features(images)
        sims = torch.stack([(feats @ m.prototypes[t].to(feats.device).t()).max(dim=1).values for t in m.tasks], 1)
        k = min(m.config.logits_num, len(m.tasks))
        chosen = sims.argsort(dim=1, descending=True)[:, :k]  # (B, k) task indices
        per_model = torch.stack([self._scorer(m.task_model(t)).logits(images, head) for t in m.tasks])  # (T, B, C)
        rows = torch.arange(len(images), device=images.device)[:, None].expand(-1, k)
        routed = per_model[chosen, rows]  # (B, k, C)
        return (zero_shot.logits(images, head) + routed.sum(dim=1)) / (k + 1)


@register_method("condu")
class ConDU(Method):
    """ConDU, full fine-tuning variant (the paper's "ConDU (FT)").

    Per task: reset to the pretrained weights, fine-tune as ``finetune`` (ZSCL's loss), then decouple every
    previous task's delta from the unified model, unify them with the new delta (:func:`unify`), and store the
    task's prototypes: per class, normalise(mean pretrained image feature of its training images + mean of its
    per-template normalised pretrained text features) / 2 (``finetune.py:156-195``). Inference: see
    :class:`ConDUClassifier`. Deviations: the task's images are read once more after training for the
    prototypes (the reference re-reads its train loader too); both encoders train (ConDU's ``--train-mode=whole``,
    no deviation). The LoRA variant is ``condu_lora`` (methods/condu_lora.py).
    """

    paper: ClassVar[str] = ("Gao et al., Enhanced Continual Learning of Vision-Language Models with Model Fusion "
                            "(ConDU), ICLR 2026")
    Config: ClassVar[type] = ConDUConfig
    # CE per example; prototypes from the whole task data on every rank, merges of identical weights
    distributed: ClassVar[bool] = True

    def before_run(self) -> None:
        if self.config.logits_num < 1:
            raise UserError(f"condu.logits_num must be at least 1, got {self.config.logits_num}")
        self.tasks: list[str] = []
        self.unified: Weights | None = None
        self.masks: list[dict[str, torch.Tensor]] = []
        self.rescalers: list[float] = []
        self.prototypes: dict[str, torch.Tensor] = {}
        self._models: dict[str, nn.Module] = {}

    def task_weights(self, model: nn.Module) -> Weights:
        """The weights a task model differs in, whose deltas are unified: every parameter (full fine-tuning;
        ``condu_lora``: the LoRA factors only)."""
        return snapshot(model)

    def before_task(self, task: TaskState) -> None:
        """Every task fine-tunes from the pretrained weights (``scripts/MTIL_FT.sh``: no ``--load``)."""
        load_weights(self.model, self.task_weights(self.ctx.initial_model()))
        self.ctx.weights_changed()

    def after_task(self, task: TaskState) -> None:
        base = self.task_weights(self.ctx.initial_model())
        current = self.task_weights(self.model)
        previous = [decouple(self.unified, mk, r) for mk, r in zip(self.masks, self.rescalers, strict=True)] \
            if self.unified is not None else []
        self.unified, self.masks, self.rescalers = unify(previous + [{n: current[n] - base[n] for n in base}])
        self.tasks.append(task.spec.name)
        self.prototypes[task.spec.name] = self._prototypes(task)
        self._models = {}

    @torch.no_grad()
    def _prototypes(self, task: TaskState) -> torch.Tensor:
        pretrained = self.ctx.initial_model()
        names = task.train_class_names
        sums: torch.Tensor | None = None
        counts = torch.zeros(len(names), device=self.ctx.device)
        for batch in self.ctx.task_batches():
            feats = F.normalize(pretrained.encode_image(batch.images).float(), dim=-1)
            if sums is None:
                sums = torch.zeros(len(names), feats.shape[1], device=feats.device)
            sums.index_add_(0, batch.labels, feats)
            counts += torch.bincount(batch.labels, minlength=len(names)).float()
        protos = []
        for c, name in enumerate(names):
            text = self.ctx.encode_texts(pretrained, [t.format(name) for t in task.spec.templates]).mean(0)
            proto = text if sums is None or counts[c] == 0 else (sums[c] / counts[c] + text) / 2
            protos.append(F.normalize(proto, dim=-1))
        return torch.stack(protos)

    def task_model(self, name: str) -> nn.Module:
        """Task ``name``'s decoupled model, theta_0 + unified * mask * rescaler (built once per unification)."""
        if name not in self._models:
            assert self.unified is not None
            i = self.tasks.index(name)
            base = self.task_weights(self.ctx.initial_model())
            delta = decouple(self.unified, self.masks[i], self.rescalers[i])
            model = self.ctx.frozen_copy(self.ctx.initial_model())
            load_weights(model, {n: base[n] + delta[n] for n in base})
            self.ctx.weights_changed(model)
            self._models[name] = model
        return self._models[name]

    def classifier(self) -> Classifier:
        return ConDUClassifier(self)

    def state_dict(self) -> dict[str, Any]:
        if self.unified is None:
            return {}
        return {"tasks": list(self.tasks), "unified": self.unified, "masks": self.masks,
                "rescalers": list(self.rescalers), "prototypes": [self.prototypes[t] for t in self.tasks]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.tasks = list(state["tasks"])
        self.unified, self.masks = state["unified"], list(state["masks"])
        self.rescalers = [float(r) for r in state["rescalers"]]
        self.prototypes = dict(zip(self.tasks, state["prototypes"], strict=True))
        self._models = {}
