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
