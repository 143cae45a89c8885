"""A fixed-capacity ring of audio samples: the microphone's and a media file's audio track buffer."""

from __future__ import annotations

import threading

import numpy as np

_EMPTY = np.zeros(0, dtype=np.float32)


class RingBuffer:
    """Fixed-capacity float32 sample ring; writers and readers may be on different threads."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be > 0")
        self.capacity = int(capacity)
        self._buf = np.zeros(self.capacity, dtype=np.float32)
        self._pos = 0  # next write index
        self._filled = 0
        self.total_written = 0  # samples ever written (a stream position)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._filled

    def write(self, samples: np.ndarray) -> None:
        """Append samples (any float/int dtype, 1-D); the oldest are overwritten."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        n = x.shape[0]
        if n == 0:
            return
        with self._lock:
            self.total_written += n
            if n >= self.capacity:
                self._buf[:] = x[-self.capacity:]
                self._pos = 0
                self._filled = self.capacity
                return
            end = self._pos + n
            if end <= self.capacity:
                self._buf[self._pos:end] = x
            else:
                k = self.capacity - self._pos
                self._buf[self._pos:] = x[:k]
                self._buf[: n - k] = x[k:]
            self._pos = end % self.capacity
            self._filled = min(self.capacity, self._filled + n)

    def latest(self, n: int) -> np.ndarray:
        """A copy of the newest ``min(n, len(self))`` samples, oldest first."""
        with self._lock:
            n = max(0, min(int(n), self._filled))
            if n == 0:
                return _EMPTY.copy()
            start = (self._pos - n) % self.capacity
            if start + n <= self.capacity:
                return self._buf[start:start + n].copy()
            return np.concatenate((self._buf[start:], self._buf[: self._pos]))

    def clear(self) -> None:
        with self._lock:
            self._pos = 0
            self._filled = 0
