"""``diki``: DIKI (Tang et al., ECCV 2024) — frozen CLIP + residual attention prefixes + distribution-aware
calibration."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn
from torch.distributions import MultivariateNormal

from clbench.classifier import HeadSpec
from clbench.errors import UserError
from clbench.method import Batch, Method, StepLogs, TaskState
from clbench.peft import transformer_blocks
from clbench.registry import register_method
from clbench.text_heads import class_embeddings


class Route:
    """Which task prefix the patched blocks add, per sequence: ``index`` (an int for all, or (B,) per image) and
    ``weight`` (None = 1, a float, or (B,)); ``index`` None = the frozen zero-shot CLIP."""

    index: int | torch.Tensor | None = None
    weight: float | torch.Tensor | None = None


@contextmanager
def routed(route: Route, index: int | torch.Tensor | None, weight: float | torch.Tensor | None = None
           ) -> Iterator[None]:
    before, route.index, route.weight = (route.index, route.weight), index, weight
    try:
        yield
    finally:
        route.index, route.weight = before


class TaskPrefixes(nn.Module):
    """One (2, L, D) key/value prefix per task; keys U(-1, 1), values 0, so an untrained prefix adds nothing
    (clip/attention.py:168-173)."""

    def __init__(self, tasks: int, length: int, dim: int) -> None:
        super().__init__()
        self.prompts = nn.ParameterList()
        for _ in range(tasks):
            p = torch.zeros(2, length, dim)
            nn.init.uniform_(p[0], -1.0, 1.0)
            self.prompts.append(nn.Parameter(p))

    def select(self, index: int | torch.Tensor) -> torch.Tensor:
        """(1 or B, 2, L, D) prefixes of one task, or of each image's task."""
        if isinstance(index, int):
            return self.prompts[index].unsqueeze(0)
        return torch.stack(list(self.prompts))[index]


def residual_prefix_attention(x: torch.Tensor, attn: nn.MultiheadAttention, prefix: torch.Tensor,
                              weight: float | torch.Tensor | None, attn_mask: torch.Tensor | None) -> torch.Tensor:
    """out_proj(softmax(q k^T) v + w * softmax(q P_k^T) P_v), batch-first (B, N, D): the prefix is a second,
    separately normalised attention over keys/values already in head space (not projected), with no mask,
    scaled per sequence by ``w`` and added before the output projection (clip/attention.py:84-144)."""
    heads = attn.num_heads
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)

    def split(t: torch.Tensor) -> torch.Tensor:  # (B, N, D) -> (B, H, N, D/H)
        return t.unflatten(-1, (heads, -1)).transpose(1, 2)

    q = split(q)
    out = F.scaled_dot_product_attention(q, split(k), split(v), attn_mask=attn_mask)
    pk, pv = (split(prefix[:, i].to(q.dtype).expand(x.shape[0], -1, -1)) for i in (0, 1))
    res = F.scaled_dot_product_attention(q, pk, pv)
    if weight is not None:
        res = res * (weight.to(res.dtype).view(-1, 1, 1, 1) if torch.is_tensor(weight) else weight)
    return attn.out_proj((out + res).transpose(1, 2).flatten(2))


class DIKIBlock(ResidualAttentionBlock):
    """open_clip's block whose attention adds the routed task prefix; without a route it is the frozen block."""

    diki: TaskPrefixes
    route: Route

    def attention(self, q_x: torch.Tensor, k_x: torch.Tensor | None = None, v_x: torch.Tensor | None = None,
                  attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.route.index is None or k_x is not None:
            return super().attention(q_x, k_x, v_x, attn_mask)
        mask = attn_mask.to(q_x.dtype) if attn_mask is not None else None
        return residual_prefix_attention(q_x, self.attn, self.diki.select(self.route.index), self.route.weight, mask)


class TaskGaussians:
    """Per-task Gaussian of the frozen, normalised image features (DIKI.py:361-376) and the calibration:
    per image the task of highest log-likelihood and the weight sigmoid(log p / scale - 1) (DIKI.py:168-172)."""

    def __init__(self) -> None:
        self.means: list[torch.Tensor] = []
        self.covs: list[torch.Tensor] = []
        self._dists: list[MultivariateNormal] = []

    def add(self, features: torch.Tensor) -> None:
        feats = features.float()
        mean = feats.mean(dim=0)
        delta = feats - mean
        cov = delta.t() @ delta / (len(feats) - 1) + 1e-7 * torch.eye(feats.shape[1], device=feats.device)
        self.means.append(mean)
        self.covs.append(cov)
        self._dists = []

    def log_prob(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T) log-likelihood of each image under each task's Gaussian."""
        if len(self._dists) != len(self.means):
            self._dists = [MultivariateNormal(m, c) for m, c in zip(self.means, self.covs, strict=True)]
        return torch.stack([d.log_prob(features.float()) for d in self._dists], dim=1)

    def calibrate(self, features: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        top, index = self.log_prob(features).max(dim=1)
        return index, torch.sigmoid(top / scale - 1.0)


class CalibratedClassifier:
    """Per image: the task of its most likely Gaussian selects the prefixes of both encoders, weighted by the
    calibration; before any task, the frozen zero-shot CLIP."""

    def __init__(self, model: nn.Module, method: DIKI) -> None:
        self.model, self.method = model.eval(), method
        self.zero_shot: dict[Any, torch.Tensor] = {}

    def text_head(self, index: int | None, weight: float | None, head: HeadSpec) -> torch.Tensor:
        ctx, parts = self.method.ctx, []
        for g in head.groups:
            if index is None and g in self.zero_shot:
                parts.append(self.zero_shot[g])
                continue
            with routed(self.method.route, index, weight):
                emb = class_embeddings(self.model, ctx.tokenizer, g.class_names, g.templates, ctx.device).float()
            if index is None:
                self.zero_shot[g] = emb
            parts.append(emb)
        return torch.cat(parts)

    def logits(self, images: torch.Tensor, head: HeadSpec) -> torch.Tensor:
        cfg, gaussians = self.method.config, self.method.gaussians
        with routed(self.method.route, None):
            base = F.normalize(self.model.encode_image(images).float(), dim=-1)
        if not gaussians.means:
            return base @ self.text_head(None, None, head).t()
        index, weight = gaussians.calibrate(base, cfg.calibration_scale or base.shape[1])
        if cfg.batchwise_prompt:  # the batch's most chosen prompt for every image (DIKI.py:176-180)
            ids, counts = index.unique(return_counts=True)
            index = ids[counts.argmax()].expand_as(index)
        with routed(self.method.route, index, weight):
            feats = F.normalize(self.model.encode_image(images).float(), dim=-1)
        out = feats.new_zeros(len(images), head.num_classes)
        for i in index.unique().tolist():
            rows = (index == i).nonzero().flatten()
            text = self.text_head(int(i), float(weight[rows].mean()), head)  # text weight: mean (DIKI.py:173)
            out[rows] = feats[rows] @ text.t()
        return out


@dataclass
class DIKIConfig:
    depth_vision: int = 8  # DIKI.prompt_depth_vision (configs/MTIL.yaml): prefixes in the first 8 blocks
    depth_text: int = 8  # DIKI.prompt_depth_text
    length_vision: int = 8  # DIKI.n_ctx_vision
    length_text: int = 8  # DIKI.n_ctx_text
    tasks: int = 11  # prefix pool size = nb_task (DIKI.py:42); MTIL has 11
    prompt_lr: float = 5.0  # DIKI.optim: SGD, lr 5.0, weight decay 0
    weight_decay: float = 0.0
    label_smoothing: float = 0.0  # F.cross_entropy without smoothing (DIKI.py:391)
    batchwise_prompt: bool = False  # reference True: one prompt per test batch; here per image
    calibration_scale: float | None = None  # None: the feature dim (512 for ViT-B/16, the code's constant)


@register_method("diki")
class DIKI(Method):
    """DIKI (Tang et al., Mind the Interference: Retaining Pre-trained Knowledge in Parameter Efficient Continual
    Learning of Vision-Language Models, ECCV 2024; github.com/lloongx/DIKI).

    CLIP stays frozen. The first ``depth_*`` blocks of both encoders get one key/value prefix per task, attended
    in a separate residual branch whose values start at zero (clip/attention.py:84-173, clip/model.py:207-219).
    Before a task, a Gaussian is fitted to its frozen image features; training (SGD at ``prompt_lr``, plain CE)
    uses the task's own prefix at weight 1. At test time each image takes the prefix of its most likely task,
    scaled by sigmoid(log p / scale - 1) in the image branch and by the mean weight of the images sharing that
    prefix in the text branch, so out-of-distribution images fall back towards the zero-shot CLIP.

    Deviations from the reference code:
    - Prefix chosen per image (the code, ``batchwise_prompt: True``, gives a whole test batch its most chosen
      prompt; set ``batchwise_prompt=true`` for that). The text weight is the mean over the images of the
      evaluation batch sharing a prefix (the code: over the batch), so it depends on the evaluation batch size.
    - ``calibration_scale`` defaults to the feature dimension: the code divides by 512 = ViT-B/16's dim.
    - The benchmark's schedule length, batch size, warm-up, cosine to 0 (code: 10 epochs of batch 128, cosine to
      lr/1000, no warm-up: set in benchmarks/mtil.yaml) and final step; no best-epoch selection on a validation
      split; first template for training, the benchmark's template ensembles at test (code: one per dataset).
    - Training images get the engine's crops (the code trains on the test transform, main.py:17); statistics come
      from the task's training batches as the engine gives them. fp32 prefixes (the code's are fp16). The depth is
      clamped to the encoder's number of blocks.
    """

    paper: ClassVar[str] = ("Tang et al., Mind the Interference: Retaining Pre-trained Knowledge in Parameter "
                            "Efficient Continual Learning of Vision-Language Models, ECCV 2024")
    Config: ClassVar[type] = DIKIConfig

    def __init__(self, config: DIKIConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.gaussians = TaskGaussians()

    def patch_model(self, model: nn.Module) -> None:
        cfg = self.config
        model.diki_route = Route()
        for encoder, depth, length in (("image", cfg.depth_vision, cfg.length_vision),
                                       ("text", cfg.depth_text, cfg.length_text)):
            for block in transformer_blocks(model, encoder, "diki")[:depth]:
                block.diki = TaskPrefixes(cfg.tasks, length, block.ln_1.normalized_shape[0])
                block.route = model.diki_route
                block.__class__ = DIKIBlock

    @property
    def route(self) -> Route:
        return self.model.diki_route

    def task_schedule(self, task: TaskState, lr: float) -> tuple[float, None]:
        return self.config.prompt_lr, None

    def optimizer(self, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=lr, weight_decay=self.config.weight_decay)  # DIKI.py:346-347

    def before_task(self, task: TaskState) -> None:
        if task.num_tasks > self.config.tasks:
            raise UserError(f"diki has {self.config.tasks} task prefixes but the stream has {task.num_tasks} tasks; "
                            f"set diki.tasks={task.num_tasks}")
        feats = []
        with torch.inference_mode(), routed(self.route, None), self.ctx.autocast():
            self.model.eval()
            for batch in self.ctx.task_batches():
                feats.append(F.normalize(self.model.encode_image(batch.images).float(), dim=-1))
        self.gaussians.add(torch.cat(feats).clone())
        self.route.index, self.route.weight = task.index, None

    def trainable(self, task: TaskState) -> list[tuple[str, nn.Parameter]]:
        return [(f"{name}.prompts.{task.index}", m.prompts[task.index]) for name, m in self.model.named_modules()
                if isinstance(m, TaskPrefixes)]

    def training_step(self, batch: Batch, task: TaskState, step: int) -> StepLogs:
        logits = self.task_logits(batch.images, task)
        loss = F.cross_entropy(logits, batch.labels, label_smoothing=self.config.label_smoothing)
        self.ctx.backward(loss)
        return {"loss": loss.detach()}

    def after_task(self, task: TaskState) -> None:
        self.route.index, self.route.weight = None, None

    def classifier(self) -> CalibratedClassifier:
        return CalibratedClassifier(self.model, self)

    def state_dict(self) -> dict[str, Any]:
        return {"means": [m.cpu() for m in self.gaussians.means], "covs": [c.cpu() for c in self.gaussians.covs]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gaussians = TaskGaussians()
        self.gaussians.means = [m.to(self.ctx.device) for m in state["means"]]
        self.gaussians.covs = [c.to(self.ctx.device) for c in state["covs"]]
