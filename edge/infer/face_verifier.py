"""A second look at doubtful detections: the short-range detector on a zoomed crop around each.

Small, dim faces (40 px at 640x480, people 3-5 m from a TV) often reach the full-range detector's
output with scores just under its threshold, beside a few non-faces (dark patches, textures).
A detection scored between ``face.candidate_confidence`` and ``face.min_detection_confidence`` is
kept only when the short-range model, given a square crop ``context`` times the box's side around
it (the face then fills about a third of its input, where that model is at its best), finds the
same face there: a box overlapping the candidate's by ``min_iou`` or more (a real face near a
false one, e.g. above a chest, does not vouch for it). At most ``max_per_pass`` crops are checked per detector
pass, the most confident first, which bounds the cost (one short-range run is about a quarter of a
full-range one).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from dsrter.edge.infer.face_detector import Detection, FaceDetector, iou


class CropVerifier:
    """Confirms candidate detections with a second detector on zoomed crops (see the module doc)."""

    def __init__(self, detector: FaceDetector, context: float = 2.5, max_per_pass: int = 2, min_iou: float = 0.4):
        self.detector = detector
        self.context = float(context)
        self.max_per_pass = max(0, int(max_per_pass))
        self.min_iou = float(min_iou)

    @property
    def invokes(self) -> int:
        """Second-look detector runs so far."""
        return self.detector.invokes

    def region(self, box: tuple[float, float, float, float]) -> tuple[int, int, int]:
        """(x0, y0, side): the square ``context`` x the box's longer side around its centre."""
        x, y, w, h = box
        side = max(8, int(round(self.context * max(w, h))))
        return int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2)), side

    @staticmethod
    def crop(frame: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
        """The square ``side`` x ``side`` at (x0, y0) (a ``region``), black beyond the frame."""
        H, W = frame.shape[:2]
        out = np.zeros((side, side) + frame.shape[2:], frame.dtype)
        sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(W, x0 + side), min(H, y0 + side)
        if sx1 > sx0 and sy1 > sy0:
            out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = frame[sy0:sy1, sx0:sx1]
        return out

    def confirms(self, frame: np.ndarray, det: Detection) -> bool:
        """Does the second detector find the face ``det`` is (a box overlapping it by ``min_iou``)?"""
        x0, y0, side = self.region(det.box)
        patch = self.crop(frame, x0, y0, side)
        size = self.detector.spec.input_size
        if side < size:  # scaled up once here, so the detector sees the face with sharp edges
            patch = cv2.resize(patch, (size, size), interpolation=cv2.INTER_CUBIC)
        s = side / patch.shape[0]
        for d in self.detector.detect(patch):
            bx, by, bw, bh = d.box
            if iou((x0 + bx * s, y0 + by * s, bw * s, bh * s), det.box) >= self.min_iou:
                return True
        return False

    def filter(self, frame: np.ndarray, found: Sequence[Detection], accept: float) -> list[Detection]:
        """``found`` without the detections under ``accept`` that the second look does not confirm
        (beyond ``max_per_pass`` checks, the remaining doubtful ones are dropped)."""
        doubtful = sorted((d for d in found if d.score < accept), key=lambda d: -d.score)
        checked = {id(d): self.confirms(frame, d) for d in doubtful[:self.max_per_pass]}
        return [d for d in found if d.score >= accept or checked.get(id(d), False)]

    def close(self) -> None:
        self.detector.close()
