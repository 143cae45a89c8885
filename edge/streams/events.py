"""Results flowing from the streams to the sinks, and the in-process bus that carries them."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np

from dsrter.edge.labels import LABELS

SCHEMA_VERSION = 1
log = logging.getLogger(__name__)


def _scores(v: np.ndarray) -> dict[str, float]:
    return {name: round(float(s), 4) for name, s in zip(LABELS, v)}


@dataclass
class FaceEvent:
    """One tracked face at one moment: raw and smoothed scores, the shown label."""

    timestamp: float
    track_id: int
    box: tuple[float, float, float, float]  # x, y, w, h normalised to the frame (0..1)
    scores: np.ndarray  # smoothed probabilities, LABELS order
    label: str
    confidence: float
    changed: bool = False  # the shown label changed with this update
    raw_scores: Optional[np.ndarray] = None
    kind: str = field(default="face", init=False)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind, "track_id": self.track_id, "label": self.label,
            "confidence": round(float(self.confidence), 4), "scores": _scores(self.scores),
            "box": {"x": round(self.box[0], 4), "y": round(self.box[1], 4), "w": round(self.box[2], 4), "h": round(self.box[3], 4)},
        }


@dataclass
class SpeechEvent:
    """The speech stream's state: a label while someone speaks, ``None`` (no speech) otherwise."""

    timestamp: float
    speaking: bool
    scores: Optional[np.ndarray]
    label: Optional[str]
    confidence: float
    window: tuple[float, float] = (0.0, 0.0)  # stream time of the analysed window
    changed: bool = False
    track_id: Optional[int] = None  # the face the speech is attributed to
    attribution: str = "none"  # speaking_face | only_face | largest_face | none
    kind: str = field(default="speech", init=False)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind, "speaking": self.speaking, "label": self.label,
            "confidence": round(float(self.confidence), 4),
            "scores": _scores(self.scores) if self.scores is not None else None,
            "window": [round(self.window[0], 3), round(self.window[1], 3)],
            "track_id": self.track_id, "attribution": self.attribution,
        }


@dataclass
class FusedEvent:
    """The overall emotion from both streams."""

    timestamp: float
    label: Optional[str]
    scores: Optional[np.ndarray]
    confidence: float
    face_weight: float
    speech_weight: float
    track_id: Optional[int] = None
    attribution: str = "none"
    changed: bool = False
    kind: str = field(default="emotion", init=False)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind, "label": self.label, "confidence": round(float(self.confidence), 4),
            "scores": _scores(self.scores) if self.scores is not None else None,
            "sources": {"face": round(self.face_weight, 4), "speech": round(self.speech_weight, 4)},
            "track_id": self.track_id, "attribution": self.attribution,
        }


@dataclass
class FrameStats:
    """Per-frame timing the stats publisher and the overlay read."""

    timestamp: float
    frame_index: int
    fps: float
    faces: int
    stage_ms: dict[str, float]
    dropped_frames: int
    kind: str = field(default="frame", init=False)


Event = Union[FaceEvent, SpeechEvent, FusedEvent, FrameStats]
Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out to subscribers; a failing subscriber is logged, never fatal."""

    def __init__(self) -> None:
        self._subs: list[Subscriber] = []
        self._lock = threading.Lock()
        self._seq = itertools.count(1)

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subs.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subs:
                    self._subs.remove(fn)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            subs = list(self._subs)
        for fn in subs:
            try:
                fn(event)
            except Exception:  # a sink must not take the pipeline down
                log.exception("event subscriber %r failed", fn)

    def next_id(self) -> int:
        """Monotonic event sequence number (for exactly-once checks downstream)."""
        return next(self._seq)


def now() -> float:
    return time.time()
