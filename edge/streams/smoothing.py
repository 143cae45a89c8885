"""Temporal smoothing of class probabilities: EMA + hysteresis + minimum hold.

The shown label changes only when another class leads the shown one by ``hysteresis`` in the
EMA for ``min_hold`` updates in a row, so a one-frame flip never reaches the display or MQTT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np


@dataclass(frozen=True)
class Smoothed:
    scores: np.ndarray  # EMA probabilities
    index: int  # the shown label's index
    confidence: float  # EMA score of the shown label
    changed: bool  # the shown label changed with this update (True on the first one)


class LabelSmoother:
    """One stream's smoother (one face track, or the speech stream)."""

    def __init__(self, alpha: float = 0.35, hysteresis: float = 0.10, min_hold: int = 3):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = float(alpha)
        self.hysteresis = float(hysteresis)
        self.min_hold = max(1, int(min_hold))
        self.reset()

    @classmethod
    def from_config(cls, cfg) -> "LabelSmoother":
        """From a config.SmoothingConfig."""
        return cls(cfg.alpha, cfg.hysteresis, cfg.min_hold)

    def reset(self) -> None:
        self._ema: Optional[np.ndarray] = None
        self._shown = -1
        self._pending = -1
        self._lead = 0

    @property
    def current(self) -> Optional[Smoothed]:
        if self._ema is None:
            return None
        return Smoothed(self._ema.copy(), self._shown, float(self._ema[self._shown]), False)

    def update(self, probs: np.ndarray) -> Smoothed:
        p = np.asarray(probs, dtype=np.float32).reshape(-1)
        if self._ema is None:
            self._ema = p.copy()
            self._shown = int(np.argmax(p))
            return Smoothed(self._ema.copy(), self._shown, float(self._ema[self._shown]), True)
        self._ema = self.alpha * p + (1.0 - self.alpha) * self._ema
        best = int(np.argmax(self._ema))
        changed = False
        if best != self._shown and self._ema[best] >= self._ema[self._shown] + self.hysteresis:
            self._lead = self._lead + 1 if best == self._pending else 1
            self._pending = best
            if self._lead >= self.min_hold:
                self._shown, self._pending, self._lead, changed = best, -1, 0, True
        else:
            self._pending, self._lead = -1, 0
        return Smoothed(self._ema.copy(), self._shown, float(self._ema[self._shown]), changed)


class TrackSmoothers:
    """A LabelSmoother per track id, created on first use and dropped with the track."""

    def __init__(self, alpha: float = 0.35, hysteresis: float = 0.10, min_hold: int = 3):
        self._args = (alpha, hysteresis, min_hold)
        self._by_id: dict[int, LabelSmoother] = {}

    @classmethod
    def from_config(cls, cfg) -> "TrackSmoothers":
        return cls(cfg.alpha, cfg.hysteresis, cfg.min_hold)

    def update(self, track_id: int, probs: np.ndarray) -> Smoothed:
        sm = self._by_id.get(track_id)
        if sm is None:
            sm = self._by_id[track_id] = LabelSmoother(*self._args)
        return sm.update(probs)

    def current(self, track_id: int) -> Optional[Smoothed]:
        sm = self._by_id.get(track_id)
        return sm.current if sm is not None else None

    def keep_only(self, track_ids: Iterable[int]) -> None:
        alive = set(track_ids)
        for tid in [t for t in self._by_id if t not in alive]:
            del self._by_id[tid]
