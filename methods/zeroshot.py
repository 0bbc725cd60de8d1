"""``zeroshot``: the pretrained model, never trained — the reference every CL table starts with."""

from __future__ import annotations

from typing import ClassVar

from clbench.method import Method
from clbench.registry import register_method


@register_method("zeroshot")
class ZeroShot(Method):
    """Zero-shot CLIP (Radford et al., ICML 2021): class-name prompts, template ensemble, no training."""

    paper: ClassVar[str] = "Radford et al., Learning Transferable Visual Models From Natural Language Supervision, ICML 2021"
    distributed: ClassVar[bool] = True  # nothing trains; evaluation is sharded by the engine
    trains: ClassVar[bool] = False
