"""Face detection with the MediaPipe Tasks FaceDetector (BlazeFace short-range, vendored in models/).

Frames of any channel count (grey, BGR, BGRA), size and integer/float dtype are converted to
contiguous RGB uint8 first. Detections come back in pixels of the frame that was passed in.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import cv2
import numpy as np

from dsrter.edge.infer.model_io import ModelError

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


def _import_mediapipe_tasks():
    """MediaPipe's vision tasks, imported without TensorFlow.

    mediapipe imports TensorFlow when it is installed (training installs), only to open files
    through tf.io.gfile; that adds seconds to start-up and, with openSMILE loaded after it,
    corrupts the heap (seen: tensorflow 2.21 + opensmile 2.6, "malloc(): invalid size"). Runtime
    installs have no TensorFlow, so hiding it during this import gives everyone the same path."""
    hide = "mediapipe" not in sys.modules and "tensorflow" not in sys.modules
    if hide:
        sys.modules["tensorflow"] = None  # type: ignore[assignment]  # `import tensorflow` -> ImportError
    try:
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions
    finally:
        if hide and sys.modules.get("tensorflow", 0) is None:
            del sys.modules["tensorflow"]
    return vision, BaseOptions


def _check_model_file(path: Path) -> bytes:
    if not path.is_file():
        raise ModelError(f"{path}: face detector model not found (vendored as models/face_detection_short_range.tflite)")
    data = path.read_bytes()
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise ModelError(f"{path}: face detector is not a TFLite flatbuffer (file corrupt or truncated?)")
    return data


class FaceDetector:
    """MediaPipe FaceDetector; ``mode="video"`` needs increasing timestamps (kept increasing here)."""

    MIN_SIDE = 8  # smaller frames cannot hold a detectable face; skip the call

    def __init__(self, model_path: str | Path, min_confidence: float = 0.5, max_faces: int = 8,
                 mode: Literal["video", "image"] = "video"):
        path = Path(model_path)
        data = _check_model_file(path)
        vision, BaseOptions = _import_mediapipe_tasks()
        opts = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=data),
            running_mode=vision.RunningMode.VIDEO if mode == "video" else vision.RunningMode.IMAGE,
            min_detection_confidence=float(min_confidence),
        )
        try:
            self._det = vision.FaceDetector.create_from_options(opts)
        except Exception as exc:
            raise ModelError(f"{path}: MediaPipe cannot load this face detector ({exc})") from None
        self.path = path
        self.mode = mode
        self.max_faces = max_faces
        self._last_ms = -1

    def detect(self, frame: np.ndarray, t: float = 0.0) -> list[Detection]:
        """Faces in ``frame`` (best score first, at most ``max_faces``); ``t`` seconds, for video mode."""
        import mediapipe as mp

        rgb = to_rgb(frame)
        h, w = rgb.shape[:2]
        if min(h, w) < self.MIN_SIDE:
            return []
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)
        if self.mode == "video":
            ms = max(int(round(t * 1000.0)), self._last_ms + 1)
            self._last_ms = ms
            result = self._det.detect_for_video(image, ms)
        else:
            result = self._det.detect(image)
        out = []
        for d in result.detections:
            bb = d.bounding_box
            score = float(d.categories[0].score) if d.categories else 0.0
            kps = tuple((float(k.x) * w, float(k.y) * h) for k in (d.keypoints or ()))
            out.append(Detection((float(bb.origin_x), float(bb.origin_y), float(bb.width), float(bb.height)), score, kps))
        out.sort(key=lambda d: -d.score)
        return out[: self.max_faces]

    def close(self) -> None:
        det, self._det = getattr(self, "_det", None), None
        if det is not None:
            det.close()

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
