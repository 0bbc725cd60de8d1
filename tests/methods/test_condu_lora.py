"""ConDU (LoRA): unify/decouple on LoRA deltas against the reference's whole-state-dict formulas, what trains,
what the checkpoint holds, the per-task learning rates, resume, and a model it cannot patch."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from clbench.context import MethodContext, freeze
from clbench.engine import Engine
from clbench.lora import is_lora, lora_parameters
from clbench.methods.condu_lora import ConDULoRA, ConDULoRAConfig
from clbench.models import load_model
from clbench.registry import BENCHMARKS, METHODS
from clbench.runner import config_layers, resolve
from tests.cli_runner import invoke
from tests.methods.conftest import Tiny, make_batch, make_task
from tests.methods.interrupt import assert_resume_after_two_tasks_is_identical


def reference_unify(deltas: list[dict[str, torch.Tensor]]
                    ) -> tuple[dict[str, torch.Tensor], dict[str, list[torch.Tensor]], torch.Tensor]:
    """ConDU ``unify_delta_models`` (src/delta_models.py:93-126), transcribed."""
    sum_param = {k: torch.stack([d[k] for d in deltas], 0).mean(0) for k in deltas[0]}
    unified, masks = {}, {}
    scales = torch.zeros(len(deltas), dtype=torch.float64)
    for n in sum_param:
        masks[n] = []
        flag = (sum_param[n] > 0) * 2 - 1
        param_max = torch.zeros_like(deltas[0][n])
        for m in range(len(deltas)):
            param = deltas[m][n]
            mask = (param * flag) > 0
            masks[n].append(mask)
            param_abs = torch.abs(mask * param)
            param_max = torch.where(param_abs > param_max, param_abs, param_max)
            scales[m] += torch.mean(torch.abs(param))
        unified[n] = param_max * flag
    new_scales = torch.zeros(len(deltas), dtype=torch.float64)
    for m in range(len(deltas)):
        for n in unified:
            new_scales[m] += torch.mean(torch.abs(unified[n] * masks[n][m]))
    return unified, masks, scales / new_scales


def patched(tiny: Tiny, config: ConDULoRAConfig) -> tuple[ConDULoRA, Tiny]:
    """The engine's order: patch the model under one seed; the initial model is a frozen copy of the patched one."""
    torch.manual_seed(5)
    ConDULoRA(config, None).patch_model(tiny.ctx.model)
    initial = freeze(copy.deepcopy(tiny.ctx.model))
    ctx = MethodContext(tiny.ctx.model, tiny.ctx.tokenizer, torch.device("cpu"), label_smoothing=0.2,
                        initial_model=lambda: initial)
    return ConDULoRA(config, ctx), Tiny(ctx, initial)


def test_unify_and_decouple_on_lora_deltas_follow_the_reference_state_dict_formulas(tiny: Tiny) -> None:
    method, tiny = patched(tiny, ConDULoRAConfig(rank=3, logits_num=1))
    method.before_run()
    theta0 = {n: t.detach().clone() for n, t in tiny.initial.state_dict().items()}
    tiny.ctx.bind_task_data(lambda max_batches=None: iter([make_batch(6, 2)]))
    g = torch.Generator().manual_seed(1)
    ref_unified: dict[str, torch.Tensor] | None = None
    ref_masks: dict[str, list[torch.Tensor]] = {}
    ref_rescalers = torch.zeros(0)
    for t in range(3):
        task = make_task(t, ("cat", "dog"), num_tasks=3)
        method.before_task(task)
        assert {n for n, _ in method.trainable(task)} == {n for n in theta0 if is_lora(n)}
        with torch.no_grad():  # "training": only the factors move, as the engine's optimizer over trainable()
            for n, p in method.trainable(task):
                torch.testing.assert_close(p.detach(), theta0[n])  # every task restarts from the initial factors
                p.add_(0.02 * torch.randn(p.shape, generator=g))
        current = {n: t.detach().clone() for n, t in tiny.ctx.model.state_dict().items()}
        method.after_task(task)
        # the reference, main.py:53-85: previous deltas = (theta0 + unified * mask_m * rescaler_m) - theta0 over
        # the whole state dict (DeltaModel, delta_models.py:17-24), then the current model's delta
        deltas = []
        if ref_unified is not None:
            for m in range(t):
                recon = {n: theta0[n] + ref_unified[n] * ref_masks[n][m] * ref_rescalers[m] for n in theta0}
                deltas.append({n: recon[n] - theta0[n] for n in theta0})
        deltas.append({n: current[n] - theta0[n] for n in theta0})
        ref_unified, ref_masks, ref_rescalers = reference_unify(deltas)
        assert all(not ref_unified[n].any() for n in theta0 if not is_lora(n))  # the frozen backbone adds nothing
        assert set(method.unified) == {n for n in theta0 if is_lora(n)}  # stored: the factors' delta only
        for n, value in method.unified.items():
            torch.testing.assert_close(value, ref_unified[n])
            for m in range(t + 1):
                assert torch.equal(method.masks[m][n], ref_masks[n][m])
        torch.testing.assert_close(torch.tensor(method.rescalers, dtype=torch.float64), ref_rescalers)
    assert ref_rescalers[-1] != 1.0  # three overlapping deltas: the rescalers are not trivial
    for m, name in enumerate(method.tasks):  # each decoupled task model = theta0 + unified * mask_m * rescaler_m
        model = dict(method.task_model(name).state_dict())
        for n in theta0:
            expected = theta0[n] + ref_unified[n] * ref_masks[n][m] * ref_rescalers[m].item()
            torch.testing.assert_close(model[n], expected.to(theta0[n].dtype))
            if not is_lora(n):
                assert torch.equal(model[n], theta0[n])


def test_learning_rates_of_the_papers_scripts_by_dataset_name(tiny: Tiny) -> None:
    method = ConDULoRA(ConDULoRAConfig(), tiny.ctx)
    # scripts/MTIL_LoRA.sh:7-8 and scripts/fewshot_MTIL_LoRA.sh:7-8, position i = dataset i
    datasets = ["Aircraft", "Caltech101", "CIFAR100", "DTD", "EuroSAT", "Flowers", "Food", "MNIST", "OxfordPet",
                "Cars", "SUN397"]
    full = [1e-3, 5e-4, 2e-3, 2e-3, 1.5e-4, 1e-5, 2e-3, 1e-3, 1.5e-4, 2e-3, 1.5e-3]
    few = [3e-3, 8e-4, 1.5e-3, 2e-3, 3e-4, 1e-5, 2e-3, 2.5e-3, 3e-4, 2e-3, 2e-3]
    task = make_task(0, ("a",))
    for name, lr in zip(datasets, full, strict=True):
        named = type(task)(**{**task.__dict__, "spec": type(task.spec)(name=name, class_names=("a",),
                                                                        templates=("{}",))})
        assert method.task_schedule(named, 1e-5) == (lr, None)  # None: the benchmark's iterations
    assert method.task_schedule(task, 1e-5) == (1e-3, None)  # not in the list: --lr's default, args.py:13
    for bench in ("mtil_order1_5shot", "mtil_order2_5shot"):
        cfg = resolve(bench, "condu_lora", 0, config_layers(bench, ["condu_lora"], None, []))
        assert cfg.method_config.task_lr == dict(zip(datasets, few, strict=True))
    assert resolve("mtil_order1", "condu_lora", 0, config_layers("mtil_order1", ["condu_lora"], None, [])
                   ).method_config.task_lr == dict(zip(datasets, full, strict=True))


OVERRIDES = ["train.iterations=5", "train.log_every=1", "condu_lora.rank=4", "condu_lora.base_lr=0.01"]


def lora_engine(out: Path) -> Engine:
    cfg = resolve("smoke", "condu_lora", 0, config_layers("smoke", ["condu_lora"], None, OVERRIDES))
    return Engine(cfg, BENCHMARKS.get("smoke"), METHODS.get("condu_lora"), out, device="cpu", quiet=True)


def test_run_trains_only_the_factors_checkpoints_only_them_and_resumes_identically(tmp_path: Path,
                                                                                    monkeypatch) -> None:  # noqa: ANN001
    engine = lora_engine(tmp_path / "ref")
    reference = engine.run().record.array()
    ckpt = torch.load(engine.run_dir.checkpoint_path, weights_only=True)
    counts = engine.run_dir.read_run()["parameters"]
    # the checkpoint stores what differs from the pretrained weights: the factors only, so the backbone after
    # three tasks of training is bit-identical to the pretrained one
    assert ckpt["model"] and all(is_lora(n) for n in ckpt["model"])
    assert sum(t.numel() for t in ckpt["model"].values()) == counts["added"] == counts["trainable"]
    assert counts["added"] < counts["total"] / 10
    state = ckpt["method"]
    assert len(state["tasks"]) == 3 and set(state["unified"]) == set(ckpt["model"])
    assert all(set(mask) == set(ckpt["model"]) for mask in state["masks"])
    # bytes: the factors (float32), the unified delta (float32) and 3 boolean masks, not the tiny CLIP's backbone
    ckpt_bytes = engine.run_dir.checkpoint_path.stat().st_size
    assert ckpt_bytes < 1.1 * counts["added"] * (4 + 4 + 3) + 100_000 < counts["total"] * 4 / 5
    model = load_model("clbench-tiny", None).model
    torch.manual_seed(-1)  # the engine patches under seed * 1009 - 1 (seed 0): the factors every task starts from
    ConDULoRA(ConDULoRAConfig(rank=4), None).patch_model(model)
    start = dict(lora_parameters(model))
    assert start.keys() == ckpt["model"].keys()
    assert all(not torch.equal(ckpt["model"][n], start[n]) for n in start)  # every factor trained

    assert_resume_after_two_tasks_is_identical(monkeypatch, ConDULoRA, lora_engine, tmp_path / "cut", reference)


def test_a_model_it_cannot_patch_fails_before_training(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    result = invoke(capsys, "run", "--methods", "condu_lora", "--benchmark", "smoke", "--model", "clbench-tiny-rn",
                    "--pretrained", "", "--out", str(tmp_path), "--quiet")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "ViT" in result.stderr and "Traceback" not in result.stderr
    assert not any(tmp_path.rglob("run.json"))
