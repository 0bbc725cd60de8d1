"""Counter-based randomness: every random quantity of an image is a hash of (its seed, a named stream).

Why not a ``numpy.random.Generator`` per batch: an image must depend only on its own seed — not on which batch
it was rendered in or how many images came before — so datasets are prefix-stable and the procedural
generator returns the same image for a (prompt, seed) pair whatever else is in the call. Hashing whole arrays
of seeds keeps that vectorised.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (a bijection with good avalanche)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def key_of(name: str | int) -> np.uint64:
    """A stable 64-bit key for a stream name (``hash()`` of str is salted per process, so not that)."""
    if isinstance(name, int):
        return np.uint64(name & 0xFFFFFFFFFFFFFFFF)
    data = name.encode()
    return np.uint64((zlib.crc32(data) << 32) | zlib.adler32(data))


def as_seeds(seeds: Sequence[int] | np.ndarray) -> np.ndarray:
    """Seeds as uint64 (Python ints of any size are reduced modulo 2**64)."""
    if isinstance(seeds, np.ndarray) and seeds.dtype == np.uint64:
        return seeds
    return np.array([int(s) & 0xFFFFFFFFFFFFFFFF for s in seeds], dtype=np.uint64)


def derive(seeds: np.ndarray, *names: str | int) -> np.ndarray:
    """Child seeds: ``seeds`` hashed with each name in turn."""
    out = as_seeds(seeds)
    for name in names:
        with np.errstate(over="ignore"):
            out = mix(out ^ mix(np.array([key_of(name)], dtype=np.uint64)))
    return out


def uniform(seeds: np.ndarray, name: str | int) -> np.ndarray:
    """One float in [0, 1) per seed for stream ``name``."""
    bits = derive(seeds, name) >> np.uint64(11)
    return bits.astype(np.float64) * (1.0 / 2**53)


def integers(seeds: np.ndarray, name: str | int, high: int | np.ndarray) -> np.ndarray:
    """One int in [0, high) per seed for stream ``name`` (``high`` may vary per seed)."""
    return np.minimum((uniform(seeds, name) * high).astype(np.int64), np.asarray(high) - 1)


def seed_range(base: int, namespace: str, n: int, start: int = 0) -> np.ndarray:
    """Seeds ``start..start+n-1`` of a named namespace under a base seed (disjoint namespaces, disjoint data)."""
    index = np.arange(start, start + n, dtype=np.uint64)
    return derive(derive(np.array([base & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64), namespace) ^ index, "item")
