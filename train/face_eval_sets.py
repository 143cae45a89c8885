"""Which FER-2013 images `dsrter eval face` scores, and against which labels.

Four sets over the test images: the original FER-2013 labels and the FER+ majority labels, each
on all test images and on the de-duplicated ones (a test image pixel-identical to a Training
image is left out). Without the FER+ vote files the FER+ sets are absent and a note says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsrter.train.fer_data import PRIVATE_TEST, TRAIN, FerData
from dsrter.train.ferplus import FerPlusError, load_ferplus

FER, FERPLUS = "fer2013", "ferplus"
DEDUP = "_dedup"


@dataclass(frozen=True)
class EvalSet:
    """Rows of the scored images (indices into ``Scoring.images``) with their reference labels."""

    key: str  # fer2013 | ferplus | fer2013_dedup | ferplus_dedup
    description: str
    rows: np.ndarray  # int64 indices into the scored images
    labels: np.ndarray  # int64 labels in LABELS order

    @property
    def n(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class Scoring:
    """The scored images (the test split, or every image when the source has none) and the sets over them."""

    split: str  # "PrivateTest" or "all images"
    images: np.ndarray  # uint8 (N, 48, 48)
    sets: dict[str, EvalSet]
    notes: tuple[str, ...]
    duplicates: int  # scored images pixel-identical to a Training image (0 when there is no Training split)


def _scored_mask(data: FerData) -> tuple[np.ndarray, str, tuple[str, ...]]:
    private = data.usage == PRIVATE_TEST
    if private.any():
        kept = f"{int(private.sum())} PrivateTest images scored"
        others = int((~private).sum())
        return private, "PrivateTest", ((f"{kept}; {others} Training/PublicTest images not scored",) if others else ())
    counts = ", ".join(f"{int((data.usage == c).sum())} {n}" for c, n in enumerate(("Training", "PublicTest")) if (data.usage == c).any())
    return np.ones(len(data), bool), "all images", (f"no PrivateTest images ({counts}): all {len(data)} images scored",)


def _training_duplicates(data: FerData, scored: np.ndarray) -> np.ndarray:
    """For each scored image: is it pixel-identical to some Training image (other than itself)?"""
    train = (data.usage == TRAIN) & ~scored
    seen = {im.tobytes() for im in data.images[train]}
    return np.array([im.tobytes() in seen for im in data.images[scored]], bool)


def build_scoring(data: FerData, data_path: str) -> Scoring:
    """The four sets (or fewer, with notes saying why) over the test images of ``data``."""
    scored, split, notes = _scored_mask(data)
    notes = data.notes + notes
    idx = np.flatnonzero(scored)
    all_rows = np.arange(len(idx))
    dup = _training_duplicates(data, scored)
    has_train = bool(((data.usage == TRAIN) & ~scored).any())
    sets = {FER: EvalSet(FER, f"FER-2013 original labels, {split}", all_rows, data.labels[idx])}
    try:
        fp = load_ferplus(data_path, len(data))
    except FerPlusError as exc:
        fp = None
        notes += (f"FER+ votes not used ({exc}); FER+ figures left out, the corruption set uses the original labels",)
    if fp is not None:
        maj = fp.majority[idx]
        keep = np.flatnonzero(maj >= 0)
        sets[FERPLUS] = EvalSet(FERPLUS, f"FER+ majority labels, {split} images FER+ keeps", keep, maj[keep])
        notes += (f"FER+ keeps {len(keep)} of {len(idx)} {split} images (majority among our 7 classes)",)
    if has_train:
        for key in list(sets):
            s = sets[key]
            ok = ~dup[s.rows]
            sets[key + DEDUP] = EvalSet(key + DEDUP, s.description + ", without images that also occur in Training",
                                        s.rows[ok], s.labels[ok])
        notes += (f"{int(dup.sum())} of {len(idx)} {split} images are pixel-identical to a Training image: "
                  "left out of the de-duplicated sets",)
    else:
        notes += ("no Training images apart from the scored ones: de-duplicated figures left out",)
    return Scoring(split, data.images[idx], sets, notes, int(dup.sum()))
