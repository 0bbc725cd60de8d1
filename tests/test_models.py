import pytest
import torch

from clbench.context import trainable_parameters
from clbench.errors import MissingResourceError, UserError
from clbench.models import check_model, compile_towers, load_model


def test_tiny_model_loads_with_frozen_logit_scale():
    loaded = load_model("clbench-tiny", None)
    assert not loaded.model.logit_scale.requires_grad
    names = [n for n, _ in trainable_parameters(loaded.model)]
    assert "logit_scale" not in names and len(names) > 10
    assert loaded.transforms.image_size == 32
    tokens = loaded.tokenizer(["a photo of a cat."])
    assert tokens.shape == (1, 16)


def test_local_safetensors_checkpoint_loads_through_the_same_call(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    source = load_model("clbench-tiny", None).model
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = load_model("clbench-tiny", str(path)).model
    for (name, a), (_, b) in zip(source.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_unknown_tag_lists_valid_tags():
    with pytest.raises(UserError, match="valid tags: .*openai"):
        check_model("ViT-B-16", "no-such-tag")


def test_hf_hub_model_missing_from_cache():
    with pytest.raises(MissingResourceError, match="Hugging Face cache"):
        check_model("hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", None)


def test_compile_towers_in_place_keeps_names_and_copies_run_eagerly():
    import copy

    model = load_model("clbench-tiny", None).model
    keys = list(model.state_dict())
    assert compile_towers(model) == ["visual", "transformer"]
    assert model.visual._compiled_call_impl is not None and model.transformer._compiled_call_impl is not None
    assert list(model.state_dict()) == keys  # checkpoints unchanged
    assert copy.deepcopy(model).visual._compiled_call_impl is None  # teachers / snapshots run eagerly


def test_engine_compiles_the_model_with_train_compile(tmp_path, monkeypatch):
    import numpy as np

    from tests.test_engine import make_engine

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compiled.append(fn) or fn)  # record, run eagerly
    eager = make_engine(tmp_path / "eager", overrides=("train.iterations=2",)).run().record.array()
    assert compiled == []
    on = make_engine(tmp_path / "compiled", overrides=("train.iterations=2", "train.compile=true"))
    assert np.array_equal(on.run().record.array(), eager) and len(compiled) == 2


# ---- attention dispatch (issue 13 item 2): which attention kernel the open_clip towers run -------------------

SDPA = "aten::scaled_dot_product_attention"
FUSED_CPU = "aten::_scaled_dot_product_flash_attention_for_cpu"  # SDPA's fused CPU kernel (not its math fallback)
NATIVE_MHA = "aten::_native_multi_head_attention"  # nn.MultiheadAttention's inference fast path
MATH = "aten::_scaled_dot_product_attention_math"


def _attention_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    from open_clip.modified_resnet import AttentionPool2d

    return [m for m in model.modules() if isinstance(m, (torch.nn.MultiheadAttention, AttentionPool2d))]


def _attention_ops(model: torch.nn.Module, fn) -> tuple[dict[str, int], dict[str, int]]:
    """(aten attention ops the profiler saw, attention-layer calls by kind) while ``fn`` runs."""
    from collections import Counter

    from torch.profiler import ProfilerActivity, profile

    calls: Counter[str] = Counter()
    hooks = []
    for layer in _attention_layers(model):
        fast = (isinstance(layer, torch.nn.MultiheadAttention) and layer.num_heads % 2 == 0 and layer.batch_first)

        def hook(mod, args, kwargs, fast=fast):  # noqa: ANN001, ANN202
            unmasked = kwargs.get("attn_mask") is None
            calls["fast_path_candidate" if fast and unmasked and not mod.training else "other"] += 1

        hooks.append(layer.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
    finally:
        for h in hooks:
            h.remove()
    ops = Counter(e.name for e in prof.events() if e.name in (SDPA, FUSED_CPU, NATIVE_MHA, MATH))
    return dict(ops), dict(calls)


@pytest.mark.parametrize("name,pretrained,size", [("clbench-world", "bundled:world", 32), ("clbench-tiny", None, 32),
                                                  ("ViT-B-16", None, 224), ("clbench-tiny-rn", None, 32)])
def test_towers_attend_through_sdpa_in_training_and_fused_kernels_in_eval(name, pretrained, size):
    """Training: every attention layer of both towers runs F.scaled_dot_product_attention (fused kernel).

    Evaluation (inference mode, fp32 as on CPU): masked or odd-head layers (the text tower's causal mask, the
    world model's 3 heads) run SDPA; unmasked even-head image layers take nn.MultiheadAttention's fused fast
    path, which PyTorch only allows without autocast (``torch/nn/modules/activation.py`` MultiheadAttention.forward
    "autocast is enabled") — so on CUDA under the default bf16 autocast every layer runs SDPA.
    """
    from clbench.benchmark import TaskSpec
    from clbench.classifier import HeadSpec, TextHeadClassifier
    from clbench.context import MethodContext
    from clbench.engine import precision_context
    from clbench.evaluation import score_task
    from clbench.method import Batch, NoConfig, TaskState
    from clbench.methods.finetune import Finetune

    torch.manual_seed(0)
    loaded = load_model(name, pretrained, "cpu")
    model = loaded.model
    ctx = MethodContext(model, loaded.tokenizer, torch.device("cpu"), label_smoothing=0.2,
                        initial_model=lambda: model)
    spec = TaskSpec(name="t", class_names=("cat", "dog"), templates=("a photo of a {}.",))
    task = TaskState(index=0, spec=spec, num_tasks=1, steps=1, train_class_names=spec.class_names,
                     seen_class_names=spec.class_names)
    images = torch.randn(2, 3, size, size)
    method = Finetune(NoConfig(), ctx)
    model.train()
    ops, calls = _attention_ops(model, lambda: method.training_step(Batch(images, torch.tensor([0, 1])), task, 0))
    layers = len(_attention_layers(model))
    assert calls == {"other": layers}  # each layer once (image + one text batch)
    assert ops == {SDPA: layers, FUSED_CPU: layers}

    model.eval()
    autocast, _ = precision_context("auto", torch.device("cpu"))
    classifier = TextHeadClassifier(model, ctx.text_heads)
    head = HeadSpec.single("t", spec.class_names, spec.templates)
    ops, calls = _attention_ops(model, lambda: score_task(classifier, head, [(images, torch.tensor([0, 1]))],
                                                          torch.device("cpu"), autocast))
    fast = calls.get("fast_path_candidate", 0)
    assert sum(calls.values()) == layers
    assert ops == {k: v for k, v in {SDPA: layers - fast, FUSED_CPU: layers - fast, NATIVE_MHA: fast}.items() if v}
