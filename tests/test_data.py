"""Training batches are a pure function of (seed, task, step); loader policy (workers, pinning, prefetch,
eval batch) and fused AdamW on CUDA only."""

from __future__ import annotations

import pytest
import torch

from clbench.data import (
    StepBatches,
    auto_workers,
    make_loader,
    resolve_eval_batch,
    resolve_workers,
    step_loader,
)
from clbench.engine import make_optimizer
from clbench.errors import UserError
from clbench.runner import config_layers, resolve
from clbench.world.datasets import ImageLabelDataset

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def augmented_dataset(n: int = 23) -> ImageLabelDataset:
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return ImageLabelDataset(images, [i % 5 for i in range(n)], crop_scale=(0.9, 1.0))


def batches(dataset: ImageLabelDataset, steps: int, start: int = 0, workers: int = 0, seed: int = 7) -> list:
    return list(step_loader(dataset, StepBatches(len(dataset), 4, seed, steps=steps, start=start), CPU, workers))


def assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_same_batches_with_zero_and_two_workers() -> None:
    data = augmented_dataset()
    assert_same(batches(data, 9, workers=0), batches(data, 9, workers=2))


def test_batches_from_step_k_are_the_tail_of_batches_from_zero() -> None:
    data = augmented_dataset()
    full = batches(data, 15)
    for k in (1, 6, 7, 13):  # 6 batches per pass: inside a pass, at a pass boundary, in a later pass
        assert_same(batches(data, 15, start=k), full[k:])


def test_training_rng_does_not_change_the_batches() -> None:
    data = augmented_dataset()
    torch.manual_seed(0)
    first = batches(data, 5)
    torch.manual_seed(123)
    torch.rand(10)
    assert_same(first, batches(data, 5))


def test_each_pass_visits_every_example_once_and_passes_differ() -> None:
    sampler = StepBatches(23, 4, seed=3, steps=12)
    steps = [sampler.batch(s) for s in range(12)]
    assert [len(b) for b in steps[:6]] == [4, 4, 4, 4, 4, 3]  # the last batch of a pass is short (no drop_last)
    passes = [[i for b in steps[p * 6:(p + 1) * 6] for i, _ in b] for p in range(2)]
    assert sorted(passes[0]) == sorted(passes[1]) == list(range(23))
    assert passes[0] != passes[1]
    seeds = [s for b in steps for _, s in b]
    assert len(set(seeds)) == len(seeds)  # every draw has its own augmentation seed
    assert StepBatches(23, 4, seed=4, steps=12).batch(0) != steps[0]


def test_same_example_gets_different_crops_in_different_draws() -> None:
    data = augmented_dataset()
    sampler = StepBatches(len(data), 4, seed=7, steps=12)
    loaded = batches(data, 12)
    first_seen: dict[int, torch.Tensor] = {}
    differ = 0
    for step, (images, _) in enumerate(loaded):
        for (index, _), image in zip(sampler.batch(step), images, strict=True):
            if index in first_seen:
                differ += int(not torch.equal(first_seen[index], image))
            first_seen.setdefault(index, image)
    assert differ > 10  # the crop is random per draw (the second pass re-draws every example)


def test_fixed_pass_is_in_order_and_capped() -> None:
    sampler = StepBatches(10, 4, seed=0, steps=None, shuffle=False)
    assert [[i for i, _ in b] for b in sampler] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(list(StepBatches(10, 4, seed=0, steps=2, shuffle=False))) == 2

def test_auto_workers_none_on_cpu_and_from_the_cpu_count_on_cuda():
    assert auto_workers(CPU, cpu_count=16) == 0
    assert [auto_workers(CUDA, cpu_count=n) for n in (1, 2, 16, 64)] == [1, 1, 15, 16]
    assert resolve_workers("auto", CPU) == 0 and resolve_workers(3, CPU) == 3  # an explicit count wins


def test_eval_batch_auto_is_large_on_gpu():
    assert resolve_eval_batch("auto", CPU) == 256 and resolve_eval_batch("auto", CUDA) == 1024
    assert resolve_eval_batch(64, CUDA) == 64


def test_cuda_loader_pins_prefetches_and_keeps_workers_cpu_loader_does_not():
    data = torch.utils.data.TensorDataset(torch.zeros(4, 3), torch.zeros(4))
    gpu = make_loader(data, 2, CUDA, num_workers=1)
    assert gpu.pin_memory and gpu.prefetch_factor == 4 and gpu.persistent_workers
    assert not make_loader(data, 2, CUDA, num_workers=1, persistent=False).persistent_workers
    cpu = make_loader(data, 2, CPU)
    assert not cpu.pin_memory and cpu.num_workers == 0 and not cpu.persistent_workers


def test_fused_adamw_on_cuda_only():
    tcfg = resolve("smoke", "finetune", 0, config_layers("smoke", ["finetune"], None, [])).train
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert make_optimizer(params, 1e-3, tcfg, CUDA).defaults["fused"] is True
    assert not make_optimizer(params, 1e-3, tcfg, CPU).defaults["fused"]


def test_real_benchmarks_default_to_auto_and_resolve_to_zero_workers_on_cpu():
    tcfg = resolve("mtil_order1", "finetune", 0, config_layers("mtil_order1", ["finetune"], None, [])).train
    assert tcfg.num_workers == "auto" and tcfg.eval_batch_size == "auto"
    assert resolve_workers(tcfg.num_workers, CPU) == 0


@pytest.mark.parametrize("value", ["lots", "-1"])
def test_bad_worker_count_is_a_user_error(value):
    with pytest.raises(UserError, match="train.num_workers must be"):
        resolve("smoke", "finetune", 0, config_layers("smoke", ["finetune"], None, [f"train.num_workers={value}"]))
