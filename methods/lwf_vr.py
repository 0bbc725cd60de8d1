"""``lwf_vr``: LwF with a virtual vocabulary — distil against 1,000 random-token sentences instead of class prompts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from clbench.method import TaskState
from clbench.methods.lwf import LwF
from clbench.registry import register_method


@dataclass
class LwFVRConfig:
    temperature: float = 2.0
    image_weight: float = 1.0  # MTIL scripts (the CIL code uses 5)
    text_weight: float = 1.0
    num_sentences: int = 1000  # ZSCL ``virtual_vocab(n_class=1000)``
    sentence_length: int = 10  # random tokens per sentence (``length=10``)
    # The CIL code calls ``virtual_vocab()`` at every task (cil/continual_clip/models.py:160): new sentences
    # per task. The MTIL scripts run one process per task from seed 42 (mtil/src/main.py:23): the same draw.
    redraw_sentences: bool = False
    reference_quirks: bool = False  # as LwF: the CIL code's teacher shares the student's storage


def virtual_vocabulary(num: int, length: int, vocab_size: int, sot: int, eot: int, context_length: int,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """(num, context_length) token ids: [SOT, ``length`` uniform ids over the whole vocabulary, EOT, 0 ...].

    ZSCL's ``helpers.virtual_vocab``: ids are drawn from the full vocabulary (special tokens included), as
    there. ``length`` shrinks to fit a short context.
    """
    length = min(length, context_length - 2)
    tokens = torch.zeros(num, context_length, dtype=torch.long)
    tokens[:, 0] = sot
    tokens[:, 1:length + 1] = torch.randint(0, vocab_size, (num, length), generator=generator)
    tokens[:, length + 1] = eot
    return tokens


@register_method("lwf_vr")
class LwFVR(LwF):
    """LwF-VR (Ding et al., Don't Stop Learning: Towards Continual Learning for the CLIP Model, 2022) as in ZSCL.

    ZSCL's ``--ref-sentences random`` run (``mtil/scripts/lwf_vr.sh``): LwF whose reference texts are
    1,000 sentences of 10 uniformly random token ids, drawn once per run; teacher = the model at the start of
    the task, distillation on the current task's images, image and text losses with weight 1, T = 2.

    Deviations from the reference code: as :class:`methods.lwf.LwF` (training batch reused as the
    distillation batch); the teacher embeds the random sentences once per
    task rather than at every iteration; the sentences are drawn from the run's seed and saved with the
    method state (MTIL: drawn once per run, as its per-task processes all start from seed 42;
    ``redraw_sentences=True``, the CIL setting, draws new ones at every task as the CIL code does).
    """

    paper: ClassVar[str] = ("Ding et al., Don't Stop Learning: Towards Continual Learning for the CLIP Model, "
                            "arXiv 2207.09248, 2022 — as re-implemented in ZSCL (Zheng et al., ICCV 2023)")
    Config: ClassVar[type] = LwFVRConfig
    distributed_reason: ClassVar[str] = ("its text distillation normalises over the training batch's images "
                                         "(a shard would change it)")

    tokens: torch.Tensor | None = None

    def before_run(self) -> None:
        self.draw_sentences()

    def before_task(self, task: TaskState) -> None:
        if self.config.redraw_sentences and task.index > 0:
            self.draw_sentences()
        super().before_task(task)

    def draw_sentences(self) -> None:
        """``virtual_vocab()``: 1,000 sentences of random token ids, from the run's RNG."""
        cfg: LwFVRConfig = self.config
        empty = self.ctx.tokenize([""])[0]  # [SOT, EOT, 0, ...] gives the special ids and the context length
        vocab = getattr(self.model, "vocab_size", None) or len(self.ctx.tokenizer.encoder)
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        self.tokens = virtual_vocabulary(cfg.num_sentences, cfg.sentence_length, int(vocab), int(empty[0]),
                                         int(empty[1]), len(empty), generator)

    def reference_texts(self, task: TaskState) -> torch.Tensor:
        assert self.teacher is not None and self.tokens is not None
        with torch.inference_mode():
            feats = F.normalize(self.teacher.encode_text(self.tokens.to(self.ctx.device)), dim=-1)
        return feats.float().clone()

    def state_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tokens = state["tokens"]
