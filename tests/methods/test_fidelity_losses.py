"""Each loss term and one full training step of LwF, LwF-VR, iCaRL, L2 and EWC against the reference code.

The expected values are the reference's own expressions, written out here with file:line (ZSCL:
``Thunderbeee/ZSCL`` ``mtil/src/models/finetune.py``, ``helpers.py``, ``icarl.py``; EWC, which ZSCL lacks:
Avalanche's ``EWCPlugin``, ``avalanche/training/plugins/ewc.py`` of avalanche-lib 0.6.0), on a tiny random
CLIP whose student is moved away from its teacher so that every term has a gradient. One AdamW step of the
method (as the engine runs it) must give the weights of one AdamW step on the reference loss. AdamW's eps is
1e-3 in both: gradients that vanish in exact arithmetic (the attention key bias) come out as rounding noise,
which eps = 1e-8 would turn into full-size steps in either implementation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clbench.context import trainable_parameters
from clbench.method import Batch, Method, TaskState
from clbench.methods.ewc import EWC, EWCConfig
from clbench.methods.icarl import ICaRL, ICaRLConfig
from clbench.methods.l2 import L2, L2Config
from clbench.methods.lwf import LwF, LwFConfig
from clbench.methods.lwf_vr import LwFVR, LwFVRConfig
from tests.methods.conftest import Tiny, fixed_batches, make_batch, make_task

LR, EPS, LS, T = 1e-3, 1e-3, 0.2, 2.0
NAMES = ("cat", "dog", "bird")


def distillation(t: torch.Tensor, s: torch.Tensor, temp: float = T) -> torch.Tensor:
    """mtil/src/models/helpers.py:64-67 (cil/continual_clip/utils.py has the same)."""
    p = F.softmax(t / temp, dim=1)
    return F.cross_entropy(s / temp, p, reduction="mean") * (temp ** 2)


def normed(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def ce_term(model: nn.Module, tokenizer: Callable, batch: Batch, task: TaskState) -> torch.Tensor:
    """finetune.py:213-225: CE with label smoothing over the task's prompts (first template)."""
    embeddings = normed(model.encode_text(tokenizer([task.train_template.format(c) for c in task.train_class_names])))
    out = normed(model.encode_image(batch.images))
    return F.cross_entropy(model.logit_scale.exp() * out @ embeddings.t(), batch.labels, label_smoothing=LS)


def distill_terms(model: nn.Module, teacher: nn.Module, ref_images: torch.Tensor,
                  ref_texts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """finetune.py:250-293 (and icarl.py:177-221, cil/continual_clip/models.py:245-266): image and text terms."""
    with torch.no_grad():
        ref_embeddings = normed(teacher.encode_text(ref_texts))
        ref_out = normed(teacher.encode_image(ref_images))
    ref_out_current = normed(model.encode_image(ref_images))
    scale = model.logit_scale.exp()
    logits_current = scale * ref_out_current @ ref_embeddings.t()
    logits_ref = scale * ref_out @ ref_embeddings.t()
    return distillation(logits_ref, logits_current), distillation(logits_ref.t(), logits_current.t())


def perturb(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in trainable_parameters(model):
            p.add_(0.02 * torch.randn(p.shape, generator=g))


def step_both(tiny: Tiny, method: Method, batch: Batch, task: TaskState,
              reference_loss: Callable[[nn.Module], dict[str, torch.Tensor]]) -> tuple[dict, dict]:
    """One engine-style step of ``method`` and one AdamW step on ``reference_loss``; the weights must agree."""
    model = tiny.ctx.model
    reference = copy.deepcopy(model)
    opt = torch.optim.AdamW([p for _, p in trainable_parameters(model)], lr=LR, eps=EPS, weight_decay=0.0)
    ref_params = [v for k, v in reference.named_parameters() if k != "logit_scale"]  # finetune.py:82-85
    ref_opt = torch.optim.AdamW(ref_params, lr=LR, eps=EPS, weight_decay=0.0)  # finetune.py:88-90
    opt.zero_grad(set_to_none=True)
    logs = {k: float(v) for k, v in method.training_step(batch, task, 0).items()}  # as the engine logs
    opt.step()
    terms = reference_loss(reference)
    ref_opt.zero_grad()  # finetune.py:306-308
    terms["loss"].backward()
    ref_opt.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-5, msg=name)
    for name, value in logs.items():
        assert value == pytest.approx(float(terms[name]), rel=1e-5, abs=1e-7), name
    return logs, {k: float(v) for k, v in terms.items()}


def test_lwf_step(tiny: Tiny) -> None:
    """mtil/scripts/lwf.sh: --method ZSCL --image_loss --text_loss, ref model = the previous task's checkpoint,
    ref dataset = the task's data, ref sentences = the task's prompts (finetune.py:170-174)."""
    method = LwF(LwFConfig(), tiny.ctx)
    task = make_task(1, NAMES)
    method.before_task(task)
    teacher = copy.deepcopy(tiny.ctx.model)
    perturb(tiny.ctx.model)
    batch = make_batch(6, 3, seed=1)
    prompts = tiny.ctx.tokenize([task.train_template.format(c) for c in NAMES])

    def reference(model: nn.Module) -> dict[str, torch.Tensor]:
        ce = ce_term(model, tiny.ctx.tokenize, batch, task)
        img, txt = distill_terms(model, teacher, batch.images, prompts)  # declared: the same images as the CE
        return {"ce": ce, "distill_image": img, "distill_text": txt, "loss": ce + 1.0 * img + txt}

    logs, terms = step_both(tiny, method, batch, task, reference)
    assert terms["distill_image"] > 0.01 and terms["distill_text"] > 0.01


def test_lwf_vr_step(tiny: Tiny) -> None:
    """mtil/scripts/lwf_vr.sh: as LwF with --ref-sentences random: helpers.py:54-62 ``virtual_vocab``."""
    method = LwFVR(LwFVRConfig(num_sentences=40), tiny.ctx)
    method.before_run()
    tokens = method.tokens
    assert tokens is not None
    vocab = len(tiny.ctx.tokenizer.encoder)
    sot, eot = tiny.ctx.tokenizer.encoder["<start_of_text>"], tiny.ctx.tokenizer.encoder["<end_of_text>"]
    # helpers.py:55-61: [SOT, 10 ids < vocabulary size, EOT, zeros]; the tiny model's context is 16 long
    assert (tokens[:, 0] == sot).all() and (tokens[:, 11] == eot).all() and (tokens[:, 12:] == 0).all()
    assert int(tokens[:, 1:11].max()) < vocab
    task = make_task(1, NAMES)
    method.before_task(task)
    teacher = copy.deepcopy(tiny.ctx.model)
    perturb(tiny.ctx.model, seed=1)
    batch = make_batch(6, 3, seed=2)

    def reference(model: nn.Module) -> dict[str, torch.Tensor]:
        ce = ce_term(model, tiny.ctx.tokenize, batch, task)
        img, txt = distill_terms(model, teacher, batch.images, tokens)
        return {"ce": ce, "distill_image": img, "distill_text": txt, "loss": ce + img + txt}

    step_both(tiny, method, batch, task, reference)


def test_icarl_step(tiny: Tiny) -> None:
    """mtil/src/models/icarl.py:105-221: zero-shot teacher, ref texts = the task's prompts, exemplars walked by
    ``batch(ref_images, batch_size)`` (helpers.py:11-14), loss = CE + loss_lwa + loss_lwa_2."""
    method = ICaRL(ICaRLConfig(memory_size=8), tiny.ctx)
    first = make_task(0, ("red", "green"))
    tiny.ctx.task_batches = fixed_batches([make_batch(6, 2, seed=3), make_batch(6, 2, seed=4)])  # type: ignore
    method.before_task(first)
    perturb(tiny.ctx.model, seed=2)  # "training" of the first task
    method.after_task(first)
    exemplars = method.images.float()
    assert len(exemplars) == 8  # dynamic_dataset.py:21-25: the first task's first memory_size images
    task = make_task(1, NAMES)
    tiny.ctx.task_batches = fixed_batches([make_batch(6, 3, seed=5)])  # type: ignore
    method.before_task(task)
    batch = make_batch(6, 3, seed=6)
    prompts = tiny.ctx.tokenize([task.train_template.format(c) for c in NAMES])

    def reference(model: nn.Module) -> dict[str, torch.Tensor]:
        ce = ce_term(model, tiny.ctx.tokenize, batch, task)
        img, txt = distill_terms(model, tiny.initial, exemplars[:6], prompts)  # first batch of batch(ref, 6)
        return {"ce": ce, "distill_image": img, "distill_text": txt, "loss": ce + 1.0 * img + txt}

    step_both(tiny, method, batch, task, reference)


def test_l2_step(tiny: Tiny) -> None:
    """mtil/scripts/wc.sh: --l2 1; l2_model = the weights at the task start (finetune.py:34-37, 227-229),
    ``l2_loss`` = sum over parameters of mse_loss(reduction="sum") (helpers.py:47-51)."""
    method = L2(L2Config(), tiny.ctx)
    task = make_task(1, NAMES)
    method.before_task(task)
    l2_model = copy.deepcopy(tiny.ctx.model)
    perturb(tiny.ctx.model, seed=3)
    batch = make_batch(6, 3, seed=7)

    def reference(model: nn.Module) -> dict[str, torch.Tensor]:
        ce = ce_term(model, tiny.ctx.tokenize, batch, task)
        loss_l2 = sum(F.mse_loss(q, k.detach(), reduction="sum")
                      for q, k in zip(model.parameters(), l2_model.parameters(), strict=True))
        return {"ce": ce, "l2": loss_l2, "loss": ce + 1 * loss_l2}

    logs, _ = step_both(tiny, method, batch, task, reference)
    assert logs["l2"] > 0.1


def test_ewc_step(tiny: Tiny) -> None:
    """Avalanche EWCPlugin, online mode: importances = mean over the task's mini-batches of grad^2 of the
    criterion (ewc.py:132-182), F <- decay * F + F_new (ewc.py:189-226), loss += ewc_lambda * sum F (θ - θ*)^2
    (ewc.py:94-110); clbench writes the paper's λ/2, so ewc_lambda = lam / 2. Criterion: plain CE."""
    lam, gamma = 40.0, 0.5
    method = EWC(EWCConfig(lam=lam, gamma=gamma), tiny.ctx)
    model = tiny.ctx.model
    tasks = [make_task(0, ("red", "green")), make_task(1, ("a", "b", "c"))]
    data = [[make_batch(6, 2, seed=8), make_batch(5, 2, seed=9)], [make_batch(6, 3, seed=10)]]
    importances: dict[str, torch.Tensor] | None = None
    for t in range(2):
        method.before_task(tasks[t])
        perturb(model, seed=10 + t)  # the task's training
        tiny.ctx.task_batches = fixed_batches(data[t])  # type: ignore[method-assign]
        shadow = copy.deepcopy(model)  # the reference importances, on the same weights
        params = [(k, p) for k, p in shadow.named_parameters() if k != "logit_scale"]
        new = {k: torch.zeros_like(p) for k, p in params}
        for b in data[t]:  # ewc.py:164-178
            shadow.zero_grad()
            F.cross_entropy(task_logits(shadow, tiny.ctx.tokenize, b.images, tasks[t]), b.labels).backward()
            for k, p in params:
                if p.grad is not None:
                    new[k] += p.grad.clone().pow(2)
        new = {k: v / float(len(data[t])) for k, v in new.items()}  # ewc.py:181-182
        importances = new if importances is None else {k: gamma * importances[k] + new[k] for k in new}
        saved = {k: p.detach().clone() for k, p in model.named_parameters() if k != "logit_scale"}
        method.after_task(tasks[t])
    assert importances is not None
    task = make_task(2, NAMES, num_tasks=3)
    method.before_task(task)
    perturb(model, seed=20)
    batch = make_batch(6, 3, seed=11)

    def reference(ref: nn.Module) -> dict[str, torch.Tensor]:
        ce = ce_term(ref, tiny.ctx.tokenize, batch, task)
        penalty = sum((importances[k] * (p - saved[k]).pow(2)).sum()
                      for k, p in ref.named_parameters() if k in saved)
        return {"ce": ce, "ewc": penalty, "loss": ce + (lam / 2) * penalty}

    logs, _ = step_both(tiny, method, batch, task, reference)
    assert logs["ewc"] > 0


def task_logits(model: nn.Module, tokenizer: Callable, images: torch.Tensor, task: TaskState) -> torch.Tensor:
    embeddings = normed(model.encode_text(tokenizer([task.train_template.format(c) for c in task.train_class_names])))
    return model.logit_scale.exp() * normed(model.encode_image(images)) @ embeddings.t()
