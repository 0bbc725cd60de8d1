"""DIKI: the residual prefix attention against the reference formula; the Gaussian calibration and routing;
what a run trains and stores; resume; a model it cannot patch."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from clbench.classifier import HeadSpec, TextHeadClassifier
from clbench.engine import Engine
from clbench.errors import UserError
from clbench.methods.diki import DIKI, DIKIConfig, TaskGaussians, residual_prefix_attention, routed
from clbench.models import load_model
from clbench.registry import BENCHMARKS, METHODS
from clbench.runner import config_layers, resolve
from tests.cli_runner import run_cli
from tests.methods.conftest import Tiny
from tests.methods.interrupt import assert_resume_after_two_tasks_is_identical


def reference_attention(x: torch.Tensor, attn: nn.MultiheadAttention, prefix: torch.Tensor, weight: list[float],
                        mask: torch.Tensor | None) -> torch.Tensor:
    """lloongx/DIKI clip/attention.py:84-144 written out per sequence b and head h (batch-first here):
    q, k, v = in-projection of x; o = softmax(q k^T / sqrt(d) + mask) v; the prefix keys/values (not projected)
    give o_p = softmax(q P_k^T / sqrt(d)) P_v, unmasked; o + w_b * o_p, heads concatenated, out-projection."""
    B, N, D = x.shape
    H = attn.num_heads
    d = D // H
    w_in, b_in = attn.in_proj_weight.detach(), attn.in_proj_bias.detach()
    out = torch.zeros(B, N, D)
    for b in range(B):
        q = x[b] @ w_in[:D].t() + b_in[:D]
        k = x[b] @ w_in[D:2 * D].t() + b_in[D:2 * D]
        v = x[b] @ w_in[2 * D:].t() + b_in[2 * D:]
        p = prefix[b if prefix.shape[0] > 1 else 0]
        heads = []
        for h in range(H):
            s = slice(h * d, (h + 1) * d)
            scores = q[:, s] @ k[:, s].t() / math.sqrt(d)
            if mask is not None:
                scores = scores + mask
            o = torch.softmax(scores, dim=-1) @ v[:, s]
            o_p = torch.softmax(q[:, s] @ p[0][:, s].t() / math.sqrt(d), dim=-1) @ p[1][:, s]
            heads.append(o + weight[b] * o_p)
        out[b] = torch.cat(heads, dim=1) @ attn.out_proj.weight.detach().t() + attn.out_proj.bias.detach()
    return out


def test_prefix_attention_equals_the_reference_formula() -> None:
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(8, 2, batch_first=True)
    nn.init.normal_(attn.in_proj_bias)
    nn.init.normal_(attn.out_proj.bias)
    x = torch.randn(3, 5, 8)
    prefix = torch.randn(3, 2, 4, 8)  # per-image prefixes (L = 4)
    causal = torch.full((5, 5), float("-inf")).triu(1)  # the text encoder's mask
    with torch.no_grad():
        ours = residual_prefix_attention(x, attn, prefix, torch.tensor([0.2, 1.0, 0.7]), causal)
        one = residual_prefix_attention(x, attn, prefix[:1], None, None)  # one prefix for all, weight 1
    assert torch.allclose(ours, reference_attention(x, attn, prefix, [0.2, 1.0, 0.7], causal), atol=1e-5)
    assert torch.allclose(one, reference_attention(x, attn, prefix[:1], [1.0] * 3, None), atol=1e-5)


def test_patched_model_is_the_frozen_model_until_a_prefix_has_values(tiny: Tiny) -> None:
    pretrained = copy.deepcopy(tiny.ctx.model).eval()
    method = DIKI(DIKIConfig(tasks=2), tiny.ctx)
    method.patch_model(tiny.ctx.model)
    model = tiny.ctx.model.eval()
    images = torch.randn(4, 3, 32, 32)
    text = tiny.ctx.tokenize(["a photo of a cat.", "a dog"])
    with torch.no_grad():
        assert torch.equal(model.encode_image(images), pretrained.encode_image(images))  # no route: bit-identical
        with routed(method.route, 1, 0.5):  # zero-initialised values: the residual branch adds exactly nothing
            assert torch.allclose(model.encode_image(images), pretrained.encode_image(images), atol=1e-5)
            assert torch.allclose(model.encode_text(text), pretrained.encode_text(text), atol=1e-5)
        for block in model.visual.transformer.resblocks:
            block.diki.prompts[1][1].normal_()
        with routed(method.route, 1):
            assert not torch.allclose(model.encode_image(images), pretrained.encode_image(images), atol=1e-3)
        with routed(method.route, 0):
            assert torch.allclose(model.encode_image(images), pretrained.encode_image(images), atol=1e-5)
        with routed(method.route, 1, 0.0):  # calibration weight 0: the frozen model again
            assert torch.allclose(model.encode_image(images), pretrained.encode_image(images), atol=1e-5)
        # no task learned yet: the classifier is the frozen zero-shot CLIP
        head = HeadSpec.single("t", ("cat", "dog"), ("a photo of a {}.",))
        ours = method.classifier().logits(images, head)
        zero_shot = TextHeadClassifier(pretrained, tiny.ctx.text_heads).logits(images, head)
    assert torch.allclose(ours, zero_shot, atol=1e-6)


def cluster(centre: int, n: int, seed: int, dims: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mean = torch.zeros(dims)
    mean[centre] = 1.0
    return torch.nn.functional.normalize(mean + 0.1 * torch.randn(n, dims, generator=g), dim=-1)


def test_gaussian_log_likelihood_matches_the_reference_and_routing_picks_the_task() -> None:
    train_a, train_b = cluster(0, 300, 0), cluster(1, 300, 1)
    test_a, test_b = cluster(0, 64, 2), cluster(1, 64, 3)
    gaussians = TaskGaussians()
    gaussians.add(train_a)
    # DIKI.py:369-373 (unbiased covariance + 1e-7 I) and MultivariateNormal.log_prob, written out in float64
    x = train_a.double()
    mu = x.mean(0)
    cov = (x - mu).t() @ (x - mu) / (len(x) - 1) + 1e-7 * torch.eye(16, dtype=torch.float64)

    def log_p(feats: torch.Tensor) -> torch.Tensor:
        delta = feats.double() - mu
        maha = (delta @ torch.linalg.inv(cov) * delta).sum(1)
        return -0.5 * (16 * math.log(2 * math.pi) + torch.logdet(cov) + maha)

    assert torch.allclose(gaussians.log_prob(test_b)[:, 0].double(), log_p(test_b), rtol=1e-4)
    # DIKI.py:170-172: weight = sigmoid(log p / scale - 1); task-B images are far outside A's Gaussian
    _, weight_a = gaussians.calibrate(test_a, 16.0)
    _, weight_b = gaussians.calibrate(test_b, 16.0)
    assert torch.allclose(weight_a.double(), torch.sigmoid(log_p(test_a) / 16 - 1), atol=1e-4)
    assert weight_a.min() > 0.3 and weight_b.max() < 1e-6
    gaussians.add(train_b)
    assert gaussians.calibrate(test_a, 16.0)[0].tolist() == [0] * 64
    assert gaussians.calibrate(test_b, 16.0)[0].tolist() == [1] * 64


def test_classifier_scores_each_image_with_its_tasks_prefix_and_weight(tiny: Tiny, monkeypatch) -> None:  # noqa: ANN001
    method = DIKI(DIKIConfig(tasks=2), tiny.ctx)
    method.patch_model(tiny.ctx.model)
    model = tiny.ctx.model.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".diki.prompts." in name:
                p[1].normal_()
    method.gaussians.add(torch.randn(64, 32))  # any statistics: the calibration is fixed below
    index, weight = torch.tensor([0, 1, 1, 0]), torch.tensor([0.3, 0.9, 0.5, 0.7])
    monkeypatch.setattr(TaskGaussians, "calibrate", lambda self, feats, scale: (index, weight))
    images = torch.randn(4, 3, 32, 32)
    head = HeadSpec.single("t", ("cat", "dog", "bird"), ("a photo of a {}.", "art of a {}."))
    with torch.no_grad():
        ours = method.classifier().logits(images, head)
        for b in range(4):  # image b alone through its task's prefix at its weight; the text at the mean weight
            i = int(index[b])  # of the images that share its prefix (DIKI.py:173)
            with routed(method.route, i, weight[b:b + 1]):
                feat = torch.nn.functional.normalize(model.encode_image(images[b:b + 1]), dim=-1)
            texts = [t.format(c) for c in head.class_names for t in head.groups[0].templates]
            with routed(method.route, i, float(weight[index == i].mean())):
                text = torch.nn.functional.normalize(model.encode_text(tiny.ctx.tokenize(texts)), dim=-1)
            text = torch.nn.functional.normalize(text.view(3, 2, -1).mean(1), dim=-1)
            assert torch.allclose(ours[b], (feat @ text.t())[0], atol=1e-5)
        zero_shot = TextHeadClassifier(tiny.initial, tiny.ctx.text_heads).logits(images, head)
    assert not torch.allclose(ours, zero_shot, atol=1e-3)


OVERRIDES = ["train.iterations=6", "train.log_every=1", "diki.tasks=4"]


def diki_engine(out: Path, overrides: list[str] = OVERRIDES) -> Engine:
    cfg = resolve("smoke", "diki", 0, config_layers("smoke", ["diki"], None, overrides))
    return Engine(cfg, BENCHMARKS.get("smoke"), METHODS.get("diki"), out, device="cpu", quiet=True)


def test_run_trains_only_the_task_prefixes_and_checkpoints_prefixes_and_statistics(tmp_path: Path,
                                                                                   monkeypatch) -> None:  # noqa: ANN001
    engine = diki_engine(tmp_path / "ref")
    reference = engine.run().record.array()
    ckpt = torch.load(engine.run_dir.checkpoint_path, weights_only=True)
    counts = engine.run_dir.read_run()["parameters"]
    # the backbone is bit-identical to the pretrained one: the checkpoint holds prefixes only
    assert ckpt["model"] and all(".diki.prompts." in name for name in ckpt["model"])
    assert sum(t.numel() for t in ckpt["model"].values()) == counts["added"]
    start = load_model("clbench-tiny", None).model
    torch.manual_seed(-1)  # the engine patches under seed * 1009 - 1: the prefixes the run started from
    DIKI(DIKIConfig(tasks=4), None).patch_model(start)  # type: ignore[arg-type]
    initial = dict(start.named_parameters())
    for name, tensor in ckpt["model"].items():
        task = int(name.rsplit(".", 1)[1])
        if task < 3:  # the smoke stream's three tasks trained their own prefix; the fourth stayed as built
            assert not torch.equal(tensor, initial[name])
        else:
            assert torch.equal(tensor, initial[name])
    assert counts["trainable"] == 3 * counts["added"] // 4
    stats = ckpt["method"]
    assert len(stats["means"]) == len(stats["covs"]) == 3 and stats["covs"][0].shape == (32, 32)
    stat_bytes = sum(t.numel() * 4 for k in ("means", "covs") for t in stats[k])
    assert engine.run_dir.checkpoint_path.stat().st_size < 1.1 * (counts["added"] * 4 + stat_bytes) + 100_000

    assert_resume_after_two_tasks_is_identical(monkeypatch, DIKI, diki_engine, tmp_path / "cut", reference)


def test_a_stream_longer_than_the_prefix_pool_is_refused(tmp_path: Path) -> None:
    engine = diki_engine(tmp_path, ["train.iterations=2", "diki.tasks=2"])
    with pytest.raises(UserError, match="prefixes but the stream has 3 tasks; set diki.tasks=3"):
        engine.run()


def test_a_model_it_cannot_patch_fails_before_training(tmp_path: Path) -> None:
    result = run_cli("run", "--methods", "diki", "--benchmark", "smoke", "--model", "clbench-tiny-rn", "--pretrained",
                     "", "--out", str(tmp_path), "--quiet")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "ViT" in result.stderr and "Traceback" not in result.stderr
    assert not any(tmp_path.rglob("run.json"))


def test_mtil_schedule_is_diki_configs_and_only_diki_s() -> None:
    for bench in ("mtil_order1", "mtil_order1_5shot"):  # configs/MTIL.yaml and MTIL-FS.yaml: same DIKI.optim
        diki = resolve(bench, "diki", 0, config_layers(bench, ["diki"], None, [])).train
        assert (diki.iterations, diki.epochs, diki.batch_size, diki.warmup, diki.final_step) == (None, 10, 128, 0,
                                                                                                 False)
        finetune = resolve(bench, "finetune", 0, config_layers(bench, ["finetune"], None, [])).train
        assert finetune.epochs is None and finetune.batch_size == 64 and finetune.final_step
