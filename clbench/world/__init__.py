"""The offline shapes world: procedural images and captions, a bundled pre-trained tiny CLIP, world benchmarks.

Lets every method run — and be told apart — with no download and no GPU: see ``clbench world show``.
"""

from __future__ import annotations

from pathlib import Path

BUNDLED_MARKER = "bundled:world"  # what YAML and --pretrained say for the bundled weights
WEIGHTS_FILE = "clbench-world.safetensors"


def bundled_weights_path() -> Path:
    """The pre-trained world CLIP shipped in the package (``clbench world pretrain`` reproduces it)."""
    return Path(__file__).parent / "weights" / WEIGHTS_FILE
