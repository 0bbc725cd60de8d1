"""The world's image-caption corpora: what pre-training sees, and the reference corpus ZSCL distils on.

Both draw scenes of the ten shapes only — letters and digits (the novel families) never appear, so the
pre-trained model has to learn them from the task data, as CLIP must learn MNIST or Aircraft in MTIL. Each
corpus draws its seeds from its own namespace, so neither shares an image with the other or with the tasks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clbench.world import seeding
from clbench.world.attributes import SHAPES, VOCABULARY, SceneBatch
from clbench.world.captions import ATTRIBUTES, DETERMINERS, GENERIC_NOUNS, WRAPPERS, caption
from clbench.world.datasets import CLIP_MEAN, CLIP_STD, ImageCaptionDataset, to_chw_tensor
from clbench.world.render import DEFAULT_IMAGE_SIZE, render
from clbench.world.sampling import sample_scenes

PRETRAIN_NAMESPACE = "corpus/pretrain"
REFERENCE_NAMESPACE = "corpus/reference"
# How often a caption mentions each attribute: varied subsets teach the text tower every attribute on its own.
MENTION_PROBABILITY: dict[str, float] = {
    "object": 0.8, "colour": 0.7, "size": 0.45, "fill": 0.8, "position": 0.5, "background": 0.45, "count": 0.75,
}
# The fill of a small object is a few pixels at 32 px: captions that named it taught noise (texture zero-shot was
# 37%, under twice chance), so a caption names the fill of medium and large objects only, and more often.
FILL_VISIBLE_SIZES: tuple[int, ...] = tuple(VOCABULARY["size"].index(s) for s in ("medium", "large"))
CORPUS_OBJECTS: tuple[int, ...] = tuple(VOCABULARY["object"].index(s) for s in SHAPES)
# Half the scenes hold one object: only those show large sizes and positions (several objects share the
# quadrants at most medium), and a uniform count left large shapes too rare to be named well zero-shot.
CORPUS_COUNTS: tuple[int, ...] = (1, 1, 1, 2, 3, 4)


def corpus_scenes(seeds: np.ndarray) -> SceneBatch:
    """Scenes of the pre-training distribution: shapes only, every other attribute uniform (count: see above)."""
    return sample_scenes(seeds, allowed={"object": CORPUS_OBJECTS, "count": CORPUS_COUNTS})


def corpus_captions(scenes: SceneBatch, seeds: np.ndarray) -> list[str]:
    """One caption per scene, mentioning a random subset of its attributes (never none)."""
    seeds = seeding.as_seeds(seeds)
    said = {a: seeding.uniform(seeds, "mention." + a) < p for a, p in MENTION_PROBABILITY.items()}
    said["fill"] &= np.isin(scenes.size, FILL_VISIBLE_SIZES)
    wrapper = seeding.integers(seeds, "caption.wrapper", len(WRAPPERS))
    generic = seeding.integers(seeds, "caption.generic", len(GENERIC_NOUNS))
    determiner = seeding.integers(seeds, "caption.determiner", len(DETERMINERS))
    out = []
    for i in range(len(scenes)):
        mention = [a for a in ATTRIBUTES if said[a][i]] or ["object"]
        out.append(caption(scenes.scene(i), mention, int(wrapper[i]), int(generic[i]), int(determiner[i])))
    return out


def corpus_pairs(seeds: np.ndarray, image_size: int = DEFAULT_IMAGE_SIZE) -> tuple[np.ndarray, list[str]]:
    """(N, H, W, 3) uint8 images and their captions, one pair per seed."""
    scenes = corpus_scenes(seeds)
    return render(scenes, seeds, image_size), corpus_captions(scenes, seeds)


def pretraining_seeds(seed: int, n: int, start: int = 0) -> np.ndarray:
    """Seeds of pre-training pairs ``start..start+n-1`` (an endless stream, one slice per step)."""
    return seeding.seed_range(seed, PRETRAIN_NAMESPACE, n, start)


def reference_corpus(n: int = 10000, image_size: int = DEFAULT_IMAGE_SIZE, seed: int = 0,
                     mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD) -> ImageCaptionDataset:
    """The world's ImageNet/Conceptual-Captions analogue: ``n`` image-caption pairs disjoint from task data.

    Items are (normalised image tensor, caption); ``.images`` (uint8 N x 3 x H x W) and ``.captions`` give the
    whole corpus at once.
    """
    if n <= 0:
        raise ValueError(f"reference corpus size must be positive, got {n}")
    images, captions = corpus_pairs(seeding.seed_range(seed, REFERENCE_NAMESPACE, n), image_size)
    return ImageCaptionDataset(to_chw_tensor(images), captions, mean, std)
