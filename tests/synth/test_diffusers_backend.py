"""The diffusers backend offline, on a tiny random-weight pipeline: determinism, batching, manifest, kill + resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from clbench.errors import MissingResourceError
from clbench.synth.diffusers_backend import DiffusersGenerator, DiffusersOptions
from tests.cli_runner import REPO
from tests.synth.tiny_pipeline import SYNTH_FLAGS


def pixels(images: list[Image.Image]) -> list[np.ndarray]:
    return [np.asarray(im) for im in images]


def test_same_seed_same_image_and_batches(tiny_pipeline_dir: Path) -> None:
    gen = DiffusersGenerator(DiffusersOptions(model=str(tiny_pipeline_dir), steps=2, size=64), device="cpu")
    prompts = ["a photo of a tench.", "a photo of a goldfish."]
    first = pixels(gen.generate(prompts, [1, 2]))
    assert [a.shape for a in first] == [(64, 64, 3)] * 2
    again = pixels(gen.generate(prompts, [1, 2]))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    other = pixels(gen.generate(prompts, [3, 2]))
    assert not np.array_equal(first[0], other[0])
    config = gen.config()
    assert config["scheduler"] == "DPMSolverMultistepScheduler"  # fewer than 50 steps (official)
    assert config["dtype"] == "float32" and config["model"] == str(tiny_pipeline_dir.resolve())


def test_defaults_follow_gift() -> None:
    config = DiffusersGenerator(device="cpu").config()
    assert config["model"] == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert (config["steps"], config["guidance"], config["size"], config["scheduler"]) == (50, 7.5, 512, "default")
    assert DiffusersGenerator(device="cuda").config()["dtype"] == "float16"


def test_missing_model_is_one_line_and_never_downloads(tmp_path: Path) -> None:
    gen = DiffusersGenerator(DiffusersOptions(model="nobody/no-such-pipeline", steps=2), device="cpu")
    with pytest.raises(MissingResourceError) as err:
        gen.generate(["a cat"], [0])
    assert "\n" not in str(err.value)


def test_flagged_images_come_back_black() -> None:
    def fake_pipeline(**kwargs: object) -> SimpleNamespace:
        n = len(kwargs["prompt"])  # type: ignore[arg-type]
        return SimpleNamespace(images=[Image.new("RGB", (8, 8), (200, 10, 10))] * n,
                               nsfw_content_detected=[i == 1 for i in range(n)])

    images = DiffusersGenerator(device="cpu", pipeline=fake_pipeline).generate(["a", "b", "c"], [0, 1, 2])
    assert [im.getextrema() for im in images][1] == ((0, 0), (0, 0), (0, 0))
    assert images[0].getpixel((0, 0)) == (200, 10, 10)


def test_killed_synth_resumes_to_the_same_manifest(tiny_pipeline_dir: Path, reference_cache: Path,
                                                   tmp_path: Path) -> None:
    """A real ``clbench synth`` process is killed mid-way; a second run completes it; manifests are equal."""
    from clbench.cli import main

    root = tmp_path / "cache"
    args = [*SYNTH_FLAGS, "--generator", str(tiny_pipeline_dir), "--cache", str(root)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "clbench.cli", "synth", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if len(list(root.glob("*/images/*/*.png"))) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the generation finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    made = len(list(root.glob("*/images/*/*.png")))
    assert 2 <= made < 12 and not list(root.glob("*/manifests/*.json"))
    assert main(["synth", *args]) == 0
    [resumed] = root.glob("*/manifests/*.json")
    [whole] = reference_cache.glob("*/manifests/*.json")
    assert resumed.name == whole.name and resumed.read_text() == whole.read_text()


def test_compile_option_reaches_the_unet_and_keeps_the_cache(tiny_pipeline_dir: Path, reference_cache: Path,
                                                             tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``clbench synth --compile MODE`` compiles the pipeline's UNet in place (nothing else), same images."""
    import torch
    from diffusers import UNet2DConditionModel

    from tests.cli_runner import invoke

    compiled: list[tuple[object, dict[str, object]]] = []

    def record(fn: object, **kwargs: object) -> object:  # stands in for torch.compile: runs eagerly
        compiled.append((getattr(fn, "__self__", None), kwargs))
        return fn

    monkeypatch.setattr(torch, "compile", record)
    root = tmp_path / "cache"
    args = [*SYNTH_FLAGS, "--generator", str(tiny_pipeline_dir), "--cache", str(root)]
    assert invoke(capsys, "synth", *args, "--compile", "reduce-overhead").returncode == 0
    assert len(compiled) == 1
    target, kwargs = compiled[0]
    assert isinstance(target, UNet2DConditionModel) and kwargs["mode"] == "reduce-overhead"
    # the speed setting leaves the images' address alone: same folder and manifest as the eager reference
    [manifest] = root.glob("*/manifests/*.json")
    [whole] = reference_cache.glob("*/manifests/*.json")
    assert manifest.relative_to(root) == whole.relative_to(reference_cache)
    assert manifest.read_text() == whole.read_text()
    compiled.clear()
    assert invoke(capsys, "synth", *args, "--cache", str(tmp_path / "eager")).returncode == 0
    assert compiled == []  # default: eager


@pytest.mark.parametrize("where", ["cli", "config"])
def test_bad_compile_mode_is_one_line_exit_2(where: str, tiny_pipeline_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from clbench.errors import UserError
    from clbench.synthetic_data import options_from
    from tests.cli_runner import invoke

    if where == "config":  # a method config that carries synth_compile
        with pytest.raises(UserError, match=r"^synth compile must be one of none, default, reduce-overhead, "
                                            r"max-autotune, not 'fast'$"):
            options_from(SimpleNamespace(synth_compile="fast"))
        return
    result = invoke(capsys, "synth", *SYNTH_FLAGS, "--generator", str(tiny_pipeline_dir),
                    "--cache", str(tmp_path / "c"), "--compile", "fast")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "synth compile must be one of" in result.stderr
    assert not (tmp_path / "c").exists()  # nothing half-written


def test_generation_batch_defaults_scale_with_gpu_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from clbench.synthetic_data import SyntheticOptions, generation_batch

    gib = 1 << 30
    total = {"memory": 0}
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(total_memory=total["memory"]))
    options = SyntheticOptions()
    assert generation_batch(options, DiffusersGenerator(device="cpu")) == 8
    cuda = DiffusersGenerator(device="cuda")
    for memory_gib, batch in ((12, 8), (24, 8), (40, 16), (80, 40), (141, 64)):
        total["memory"] = memory_gib * gib
        assert generation_batch(options, cuda) == batch, memory_gib
    assert generation_batch(SyntheticOptions(generation_batch=3), cuda) == 3  # an explicit value wins
