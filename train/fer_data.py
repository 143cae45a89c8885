"""FER-2013 loaders: the shared npz, the public fer2013.csv and the image-folder layout."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsrter.edge.labels import LABELS, label_index

USAGE_NAMES: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
TRAIN, PUBLIC_TEST, PRIVATE_TEST = 0, 1, 2
IMAGE_SIZE = 48
_IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp"}


class FerDataError(ValueError):
    """A FER-2013 source that cannot be read; the message names the file/row."""


@dataclass
class FerData:
    """Grey 48x48 faces with labels in LABELS order and a usage code per image."""

    images: np.ndarray  # uint8 (N, 48, 48)
    labels: np.ndarray  # int64 (N,)
    usage: np.ndarray  # int64 (N,), codes into USAGE_NAMES
    source: str
    notes: tuple[str, ...] = ()  # how the source was read where that was not plain (converted pixels, no split)

    def split(self, code: int) -> tuple[np.ndarray, np.ndarray]:
        mask = self.usage == code
        return self.images[mask], self.labels[mask]

    def __len__(self) -> int:
        return len(self.labels)


def load_fer(path: str | Path) -> FerData:
    """Load FER-2013 from an .npz, a .csv or an image-folder root, detected by what ``path`` is."""
    p = Path(path)
    if not p.exists():
        raise FerDataError(f"FER-2013 data not found: {p}")
    if p.is_dir():
        return _load_folder(p)
    if p.suffix.lower() == ".npz":
        return _load_npz(p)
    if p.suffix.lower() == ".csv":
        return _load_csv(p)
    raise FerDataError(f"{p}: unsupported FER-2013 source (expected .npz, .csv or an image folder)")


def _load_npz(p: Path) -> FerData:
    try:
        with np.load(p, allow_pickle=False) as d:
            if "images" not in d or "labels" not in d:
                raise FerDataError(f"{p}: npz must contain 'images' and 'labels' arrays (has {sorted(d.files)})")
            images = np.asarray(d["images"])
            labels = np.asarray(d["labels"]).astype(np.int64)
            # Without a usage array every image is treated as evaluation data.
            has_usage = "usage" in d
            usage = np.asarray(d["usage"]).astype(np.int64) if has_usage else np.full(len(labels), PRIVATE_TEST)
    except FerDataError:
        raise
    except Exception as exc:  # zipfile/npy errors
        raise FerDataError(f"{p}: not a readable npz file ({exc})") from exc
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise FerDataError(f"{p}: 'images' must have shape (N, 48, 48), got {images.shape}")
    if len(labels) != len(images) or len(usage) != len(images):
        raise FerDataError(f"{p}: images/labels/usage lengths differ ({len(images)}/{len(labels)}/{len(usage)})")
    _check_labels(labels, str(p))
    pixels, note = _as_pixels(images, str(p))
    notes = (note,) if note else ()
    if not has_usage:
        notes += (f"{p} has no 'usage' array: all {len(labels)} images are treated as test images",)
    return FerData(pixels, labels, usage, str(p), notes)


def _as_pixels(images: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """uint8 grey levels; floats in [0, 1] are scaled by 255 (said in the returned note), other ranges refused."""
    if images.dtype == np.uint8:
        return images, ""
    if images.dtype == np.bool_ or not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise FerDataError(f"{where}: 'images' must be numbers (uint8 0-255 or float 0-1), got dtype {images.dtype}")
    if images.size == 0:
        return images.astype(np.uint8), ""
    if np.issubdtype(images.dtype, np.floating) and not np.isfinite(images).all():
        raise FerDataError(f"{where}: 'images' contain NaN or infinite values")
    lo, hi = float(images.min()), float(images.max())
    if np.issubdtype(images.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        note = f"{where}: float images in [0, 1] converted to grey levels 0-255 (x 255, rounded)"
        return np.rint(images.astype(np.float64) * 255.0).astype(np.uint8), note
    if lo < 0 or hi > 255:
        raise FerDataError(f"{where}: 'images' must be grey levels 0-255 (or floats 0-1), found {lo:g}..{hi:g}")
    if np.issubdtype(images.dtype, np.floating) and not np.array_equal(images, np.rint(images)):
        raise FerDataError(f"{where}: float 'images' in 0-255 with fractions; expected uint8 0-255 or floats 0-1")
    return images.astype(np.uint8), ""


def _load_csv(p: Path) -> FerData:
    images, labels, usage = [], [], []
    with p.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"emotion", "pixels"} - set(reader.fieldnames or [])
        if missing:
            raise FerDataError(f"{p}: missing column(s) {sorted(missing)}; expected emotion,pixels[,Usage]")
        for row_no, row in enumerate(reader, start=2):  # line 1 is the header
            where = f"{p}, line {row_no}"
            try:
                label = int(row["emotion"])
            except (TypeError, ValueError):
                raise FerDataError(f"{where}: emotion {row['emotion']!r} is not an integer 0-6") from None
            if not 0 <= label < len(LABELS):
                raise FerDataError(f"{where}: emotion {label} out of range 0-6")
            try:
                pix = np.array((row["pixels"] or "").split(), dtype=np.int64)
            except ValueError:
                raise FerDataError(f"{where}: pixels contain non-integer values") from None
            if pix.size != IMAGE_SIZE * IMAGE_SIZE:
                raise FerDataError(f"{where}: expected {IMAGE_SIZE * IMAGE_SIZE} pixels, got {pix.size}")
            if pix.min() < 0 or pix.max() > 255:
                raise FerDataError(f"{where}: pixel values must be 0-255")
            use = (row.get("Usage") or "PrivateTest").strip()
            if use not in USAGE_NAMES:
                raise FerDataError(f"{where}: Usage {use!r} is not one of {', '.join(USAGE_NAMES)}")
            images.append(pix.reshape(IMAGE_SIZE, IMAGE_SIZE).astype(np.uint8))
            labels.append(label)
            usage.append(USAGE_NAMES.index(use))
    if not images:
        raise FerDataError(f"{p}: no rows")
    return FerData(np.stack(images), np.array(labels, np.int64), np.array(usage, np.int64), str(p))


def _usage_for(split_dir: str, name: str) -> int:
    if split_dir == "train":
        return TRAIN
    if name.startswith("PublicTest"):
        return PUBLIC_TEST
    return PRIVATE_TEST


def _load_folder(root: Path) -> FerData:
    import cv2

    images, labels, usage = [], [], []
    split_dirs = [d for d in ("train", "test") if (root / d).is_dir()]
    if not split_dirs:
        raise FerDataError(f"{root}: expected train/ and/or test/ sub-folders with one folder per label")
    for split_dir in split_dirs:
        for label_dir in sorted((root / split_dir).iterdir()):
            if not label_dir.is_dir():
                continue
            try:
                label = label_index(label_dir.name)
            except ValueError as exc:
                raise FerDataError(f"{label_dir}: {exc}") from None
            for f in sorted(label_dir.iterdir()):
                if f.suffix.lower() not in _IMAGE_EXTS:
                    continue
                img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
                if img is None:
                    raise FerDataError(f"{f}: not a readable image")
                if img.shape != (IMAGE_SIZE, IMAGE_SIZE):
                    raise FerDataError(f"{f}: image is {img.shape[1]}x{img.shape[0]}, expected 48x48")
                images.append(img)
                labels.append(label)
                usage.append(_usage_for(split_dir, f.name))
    if not images:
        raise FerDataError(f"{root}: no images found")
    return FerData(np.stack(images), np.array(labels, np.int64), np.array(usage, np.int64), str(root))


def _check_labels(labels: np.ndarray, where: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= len(LABELS)):
        raise FerDataError(f"{where}: labels must be 0-6, found {int(labels.min())}..{int(labels.max())}")
