"""``condu_lora``: ConDU (Gao et al., ICLR 2026), LoRA variant — the paper's "ConDU (LoRA)".

Reference: ``zhangzicong518/ConDU`` run with ``--lora True`` (``scripts/MTIL_LoRA.sh``,
``scripts/fewshot_MTIL_LoRA.sh``): CLIP is built from ``clip/model_lora.py``, where the two MLP linears of every
transformer block of both encoders carry rank-64 factors, and only parameters named ``lora`` train
(``src/models/finetune.py:68-71``). Everything else is ConDU's full-fine-tuning pipeline (:mod:`condu`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from torch import nn

from clbench.lora import add_lora_to_mlps, lora_parameters
from clbench.method import TaskState
from clbench.methods.condu import ConDU, ConDUConfig
from clbench.registry import register_method
from clbench.weights import Weights

# --lr per dataset of scripts/MTIL_LoRA.sh:7-8 (StanfordCars = Cars; the list's 12th value is never used).
MTIL_LORA_LR = {"Aircraft": 1e-3, "Caltech101": 5e-4, "CIFAR100": 2e-3, "DTD": 2e-3, "EuroSAT": 1.5e-4,
                "Flowers": 1e-5, "Food": 2e-3, "MNIST": 1e-3, "OxfordPet": 1.5e-4, "Cars": 2e-3, "SUN397": 1.5e-3}


@dataclass
class ConDULoRAConfig(ConDUConfig):
    rank: int = 64  # CLIP(lora_rank=64), model_lora.py:270 (build_model passes none; LoRALinear's own 32 unused)
    init_std: float = 0.01  # A, B ~ N(0, 0.01^2), model_lora.py:15-16
    base_lr: float = 1e-3  # --lr default (src/args.py:13), for tasks the script does not list (e.g. the world's)
    task_lr: dict[str, float] = field(default_factory=lambda: dict(MTIL_LORA_LR))  # per task name


@register_method("condu_lora")
class ConDULoRA(ConDU):
    """ConDU with LoRA: the backbone stays frozen (bit-identical), each task trains fresh LoRA factors on
    ``mlp.c_fc`` and ``mlp.c_proj`` of every block (:mod:`clbench.lora`), and ConDU's unify/decouple runs on the
    factors themselves — the reference's delta is ``state_dict`` difference over every key
    (``src/delta_models.py:17-24``), which is exactly zero outside the factors, so A and B are unified
    element-wise and separately (not the merged update B A). Zero deltas add nothing to the rescalers' sums, so
    unifying the factors alone gives the reference's unified delta, masks and rescalers. Learning rate: the
    paper's per-dataset list by task name (few-shot MTIL: ``scripts/fewshot_MTIL_LoRA.sh``'s, set in
    ``benchmarks/mtil.yaml``), else ``base_lr``; the benchmark's iterations (1000 / 500), label smoothing 0.2.

    Deviations from the reference code:
    - The factors every task starts from are the ones the zero-shot model carries (the engine's seeded patch).
      The code draws them anew in each ``clip.load``: the trained model (``finetune.py:14``), the prototype
      model (``finetune.py:30``) and ``pretrained.pth`` (``main.py:43``, session 0) all hold different random
      factors, so its deltas include a fixed offset A_start - A_pretrained. An accident of where ``clip.load`` is
      called, not a design; not reproduced.
    - ViT only (the code also puts LoRA on a ResNet's attention pool); a model without the MLP linears is refused.
    """

    paper: ClassVar[str] = ConDU.paper
    Config: ClassVar[type] = ConDULoRAConfig

    def patch_model(self, model: nn.Module) -> None:
        add_lora_to_mlps(model, self.config.rank, self.config.init_std, "condu_lora")

    def trainable(self, task: TaskState) -> list[tuple[str, nn.Parameter]]:
        return lora_parameters(self.model)

    def task_schedule(self, task: TaskState, lr: float) -> tuple[float, None]:
        return self.config.task_lr.get(task.spec.name, self.config.base_lr), None  # the benchmark's iterations

    def task_weights(self, model: nn.Module) -> Weights:
        """The LoRA factors: all a task changes, so all ConDU unifies, decouples and stores."""
        return {n: p.detach().clone() for n, p in lora_parameters(model)}
