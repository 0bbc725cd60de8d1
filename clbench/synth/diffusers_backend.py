"""Text-to-image generation with any diffusers pipeline (Stable Diffusion v1.5 by default, as GIFT).

The pipeline loads lazily, at the first ``generate`` call, so the cache can be checked (and skipped) without
loading gigabytes of weights; and it never downloads unless ``allow_download`` is set — a missing model is
reported in one line. Per-image ``torch.Generator`` objects on the CPU make an image depend only on its prompt,
seed and batch (not on the device the latents are drawn on), matching GIFT's ``txt2img.py`` otherwise:
50 steps, DPMSolverMultistep when fewer are asked, guidance 7.5, 512 px, fp16 on CUDA.

Speed settings that leave the images' address alone (not in :meth:`DiffusersGenerator.config`, so the cache
folder is the same with or without them): ``compile`` (``torch.compile`` of the UNet, where the denoising loop
spends its time) and the number of prompts per call (:func:`default_generation_batch`).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from clbench.errors import MissingResourceError, UserError

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
#: ``torch.compile`` modes for the UNet; "none" runs it eagerly (the default)
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
#: prompts per generator call on CUDA: 8 per 16 GiB of device memory (SD 1.5 in fp16 with guidance runs the UNet
#: on 2 latents per prompt and decodes every image at 512 px in one VAE call), between 8 and 64
PROMPTS_PER_16_GIB = 8
MAX_GENERATION_BATCH = 64


def check_compile(mode: str) -> str:
    """``mode`` if it is one of :data:`COMPILE_MODES`, else a one-line :class:`UserError`."""
    if mode not in COMPILE_MODES:
        raise UserError(f"synth compile must be one of {', '.join(COMPILE_MODES)}, not {mode!r}")
    return mode


def default_generation_batch(device: torch.device) -> int:
    """Prompts per call when none is asked: 8 on a CPU, scaled with the GPU's memory on CUDA (at most 64)."""
    if device.type != "cuda":
        return PROMPTS_PER_16_GIB
    total = torch.cuda.get_device_properties(device).total_memory
    return max(PROMPTS_PER_16_GIB, min(MAX_GENERATION_BATCH, PROMPTS_PER_16_GIB * int(total // (16 << 30))))


@dataclass(frozen=True)
class DiffusersOptions:
    """What determines the images (everything here goes into the cache key)."""

    model: str = DEFAULT_MODEL  # hub id or local folder of any text-to-image pipeline
    steps: int = 50
    guidance: float = 7.5
    size: int = 512
    dtype: str = "auto"  # auto: fp16 on CUDA, fp32 on CPU
    scheduler: str = "auto"  # auto: DPMSolverMultistep below 50 steps (official), else the pipeline's own
    safety_checker: bool = True  # official: the pipeline's checker stays on; flagged (black) images are dropped


def resolve_dtype(dtype: str, device: torch.device) -> str:
    if dtype == "auto":
        return "float16" if device.type == "cuda" else "float32"
    if dtype not in ("float16", "bfloat16", "float32"):
        raise ValueError(f"dtype must be auto, float16, bfloat16 or float32, not {dtype!r}")
    return dtype


def resolve_scheduler(scheduler: str, steps: int) -> str:
    if scheduler == "auto":
        return "DPMSolverMultistepScheduler" if steps < 50 else "default"
    return scheduler


class DiffusersGenerator:
    """An :class:`clbench.synth.base.ImageGenerator` over a diffusers text-to-image pipeline."""

    backend = "diffusers"

    def __init__(self, options: DiffusersOptions | None = None, device: str | torch.device = "auto",
                 allow_download: bool = False, pipeline: Any = None, compile: str = "none") -> None:
        self.options = options or DiffusersOptions()
        if str(device) == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.dtype = resolve_dtype(self.options.dtype, self.device)
        self.scheduler = resolve_scheduler(self.options.scheduler, self.options.steps)
        self.allow_download = allow_download
        self.compile = check_compile(compile)
        self._pipeline = pipeline

    def config(self) -> dict[str, Any]:
        model = self.options.model
        local = Path(model).expanduser()
        if local.is_dir():
            model = str(local.resolve())
        return {"backend": self.backend, **asdict(self.options), "model": model, "dtype": self.dtype,
                "scheduler": self.scheduler}

    @property
    def pipeline(self) -> Any:
        if self._pipeline is None:
            self._pipeline = self._load()
        return self._pipeline

    def _load(self) -> Any:
        from diffusers import AutoPipelineForText2Image, DPMSolverMultistepScheduler

        kwargs: dict[str, Any] = {"torch_dtype": getattr(torch, self.dtype),
                                  "local_files_only": not self.allow_download}
        if not self.options.safety_checker:
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        try:
            with warnings.catch_warnings():  # newer diffusers renamed torch_dtype (kept: works on every version)
                warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
                warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*", category=UserWarning)
                pipe = AutoPipelineForText2Image.from_pretrained(self.config()["model"], **kwargs)
        except (OSError, ValueError) as exc:
            if self.allow_download:
                raise
            raise MissingResourceError(
                f"text-to-image model {self.options.model} is not on this machine ({type(exc).__name__}); "
                "pass a local pipeline folder, or allow the download once (synth_allow_download / --allow-download)"
            ) from None
        if self.scheduler == "DPMSolverMultistepScheduler":
            pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
        elif self.scheduler != "default":
            import diffusers

            pipe.scheduler = getattr(diffusers, self.scheduler).from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)  # the cache shows one bar for the whole plan
        pipe = pipe.to(self.device)
        if self.compile != "none":  # in place: the pipeline keeps its UNet2DConditionModel (config, dtype, ...)
            pipe.unet.compile(mode=None if self.compile == "default" else self.compile)
        return pipe

    def close(self) -> None:
        """Free the pipeline (GPU memory for training); the next ``generate`` loads it again."""
        self._pipeline = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        """One image per (prompt, seed); a safety-flagged image comes back all black (diffusers' convention)."""
        if len(prompts) != len(seeds):
            raise ValueError("one seed per prompt")
        generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        size = self.options.size
        with torch.inference_mode():
            out = self.pipeline(prompt=list(prompts), num_inference_steps=self.options.steps,
                                guidance_scale=self.options.guidance, height=size, width=size,
                                generator=generators, output_type="pil")
        images = list(out.images)
        flagged = getattr(out, "nsfw_content_detected", None) or [False] * len(images)
        return [Image.new("RGB", im.size) if bad else im.convert("RGB") for im, bad in zip(images, flagged, strict=True)]
