"""CIFAR-100: the class-incremental order and CLIP's prompt templates.

``ICARL_ORDER`` is the class order of iCaRL (Rebuffi et al., 2017) as used by PODNet, DER, Continual-CLIP,
ZSCL (``cil/class_orders/cifar100.yaml``) and MoE-Adapters; it is *not* ``np.random.seed(1993)``'s permutation.
``TEMPLATES`` are CLIP's 18 CIFAR templates (``data/prompts.md``), which ZSCL's MTIL CIFAR100 task ensembles.
"""

from __future__ import annotations

ICARL_ORDER: tuple[int, ...] = (
    87, 0, 52, 58, 44, 91, 68, 97, 51, 15, 94, 92, 10, 72, 49, 78, 61, 14, 8, 86,
    84, 96, 18, 24, 32, 45, 88, 11, 4, 67, 69, 66, 77, 47, 79, 93, 29, 50, 57, 83,
    17, 81, 41, 12, 37, 59, 25, 20, 80, 73, 1, 28, 6, 46, 62, 82, 53, 9, 31, 75,
    38, 63, 33, 74, 27, 22, 36, 3, 16, 21, 60, 19, 70, 90, 89, 43, 5, 42, 65, 76,
    40, 30, 23, 85, 2, 95, 56, 48, 71, 64, 98, 13, 99, 7, 34, 55, 54, 26, 35, 39,
)

TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a black and white photo of a {}.",
    "a low contrast photo of a {}.",
    "a high contrast photo of a {}.",
    "a bad photo of a {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
    "a photo of a big {}.",
    "a photo of the {}.",
    "a blurry photo of the {}.",
    "a black and white photo of the {}.",
    "a low contrast photo of the {}.",
    "a high contrast photo of the {}.",
    "a bad photo of the {}.",
    "a good photo of the {}.",
    "a photo of the small {}.",
    "a photo of the big {}.",
)

# The class-incremental protocol (Continual-CLIP, ZSCL ``cil/configs``, MoE-Adapters) trains and evaluates with
# this single prompt.
CIL_TEMPLATE = "a bad photo of a {}."
