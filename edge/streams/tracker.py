"""IoU + centroid face tracker: stable ids across frames, short misses bridged by prediction.

``update(detections)`` on frames where the detector ran; ``predict()`` on frames in between
(constant-velocity motion). A track missed by the detector coasts on its predicted box for up
to ``max_missed_frames`` detector runs before it is dropped. A detector that searches part of the
frame per run says which tracks it could have seen; only those runs count a miss, and a track
missed by two of them is dropped once ``max_missed_frames`` runs have passed since its last
detection (a small face searched only by its tile's pass would otherwise coast for that many of
its tile's visits).

Given the frame, ``update`` also keeps tracks with one person: a scene cut (the whole frame
changes at once) ends every track, and a detection joins a track only if its crop still looks
like the track's last crop (correlation of small grey patches), so an id never passes from one
person to another and neither does the label smoothed under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Hashable, Optional, Sequence

import cv2
import numpy as np

from dsrter.edge.infer.face_detector import MOUTH, Detection, iou

Box = tuple[float, float, float, float]


def centre(b: Box) -> tuple[float, float]:
    return b[0] + b[2] / 2.0, b[1] + b[3] / 2.0


PATCH = 16  # side of the appearance patch
THUMB = (32, 18)  # frame thumbnail for the scene-cut test


def grey(frame: np.ndarray) -> np.ndarray:
    a = np.asarray(frame)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3:
        a = cv2.cvtColor(np.ascontiguousarray(a[:, :, :3]), cv2.COLOR_BGR2GRAY)
    return a


def appearance(gray: np.ndarray, box: Box) -> Optional[np.ndarray]:
    """A PATCHxPATCH grey patch of the box, zero mean and unit norm (None when the box is off the frame or flat)."""
    h, w = gray.shape[:2]
    x0, y0 = int(max(0, box[0])), int(max(0, box[1]))
    x1, y1 = int(min(w, box[0] + box[2])), int(min(h, box[1] + box[3]))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    p = cv2.resize(gray[y0:y1, x0:x1], (PATCH, PATCH), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    p -= p.mean()
    n = float(np.linalg.norm(p))
    return p / n if n > 1e-3 * PATCH else None


def similarity(a: Optional[np.ndarray], b: Optional[np.ndarray]) -> float:
    """Correlation of two appearance patches in -1..1; 1.0 when either is unknown (no evidence against)."""
    return 1.0 if a is None or b is None else float(a @ b)


def thumbnail(gray: np.ndarray) -> np.ndarray:
    return cv2.resize(gray, THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)


@dataclass
class Track:
    """One face over time. ``box`` is the detected box, or the predicted one while coasting."""

    id: int
    box: Box
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()
    velocity: tuple[float, float] = (0.0, 0.0)  # centre motion in pixels per frame
    hits: int = 1
    missed: int = 0  # detector runs in a row that could have seen the face and did not match it
    unseen: int = 0  # detector runs of any kind since the last match
    fresh: bool = True  # the box comes from a detection on this very frame
    age: int = 0  # frames since the track was born
    look: Optional[np.ndarray] = field(default=None, repr=False)  # appearance patch of the last detection
    source: Hashable = field(default=None, repr=False)  # the detector pass that found the face first
    # per detector pass: centre of this face's last detection by it and the track's age then. Velocity
    # compares detections of the same pass only: passes at different scales (whole frame, tiles) place
    # the same face's box a few pixels apart, which is no motion.
    _anchors: dict[Hashable, tuple[tuple[float, float], int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._anchors[self.source] = (centre(self.box), self.age)

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def mouth(self) -> Optional[tuple[float, float]]:
        return self.keypoints[MOUTH] if self.fresh and len(self.keypoints) > MOUTH else None


class Tracker:
    """Greedy IoU matching, then centroid matching for what IoU missed; ids never reused.

    With a frame: a scene cut ends all tracks, and a pair whose crops correlate below
    ``min_similarity`` never matches (neither by IoU nor by centroid).
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed_frames: int = 10, centroid_gate: float = 0.5,
                 velocity_alpha: float = 0.5, min_similarity: float = 0.2, cut_threshold: float = 20.0):
        self.iou_threshold = iou_threshold
        self.max_missed_frames = max_missed_frames
        self.centroid_gate = centroid_gate  # max centre distance as a fraction of the track's box size
        self.velocity_alpha = velocity_alpha
        self.min_similarity = min_similarity  # appearance-patch correlation a match needs
        self.cut_threshold = cut_threshold  # mean grey-level change of the frame thumbnail that is a cut
        self.cuts = 0  # scene cuts seen
        self._tracks: list[Track] = []
        self._next_id = 1
        self._thumb: Optional[np.ndarray] = None

    @property
    def tracks(self) -> list[Track]:
        return list(self._tracks)

    def reset(self) -> None:
        """Forget all tracks (e.g. the frame size changed); ids keep counting up."""
        self._tracks = []
        self._thumb = None

    def _scene_cut(self, gray: np.ndarray) -> bool:
        """Did the whole frame change since the last frame with faces (a cut, or a camera switched)?"""
        thumb = thumbnail(gray)
        prev, self._thumb = self._thumb, thumb
        return prev is not None and prev.shape == thumb.shape and float(np.abs(thumb - prev).mean()) > self.cut_threshold

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
        return self.tracks

    def _match(self, dets: Sequence[Detection], looks: Sequence[Optional[np.ndarray]]) -> tuple[dict[int, int], list[int]]:
        """track index -> detection index, and unmatched detection indices."""
        preds = [self._predicted(t, 1) for t in self._tracks]
        alike = {(ti, di): similarity(t.look, looks[di]) >= self.min_similarity
                 for ti, t in enumerate(self._tracks) for di in range(len(dets))}
        pairs = sorted(((iou(p, d.box), ti, di) for ti, p in enumerate(preds) for di, d in enumerate(dets)), reverse=True)
        matched: dict[int, int] = {}
        used: set[int] = set()
        for score, ti, di in pairs:
            if score < self.iou_threshold or score <= 0.0:
                break
            if ti in matched or di in used or not alike[ti, di]:
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
                if di in used or not alike[ti, di]:
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

    def update(self, detections: Sequence[Detection], frame: Optional[np.ndarray] = None,
               covered: Optional[Callable[[Box], bool]] = None, source: Hashable = None) -> list[Track]:
        """Match this frame's detections; returns the live tracks (fresh ones and coasting ones).

        ``frame`` (grey or BGR, the one the detections come from) enables the scene-cut and appearance checks.
        ``covered(box)``: could the detector have found a face at this (predicted) box? An unmatched track
        it did not cover (the detector searched another part of the frame) moves on as between
        detections, without counting a miss. None: the detector covers the whole frame. ``source``: which
        detector pass found these (any hashable, e.g. the TiledDetector's region); velocity is measured
        between detections of the same pass.
        """
        looks: list[Optional[np.ndarray]] = [None] * len(detections)
        if frame is not None:
            gray = grey(frame)
            # Only frames with faces are compared (against the last frame with faces): a dark or covered
            # frame in between is an occlusion, not a cut.
            if detections and self._scene_cut(gray):
                self.cuts += 1
                self._tracks = []
            looks = [appearance(gray, d.box) for d in detections]
        matched, new = self._match(detections, looks)
        keep: list[Track] = []
        for ti, t in enumerate(self._tracks):
            t.age += 1
            if ti in matched:
                d = detections[matched[ti]]
                nc = centre(d.box)
                prev = t._anchors.get(source)
                if prev is not None and t.age > prev[1]:
                    steps = t.age - prev[1]
                    vx, vy = (nc[0] - prev[0][0]) / steps, (nc[1] - prev[0][1]) / steps
                    a = self.velocity_alpha if t.hits > 1 else 1.0
                    t.velocity = (a * vx + (1 - a) * t.velocity[0], a * vy + (1 - a) * t.velocity[1])
                t._anchors[source] = (nc, t.age)
                t.box, t.score, t.keypoints = d.box, d.score, d.keypoints
                t.look = looks[matched[ti]] if looks[matched[ti]] is not None else t.look
                t.hits += 1
                t.missed = t.unseen = 0
                t.fresh = True
                keep.append(t)
            else:
                t.fresh = False
                t.box = self._predicted(t, 1)
                t.unseen += 1
                if covered is None or covered(t.box):
                    t.missed += 1
                gone = t.missed > self.max_missed_frames or (t.missed >= 2 and t.unseen > self.max_missed_frames)
                if not gone:
                    keep.append(t)
        for di in new:
            d = detections[di]
            keep.append(Track(id=self._next_id, box=d.box, score=d.score, keypoints=d.keypoints, look=looks[di], source=source))
            self._next_id += 1
        self._tracks = keep
        return self.tracks
