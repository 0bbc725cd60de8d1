import pytest

from clbench.errors import UserError
from clbench.runner import config_layers, resolve


def test_layers_apply_in_order(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("train:\n  lr: 0.5\n  batch_size: 8\nmethod:\n  lr: 0.25\n")
    layers = config_layers("smoke", ["finetune"], str(cfg_file), ["train.batch_size=4"])
    cfg = resolve("smoke", "finetune", 3, layers)
    assert cfg.train.batch_size == 4  # --set beats the file
    assert cfg.train.lr == 0.25  # method.lr overrides the schedule for the method
    assert cfg.train.iterations == 20  # the benchmark's YAML default
    assert cfg.model.name == "clbench-tiny" and cfg.seed == 3


def test_method_specific_section_and_model_flags():
    layers = config_layers("smoke", ["finetune", "zeroshot"], None, ["finetune.lr=0.01"])
    ft = resolve("smoke", "finetune", 0, layers, model="clbench-tiny", pretrained=None)
    zs = resolve("smoke", "zeroshot", 0, layers)
    assert ft.train.lr == 0.01 and zs.train.lr == 1e-3


def test_iterations_and_epochs_are_exclusive():
    layers = config_layers("smoke", ["finetune"], None, ["train.epochs=1"])
    with pytest.raises(UserError, match="exactly one of train.iterations and train.epochs"):
        resolve("smoke", "finetune", 0, layers)
    layers = config_layers("smoke", ["finetune"], None, ["train.epochs=1", "train.iterations=null"])
    assert resolve("smoke", "finetune", 0, layers).train.epochs == 1


def test_resolved_config_is_plain_data_with_all_sections():
    cfg = resolve("smoke", "finetune", 0, config_layers("smoke", ["finetune"], None, []))
    d = cfg.to_dict()
    assert set(d) == {"benchmark", "model", "train", "method", "seed"}
    assert d["benchmark"]["name"] == "smoke" and d["method"]["name"] == "finetune"


@pytest.mark.parametrize("item", ["lr=1", "train.=1", "=3"])
def test_bad_set_syntax(item):
    with pytest.raises(UserError, match="section.key=value"):
        config_layers("smoke", ["finetune"], None, [item])


def test_channels_last_changes_the_run_id_only_when_set():
    """Runs written before ``train.channels_last`` existed keep their id (resume finds them); turning it on
    (different float rounding) gives a new one. A non-boolean value is refused in one line."""
    import dataclasses

    from clbench.registry import BENCHMARKS
    from clbench.store import config_hash

    layers = [BENCHMARKS.get("smoke").defaults]
    cfg = resolve("smoke", "finetune", 0, layers)
    before = cfg.identity()
    assert "channels_last" not in before["train"] and cfg.to_dict()["train"]["channels_last"] is False
    # the id of the same config as written before the key existed
    legacy = dict(before, train={k: v for k, v in dataclasses.asdict(cfg.train).items()
                                 if k not in ("channels_last", "eval_cache", "eval_cache_memory_gb", "eval_cache_dir",
                                              "checkpoint_every", "checkpoint_every_s", "loggers")})
    assert config_hash(before) == config_hash(legacy)
    on = resolve("smoke", "finetune", 0, [*layers, {"train": {"channels_last": True}}])
    assert on.identity()["train"]["channels_last"] is True and config_hash(on.identity()) != config_hash(before)
    with pytest.raises(UserError) as err:
        resolve("smoke", "finetune", 0, [*layers, {"train": {"channels_last": "sometimes"}}])
    assert "\n" not in str(err.value) and "channels_last" in str(err.value)
