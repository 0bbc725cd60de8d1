"""Synthetic-data engine: text-to-image generators (diffusers, procedural) and the shared image cache."""
