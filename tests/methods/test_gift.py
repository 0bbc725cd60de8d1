"""GIFT: each loss term against hand-computed values, and one full step against a plain autograd version."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from clbench.benchmark import Benchmark, BenchmarkDef, TaskSpec
from clbench.context import MethodContext
from clbench.engine import Engine
from clbench.method import Batch, TaskState
from clbench.methods.gift import (
    FISHER_FLOOR,
    Gift,
    GiftConfig,
    add_awc_gradients_,
    alignment_targets,
    awc_terms,
    contrastive_distillation,
    feature_mse,
    fisher_diagonal,
    image_text_alignment,
)
from clbench.models import LoadedModel, load_model
from clbench.registry import BENCHMARKS
from clbench.runner import resolve
from clbench.synthetic_data import SyntheticData, SyntheticTask


def softmax(row: list[float]) -> list[float]:
    e = [math.exp(v) for v in row]
    return [v / sum(e) for v in e]


def soft_ce(logits: list[list[float]], targets: list[list[float]]) -> float:
    """Mean over rows of -sum_j t_j log softmax(z)_j, by hand."""
    return sum(-sum(t * math.log(p) for t, p in zip(tr, softmax(zr), strict=True))
               for zr, tr in zip(logits, targets, strict=True)) / len(logits)


def transpose(m: list[list[float]]) -> list[list[float]]:
    return [list(c) for c in zip(*m, strict=True)]


S = [[1.0, -0.5, 0.2], [0.3, 2.0, -1.0], [0.0, 0.4, 1.5]]
TCH = [[2.0, 0.0, -1.0], [0.5, 1.0, 0.0], [-0.3, 0.2, 0.8]]


def test_contrastive_distillation_by_hand() -> None:
    t = 2.0
    scaled = [[v / t for v in r] for r in S]
    want = (soft_ce(scaled, [softmax([v / t for v in r]) for r in TCH])
            + soft_ce(transpose(scaled), [softmax([v / t for v in r]) for r in transpose(TCH)])) * t * t
    got = contrastive_distillation(torch.tensor(S), torch.tensor(TCH), temperature=t)
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_reverse_kl_by_hand() -> None:
    t = 2.0

    def kl(a: list[list[float]], b: list[list[float]]) -> float:  # mean_i KL(softmax(a_i/t) || softmax(b_i/t))
        total = 0.0
        for ra, rb in zip(a, b, strict=True):
            q, p = softmax([v / t for v in ra]), softmax([v / t for v in rb])
            total += sum(qi * math.log(qi / pi) for qi, pi in zip(q, p, strict=True))
        return total / len(a)

    want = (kl(S, TCH) + kl(transpose(S), transpose(TCH))) * t * t
    got = contrastive_distillation(torch.tensor(S), torch.tensor(TCH), temperature=t, reverse_kl=True)
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_feature_mse_by_hand() -> None:
    a, b = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 0.0], [0.0, 3.0]])
    # a - b = [[1, 0], [0, -2]]: mean of squares (1 + 4) / 4 for the image features, the same for the text
    assert feature_mse(a, b, b, a).item() == pytest.approx(2 * (1 + 4) / 4)


def test_alignment_targets_share_duplicate_prompts() -> None:
    y = alignment_targets(torch.tensor([0, 1, 0, 2, 0]))
    third = 1 / 3
    want = [[third, 0, third, 0, third], [0, 1, 0, 0, 0], [third, 0, third, 0, third], [0, 0, 0, 1, 0],
            [third, 0, third, 0, third]]
    assert torch.allclose(y, torch.tensor(want))
    assert torch.allclose(y, y.t()) and torch.allclose(y.sum(1), torch.ones(5))


def test_image_text_alignment_by_hand() -> None:
    ids = torch.tensor([0, 1, 0])
    eps, c = 0.2, 3
    y = [[0.5, 0, 0.5], [0, 1, 0], [0.5, 0, 0.5]]
    smooth = [[(1 - eps) * v + eps / c for v in row] for row in y]
    want = soft_ce(S, smooth) + soft_ce(transpose(S), smooth)
    got = image_text_alignment(torch.tensor(S), alignment_targets(ids), label_smoothing=eps)
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_fisher_normalisation() -> None:
    g = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    like = [torch.zeros(2, 2), torch.zeros(3), torch.zeros(4)]
    fisher = fisher_diagonal([g, None, torch.zeros(4)], like)
    assert torch.allclose(fisher[0], torch.tensor([[1.0, 4.0], [0.0, 9.0]]) / 3.5)
    assert fisher[0].mean().item() == pytest.approx(1.0)
    assert torch.equal(fisher[1], torch.full((3,), FISHER_FLOOR))  # no gradient
    assert torch.equal(fisher[2], torch.full((4,), FISHER_FLOOR))  # an all-zero gradient (the code: NaN)


def test_awc_terms_match_autograd() -> None:
    torch.manual_seed(0)
    params = [torch.randn(3, 2, requires_grad=True), torch.randn(4, requires_grad=True)]
    anchors = [torch.randn(3, 2), torch.randn(4)]
    fisher = [torch.rand(3, 2), torch.rand(4)]
    value, grads = awc_terms(fisher, params, anchors, weight=0.7)
    penalty = 0.7 * sum((f * (p - a) ** 2).sum() for f, p, a in zip(fisher, params, anchors, strict=True))
    penalty.backward()
    assert value.item() == pytest.approx(penalty.item(), rel=1e-6)
    for p, g in zip(params, grads, strict=True):
        assert torch.allclose(p.grad, g, atol=1e-7)
    l2, l2_grads = awc_terms(None, params, anchors, weight=1.0)  # awc off: plain L2
    assert l2.item() == pytest.approx(sum(((p - a) ** 2).sum().item() for p, a in zip(params, anchors, strict=True)))


@pytest.mark.parametrize("mode", ["adaptive", "static", "plain"])
def test_fused_awc_equals_the_pure_functions(mode: str) -> None:
    """The in-place fast path (row-sparse embedding table, missing and all-zero gradients, loss scale)."""
    torch.manual_seed(0)
    shapes = [(5000, 8), (6, 3), (4,), (7,)]
    params = [torch.randn(s) for s in shapes]
    anchors = [p + 0.1 * torch.randn_like(p) for p in params]
    grads: list[torch.Tensor | None] = [torch.zeros(5000, 8), torch.randn(6, 3), None, torch.zeros(7)]
    grads[0][[3, 70, 4000]] = torch.randn(3, 8)  # an embedding table: three rows used
    scale = 8.0  # gradients of a loss scaled by 8 (fp16): F is unchanged, the added gradient is scaled
    fisher = fisher_diagonal(grads, params)
    static = [torch.rand_like(p) for p in params]
    want_value, want = awc_terms(static if mode == "static" else None if mode == "plain" else fisher,
                                 params, anchors, weight=0.5)
    for p, g in zip(params, grads, strict=True):
        p.grad = None if g is None else g * scale
    value = add_awc_gradients_(params, anchors, 0.5, static if mode == "static" else None,
                               adaptive=mode != "plain", loss_scale=scale)
    assert value.item() == pytest.approx(want_value.item(), rel=1e-5)
    for p, g, w in zip(params, grads, want, strict=True):
        base = 0 if g is None else g * scale
        assert torch.allclose(p.grad, base + scale * w, rtol=1e-5, atol=1e-6)


# ---- one full step on the tiny model ----------------------------------------------------------------------
PROMPTS = ["a photo of a cat.", "a photo of a dog.", "a photo of a cat.", "a red circle", "a photo of a dog.",
           "two blue squares"]
CLASSES = ("red", "green", "blue")
TEMPLATE = "a photo of {}."


def synthetic_set(seed: int = 1) -> SyntheticTask:
    g = torch.Generator().manual_seed(seed)
    return SyntheticTask(torch.randn(len(PROMPTS), 3, 32, 32, generator=g), PROMPTS)


def task_state() -> TaskState:
    spec = TaskSpec("alpha", CLASSES, (TEMPLATE,))
    return TaskState(index=0, spec=spec, num_tasks=1, steps=5, train_class_names=CLASSES, seen_class_names=CLASSES)


def reference_step(model: torch.nn.Module, teacher: torch.nn.Module, tokenizer, batch: Batch,  # noqa: ANN001
                   images: torch.Tensor, prompts: list[str], prompt_ids: torch.Tensor) -> None:
    """L_task + L_CD + 0.25 L_ITA + L_AWC in one autograd graph, F from autograd.grad of L_CD + 0.25 L_ITA.

    Written out from ``Luo-Jiaming/GIFT_CL`` ``src/models/finetune_gift.py`` (after f1c1e38), line numbers there.
    """
    s = model.logit_scale.detach().exp()
    params = [p for n, p in model.named_parameters() if n != "logit_scale"]
    anchors = [p for n, p in teacher.named_parameters() if n != "logit_scale"]
    head = F.normalize(model.encode_text(tokenizer([TEMPLATE.format(c) for c in CLASSES])), dim=-1)  # :175-176
    ce = F.cross_entropy(s * F.normalize(model.encode_image(batch.images), dim=-1) @ head.t(), batch.labels,
                         label_smoothing=0.2)  # :168-180
    student = s * F.normalize(model.encode_image(images), dim=-1) @ F.normalize(
        model.encode_text(tokenizer(prompts)), dim=-1).t()  # :210-225 logits_current
    with torch.no_grad():  # :200-208 logits_ref
        teach = s * F.normalize(teacher.encode_image(images), dim=-1) @ F.normalize(
            teacher.encode_text(tokenizer(prompts)), dim=-1).t()
    t = 2.0
    cd = (F.cross_entropy(student / t, F.softmax(teach / t, dim=1)) * t * t  # :244 distillation (helpers.py)
          + F.cross_entropy(student.t() / t, F.softmax(teach.t() / t, dim=1)) * t * t)  # :254
    same = (prompt_ids.view(-1, 1) == prompt_ids.view(1, -1)).float()  # :231-233
    y = same / same.sum(1, keepdim=True)
    ita = F.cross_entropy(student, y, label_smoothing=0.2) + F.cross_entropy(student.t(), y, label_smoothing=0.2)  # :262-266
    grads = torch.autograd.grad(cd + 0.25 * ita, params, retain_graph=True, allow_unused=True)  # :272-275
    fisher = [torch.full_like(p, 1e-6) if g is None else (g**2 / (g**2).mean()).detach()  # :290-298
              for g, p in zip(grads, params, strict=True)]
    awc = sum((f * (p - a.detach()) ** 2).sum() for f, p, a in zip(fisher, params, anchors, strict=True))  # :301-303
    (ce + cd + 0.25 * ita + awc).backward()  # :315-316 (ce + wc) backward into the CD/ITA gradients


@pytest.fixture(scope="module")
def tiny() -> LoadedModel:
    torch.manual_seed(0)
    return load_model("clbench-tiny", None)


def fresh(tiny: LoadedModel) -> LoadedModel:
    return dataclasses.replace(tiny, model=copy.deepcopy(tiny.model))


def test_full_step_equals_plain_autograd(tiny: LoadedModel) -> None:
    """Two engine-style steps (zero_grad, training_step, AdamW step) against the one-graph version.

    AdamW's eps is raised to 1e-3: gradients that are zero in exact arithmetic (the attention key bias) come
    out as ~1e-7 noise, which AdamW with eps=1e-8 would turn into a full ±lr step in either implementation.
    """
    loaded = fresh(tiny)
    torch.manual_seed(0)
    model = loaded.model
    ctx = MethodContext(model, loaded.tokenizer, torch.device("cpu"), label_smoothing=0.2)
    ctx.services["synthetic_data"] = SyntheticData.from_tasks([synthetic_set()], batch_size=4, seed=3)
    method = Gift(GiftConfig(), ctx)
    method.before_run()
    task = task_state()
    method.before_task(task)
    teacher = copy.deepcopy(model).requires_grad_(False)  # = θ_{t-1} and the teacher
    with torch.no_grad():  # move away from the anchor so that AWC and CD are not zero
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn_like(p))
    reference = copy.deepcopy(model)
    mirror = SyntheticData.from_tasks([synthetic_set()], batch_size=4, seed=3).batches(0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, eps=1e-3, weight_decay=0.0)
    ref_opt = torch.optim.AdamW([p for p in reference.parameters() if p.requires_grad], lr=1e-3, eps=1e-3,
                                weight_decay=0.0)
    g = torch.Generator().manual_seed(5)
    for step in range(2):
        batch = Batch(torch.randn(5, 3, 32, 32, generator=g), torch.tensor([0, 1, 2, 0, 1]))
        opt.zero_grad(set_to_none=True)
        logs = method.training_step(batch, task, step)
        opt.step()
        syn = next(mirror)
        ref_opt.zero_grad(set_to_none=True)
        reference_step(reference, teacher, loaded.tokenizer, batch, syn.images, list(syn.prompts), syn.prompt_ids)
        for p, q in zip(model.parameters(), reference.parameters(), strict=True):
            assert (p.grad is None) == (q.grad is None)
            if p.grad is not None:
                assert (p.grad - q.grad).abs().max() <= 1e-5 * q.grad.abs().max() + 1e-6
        ref_opt.step()
        assert logs["awc"] > 0 and logs["cd"] > 0 and logs["ita"] > 0
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6, rtol=0), name


def test_static_awc_running_mean_then_frozen(tiny: LoadedModel) -> None:
    loaded = fresh(tiny)
    ctx = MethodContext(loaded.model, loaded.tokenizer, torch.device("cpu"), label_smoothing=0.2)
    ctx.services["synthetic_data"] = SyntheticData.from_tasks([synthetic_set()], batch_size=3, seed=0)
    method = Gift(GiftConfig(static_awc=2), ctx)
    method.before_run()
    method.before_task(task_state())
    seen = []
    for step in range(4):
        for p in method.params:
            p.grad = torch.randn_like(p)
        new = fisher_diagonal([p.grad for p in method.params], method.params)
        seen.append(new)
        used = method.static_importance(step)
        if step < 2:
            want = [sum(f[i] for f in seen) / len(seen) for i in range(len(new))]
            assert all(torch.allclose(u, w, atol=1e-6) for u, w in zip(used, want, strict=True))
    mean = [(a + b) / 2 for a, b in zip(seen[0], seen[1], strict=True)]
    assert all(torch.allclose(u, w, atol=1e-6) for u, w in zip(used, mean, strict=True))  # frozen after K


def test_image_only_distils_through_the_image_tower(tiny: LoadedModel) -> None:
    loaded = fresh(tiny)
    ctx = MethodContext(loaded.model, loaded.tokenizer, torch.device("cpu"), label_smoothing=0.2)
    ctx.services["synthetic_data"] = SyntheticData.from_tasks([synthetic_set()], batch_size=6, seed=0)
    method = Gift(GiftConfig(image_only=True), ctx)
    method.before_run()
    method.before_task(task_state())
    cd, ita = method.synthetic_losses(next(method.batches))
    (cd + ita).backward()
    grads = {n: p.grad for n, p in loaded.model.named_parameters()}
    assert grads["visual.conv1.weight"] is not None and grads["token_embedding.weight"] is None


# ---- through the engine -----------------------------------------------------------------------------------
@pytest.fixture()
def smoke_with_synthetic() -> BenchmarkDef:
    """Two smoke tasks whose benchmark offers an in-memory synthetic_data service."""
    smoke: BenchmarkDef = BENCHMARKS.get("smoke")

    def service(request) -> SyntheticData:  # noqa: ANN001
        return SyntheticData.from_tasks([synthetic_set(1), synthetic_set(2)], request.batch_size, request.seed)

    def build(options, transforms) -> Benchmark:  # noqa: ANN001
        full = smoke.build(options, transforms)
        return Benchmark(name=full.name, protocol=full.protocol, tasks=full.tasks[:2],
                         train_datasets=full.train_datasets[:2], test_datasets=full.test_datasets[:2],
                         info={"services": {"synthetic_data": service}})

    return dataclasses.replace(smoke, build=build)


@pytest.mark.parametrize("overrides", [{}, {"awc": False, "static_awc": 0, "reverse_kl": True},
                                       {"feature_mse": True, "text_only": True, "static_awc": 2}])
def test_gift_runs_through_the_engine(smoke_with_synthetic: BenchmarkDef, tmp_path: Path, overrides: dict) -> None:
    layers = [smoke_with_synthetic.defaults,
              {"train": {"iterations": 3, "warmup": 1, "eval_initial": False, "log_every": 1}, "gift": overrides}]
    cfg = resolve("smoke", "gift", 0, layers)
    returned: list[dict] = []

    class Spy(Gift):
        def training_step(self, *args):  # noqa: ANN002, ANN202
            returned.append(super().training_step(*args))
            return returned[-1]

    result = Engine(cfg, smoke_with_synthetic, Spy, tmp_path, device="cpu", quiet=True).run()
    assert set(result.metrics) >= {"transfer", "avg", "last"}
    assert returned and all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad
                            for logs in returned for v in logs.values())  # no float(): no device sync per step
    assert all(math.isfinite(v) for v in result.record.array().ravel())


@pytest.mark.parametrize("overrides", [{"awc": False}, {"static_awc": 2}])
def test_gift_with_channels_last_equals_the_default_layout(smoke_with_synthetic: BenchmarkDef, tmp_path: Path,
                                                           overrides: dict) -> None:
    """GIFT's plain-L2 and static-AWC terms flatten parameter differences: they must accept channels-last conv
    weights (``train.channels_last``) and give the default layout's matrix to float rounding."""
    matrices = []
    for on in (False, True):
        layers = [smoke_with_synthetic.defaults, {"train": {"iterations": 3, "warmup": 1, "eval_initial": False,
                                                            "log_every": 1, "channels_last": on}, "gift": overrides}]
        cfg = resolve("smoke", "gift", 0, layers)
        matrices.append(Engine(cfg, smoke_with_synthetic, Gift, tmp_path / str(on), device="cpu", quiet=True)
                        .run().record.array())
    assert torch.allclose(torch.tensor(matrices[1]), torch.tensor(matrices[0]), atol=1e-6, rtol=0), matrices
