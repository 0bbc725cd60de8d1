"""The real engine loop against the reference training loop written out here: ZSCL on a tiny CLIP.

The expected weights come from ZSCL's own procedure (``Thunderbeee/ZSCL`` ``mtil/src/models/finetune.py``),
restated below with file:line: ``range(total_iterations + 1)`` steps, warm-up + cosine lr, CE with label
smoothing + l2 to the task start + the two distillation terms, AdamW, and ``merge_we`` whenever
``iteration % avg_freq == 0``; the training images go through the reference's training transform
(``mtil/clip/clip.py:63-72``). Only the batch composition (which example, which draw seed) and the reference
batches are read from the run; every value is recomputed from those.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

from clbench.benchmark import Benchmark, BenchmarkDef, TaskSpec, Transforms
from clbench.data import SeededDraws
from clbench.engine import Engine
from clbench.methods.zscl import ZSCL
from clbench.models import load_model
from clbench.reference_data import TensorReferenceData
from clbench.registry import METHODS
from clbench.runner import resolve

CLASSES = ("cat", "dog", "bird")
TEMPLATE = "a photo of a {}."
CAPTIONS = ["a red circle", "two blue squares", "a striped star", "three small triangles", "a green dot"]
MEAN = (0.48145466, 0.4578275, 0.40821073)  # mtil/clip/clip.py:64
STD = (0.26862954, 0.26130258, 0.27577711)
N, WARMUP, AVG_FREQ, LR, BATCH, LS, L2 = 7, 3, 3, 1e-3, 4, 0.2, 1.0


class PilImages(Dataset):
    """(transform(PIL image), label): how the real benchmarks hand images to the model's transform."""

    def __init__(self, images: list[Image.Image], targets: list[int], transform: Any) -> None:
        self.images, self.targets, self.transform = images, targets, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), self.targets[index]


def pil_images(count: int) -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)) for _ in range(count)]


def one_task_benchmark(images: list[Image.Image], labels: list[int], reference: TensorReferenceData) -> BenchmarkDef:
    def build(_options: Any, transforms: Transforms) -> Benchmark:
        spec = TaskSpec("task", CLASSES, (TEMPLATE, "art of a {}."))
        return Benchmark(name="loop", protocol="mtil", tasks=[spec],
                         train_datasets=[PilImages(images, labels, transforms.train)],
                         test_datasets=[PilImages(images[:3], labels[:3], transforms.eval)],
                         info={"services": {"reference_data": reference}})

    return BenchmarkDef(name="loop", summary="one task", protocol="mtil", options=object, build=build)


def reference_train_transform() -> Any:
    """``_transform(n_px, is_train=True)``, mtil/clip/clip.py:63-72."""
    return T.Compose([T.RandomResizedCrop(32, scale=(0.9, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                      lambda image: image.convert("RGB"), T.ToTensor(), T.Normalize(MEAN, STD)])


def reference_lr(step: int) -> float:
    """mtil/src/utils.py:17-29 (``_warmup_lr`` then cosine over ``steps - warmup_length``)."""
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    return 0.5 * (1 + np.cos(np.pi * (step - WARMUP) / (N - WARMUP))) * LR


def distillation(t: torch.Tensor, s: torch.Tensor, temp: float = 2.0) -> torch.Tensor:
    """mtil/src/models/helpers.py:64-67."""
    p = F.softmax(t / temp, dim=1)
    return F.cross_entropy(s / temp, p, reduction="mean") * (temp ** 2)


def test_engine_loop_equals_the_zscl_reference_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(11)
    start_model = load_model("clbench-tiny", None, "cpu")
    checkpoint = tmp_path / "tiny.pt"
    torch.save(start_model.model.state_dict(), checkpoint)
    tokenizer = start_model.tokenizer
    images, labels = pil_images(10), [i % 3 for i in range(10)]
    ref_images = torch.randint(0, 256, (7, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    reference = TensorReferenceData(ref_images, CAPTIONS, MEAN, STD)

    draws: list[tuple[int, int]] = []
    fed: list[tuple[torch.Tensor, torch.Tensor]] = []
    ref_fed: list[torch.Tensor] = []
    real_getitem, real_step, real_ref = SeededDraws.__getitem__, ZSCL.training_step, ZSCL.reference_batch
    monkeypatch.setattr(SeededDraws, "__getitem__", lambda self, d: draws.append(d) or real_getitem(self, d))
    monkeypatch.setattr(ZSCL, "training_step",
                        lambda self, b, t, s: fed.append((b.images.clone(), b.labels.clone())) or real_step(self, b, t, s))
    monkeypatch.setattr(ZSCL, "reference_batch",
                        lambda self, n: (lambda out: ref_fed.append(out[1].clone()) or out)(real_ref(self, n)))

    layers = [{"model": {"name": "clbench-tiny", "pretrained": str(checkpoint)},
               "train": {"iterations": N, "warmup": WARMUP, "lr": LR, "batch_size": BATCH, "label_smoothing": LS,
                         "eval_initial": False, "log_every": 1, "eval_batch_size": 8},
               "zscl": {"avg_freq": AVG_FREQ, "ref_batch_size": 3, "l2_weight": L2}}]
    cfg = resolve("smoke", "zscl", 0, layers)
    result = Engine(cfg, one_task_benchmark(images, labels, reference), METHODS.get("zscl"), tmp_path / "out",
                    device="cpu", quiet=True).run()
    ours = torch.load(result.run_dir.checkpoint_path, weights_only=True)["model"]

    # the code's loop takes N + 1 steps (finetune.py:180)
    assert len(fed) == N + 1 and len(ref_fed) == N + 1 and len(draws) == sum(len(b[1]) for b in fed)

    # augmentation: every training image is the reference transform of its example under its draw's RNG
    augment = reference_train_transform()
    expected_images = []
    for index, seed in draws:
        torch.manual_seed(seed)
        expected_images.append(augment(images[index]))
    position = 0
    for step_images, step_labels in fed:
        n = len(step_images)
        torch.testing.assert_close(step_images, torch.stack(expected_images[position:position + n]),
                                   rtol=0, atol=1e-5)
        assert step_labels.tolist() == [labels[i] for i, _ in draws[position:position + n]]
        position += n
    assert not torch.allclose(expected_images[0], T.Compose([T.Resize(32, interpolation=T.InterpolationMode.BICUBIC),
                                                             T.CenterCrop(32), T.ToTensor(), T.Normalize(MEAN, STD)])(
        images[draws[0][0]]), atol=1e-3)  # the crop is not the evaluation transform

    # the reference procedure, finetune.py:13-320, on the same batches
    model = load_model("clbench-tiny", str(checkpoint), "cpu").model
    ref_model = copy.deepcopy(model).eval()  # finetune.py:116 zero-shot reference model
    we_model, we_n = copy.deepcopy(model), 0  # finetune.py:31-33
    l2_model = copy.deepcopy(model)  # finetune.py:36
    params = [v for k, v in model.named_parameters() if k != "logit_scale"]  # finetune.py:82-85
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=0.0, betas=(0.9, 0.999))  # finetune.py:88
    texts = tokenizer([TEMPLATE.format(c) for c in CLASSES])  # finetune.py:102-103
    ref_texts = tokenizer(CAPTIONS)
    logit_scale = model.logit_scale
    position = 0
    for iteration in range(N + 1):  # finetune.py:180
        for group in optimizer.param_groups:  # finetune.py:194 scheduler(iteration)
            group["lr"] = reference_lr(iteration)
        n = len(fed[iteration][0])
        batch = torch.stack(expected_images[position:position + n])
        targets = torch.tensor([labels[i] for i, _ in draws[position:position + n]])
        position += n
        embeddings = model.encode_text(texts)  # finetune.py:215-217
        embeddings = embeddings / embeddings.norm(dim=-1, keepdim=True)
        out = model.encode_image(batch)  # finetune.py:220-221
        out = out / out.norm(dim=-1, keepdim=True)
        logits_per_image = logit_scale.exp() * out @ embeddings.t()  # finetune.py:224-225
        loss = F.cross_entropy(logits_per_image, targets, label_smoothing=LS)
        loss_l2 = sum(F.mse_loss(q, k.detach(), reduction="sum")  # helpers.py:47-51, finetune.py:227-229
                      for q, k in zip(model.parameters(), l2_model.parameters(), strict=True))
        loss = loss + L2 * loss_l2
        ref_batch = ref_fed[iteration]
        with torch.no_grad():  # finetune.py:250-259
            ref_embeddings = ref_model.encode_text(ref_texts)
            ref_embeddings = ref_embeddings / ref_embeddings.norm(dim=-1, keepdim=True)
            ref_out = ref_model.encode_image(ref_batch)
            ref_out = ref_out / ref_out.norm(dim=-1, keepdim=True)
        ref_out_current = model.encode_image(ref_batch)  # finetune.py:262-265
        ref_out_current = ref_out_current / ref_out_current.norm(dim=-1, keepdim=True)
        logits_current = logit_scale.exp() * ref_out_current @ ref_embeddings.t()  # finetune.py:268-270
        logits_ref = logit_scale.exp() * ref_out @ ref_embeddings.t()
        loss = loss + 1.0 * distillation(logits_ref, logits_current)  # finetune.py:278-283 (--image_loss)
        loss = loss + distillation(logits_ref.t(), logits_current.t())  # finetune.py:286-293 (--text_loss)
        optimizer.zero_grad()  # finetune.py:306-308
        loss.backward()
        optimizer.step()
        if iteration % AVG_FREQ == 0:  # finetune.py:310-321 (--we): merge_we, helpers.py:31-34
            we_n += 1
            for param_q, param_k in zip(model.parameters(), we_model.parameters(), strict=True):
                param_k.data = (param_k.data * we_n + param_q.data) / (1.0 + we_n)
    expected = dict(we_model.named_parameters())  # the averaged model is the task's result
    # the checkpoint stores only tensors that differ from the pretrained weights: the others are the start ones
    ours = {name: ours.get(name, l2_model.state_dict()[name]) for name in expected}
    assert math.isclose(reference_lr(N), 0.0, abs_tol=1e-12)  # the extra step is at the cosine's end
    moved = 0
    for name, value in expected.items():
        torch.testing.assert_close(ours[name], value.detach(), rtol=0, atol=1e-5, msg=name)
        moved += int(not torch.allclose(value, l2_model.state_dict()[name], atol=1e-4))
    assert moved > 5  # training changed the weights, so the comparison is not of untouched tensors
