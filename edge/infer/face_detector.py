"""Face detection: the vendored BlazeFace models (short or full range) on LiteRT, decoded as MediaPipe does.

Frames of any channel count (grey, BGR, BGRA), size and integer/float dtype are converted to
contiguous RGB uint8 first. Detections come back in pixels of the frame that was passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import cv2
import numpy as np

from dsrter.edge.infer.blazeface import NUM_COORDS, SPECS, BlazeFaceSpec, anchor_centres, decode, weighted_nms
from dsrter.edge.infer.model_io import ModelError, TFLiteModel

# BlazeFace keypoint order (MediaPipe face detection).
KEYPOINT_NAMES: tuple[str, ...] = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")
MOUTH = KEYPOINT_NAMES.index("mouth")


@dataclass(frozen=True)
class Detection:
    """One face: box (x, y, w, h) in pixels, detector score, keypoints in pixels (KEYPOINT_NAMES order)."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()

    @property
    def mouth(self) -> Optional[tuple[float, float]]:
        return self.keypoints[MOUTH] if len(self.keypoints) > MOUTH else None

    @property
    def area(self) -> float:
        return max(0.0, self.box[2]) * max(0.0, self.box[3])


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """HxW, HxWx1, HxWx3 (BGR) or HxWx4 (BGRA), any numeric dtype -> contiguous HxWx3 RGB uint8."""
    a = np.asarray(frame)
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating):
            a = np.clip(a * (255.0 if a.size and float(np.nanmax(a)) <= 1.0 else 1.0), 0, 255)
            a = np.nan_to_num(a).astype(np.uint8)
        elif a.dtype == np.uint16:
            a = (a >> 8).astype(np.uint8)
        else:
            a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 1):
        return cv2.cvtColor(np.ascontiguousarray(a.reshape(a.shape[0], a.shape[1])), cv2.COLOR_GRAY2RGB)
    if a.ndim == 3 and a.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_BGR2RGB)
    if a.ndim == 3 and a.shape[2] == 4:
        return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_BGRA2RGB)
    raise ValueError(f"unsupported frame shape {a.shape}; expected HxW, HxWx1, HxWx3 or HxWx4")


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The frame scaled into a size x size square, centred, black borders, values in [-1, 1].

    As MediaPipe's ImageToTensor (keep_aspect_ratio, BORDER_ZERO): the square region around the
    frame maps onto the input by one affine warp with bilinear sampling. Returns the (1, size,
    size, 3) float32 input and (x0, y0, side): the region's top-left corner and side in pixels."""
    h, w = rgb.shape[:2]
    side = float(max(w, h))
    x0, y0 = (w - side) / 2.0, (h - side) / 2.0
    s = size / side
    m = np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]], np.float64)
    sq = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    x = sq.astype(np.float32) * (2.0 / 255.0) - 1.0
    return x[None], (x0, y0, side)


def _check_model_file(path: Path) -> None:
    if not path.is_file():
        raise ModelError(f"{path}: face detector model not found (vendored as models/face_detection_*.tflite)")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise ModelError(f"{path}: face detector is not a TFLite flatbuffer (file corrupt or truncated?)")


def _match_spec(model: TFLiteModel) -> BlazeFaceSpec:
    """The BlazeFace variant whose input and output shapes this model has; ModelError otherwise."""
    shapes_in = [tuple(int(v) for v in d["shape"]) for d in model.inputs]
    shapes_out = sorted(tuple(int(v) for v in d["shape"]) for d in model.outputs)
    for spec in SPECS:
        n = spec.num_boxes
        if shapes_in == [(1, spec.input_size, spec.input_size, 3)] and shapes_out == [(1, n, 1), (1, n, NUM_COORDS)]:
            return spec
    raise ModelError(f"{model.path}: not a BlazeFace face detector (inputs {shapes_in}, outputs {shapes_out}; "
                     f"expected models/face_detection_short_range.tflite or face_detection_full_range_sparse.tflite)")


class FaceDetector:
    """BlazeFace (short or full range, told apart by the file's shapes) on LiteRT.

    ``min_confidence`` None uses MediaPipe's threshold for the model (0.5 short, 0.6 full range).
    ``mode`` is accepted for callers written for MediaPipe's video/image modes; both decode alike."""

    MIN_SIDE = 8  # smaller frames cannot hold a detectable face; skip the call

    def __init__(self, model_path: str | Path, min_confidence: Optional[float] = 0.5, max_faces: int = 8,
                 mode: Literal["video", "image"] = "video", threads: int = 1):
        path = Path(model_path)
        _check_model_file(path)
        self._model: Optional[TFLiteModel] = TFLiteModel(path, threads=threads)
        self.spec = _match_spec(self._model)
        self._anchors = anchor_centres(self.spec)
        self._box_out = next(i for i, d in enumerate(self._model.outputs) if int(d["shape"][-1]) == NUM_COORDS)
        self.path = path
        self.mode = mode
        self.max_faces = max_faces
        self.min_confidence = self.spec.default_min_score if min_confidence is None else float(min_confidence)
        self.invokes = 0  # interpreter runs so far (the bench counts them)

    def detect(self, frame: np.ndarray, t: float = 0.0) -> list[Detection]:
        """Faces in ``frame`` (best score first, at most ``max_faces``); ``t`` is unused (kept for callers)."""
        if self._model is None:
            raise RuntimeError("FaceDetector is closed")
        rgb = to_rgb(frame)
        h, w = rgb.shape[:2]
        if min(h, w) < self.MIN_SIDE:
            return []
        x, (x0, y0, side) = letterbox(rgb, self.spec.input_size)
        outs = self._model.run(x)
        self.invokes += 1
        raw_boxes, raw_scores = outs[self._box_out], outs[1 - self._box_out]
        boxes, scores, kps = decode(self.spec, self._anchors, raw_boxes, raw_scores, self.min_confidence)
        found = weighted_nms(boxes, scores, kps, self.spec.nms_iou, self.max_faces)
        out = []
        for box, score, kp in found:
            bx0, by0 = x0 + box[0] * side, y0 + box[1] * side
            bw, bh = (box[2] - box[0]) * side, (box[3] - box[1]) * side
            pts = tuple((float(x0 + px * side), float(y0 + py * side)) for px, py in kp)
            out.append(Detection((float(bx0), float(by0), float(bw), float(bh)), score, pts))
        return out

    def covers(self, box: tuple[float, float, float, float]) -> bool:
        """Every call searches the whole frame, so a face anywhere could have been found."""
        return True

    @property
    def last_pass(self) -> None:
        """Every call is the same pass (the whole frame)."""
        return None

    def close(self) -> None:
        self._model = None

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
