"""``finetune``: Continual-FT — full fine-tuning of both encoders, task after task, with nothing against forgetting."""

from __future__ import annotations

from typing import ClassVar

from clbench.method import Method
from clbench.registry import register_method


@register_method("finetune")
class Finetune(Method):
    """Continual-FT as in ZSCL (Zheng et al., ICCV 2023), ``mtil/src/models/finetune.py`` without extra losses.

    Loss: cross-entropy with label smoothing (0.2) over the current task's classes, logits
    s * f(x) g(P_t)^T with P_t the first template and g the trainable text encoder; ``logit_scale`` frozen.
    """

    paper: ClassVar[str] = "Continual-FT baseline of Zheng et al., Preventing Zero-Shot Transfer Degradation in Continual Learning of Vision-Language Models (ZSCL), ICCV 2023"
    # CE is a per-example mean: shards + weighted all-reduce = the full batch
    distributed: ClassVar[bool] = True
