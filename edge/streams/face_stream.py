"""The per-frame face stream: detect -> track -> crop + classify (batched) -> smooth -> fuse -> bus.

One ``FaceStream.process(frame)`` call per frame the loop gets; the loop always hands it
the newest frame, so frames the source replaced unread show up as gaps in ``Frame.index``
and are counted in ``dropped``. Speech arrives from elsewhere (the speech worker) through
``speech_state()``; the face stream only reads it for fusion and offers ``attribution()`` back
(:mod:`dsrter.edge.app.wiring` connects the two).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Hashable, Optional, Protocol

import numpy as np

from dsrter.edge.config import Config
from dsrter.edge.infer.face_classifier import to_gray
from dsrter.edge.infer.face_detector import Detection
from dsrter.edge.labels import LABELS
from dsrter.edge.sources.base import Frame
from dsrter.edge.streams.events import EventBus, FaceEvent, FrameStats, FusedEvent, SpeechEvent
from dsrter.edge.streams.fusion import Attributor, Fuser, LipMotion
from dsrter.edge.streams.smoothing import Smoothed, TrackSmoothers
from dsrter.edge.streams.tracker import Track, Tracker

STAGES = ("detect", "track", "classify", "smooth", "attribute", "fuse", "total")


class Detector(Protocol):
    """What the face stream needs of a detector (:class:`~dsrter.edge.infer.face_detector.FaceDetector`,
    or :class:`~dsrter.edge.infer.tiled_detection.TiledDetector`, which searches part of the frame per call)."""

    def detect(self, frame: np.ndarray, t: float = 0.0) -> list[Detection]: ...

    def covers(self, box: tuple[float, float, float, float]) -> bool:
        """Could the last call have found a face with this box?"""
        ...

    @property
    def last_pass(self) -> Hashable:
        """Which pass the last call ran (None when every call searches the whole frame)."""
        ...


class FaceModel(Protocol):
    """What the face stream needs of :class:`~dsrter.edge.infer.face_classifier.FaceClassifier`."""

    def crop(self, frame: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray: ...

    def predict(self, crops_u8: np.ndarray) -> np.ndarray: ...


@dataclass
class FrameResult:
    """What one frame produced (for the overlay, the video writer and tests)."""

    frame: Frame
    faces: list[FaceEvent]
    tracks: list[Track]
    speech: Optional[SpeechEvent]
    fused: Optional[FusedEvent]
    stats: FrameStats
    attribution: tuple[Optional[int], str] = (None, "none")


@dataclass
class _Timer:
    ms: dict[str, float] = field(default_factory=lambda: {k: 0.0 for k in STAGES[:-1]})
    _t: float = field(default_factory=time.perf_counter)

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[stage] = self.ms.get(stage, 0.0) + (now - self._t) * 1000.0
        self._t = now


def _norm_box(box: tuple[float, float, float, float], w: int, h: int) -> tuple[float, float, float, float]:
    """Pixel (x, y, w, h) -> normalised, clipped to the frame."""
    x0, y0 = min(max(box[0], 0.0), w), min(max(box[1], 0.0), h)
    x1, y1 = min(max(box[0] + box[2], 0.0), w), min(max(box[1] + box[3], 0.0), h)
    return x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h


class FaceStream:
    """Owns the tracker, per-track smoothers, lip-motion attribution and fusion of one stream."""

    def __init__(self, bus: EventBus, detector: Optional[Detector] = None, classifier: Optional[FaceModel] = None, *,
                 detect_every: int = 1, classify_every: int = 1,
                 tracker: Optional[Tracker] = None, smoothers: Optional[TrackSmoothers] = None,
                 fuser: Optional[Fuser] = None, attributor: Optional[Attributor] = None,
                 speech_state: Optional[Callable[[], Optional[SpeechEvent]]] = None,
                 event_clock: Optional[Callable[[], float]] = None, fps_window_s: float = 2.0):
        self.bus = bus
        self.detector = detector  # None: face stream off (speech only)
        self.classifier = classifier
        self.detect_every = max(1, int(detect_every))
        self.classify_every = max(1, int(classify_every))
        self.tracker = tracker or Tracker()
        self.smoothers = smoothers or TrackSmoothers()
        self.fuser = fuser or Fuser()
        self.attributor = attributor or Attributor(LipMotion())
        self.speech_state = speech_state or (lambda: None)
        self.event_clock = event_clock  # None: event timestamps are the frame's own time
        self.fps_window_s = fps_window_s
        self.frames = 0
        self.dropped = 0
        self.fps = 0.0
        self.last: Optional[FrameResult] = None
        self._last_index: Optional[int] = None
        self._times: deque[float] = deque()
        self._shape: Optional[tuple[int, int]] = None
        self._classified: dict[int, tuple[float, int]] = {}  # track id -> (frame time, self.frames) of its last classification
        self._attr_lock = threading.Lock()
        self._attr: tuple[Optional[int], str] = (None, "none")

    @classmethod
    def from_config(cls, cfg: Config, bus: EventBus, detector: Optional[Detector] = None,
                    classifier: Optional[FaceModel] = None, **kw) -> "FaceStream":
        """From the top-level Config (face.tracker, face.smoothing, fusion)."""
        return cls(bus, detector, classifier, detect_every=cfg.face.detect_every_n_frames,
                   classify_every=cfg.face.classify_every_n_frames,
                   tracker=Tracker(cfg.face.tracker.iou_threshold, cfg.face.tracker.max_missed_frames),
                   smoothers=TrackSmoothers.from_config(cfg.face.smoothing), fuser=Fuser.from_config(cfg.fusion), **kw)

    def attribution(self) -> tuple[Optional[int], str]:
        """The face speech belongs to right now (thread-safe; the speech worker calls it)."""
        with self._attr_lock:
            return self._attr

    def _count_drops(self, frame: Frame) -> None:
        if self._last_index is not None and frame.index > self._last_index + 1:
            self.dropped += frame.index - self._last_index - 1
        self._last_index = frame.index

    def _update_fps(self) -> None:
        """Frames processed per second over the last ``fps_window_s`` of wall time."""
        now = time.monotonic()
        q = self._times
        q.append(now)
        while len(q) > 2 and now - q[0] > self.fps_window_s:
            q.popleft()
        self.fps = (len(q) - 1) / (now - q[0]) if len(q) > 1 and now > q[0] else 0.0

    def _due(self, t: Track) -> bool:
        """Classify this track now? Only with a current box (not coasting after a miss); a new track at
        once, then every ``classify_every`` frames (the smoother holds its label in between)."""
        last = self._classified.get(t.id)
        return t.missed == 0 and (last is None or self.frames - last[1] >= self.classify_every)

    def _faces(self, frame: Frame, gray: np.ndarray, timer: _Timer) -> tuple[list[Track], dict[int, tuple[Smoothed, np.ndarray]]]:
        """Detect (or predict) and track; classify and smooth the tracks that are due."""
        h, w = gray.shape
        if (h, w) != self._shape:  # new resolution (camera reopened differently): old boxes are meaningless
            self.tracker.reset()
            self._shape = (h, w)
        assert self.detector is not None  # process() calls this only with a face stream
        if self.frames % self.detect_every == 0:
            dets = self.detector.detect(frame.image, frame.t)
            timer.lap("detect")
            # a detector that searches part of the frame per call says which tracks it covered, and which
            # pass found the faces
            tracks = self.tracker.update(dets, gray, self.detector.covers, self.detector.last_pass)
        else:
            tracks = self.tracker.predict()
        timer.lap("track")
        current = [t for t in tracks if self._due(t)]  # the others keep their last smoothed scores
        updates: dict[int, tuple[Smoothed, np.ndarray]] = {}
        if current and self.classifier is not None:
            crops = np.stack([self.classifier.crop(gray, t.box) for t in current])
            probs = self.classifier.predict(crops)
            timer.lap("classify")
            for t, p in zip(current, probs):
                updates[t.id] = (self.smoothers.update(t.id, p), p)
                self._classified[t.id] = (frame.t, self.frames)
        alive = {t.id for t in tracks}
        self.smoothers.keep_only(alive)
        self._classified = {k: v for k, v in self._classified.items() if k in alive}
        timer.lap("smooth")
        return tracks, updates

    def process(self, frame: Frame) -> FrameResult:
        timer = _Timer()
        self._count_drops(frame)
        self._update_fps()
        ts = self.event_clock() if self.event_clock else frame.t
        gray = to_gray(np.asarray(frame.image))
        h, w = gray.shape
        tracks, updates = self._faces(frame, gray, timer) if self.detector is not None else ([], {})
        faces: list[FaceEvent] = []
        shown: list[Track] = []
        for t in tracks:
            sm, raw = updates.get(t.id) or (self.smoothers.current(t.id), None)
            if sm is None:  # never classified (no classifier): nothing to show
                continue
            shown.append(t)
            faces.append(FaceEvent(timestamp=ts, track_id=t.id, box=_norm_box(t.box, w, h), scores=sm.scores,
                                   label=LABELS[sm.index], confidence=sm.confidence, changed=sm.changed,
                                   raw_scores=raw))
        if self.attributor.lip is not None:
            self.attributor.lip.observe(gray, tracks, frame.t)
        attribution = self.attributor.choose(shown)
        timer.lap("attribute")
        with self._attr_lock:
            self._attr = attribution
        speech = self.speech_state()
        face = next((f for f in faces if f.track_id == attribution[0]), None)
        classified = self._classified.get(face.track_id) if face else None
        fused = self.fuser.fuse(frame.t, face, classified[0] if classified else None, speech,
                                attribution[0], attribution[1])
        fused.timestamp = ts
        timer.lap("fuse")
        timer.ms["total"] = sum(timer.ms.values())
        stats = FrameStats(timestamp=ts, frame_index=frame.index, fps=round(self.fps, 2), faces=len(faces),
                           stage_ms={k: round(v, 3) for k, v in timer.ms.items()}, dropped_frames=self.dropped)
        for ev in faces:
            self.bus.publish(ev)
        self.bus.publish(fused)
        self.bus.publish(stats)
        self.frames += 1
        self.last = FrameResult(frame, faces, tracks, speech, fused, stats, attribution)
        return self.last
