"""In-memory torch datasets over rendered images: uint8 storage, normalised per item.

Why uint8 in memory and not files: the renderer makes a whole task in well under a second, so caching to disk
would be slower than re-rendering, and uint8 keeps a task's images 4x smaller than float.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

# open_clip's defaults (OPENAI_DATASET_MEAN/STD), which the world's model config keeps.
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


def to_chw_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 array -> (N, 3, H, W) uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def normalise(images: torch.Tensor, mean: Sequence[float] = CLIP_MEAN,
              std: Sequence[float] = CLIP_STD) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float normalised with the model's mean/std."""
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (images.float() / 255.0 - m) / s


class ImageLabelDataset(Dataset):
    """(normalised image, int label) items over a uint8 image tensor; ``targets`` for Avalanche.

    ``crop_scale`` (training sets): the reference code's augmentation on the uint8 image, a bicubic
    ``RandomResizedCrop`` back to the image's size with that area range, drawn from torch's global RNG.
    """

    def __init__(self, images: torch.Tensor, labels: Sequence[int] | torch.Tensor,
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD,
                 crop_scale: tuple[float, float] | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError("images must be a uint8 (N, 3, H, W) tensor")
        self.images = images
        self.targets = torch.as_tensor(labels, dtype=torch.long)
        if len(self.targets) != len(images):
            raise ValueError(f"{len(images)} images but {len(self.targets)} labels")
        self._mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.crop = None
        if crop_scale is not None:
            from torchvision import transforms as T

            self.crop = T.RandomResizedCrop(images.shape[-1], scale=crop_scale,
                                            interpolation=T.InterpolationMode.BICUBIC, antialias=True)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        raw = self.images[index] if self.crop is None else self.crop(self.images[index])
        image = (raw.float() / 255.0 - self._mean) / self._std
        return image, int(self.targets[index])


class ImageCaptionDataset(Dataset):
    """(normalised image, caption) items: the world's image-text pairs (reference corpus, pre-training)."""

    def __init__(self, images: torch.Tensor, captions: Sequence[str],
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD) -> None:
        if len(images) != len(captions):
            raise ValueError(f"{len(images)} images but {len(captions)} captions")
        self.images = images
        self.captions = list(captions)
        self.mean = tuple(mean)
        self.std = tuple(std)
        self._mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        image = (self.images[index].float() / 255.0 - self._mean) / self._std
        return image, self.captions[index]
