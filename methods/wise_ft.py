"""``wise_ft``: WiSE-FT after every task — interpolate the fine-tuned weights with the task-start weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from clbench.errors import UserError
from clbench.method import Method, TaskState
from clbench.registry import register_method
from clbench.weights import Weights, interpolate, load_weights, snapshot

BASES = ("task_start", "initial")


@dataclass
class WiSEFTConfig:
    alpha: float = 0.8  # weight of the fine-tuned model (ZSCL ``--wise_ft_alpha 0.8``)
    base: str = "task_start"  # task_start (ZSCL ``--wise_ft_model n``) | initial (``zeroshot``: the pretrained model)


@register_method("wise_ft")
class WiSEFT(Method):
    """WiSE-FT (Wortsman et al., CVPR 2022) in ZSCL's continual variant (``mtil/scripts/WiSE_finetune.sh``).

    Each task fine-tunes as ``finetune``; at its end theta <- alpha * theta_finetuned + (1 - alpha) * theta_base
    over every parameter (ZSCL's ``--wise_merge``), alpha = 0.8, with theta_base the weights the task started
    from (``base: task_start``) or the pretrained weights (``base: initial``). The mixed weights are evaluated
    and start the next task. No deviation from the reference code.
    """

    paper: ClassVar[str] = ("Wortsman et al., Robust fine-tuning of zero-shot models (WiSE-FT), CVPR 2022 — "
                            "continual variant of ZSCL (Zheng et al., ICCV 2023)")
    Config: ClassVar[type] = WiSEFTConfig
    # CE per example; the interpolation uses weights that are identical on every rank
    distributed: ClassVar[bool] = True

    start: Weights | None = None

    def before_run(self) -> None:
        cfg: WiSEFTConfig = self.config
        if cfg.base not in BASES:
            raise UserError(f"wise_ft.base must be one of {', '.join(BASES)}, not {cfg.base!r}")
        if not 0.0 <= cfg.alpha <= 1.0:
            raise UserError(f"wise_ft.alpha must lie in [0, 1], not {cfg.alpha}")

    def before_task(self, task: TaskState) -> None:
        if self.config.base == "task_start":
            self.start = snapshot(self.model)

    def after_task(self, task: TaskState) -> None:
        base = self.start if self.config.base == "task_start" else snapshot(self.ctx.initial_model())
        assert base is not None
        load_weights(self.model, interpolate(snapshot(self.model), base, self.config.alpha))
        self.ctx.weights_changed()
        self.start = None
