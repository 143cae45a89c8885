"""Face crops made exactly as the face model's card specifies, classified with LiteRT."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dsrter.edge.infer.model_io import ModelError, TFLiteModel, load_card


def to_gray(frame: np.ndarray) -> np.ndarray:
    """Any of HxW, HxWx1, HxWx3 (BGR) or HxWx4 (BGRA) uint8 -> HxW grey."""
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[:, :, 0]
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"unsupported frame shape {frame.shape}; expected HxW, HxWx1, HxWx3 or HxWx4")


def crop_box(box: tuple[float, float, float, float], frame_w: int, frame_h: int, margin: float, shift_y: float = 0.0) -> tuple[int, int, int]:
    """Square crop (x0, y0, side) around a detector box (x, y, w, h in pixels).

    The side is the larger box side grown by ``margin`` on each side; the centre moves down
    by ``shift_y`` x side. The square may extend past the frame (padded when cut)."""
    x, y, w, h = box
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0 + shift_y * side
    side_i = max(2, int(round(side)))
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side_i


def cut_square(gray: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The square region, replicating edge pixels where it leaves the frame."""
    h, w = gray.shape
    pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    return gray[y0 : y0 + side, x0 : x0 + side]


def equalise(crops_u8: np.ndarray) -> np.ndarray:
    """Histogram-equalise each uint8 crop (N, S, S) on its own (``cv2.equalizeHist``): a dim, low-contrast
    living-room face gets the full grey range, as the well-lit training faces have."""
    crops_u8 = np.ascontiguousarray(crops_u8, dtype=np.uint8)
    return np.stack([cv2.equalizeHist(c) for c in crops_u8]) if len(crops_u8) else crops_u8


class FaceClassifier:
    """Loads ``face_emotion.tflite`` + card; ``crop`` then ``predict`` (batched over faces)."""

    def __init__(self, model_path: str | Path, threads: int = 1, mirror_average: bool | None = None):
        """``mirror_average``: also classify the mirrored crop and average (None: as the card says)."""
        self.card = load_card(model_path)
        try:
            spec = self.card["input"]
            self.size = int(spec["shape"][1])
            self.margin = float(spec["crop"]["margin"])
            self.shift_y = float(spec["crop"].get("shift_y", 0.0))
            self.equalise = spec.get("equalize") == "histogram"  # older cards: no equalisation
            # Test-time augmentation the card's metrics were measured with: mean of the crop and its mirror.
            card_choice = bool(self.card.get("inference", {}).get("hflip_average", False))
            self.hflip_average = card_choice if mirror_average is None else bool(mirror_average)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelError(f"{model_path}: card input spec incomplete ({exc!r})") from None
        self.model = TFLiteModel(model_path, threads=threads)
        shape = tuple(self.model.inputs[0]["shape"])
        if shape[1:] != (self.size, self.size, 1):
            raise ModelError(f"{model_path}: model input {shape} does not match the card's {self.size}x{self.size}x1")

    def crop(self, frame: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """uint8 (size, size) grey crop for a detector box (pixels) in a frame of any channel count."""
        gray = to_gray(frame)
        x0, y0, side = crop_box(box, gray.shape[1], gray.shape[0], self.margin, self.shift_y)
        region = cut_square(gray, x0, y0, side)
        interp = cv2.INTER_AREA if side > self.size else cv2.INTER_LINEAR
        return cv2.resize(region, (self.size, self.size), interpolation=interp)

    @staticmethod
    def scale(crops_u8: np.ndarray) -> np.ndarray:
        """The card's scaling: pixel / 127.5 - 1, as float32 (N, S, S, 1)."""
        return (crops_u8.astype(np.float32) / 127.5 - 1.0)[..., None]

    def predict(self, crops_u8: np.ndarray) -> np.ndarray:
        """Probabilities (N, 7) for uint8 crops (N, S, S)."""
        crops_u8 = np.asarray(crops_u8)
        if crops_u8.ndim == 2:
            crops_u8 = crops_u8[None]
        if len(crops_u8) == 0:
            return np.zeros((0, 7), np.float32)
        x = self.scale(equalise(crops_u8) if self.equalise else crops_u8)
        if not self.hflip_average:
            return self.model.run(x)[0]
        (probs,) = self.model.run(np.concatenate([x, x[:, :, ::-1]]))
        return (probs[: len(x)] + probs[len(x) :]) / 2.0
