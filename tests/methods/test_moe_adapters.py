"""MoE-Adapters: gating, adapters and the mixture against the reference formulas; DDAS routing; freezing;
what a run trains and stores; resume; a model it cannot patch."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch

from clbench.classifier import HeadSpec, TextHeadClassifier
from clbench.engine import Engine
from clbench.methods._ddas import select_routes, train_autoencoder
from clbench.methods.moe_adapters import (
    Adapter,
    MixtureOfAdapters,
    MoEAdapters,
    MoEAdaptersConfig,
    noisy_top_k_gating,
)
from clbench.registry import BENCHMARKS, METHODS
from clbench.runner import config_layers, resolve
from tests.cli_runner import run_cli
from tests.methods.conftest import Tiny, make_task
from tests.methods.interrupt import assert_resume_after_two_tasks_is_identical


def test_noisy_top_k_gating_matches_the_reference_formula() -> None:
    g = torch.Generator().manual_seed(0)
    x, wg, wn, noise = (torch.randn(*s, generator=g) for s in ((3, 5), (5, 4), (5, 4), (3, 4)))
    gates = noisy_top_k_gating(x, wg, wn, 2, noise)
    for b in range(3):  # mtil/clip/model.py:440-455 written out per element
        clean = [sum(x[b, d].item() * wg[d, e].item() for d in range(5)) for e in range(4)]
        raw = [sum(x[b, d].item() * wn[d, e].item() for d in range(5)) for e in range(4)]
        noisy = [clean[e] + noise[b, e].item() * (math.log1p(math.exp(raw[e])) + 1e-2) for e in range(4)]
        top = sorted(range(4), key=lambda e: -noisy[e])[:2]
        z = sum(math.exp(noisy[e]) for e in top)
        expected = [math.exp(noisy[e]) / z if e in top else 0.0 for e in range(4)]
        assert gates[b].tolist() == [pytest_approx(v) for v in expected]
    clean_gates = noisy_top_k_gating(x, wg, wn, 2, None)  # evaluation: no noise
    assert (clean_gates > 0).sum(1).tolist() == [2, 2, 2]
    assert clean_gates.argmax(1).tolist() == (x @ wg).argmax(1).tolist()


def pytest_approx(v: float) -> object:
    import pytest

    return pytest.approx(v, rel=1e-5, abs=1e-7)


def test_adapter_forward_and_lora_init() -> None:
    torch.manual_seed(0)
    adapter = Adapter(6, 3, scale=0.1, dropout=0.1).eval()
    assert torch.count_nonzero(adapter.up.weight) == 0 and torch.count_nonzero(adapter.down.bias) == 0
    with torch.no_grad():
        adapter.up.weight.normal_()
        adapter.up.bias.normal_()
    x = torch.randn(2, 4, 6)
    wd, bd, wu, bu = (t.detach() for t in (adapter.down.weight, adapter.down.bias, adapter.up.weight, adapter.up.bias))
    expected = ((x @ wd.t() + bd).clamp(min=0) @ wu.t() + bu) * 0.1  # adapter.py:46-57
    assert torch.allclose(adapter(x), expected, atol=1e-6)


def test_mixture_routes_each_image_by_its_first_token_to_its_top_k_experts() -> None:
    torch.manual_seed(0)
    moe = MixtureOfAdapters(4, experts=4, routers=2, top_k=2, bottleneck=3, scale=0.1, dropout=0.0).eval()
    with torch.no_grad():
        for expert in moe.experts:
            expert.up.weight.normal_()
        moe.w_gate[1].zero_()
        moe.w_gate[1][0] = torch.tensor([5.0, 3.0, 0.0, 0.0])  # first token e_0 -> experts 0 (g=σ(2)) and 1
        moe.w_gate[1][1] = torch.tensor([0.0, 0.0, 1.0, 4.0])  # first token e_1 -> experts 3 and 2
    x = torch.randn(2, 3, 4)
    x[0, 0], x[1, 0] = torch.tensor([1.0, 0, 0, 0]), torch.tensor([0, 1.0, 0, 0])
    out = moe(x, router=1)
    a = 1 / (1 + math.exp(-2.0))  # softmax of (5, 3) and of (4, 1): e^2 / (e^2 + 1) and e^3 / (e^3 + 1)
    b = 1 / (1 + math.exp(-3.0))
    with torch.no_grad():
        expected = torch.stack([a * moe.experts[0](x[0]) + (1 - a) * moe.experts[1](x[0]),
                                b * moe.experts[3](x[1]) + (1 - b) * moe.experts[2](x[1])])
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.count_nonzero(moe.chosen) == 0  # choices are counted in training only
    moe.train()
    moe(x, router=1)
    assert moe.chosen.sum() == 4


def test_patched_blocks_equal_the_pretrained_ones_without_a_router(tiny: Tiny) -> None:
    pretrained = copy.deepcopy(tiny.ctx.model).eval()
    method = MoEAdapters(MoEAdaptersConfig(experts=3), tiny.ctx)
    method.patch_model(tiny.ctx.model)
    model = tiny.ctx.model.eval()
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        for block in model.visual.transformer.resblocks:
            for expert in block.moe.experts:
                expert.up.weight.normal_()
        assert torch.equal(model.encode_image(images), pretrained.encode_image(images))
        method.route.router = 0
        assert not torch.allclose(model.encode_image(images), pretrained.encode_image(images))
        method.route.router = None
        # the routed classifier scores a rejected image exactly as the frozen zero-shot CLIP does
        head = HeadSpec.single("t", ("cat", "dog"), ("a photo of a {}.",))
        ours = method.classifier().logits(images, head)
        zero_shot = TextHeadClassifier(pretrained, tiny.ctx.text_heads).logits(images, head)
    assert torch.allclose(ours, zero_shot, atol=1e-6)


def clusters(sign: float, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centre = torch.cat([torch.full((8,), 2.0 * sign), torch.full((8,), -2.0 * sign)])
    return centre + 0.3 * torch.randn(n, 16, generator=g)


def test_autoencoder_of_task_a_rejects_task_b_and_routing_picks_the_right_task() -> None:
    train_a, train_b = clusters(1.0, 256, 0), clusters(-1.0, 256, 1)
    test_a, test_b = clusters(1.0, 64, 2), clusters(-1.0, 64, 3)
    aes, thresholds = [], []
    for feats in (train_a, train_b):
        ae = train_autoencoder(feats, code=4, iterations=300, batch_size=32, lr=0.01, weight_decay=1e-4,
                               decay_epochs=10, generator=torch.Generator().manual_seed(0))
        target = torch.sigmoid(feats)
        with torch.no_grad():  # AutoEncoder.py:185-189: MSE of the AE on sigmoid(features), per image
            thresholds.append(float((ae(target) - target).pow(2).mean(1).quantile(0.99)))
        aes.append(ae)

    def errors(feats: torch.Tensor, which: list[int]) -> torch.Tensor:
        target = torch.sigmoid(feats)
        with torch.no_grad():
            return torch.stack([(aes[i](target) - target).pow(2).mean(1) for i in which])

    only_a = torch.tensor(thresholds[:1])
    assert select_routes(errors(test_b, [0]), only_a).tolist() == [-1] * 64  # B is out of A's distribution
    assert (select_routes(errors(test_a, [0]), only_a) == 0).float().mean() >= 0.95
    both = torch.tensor(thresholds)
    assert select_routes(errors(test_a, [0, 1]), both).tolist().count(0) >= 61
    assert select_routes(errors(test_b, [0, 1]), both).tolist().count(1) >= 61


def test_most_chosen_experts_are_frozen_after_a_task(tiny: Tiny) -> None:
    method = MoEAdapters(MoEAdaptersConfig(experts=4, freeze_top=2, ddas=False), tiny.ctx)
    method.patch_model(tiny.ctx.model)
    task0, task1 = make_task(0, ("a", "b")), make_task(1, ("c", "d"))
    method.before_task(task0)
    names0 = {n for n, _ in method.trainable(task0)}
    for _, m in method.mixtures():
        m.chosen.copy_(torch.tensor([1.0, 9.0, 0.0, 7.0]))  # finetune.py:195-215: top-2 by choice count
    method.after_task(task0)
    method.before_task(task1)
    names1 = {n for n, _ in method.trainable(task1)}
    block = "visual.transformer.resblocks.0.moe"
    assert f"{block}.experts.1.down.weight" in names0 and f"{block}.experts.1.down.weight" not in names1
    assert f"{block}.experts.3.up.bias" not in names1 and f"{block}.experts.0.up.bias" in names1
    assert f"{block}.w_gate.0" in names0 and f"{block}.w_gate.0" not in names1 and f"{block}.w_gate.1" in names1
    assert not any("moe" not in n for n in names0)  # the backbone never trains


def test_mtil_lr_by_dataset_name(tiny: Tiny) -> None:
    method = MoEAdapters(MoEAdaptersConfig(), tiny.ctx)
    aircraft = make_task(0, ("a",))
    aircraft = type(aircraft)(**{**aircraft.__dict__, "spec": type(aircraft.spec)(
        name="Aircraft", class_names=("a",), templates=("{}",))})
    assert method.task_schedule(aircraft, 1e-5) == (5e-3, None)  # None: the benchmark's iterations
    assert method.task_schedule(make_task(1, ("b",)), 1e-5) == (1e-3, None)


OVERRIDES = ["train.iterations=6", "train.log_every=1", "moe_adapters.experts=4", "moe_adapters.ae_iterations=20"]


def moe_engine(out: Path) -> Engine:
    cfg = resolve("smoke", "moe_adapters", 0, config_layers("smoke", ["moe_adapters"], None, OVERRIDES))
    return Engine(cfg, BENCHMARKS.get("smoke"), METHODS.get("moe_adapters"), out, device="cpu", quiet=True)


def test_run_trains_only_the_adapters_and_checkpoints_only_them(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    engine = moe_engine(tmp_path / "ref")
    reference = engine.run().record.array()
    ckpt = torch.load(engine.run_dir.checkpoint_path, weights_only=True)
    counts = engine.run_dir.read_run()["parameters"]
    assert all(".moe." in name for name in ckpt["model"])  # backbone bit-identical: nothing of it is stored
    assert sum(t.numel() for t in ckpt["model"].values()) == counts["added"]
    assert 0 < counts["trainable"] < counts["added"] < counts["total"] / 5
    assert len(ckpt["method"]["autoencoders"]) == 3 and len(ckpt["method"]["frozen"]) > 0
    ckpt_bytes = engine.run_dir.checkpoint_path.stat().st_size
    ae_bytes = sum(t.numel() * 4 for sd in ckpt["method"]["autoencoders"] for t in sd.values())
    assert ckpt_bytes < 1.1 * (counts["added"] * 4 + ae_bytes) + 100_000  # not the 1.6M-parameter backbone

    assert_resume_after_two_tasks_is_identical(monkeypatch, MoEAdapters, moe_engine, tmp_path / "cut", reference)


def test_a_model_it_cannot_patch_fails_before_training(tmp_path: Path) -> None:
    result = run_cli("run", "--methods", "moe_adapters", "--benchmark", "smoke", "--model", "clbench-tiny-rn", "--pretrained",
                     "", "--out", str(tmp_path), "--quiet")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "ViT" in result.stderr and "Traceback" not in result.stderr
    assert not any(tmp_path.rglob("run.json"))

