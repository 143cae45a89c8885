"""What speech training and distillation share: the corpora and their splits, feature normalisation,
SpecAugment and TensorFlow's thread count. ``speech_train`` and ``distill`` both import it."""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import numpy as np

from dsrter.edge.infer import speech_features as sf_
from dsrter.train.speech_data import SpeechDataset, SpeechItem, WindowSet, load_dataset

log = logging.getLogger(__name__)


def set_threads(threads: int) -> None:
    """Limit TensorFlow (and BLAS) to ``threads`` threads; call before TensorFlow does any work."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already initialised in this process
        pass


def load_corpora(paths: Sequence[str]) -> list[SpeechDataset]:
    sets = [load_dataset(p) for p in paths]
    for p, ds in zip(paths, sets):
        counts = {s: len(ds.split(s)) for s in ("train", "val", "test")}
        log.info("%s: %d clips (%s layout), split %s", p, len(ds), ds.layout, counts)
        for n in ds.notes:
            log.info("%s: %s", p, n)
    return sets


def split_items(sets: Sequence[SpeechDataset], split: str, max_clips: int | None = None) -> list[SpeechItem]:
    out: list[SpeechItem] = []
    for ds in sets:
        items = ds.split(split)
        if max_clips is not None and len(items) > max_clips:
            rng = np.random.default_rng(0)
            items = [items[i] for i in sorted(rng.choice(len(items), max_clips, replace=False))]
        out.extend(items)
    return out


def normalise_set(ws: WindowSet, recipe: dict[str, Any], stats: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    out_lm = np.empty_like(ws.logmel)
    out_eg = np.empty_like(ws.egemaps)
    for i in range(0, len(ws), 2048):  # chunks keep the temporaries small
        out_lm[i : i + 2048], out_eg[i : i + 2048] = sf_.normalise_features(
            ws.logmel[i : i + 2048], ws.egemaps[i : i + 2048], recipe, stats)
    return out_lm, out_eg


def spec_augment(batch: np.ndarray, rng: np.random.Generator, time_masks: int = 2, max_t: int = 20,
                 freq_masks: int = 2, max_f: int = 8) -> np.ndarray:
    """Zero (= the training mean after z-scoring) random time and frequency bands of each example."""
    b, t, m = batch.shape
    out = batch.copy()
    tt = np.arange(t)[None, :]
    ff = np.arange(m)[None, :]
    for _ in range(time_masks):
        w = rng.integers(0, max_t + 1, size=(b, 1))
        s = rng.integers(0, max(1, t - max_t), size=(b, 1))
        out[(tt >= s) & (tt < s + w)] = 0.0
    for _ in range(freq_masks):
        w = rng.integers(0, max_f + 1, size=(b, 1))
        s = rng.integers(0, max(1, m - max_f), size=(b, 1))
        mask = (ff >= s) & (ff < s + w)  # (b, m)
        out *= ~mask[:, None, :]
    return out
