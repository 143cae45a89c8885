"""FER+ crowd votes for FER-2013: soft 7-class targets and majority labels, row-aligned to the npz.

The files (``ferplus_votes.npy`` uint8 (N, 10), ``ferplus_valid.npy`` bool (N,)) sit beside
``fer2013.npz``. Vote columns follow FER+'s order: neutral, happiness, surprise, sadness, anger,
disgust, fear, contempt, unknown, not-a-face. Following the FER+ paper (Barsoum et al. 2016):
single votes are outliers and dropped; an image whose kept votes are mostly unknown / not-a-face
is left out; contempt is not one of our classes, so its votes are dropped and the rest renormalised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsrter.edge.labels import NUM_CLASSES
from dsrter.train.fer_data import FerData

VOTES_FILE, VALID_FILE = "ferplus_votes.npy", "ferplus_valid.npy"
# FER+ column -> LABELS index (angry, disgust, fear, happy, sad, surprise, neutral); -1: not ours.
FERPLUS_TO_LABEL = np.array([6, 3, 5, 4, 0, 1, 2, -1, -1, -1])
_OURS = FERPLUS_TO_LABEL >= 0


class FerPlusError(ValueError):
    """FER+ vote files that are missing or do not fit the FER-2013 data."""


@dataclass(frozen=True)
class FerPlusLabels:
    """Per FER-2013 row: a 7-class vote distribution (soft target) and the FER+ majority label."""

    soft: np.ndarray  # float32 (N, 7), rows of unusable images are all zero
    majority: np.ndarray  # int64 (N,), -1 where FER+ has no majority among our 7 classes
    usable: np.ndarray  # bool (N,): the soft target can be trained on

    def __len__(self) -> int:
        return len(self.majority)

    def majority_split(self, data: FerData, code: int) -> tuple[np.ndarray, np.ndarray]:
        """Like ``FerData.split``: the faces of one usage code that have a FER+ majority label, and that label."""
        mask = (data.usage == code) & (self.majority >= 0)
        return data.images[mask], self.majority[mask]


def votes_paths(data_path: str | Path) -> tuple[Path, Path]:
    root = Path(data_path).parent
    return root / VOTES_FILE, root / VALID_FILE


def load_ferplus(data_path: str | Path, n_rows: int) -> FerPlusLabels:
    """The FER+ votes beside ``data_path`` (a fer2013.npz), checked to have ``n_rows`` rows."""
    votes_path, valid_path = votes_paths(data_path)
    for p in (votes_path, valid_path):
        if not p.is_file():
            raise FerPlusError(f"{p}: FER+ file not found (it sits beside fer2013.npz; see the README's data section)")
    try:
        votes = np.load(votes_path, allow_pickle=False)
        valid = np.load(valid_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FerPlusError(f"{votes_path.parent}: FER+ files are not readable .npy arrays ({exc})") from exc
    if votes.shape != (n_rows, 10) or valid.shape != (n_rows,):
        raise FerPlusError(
            f"{votes_path.parent}: FER+ arrays {votes.shape} / {valid.shape} do not match {n_rows} FER-2013 rows x 10 vote columns"
        )
    return ferplus_labels(votes, valid.astype(bool))


def ferplus_labels(votes: np.ndarray, valid: np.ndarray) -> FerPlusLabels:
    """Soft targets and majority labels from raw vote counts (see the module docstring)."""
    v = votes.astype(np.float64).copy()
    v[v <= 1] = 0.0  # single votes are outliers
    total = v.sum(1)
    ours = np.zeros((len(v), NUM_CLASSES))
    for col in np.flatnonzero(_OURS):
        ours[:, FERPLUS_TO_LABEL[col]] = v[:, col]
    ours_total = ours.sum(1)
    # Majority as in FER+'s evaluation: the top column needs more than half of all kept votes and
    # must be one of our classes (unknown, not-a-face and contempt majorities are left out).
    top = v.argmax(1)
    majority = np.where(valid & (total > 0) & (2 * v.max(1) > total) & _OURS[top], FERPLUS_TO_LABEL[top], -1)
    # Trainable: FER+ labelled it, and more than half of its kept votes name one of our emotions.
    usable = valid & (ours_total > 0.5 * np.maximum(total, 1e-9))
    soft = np.where(usable[:, None], ours / np.maximum(ours_total, 1e-9)[:, None], 0.0)
    return FerPlusLabels(soft.astype(np.float32), majority.astype(np.int64), usable)
