"""Tiny FER-2013 fixtures in the real formats (npz, csv, image folders), made in the test."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from dsrter.edge.labels import LABELS

USAGES = ("Training", "PublicTest", "PrivateTest")


def synthetic_faces(per_class: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """48x48 grey images whose class is a learnable pattern (a bright band at a class-specific row)."""
    rng = np.random.default_rng(seed)
    images, labels, usage = [], [], []
    for k in range(len(LABELS)):
        for i in range(per_class):
            img = rng.integers(40, 90, (48, 48)).astype(np.uint8)
            img[4 + 6 * k : 8 + 6 * k, :] = 230
            images.append(img)
            labels.append(k)
            usage.append(0 if i < per_class - 4 else (1 if i < per_class - 2 else 2))
    return np.stack(images), np.array(labels), np.array(usage)


def write_npz(path: Path, **kw) -> Path:
    images, labels, usage = synthetic_faces(**kw)
    np.savez_compressed(path, images=images, labels=labels, usage=usage)
    return path


def write_csv(path: Path, **kw) -> Path:
    images, labels, usage = synthetic_faces(**kw)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for img, lab, use in zip(images, labels, usage):
            w.writerow([int(lab), " ".join(str(int(v)) for v in img.ravel()), USAGES[use]])
    return path


def write_folder(root: Path, **kw) -> Path:
    images, labels, usage = synthetic_faces(**kw)
    for n, (img, lab, use) in enumerate(zip(images, labels, usage)):
        split = "train" if use == 0 else "test"
        d = root / split / LABELS[lab]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{USAGES[use]}_{n}.png"), img)
    return root
