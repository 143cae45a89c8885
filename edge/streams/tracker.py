"""IoU + centroid face tracker: stable ids across frames, short misses bridged by prediction.

``update(detections)`` on frames where the detector ran; ``predict()`` on frames in between
(constant-velocity motion). A track missed by the detector coasts on its predicted box for up
to ``max_missed_frames`` detector runs before it is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from dsrter.edge.infer.face_detector import MOUTH, Detection

Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def centre(b: Box) -> tuple[float, float]:
    return b[0] + b[2] / 2.0, b[1] + b[3] / 2.0


@dataclass
class Track:
    """One face over time. ``box`` is the detected box, or the predicted one while coasting."""

    id: int
    box: Box
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()
    velocity: tuple[float, float] = (0.0, 0.0)  # centre motion in pixels per frame
    hits: int = 1
    missed: int = 0  # detector runs in a row without a match
    fresh: bool = True  # the box comes from a detection on this very frame
    age: int = 0  # frames since the track was born
    _since_detect: int = field(default=0, repr=False)
    _anchor: tuple[float, float] = field(default=(0.0, 0.0), repr=False)  # centre of the last detection

    def __post_init__(self) -> None:
        self._anchor = centre(self.box)

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def mouth(self) -> Optional[tuple[float, float]]:
        return self.keypoints[MOUTH] if self.fresh and len(self.keypoints) > MOUTH else None


class Tracker:
    """Greedy IoU matching, then centroid matching for what IoU missed; ids never reused."""

    def __init__(self, iou_threshold: float = 0.3, max_missed_frames: int = 10, centroid_gate: float = 0.75,
                 velocity_alpha: float = 0.5):
        self.iou_threshold = iou_threshold
        self.max_missed_frames = max_missed_frames
        self.centroid_gate = centroid_gate  # max centre distance as a fraction of the track's box size
        self.velocity_alpha = velocity_alpha
        self._tracks: list[Track] = []
        self._next_id = 1

    @property
    def tracks(self) -> list[Track]:
        return list(self._tracks)

    def reset(self) -> None:
        """Forget all tracks (e.g. the frame size changed); ids keep counting up."""
        self._tracks = []

    @staticmethod
    def _predicted(t: Track, steps: int) -> Box:
        x, y, w, h = t.box
        return x + t.velocity[0] * steps, y + t.velocity[1] * steps, w, h

    def predict(self) -> list[Track]:
        """Advance every track one frame by its velocity (a frame without a detector run)."""
        for t in self._tracks:
            t.box = self._predicted(t, 1)
            t.fresh = False
            t.age += 1
            t._since_detect += 1
        return self.tracks

    def _match(self, dets: Sequence[Detection]) -> tuple[dict[int, int], list[int]]:
        """track index -> detection index, and unmatched detection indices."""
        preds = [self._predicted(t, 1) for t in self._tracks]
        pairs = sorted(((iou(p, d.box), ti, di) for ti, p in enumerate(preds) for di, d in enumerate(dets)), reverse=True)
        matched: dict[int, int] = {}
        used: set[int] = set()
        for score, ti, di in pairs:
            if score < self.iou_threshold or score <= 0.0:
                break
            if ti in matched or di in used:
                continue
            matched[ti] = di
            used.add(di)
        # Centroid fallback: fast motion or a box that changed size a lot.
        cands = []
        for ti, p in enumerate(preds):
            if ti in matched:
                continue
            pc, size = centre(p), max(p[2], p[3], 1.0)
            for di, d in enumerate(dets):
                if di in used:
                    continue
                dc = centre(d.box)
                dist = ((pc[0] - dc[0]) ** 2 + (pc[1] - dc[1]) ** 2) ** 0.5 / size
                ratio = max(d.box[2], 1.0) / max(p[2], 1.0)
                if dist <= self.centroid_gate and 0.5 <= ratio <= 2.0:
                    cands.append((dist, ti, di))
        for dist, ti, di in sorted(cands):
            if ti in matched or di in used:
                continue
            matched[ti] = di
            used.add(di)
        return matched, [i for i in range(len(dets)) if i not in used]

    def update(self, detections: Sequence[Detection]) -> list[Track]:
        """Match this frame's detections; returns the live tracks (fresh ones and coasting ones)."""
        matched, new = self._match(detections)
        keep: list[Track] = []
        for ti, t in enumerate(self._tracks):
            t.age += 1
            if ti in matched:
                d = detections[matched[ti]]
                steps = t._since_detect + 1
                nc = centre(d.box)
                vx, vy = (nc[0] - t._anchor[0]) / steps, (nc[1] - t._anchor[1]) / steps
                a = self.velocity_alpha if t.hits > 1 else 1.0
                t.velocity = (a * vx + (1 - a) * t.velocity[0], a * vy + (1 - a) * t.velocity[1])
                t.box, t.score, t.keypoints, t._anchor = d.box, d.score, d.keypoints, nc
                t.hits += 1
                t.missed = 0
                t.fresh = True
                t._since_detect = 0
                keep.append(t)
            else:
                t.missed += 1
                t.fresh = False
                t.box = self._predicted(t, 1)
                t._since_detect += 1
                if t.missed <= self.max_missed_frames:
                    keep.append(t)
        for di in new:
            d = detections[di]
            keep.append(Track(id=self._next_id, box=d.box, score=d.score, keypoints=d.keypoints))
            self._next_id += 1
        self._tracks = keep
        return self.tracks
