"""Model layer: any open_clip model (name + pretrained tag, ``hf-hub:`` id, or local checkpoint) through one call.

No download happens unless asked for (``model.download: true``): missing weights are detected from the local
caches first and reported in one line, at once, instead of open_clip's ~30 s of hub retries.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clbench.benchmark import Transforms
from clbench.errors import MissingResourceError, UserError

CONFIG_DIR = Path(__file__).parent / "model_configs"
_registered = False


def register_model_configs() -> None:
    """Register clbench's own open_clip configs (tiny test model, the world's model) once."""
    global _registered
    if _registered:
        return
    import open_clip

    for path in sorted(CONFIG_DIR.glob("*.json")):
        open_clip.add_model_config(path)
    _registered = True


@dataclass
class LoadedModel:
    """A CLIP model with its tokenizer and image transforms."""

    model: nn.Module
    tokenizer: Any
    transforms: Transforms
    name: str
    pretrained: str | None


def _hf_cached(repo_id: str, filenames: tuple[str, ...]) -> bool:
    from huggingface_hub import try_to_load_from_cache

    for fn in filenames:
        hit = try_to_load_from_cache(repo_id, fn)
        if isinstance(hit, str) and os.path.exists(hit):
            return True
    return False


HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def check_weights(name: str, pretrained: str | None) -> None:
    """Raise :class:`MissingResourceError` (one line) when the weights are not on this machine."""
    import open_clip

    if name.startswith("hf-hub:"):
        repo = name[len("hf-hub:"):]
        if not _hf_cached(repo, ("open_clip_config.json",)) or not _hf_cached(repo, HF_WEIGHT_FILES):
            raise MissingResourceError(
                f"weights for {name} are not in the Hugging Face cache ({_hf_home()}); download them once with "
                f"--set model.download=true on a machine online, or copy the cache there"
            )
        return
    if not pretrained:
        return
    if pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")) or os.sep in pretrained:
        if not Path(pretrained).expanduser().is_file():
            raise MissingResourceError(f"checkpoint file {pretrained} for model {name} does not exist")
        return
    cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise UserError(
            f"model {name} has no pretrained tag {pretrained!r}; valid tags: {', '.join(tags) or 'none'}"
            " (or pass a local checkpoint path)"
        )
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, fname = _split_hub(hub)
        files = (fname,) if fname else HF_WEIGHT_FILES
        if _hf_cached(repo, files):
            return
        where = f"the Hugging Face cache ({_hf_home()}) as {repo}"
    else:
        url = cfg.get("url", "")
        target = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if target.is_file():
            return
        where = str(target)
    raise MissingResourceError(
        f"weights for {name} ({pretrained}) are not on this machine: open_clip expects them in {where}; "
        "run once online with --set model.download=true, or pass a local checkpoint path as --pretrained"
    )


def resolve_pretrained(pretrained: str | None) -> str | None:
    """``bundled:world`` -> the path of the weights shipped in the package; anything else unchanged."""
    if pretrained == "bundled:world":
        from clbench.world import bundled_weights_path

        return str(bundled_weights_path())
    return pretrained


def check_model(name: str, pretrained: str | None) -> None:
    """Fail in one line, before any work, on an unknown model name or weights not on this machine."""
    import open_clip

    pretrained = resolve_pretrained(pretrained)
    register_model_configs()
    if name not in open_clip.list_models() and not name.startswith("hf-hub:"):
        from clbench.registry import unknown_name_message

        raise UserError(unknown_name_message("model", name, open_clip.list_models()).split("; valid")[0]
                        + "; see open_clip.list_models() for the valid names")
    check_weights(name, pretrained)


def _split_hub(hub: str) -> tuple[str, str]:
    parts = hub.rstrip("/").split("/")
    repo = "/".join(parts[:2])
    fname = "/".join(parts[2:])
    return repo, fname


def _hf_home() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


TRAIN_CROP_SCALE = (0.9, 1.0)  # ZSCL mtil/clip/clip.py:67, GIFT clip/clip.py:67


def train_transform(image_size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    """The reference training preprocess: bicubic random resized crop, RGB, ``ToTensor``, normalisation."""
    from torchvision import transforms as T

    return T.Compose([
        T.RandomResizedCrop(image_size, scale=TRAIN_CROP_SCALE, interpolation=T.InterpolationMode.BICUBIC),
        _convert_to_rgb,
        T.ToTensor(),
        T.Normalize(mean, std),
    ])


def _convert_to_rgb(image: Any) -> Any:
    return image.convert("RGB")


def compile_towers(model: nn.Module) -> list[str]:
    """``torch.compile`` the image tower and the text transformer in place (``train.compile``).

    In place (``nn.Module.compile``) rather than wrapping the model: parameter names, ``state_dict`` keys,
    checkpoints and method code stay the same. Deep copies (teachers, snapshots) run eagerly. Returns the
    compiled submodules' names.
    """
    done = []
    for name in ("visual", "transformer"):
        sub = getattr(model, name, None)
        if isinstance(sub, nn.Module):
            sub.compile()
            done.append(name)
    return done


def to_channels_last(model: nn.Module) -> nn.Module:
    """Store the image tower's 4-D weights channels-last (``train.channels_last``), in place; returns ``model``.

    Only the convolutions' weights change layout (ResNet stems and blocks, a ViT's patch embedding); PyTorch's
    convolutions then run channels-last whenever their weight is, and hand that layout on, so no input needs
    converting in the training loop. The arithmetic is reordered, not changed: results agree to float rounding.
    """
    visual = getattr(model, "visual", None)
    if isinstance(visual, nn.Module):
        visual.to(memory_format=torch.channels_last)
    return model


def load_model(name: str, pretrained: str | None = None, device: str | torch.device = "cpu",
               download: bool = False) -> LoadedModel:
    """Create an open_clip model, its tokenizer and transforms; frozen ``logit_scale`` (ZSCL/GIFT).

    Transforms as the reference code's ``clip.load`` (ZSCL ``mtil/clip/clip.py:63-80``, the same in
    ``cil/clip/clip.py`` and GIFT ``clip/clip.py``): training with ``RandomResizedCrop(scale=(0.9, 1.0))``,
    evaluation with ``Resize`` + ``CenterCrop`` (open_clip's eval preprocess, the same pipeline).
    """
    import open_clip

    pretrained = resolve_pretrained(pretrained)
    if not download:
        check_model(name, pretrained)
    else:
        register_model_configs()
    if pretrained and Path(pretrained).expanduser().is_file():
        pretrained = str(Path(pretrained).expanduser())
    quiet = logging.getLogger().level
    if not pretrained:  # random init is intended (tests, pre-training): silence open_clip's warning
        logging.getLogger().setLevel(logging.ERROR)
    try:
        model, _, preprocess_eval = open_clip.create_model_and_transforms(
            name, pretrained=pretrained or None, device=device
        )
    finally:
        logging.getLogger().setLevel(quiet)
    tokenizer = open_clip.get_tokenizer(name)
    model.logit_scale.requires_grad_(False)
    visual = model.visual
    size = visual.image_size
    image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
    mean = tuple(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN)
    std = tuple(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD)
    transforms = Transforms(train=train_transform(image_size, mean, std), eval=preprocess_eval,
                            image_size=image_size, mean=mean, std=std, train_crop_scale=TRAIN_CROP_SCALE)
    return LoadedModel(model=model, tokenizer=tokenizer, transforms=transforms, name=name, pretrained=pretrained)
