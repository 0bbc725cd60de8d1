"""The text-to-image generator interface both backends implement (diffusers and the world's procedural one)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from PIL import Image


@runtime_checkable
class ImageGenerator(Protocol):
    """Prompt + seed -> image, deterministically.

    ``config()`` returns everything that determines the output (backend, model id, steps, guidance, size, ...):
    the synthetic-data cache is content-addressed by it.
    """

    backend: str

    def config(self) -> dict[str, Any]: ...

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        """One image per (prompt, seed); the same pair always gives the same image."""
        ...
