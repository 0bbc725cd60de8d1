"""The evaluator scores whatever classifier a method returns, over the head the protocol asks for."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from clbench.benchmark import Benchmark, TaskSpec
from clbench.classifier import HeadSpec, TextHeadClassifier
from clbench.data import collate_image_label
from clbench.evaluation import evaluate_row, head_for
from clbench.models import load_model
from clbench.text_heads import TextHeadCache


def _bench(protocol: str) -> Benchmark:
    tasks = [TaskSpec("t0", ("a", "b"), ("x {}",)), TaskSpec("t1", ("c", "d", "e"), ("y {}", "z {}"))]
    labels = [torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 2, 2, 2])]
    if protocol == "cil":  # global labels: task 1's classes follow task 0's
        labels[1] = labels[1] + 2
    data = [TensorDataset(torch.zeros(len(y), 3, 8, 8), y) for y in labels]
    return Benchmark("toy", protocol, tasks, data, data)


class FirstClassOfLastGroup:
    """Predicts the first class of the head's last group for every image, and records the heads it saw."""

    def __init__(self) -> None:
        self.heads: list[HeadSpec] = []

    def logits(self, images: torch.Tensor, head: HeadSpec) -> torch.Tensor:
        self.heads.append(head)
        out = torch.zeros(len(images), head.num_classes)
        out[:, head.offsets()[-1]] = 1.0
        return out


def _loaders(bench: Benchmark) -> list[DataLoader]:
    return [DataLoader(d, batch_size=2, collate_fn=collate_image_label) for d in bench.test_datasets]


def test_task_incremental_rows_score_each_task_over_its_own_classes():
    bench = _bench("mtil")
    clf = FirstClassOfLastGroup()
    row = evaluate_row(clf, bench, 0, _loaders(bench), torch.device("cpu"), nullcontext)
    assert row.accuracy == pytest.approx([50.0, 20.0]) and row.counts == [4, 5]
    assert {h.class_names for h in clf.heads} == {("a", "b"), ("c", "d", "e")}


def test_class_incremental_rows_score_over_every_seen_class_grouped_by_task():
    bench = _bench("cil")
    assert head_for(bench, 1, after_task=0) is None  # not seen yet: no head
    head = head_for(bench, 0, after_task=1)
    assert head is not None and head.class_names == ("a", "b", "c", "d", "e") and head.offsets() == [0, 2]
    assert [g.templates for g in head.groups] == [("x {}",), ("y {}", "z {}")]
    clf = FirstClassOfLastGroup()  # always predicts global class 2 ("c")
    row = evaluate_row(clf, bench, 1, _loaders(bench), torch.device("cpu"), nullcontext)
    assert row.accuracy == pytest.approx([0.0, 20.0])
    row = evaluate_row(clf, bench, 0, _loaders(bench), torch.device("cpu"), nullcontext)
    assert row.accuracy[0] == 50.0 and row.accuracy[1] != row.accuracy[1]  # NaN: task 1 has no head yet


@pytest.mark.parametrize("after_task", [None, 0, 1])
def test_xtail_scores_every_task_over_the_union_of_all_classes_at_every_step(after_task: int | None):
    bench = _bench("xtail")  # task-local labels, as MTIL
    for j in range(2):
        head = head_for(bench, j, after_task)
        assert head is not None and head.class_names == ("a", "b", "c", "d", "e")  # seen and not yet seen
        assert [g.task for g in head.groups] == ["t0", "t1"]
        assert [g.templates for g in head.groups] == [("x {}",), ("y {}", "z {}")]
    clf = FirstClassOfLastGroup()  # always predicts union class 2 ("c" = task 1's local class 0)
    row = evaluate_row(clf, bench, after_task, _loaders(bench), torch.device("cpu"), nullcontext)
    # task 0's images are never class 2; task 1's labels [0,1,2,2,2] shift by task 0's 2 classes: one hit in 5
    assert row.accuracy == pytest.approx([0.0, 20.0])


def test_text_head_classifier_is_cosine_of_features_and_per_group_heads():
    loaded = load_model("clbench-tiny", None)
    heads = TextHeadCache(loaded.tokenizer, torch.device("cpu"))
    clf = TextHeadClassifier(loaded.model, heads)
    head = head_for(_bench("cil"), 0, after_task=1)
    assert head is not None
    images = torch.randn(3, 3, loaded.transforms.image_size, loaded.transforms.image_size)
    with torch.inference_mode():
        logits = clf.logits(images, head)
        feats = torch.nn.functional.normalize(loaded.model.encode_image(images), dim=-1)
        texts_t0 = torch.nn.functional.normalize(loaded.model.encode_text(loaded.tokenizer(["x a", "x b"])), dim=-1)
        t1 = [torch.nn.functional.normalize(loaded.model.encode_text(loaded.tokenizer([f"y {c}", f"z {c}"])), dim=-1)
              .mean(0) for c in ("c", "d", "e")]
        texts_t1 = torch.nn.functional.normalize(torch.stack(t1), dim=-1)
    expected = feats @ torch.cat([texts_t0, texts_t1]).t()
    assert logits.shape == (3, 5)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    assert heads.encodes == 2  # one cached head per group
