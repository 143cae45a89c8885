"""Small faces: the detector on the whole frame and on overlapping tiles, one pass per call, in turn.

BlazeFace sees the frame shrunk to its input (192 px for full range), so a 40 px face at 640x480
is about 12 px there, too small to be found. A tile (a part of the frame) is shrunk less. Each
``detect`` call runs ONE pass, so a detection frame costs one interpreter run as without tiles;
the passes go whole frame, tile 1, whole frame, tile 2, ... Large faces are refreshed by every
whole-frame pass, small ones by the pass over their tile.

With a ``verifier`` (:mod:`face_verifier`), the detector runs with a lower threshold and the
detections under ``accept`` are kept only when the verifier's second look confirms them.

``covers(box)`` says whether the last pass could have found a face there. The tracker counts a
miss only for tracks the pass covers, so a small face is not dropped while another part of the
frame is searched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsrter.edge.infer.face_detector import Detection, FaceDetector
from dsrter.edge.infer.face_verifier import CropVerifier

Box = tuple[float, float, float, float]

# A whole-frame pass vouches only for faces at least this tall as a share of the model input's side:
# measured with real heads pasted at known sizes, full range finds faces reliably
# from about 1/6 of its input, unreliably below.
RELIABLE_FRACTION = 1.0 / 6.0
EDGE_PX = 2.0  # a tile detection this close to an inner tile edge is a cut face: left to other passes


@dataclass(frozen=True)
class Region:
    """A pass's part of the frame in pixels; ``whole`` for the whole-frame pass."""

    x: int
    y: int
    w: int
    h: int
    whole: bool = False

    def inner_edges(self, frame_w: int, frame_h: int) -> tuple[bool, bool, bool, bool]:
        """Which of the left, top, right, bottom edges lie inside the frame (not on its border)."""
        return self.x > 0, self.y > 0, self.x + self.w < frame_w, self.y + self.h < frame_h


def tile_grid(frame_w: int, frame_h: int, columns: int, rows: int, overlap: float) -> list[Region]:
    """``columns`` x ``rows`` tiles covering the frame, neighbours overlapping by ``overlap`` x the
    tile's side (so a face narrower than the overlap lies whole in at least one tile)."""
    def spans(total: int, n: int) -> list[tuple[int, int]]:
        if n <= 1:
            return [(0, total)]
        size = int(np.ceil(total / (n - (n - 1) * overlap)))
        starts = np.linspace(0, total - size, n).round().astype(int)
        return [(int(s), size) for s in starts]

    return [Region(x, y, w, h) for y, h in spans(frame_h, rows) for x, w in spans(frame_w, columns)]


def _inside(box: Box, r: Region, frame_w: int, frame_h: int) -> bool:
    """The whole box lies in the region (edges on the frame border extend past it)."""
    left, top, right, bottom = r.inner_edges(frame_w, frame_h)
    x, y, w, h = box
    return ((not left or x >= r.x) and (not top or y >= r.y)
            and (not right or x + w <= r.x + r.w) and (not bottom or y + h <= r.y + r.h))


class TiledDetector:
    """A :class:`FaceDetector` run on the whole frame and on tiles in turn (see the module doc).

    ``columns`` x ``rows`` = 1 x 1 runs the whole frame on every call, as the bare detector."""

    def __init__(self, detector: FaceDetector, columns: int = 2, rows: int = 1, overlap: float = 0.25,
                 verifier: CropVerifier | None = None, accept: float = 0.5):
        self.detector = detector
        self.verifier = verifier
        self.accept = float(accept)  # with a verifier: detections under this need its confirmation
        self.columns, self.rows, self.overlap = max(1, int(columns)), max(1, int(rows)), float(overlap)
        self.passes = 0  # detect() calls so far
        self._last: Region | None = None
        self._shape: tuple[int, int] = (0, 0)
        self._tiles: list[Region] = []

    @property
    def tiled(self) -> bool:
        return self.columns * self.rows > 1

    @property
    def invokes(self) -> int:
        """Interpreter runs so far (one per pass)."""
        return self.detector.invokes

    @property
    def verify_invokes(self) -> int:
        """Second-look runs so far (0 without a verifier)."""
        return self.verifier.invokes if self.verifier is not None else 0

    def next_region(self, frame_w: int, frame_h: int) -> Region:
        """The region the next call searches: even passes the whole frame, odd ones the tiles in turn."""
        if (frame_w, frame_h) != self._shape:
            self._shape = (frame_w, frame_h)
            self._tiles = tile_grid(frame_w, frame_h, self.columns, self.rows, self.overlap) if self.tiled else []
        if not self._tiles or self.passes % 2 == 0:
            return Region(0, 0, frame_w, frame_h, whole=True)
        return self._tiles[(self.passes // 2) % len(self._tiles)]

    def detect(self, frame: np.ndarray, t: float = 0.0) -> list[Detection]:
        """Faces found by this call's pass, in frame pixels."""
        h, w = frame.shape[:2]
        region = self.next_region(w, h)
        self.passes += 1
        self._last = region
        if region.whole:
            return self._second_look(frame, self.detector.detect(frame, t))
        found = self.detector.detect(frame[region.y:region.y + region.h, region.x:region.x + region.w], t)
        left, top, right, bottom = region.inner_edges(w, h)
        out = []
        for d in found:
            x, y, bw, bh = d.box
            if ((left and x < EDGE_PX) or (top and y < EDGE_PX) or (right and x + bw > region.w - EDGE_PX)
                    or (bottom and y + bh > region.h - EDGE_PX)):
                continue  # cut by the tile's edge: the whole face is in a neighbour tile or the whole-frame pass
            kps = tuple((px + region.x, py + region.y) for px, py in d.keypoints)
            out.append(Detection((x + region.x, y + region.y, bw, bh), d.score, kps))
        return self._second_look(frame, out)

    def _second_look(self, frame: np.ndarray, found: list[Detection]) -> list[Detection]:
        return found if self.verifier is None else self.verifier.filter(frame, found, self.accept)

    @property
    def last_pass(self) -> Region | None:
        """The region the last call searched (the tracker measures motion between detections of one pass)."""
        return self._last

    def covers(self, box: Box) -> bool:
        """Could the last pass have found a face with this box? A whole-frame pass covers every
        box when there are no tiles, else faces tall enough for it and faces that no tile holds
        whole; a tile pass covers the boxes inside it."""
        if self._last is None:
            return True
        w, h = self._shape
        if not self._last.whole:
            return _inside(box, self._last, w, h)
        if not self._tiles:
            return True
        big = box[3] / max(w, h) >= RELIABLE_FRACTION  # the face's share of the (letterboxed) input side
        return big or not any(_inside(box, r, w, h) for r in self._tiles)

    def close(self) -> None:
        self.detector.close()
        if self.verifier is not None:
            self.verifier.close()
