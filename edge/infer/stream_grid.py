"""Work shared by overlapping speech windows: blocks on a fixed grid of stream time, each computed once.

A 2 s window every 0.5 s sees each second of audio four times. Whatever is computed on fixed blocks
of stream time (the voice branch's partials, the eGeMAPS blocks) is computed when its block first
lies wholly inside a window and found again, by its samples, for the windows after it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Callable

import numpy as np


def grid_starts(start: int, length: int, size: int, step: int | None = None) -> list[int]:
    """Sample positions (stream time) of the ``size``-sample blocks starting on the ``step`` grid
    (default: ``size``) that lie wholly inside ``[start, start + length)``."""
    step = step or size
    first = -(-start // step) * step
    return list(range(first, start + length - size + 1, step))


class BlockCache:
    """The values of the last few blocks, found again by the blocks' samples (an LRU of ``size``)."""

    def __init__(self, size: int = 8):
        self._values: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._size = size
        self.computed = 0  # blocks computed (the rest came from the cache)

    def clear(self) -> None:
        """Forget every block (a new stream)."""
        self._values.clear()

    def get(self, block: np.ndarray, compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``compute(block)``, or its value from the last time these samples came by."""
        x = np.ascontiguousarray(block, np.float32)
        key = hashlib.blake2b(x.tobytes(), digest_size=16).digest()
        hit = self._values.get(key)
        if hit is not None:
            self._values.move_to_end(key)
            return hit
        value = compute(x)
        self.computed += 1
        self._values[key] = value
        if len(self._values) > self._size:
            self._values.popitem(last=False)
        return value


class SharesBlocks:
    """Base of the extractors whose blocks a :class:`BlockCache` keeps between windows (``self._cache``)."""

    _cache: BlockCache

    @property
    def computed(self) -> int:
        """Blocks computed so far (the rest came from the cache)."""
        return self._cache.computed

    def clear(self) -> None:
        """Forget the cached blocks (a new stream)."""
        self._cache.clear()
