"""Pictures in the one layout the display side draws on and writes: BGR uint8 HxWx3."""

from __future__ import annotations

import cv2
import numpy as np


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A new BGR uint8 HxWx3 array from gray (HxW / HxWx1), BGR or BGRA input of any dtype."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating):
            scale = 255.0 if img.size and float(np.nanmax(img)) <= 1.0 else 1.0
            img = np.clip(np.nan_to_num(img) * scale, 0, 255).astype(np.uint8)
        elif img.dtype == np.uint16:
            img = (img >> 8).astype(np.uint8)
        else:
            img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim != 3:
        raise ValueError(f"expected an image HxW or HxWxC, got shape {img.shape}")
    c = img.shape[2]
    if c == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if c == 3:
        return np.ascontiguousarray(img).copy()
    if c == 4:
        return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGRA2BGR)
    if c == 2:  # gray + alpha
        return cv2.cvtColor(np.ascontiguousarray(img[:, :, 0]), cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(img[:, :, :3]).copy()
