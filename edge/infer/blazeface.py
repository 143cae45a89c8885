"""BlazeFace post-processing as MediaPipe specifies it: SSD anchors, box decoding, weighted NMS.

Pure numpy; the model itself runs in LiteRT (see ``face_detector``). The two vendored models differ
only in their options, which follow MediaPipe's graphs:

- short range (128x128): the Tasks ``FaceDetectorGraph`` (4 anchor layers, strides 8/16/16/16,
  2 anchors per cell, 896 boxes; score threshold = ``min_detection_confidence``);
- full range (192x192, sparse): ``face_detection_full_range.pbtxt`` (1 layer, stride 4, 1 anchor
  per cell, 2304 boxes; score threshold 0.6 there).

Both: letterboxed input in [-1, 1] (black borders), 16 values per box (x/y centre, w, h, then 6
keypoints x/y) scaled by the input size, sigmoid scores clipped at +-100, weighted non-maximum
suppression over intersection-over-union 0.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_KEYPOINTS = 6
NUM_COORDS = 4 + 2 * NUM_KEYPOINTS


@dataclass(frozen=True)
class BlazeFaceSpec:
    """MediaPipe's options for one BlazeFace model (SsdAnchors, TensorsToDetections, NMS)."""

    name: str
    input_size: int  # square input, pixels
    strides: tuple[int, ...]  # one per anchor layer
    interpolated_scale_aspect_ratio: float  # > 0 adds one anchor per layer (MediaPipe's default 1.0)
    default_min_score: float
    # [columns, rows] of tiles searched in turn with the whole frame (small faces; see tiled_detection)
    default_tiles: tuple[int, int] = (1, 1)
    aspect_ratios: tuple[float, ...] = (1.0,)
    anchor_offset: float = 0.5
    score_clip: float = 100.0
    nms_iou: float = 0.3

    @property
    def num_boxes(self) -> int:
        return len(anchor_centres(self))


# Short range is for faces within ~2 m, which are large: its tiles would only zoom into parts of
# faces (a beard found as a face). Full range with 3 x 2 tiles sees a 40 px face at 640x480 about
# 28 px high, its smallest anchor's size (whole frame: 12 px).
SHORT_RANGE = BlazeFaceSpec("short_range", 128, (8, 16, 16, 16), 1.0, 0.5, (1, 1))
FULL_RANGE = BlazeFaceSpec("full_range", 192, (4,), 0.0, 0.6, (3, 2))
SPECS: tuple[BlazeFaceSpec, ...] = (SHORT_RANGE, FULL_RANGE)


def anchor_centres(spec: BlazeFaceSpec) -> np.ndarray:
    """(N, 2) anchor centres (x, y) in [0, 1], in the model's output order.

    MediaPipe's SsdAnchorsCalculator with ``fixed_anchor_size`` (every anchor is 1x1, so only the
    centres matter): consecutive layers with the same stride share one grid, each contributing
    ``len(aspect_ratios)`` anchors per cell plus one when ``interpolated_scale_aspect_ratio > 0``."""
    per_layer = len(spec.aspect_ratios) + (1 if spec.interpolated_scale_aspect_ratio > 0 else 0)
    out: list[np.ndarray] = []
    i = 0
    while i < len(spec.strides):
        stride = spec.strides[i]
        j = i
        while j < len(spec.strides) and spec.strides[j] == stride:
            j += 1
        n_per_cell = per_layer * (j - i)
        side = int(np.ceil(spec.input_size / stride))
        ys, xs = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
        centres = np.stack([(xs + spec.anchor_offset) / side, (ys + spec.anchor_offset) / side], axis=-1)
        out.append(np.repeat(centres.reshape(-1, 2), n_per_cell, axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


def decode(spec: BlazeFaceSpec, anchors: np.ndarray, raw_boxes: np.ndarray, raw_scores: np.ndarray,
           min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (K, 4: xmin, ymin, xmax, ymax), scores (K,) and keypoints (K, 6, 2) above ``min_score``.

    Coordinates are relative to the model input ([0, 1] on the letterboxed square)."""
    boxes = raw_boxes.reshape(-1, NUM_COORDS)
    logits = np.clip(raw_scores.reshape(-1), -spec.score_clip, spec.score_clip)
    scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    keep = np.flatnonzero(scores >= min_score)
    b = boxes[keep].astype(np.float64) / spec.input_size
    a = anchors[keep].astype(np.float64)
    cx, cy = b[:, 0] + a[:, 0], b[:, 1] + a[:, 1]
    w, h = b[:, 2], b[:, 3]
    rect = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kps = b[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + a[:, None, :]
    ok = (w >= 0) & (h >= 0) & np.isfinite(rect).all(axis=1)
    return rect[ok], scores[keep][ok], kps[ok]


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one (4,) box with (K, 4) boxes (xmin, ymin, xmax, ymax)."""
    ix = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = ix * iy
    union = (box[2] - box[0]) * (box[3] - box[1]) + (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, iou_threshold: float,
                 max_out: int) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's WEIGHTED suppression: best box first; it and every remaining box overlapping it by
    more than ``iou_threshold`` merge into one detection (coordinates and keypoints averaged with
    the scores as weights), which keeps the best box's score."""
    order = np.argsort(-scores, kind="stable")
    out: list[tuple[np.ndarray, float, np.ndarray]] = []
    while order.size and len(out) < max_out:
        top = order[0]
        overlap = iou(boxes[top], boxes[order]) > iou_threshold
        group, order = order[overlap], order[~overlap]
        if group.size == 0:  # a degenerate top box overlaps nothing, not even itself
            group, order = np.array([top]), order[order != top]
        wts = scores[group][:, None]
        box = (boxes[group] * wts).sum(axis=0) / wts.sum()
        kps = (keypoints[group] * wts[:, :, None]).sum(axis=0) / wts.sum()
        out.append((box, float(scores[top]), kps))
    return out
