"""Living-room camera corruptions of 48x48 grey faces: one implementation for training and for eval.

Each corruption takes a uint8 face, a strength in [0, 1] and a random generator and returns a
uint8 face. ``EVAL_CORRUPTIONS`` fixes one strength per corruption for the robustness report;
``corrupt_batch`` draws random corruptions and strengths for training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

Corruption = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def low_light(img: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Scene light cut to (1 - 0.85 s), shot + read noise, then the camera's auto-gain brings it back."""
    light = 1.0 - 0.85 * s
    x = img.astype(np.float32) * light
    x = x + rng.normal(0.0, 1.0, img.shape) * (np.sqrt(np.maximum(x, 0.0)) * 0.8 + 2.0 * s)  # shot + read noise
    gain = 0.8 / max(light, 1e-3)  # auto-gain lifts the mean, not fully
    return _u8(x * gain)


def motion_blur(img: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """A straight blur of 1 + 8 s px (at 48 px) in a random direction."""
    length = 1 + int(round(8 * s))
    if length < 2:
        return img.copy()
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), float(rng.uniform(0, 180)), 1.0)
    k = cv2.warpAffine(k, rot, (length, length))
    k /= max(k.sum(), 1e-6)
    return cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REPLICATE)


def jpeg(img: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """JPEG at quality 95 - 85 s (s=1: quality 10), the blocking of a low-bitrate stream."""
    quality = int(round(95 - 85 * s))
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else img.copy()


def downscale(img: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """A face seen at 48 - 32 s px (s=0.75: 24 px), scaled back up to 48 as the crop does."""
    side = max(8, int(round(48 - 32 * s)))
    small = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)


def rotate(img: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """In-plane rotation by 40 s degrees, random sign (s=0.75: +-30 degrees)."""
    angle = 40.0 * s * (1 if rng.random() < 0.5 else -1)
    h, w = img.shape
    rot = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    return cv2.warpAffine(img, rot, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def occlude(img: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """A flat block over 35 s of the face (a hand, a cup, a shoulder), placed at random."""
    h, w = img.shape
    area = 0.35 * s * h * w
    bh = int(np.clip(np.sqrt(area * rng.uniform(0.6, 1.6)), 2, h))
    bw = int(np.clip(area / max(bh, 1), 2, w))
    y0, x0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
    out = img.copy()
    out[y0 : y0 + bh, x0 : x0 + bw] = int(rng.integers(0, 256))
    return out


CORRUPTIONS: dict[str, Corruption] = {
    "low_light_noise": low_light,
    "motion_blur": motion_blur,
    "jpeg": jpeg,
    "downscale_24px": downscale,
    "rotate_30deg": rotate,
    "occlusion": occlude,
}


@dataclass(frozen=True)
class EvalCorruption:
    name: str
    strength: float
    meaning: str


# The fixed robustness set reported by `dsrter eval face` (strength -> what it means at 48 px).
EVAL_CORRUPTIONS: tuple[EvalCorruption, ...] = (
    EvalCorruption("low_light_noise", 0.7, "light x0.40, shot+read noise, auto-gain x2"),
    EvalCorruption("motion_blur", 0.75, "7 px linear blur, random direction"),
    EvalCorruption("jpeg", 0.8, "JPEG quality 27"),
    EvalCorruption("downscale_24px", 0.75, "face at 24 px, scaled back to 48"),
    EvalCorruption("rotate_30deg", 0.75, "in-plane rotation +-30 degrees"),
    EvalCorruption("occlusion", 0.7, "flat block over ~25% of the face"),
)


def corrupt_set(images: np.ndarray, name: str, strength: float, seed: int = 0) -> np.ndarray:
    """Every image corrupted by ``name`` at ``strength``, reproducibly (fixed seed)."""
    fn = CORRUPTIONS[name]
    rng = np.random.default_rng(seed)
    return np.stack([fn(im, strength, rng) for im in images]) if len(images) else images.copy()


def corrupt_batch(images: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """Training: each face, with probability ``p``, gets one or two random corruptions at random strength."""
    out = images.copy()
    fns = list(CORRUPTIONS.values())
    for i in np.flatnonzero(rng.random(len(images)) < p):
        for j in rng.choice(len(fns), size=1 + int(rng.random() < 0.3), replace=False):
            out[i] = fns[j](out[i], float(rng.uniform(0.2, 1.0)), rng)
    return out
