"""Speech emotion training: windows of the speaker-independent training split -> Keras 1D-CNN.

The pipeline (``train_speech``):
1. load every ``--data`` corpus and take its design.md split (train / val; test is never looked at);
2. features of the training clips: clean windows every ``train_hop_s`` plus ``aug_copies`` corrupted
   copies of each clip (noise, gain, reverberation, speed/pitch; see speech_data.augment_clip), and the
   clean validation windows at the device hop; all cached on disk;
3. z-score statistics fitted on the clean training windows only (stored in the model card later);
4. training with SpecAugment-style time/frequency masks, class-balanced sample weights and label
   smoothing; the epoch with the best validation score (mean of window- and clip-level UA) is kept;
5. ``model.keras`` + ``train_info.json`` (recipe, statistics, data checksums, history) in ``out_dir``.

Heavy libraries (TensorFlow/Keras) are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dsrter.edge.infer import speech_features as sf_
from dsrter.edge.labels import LABELS, NUM_CLASSES
from dsrter.train.metrics import classification_report
from dsrter.train.distill import DistillConfig, distill, load_student
from dsrter.train.speech_data import (
    SpeechDataset,
    SpeechItem,
    WindowSet,
    WindowSettings,
    build_windows,
    clip_probabilities,
    dataset_checksums,
)
from dsrter.train.speech_prep import load_corpora, normalise_set, set_threads, spec_augment, split_items

log = logging.getLogger(__name__)


@dataclass
class SpeechTrainConfig(WindowSettings):
    data: list[str]
    out_dir: str = "runs/speech/train"
    cache_dir: str | None = "runs/speech/cache"
    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    seed: int = 0
    threads: int = 1
    workers: int = 1
    aug_copies: int = 1
    aug_seed: int = 0  # the corrupted copies (separate from the model seed so they stay cached)
    spec_augment: bool = True
    select: str = "val"  # "val": best validation epoch; "last": the last epoch
    student: str | None = None  # a `dsrter train distill` output folder
    teacher: str | None = None  # a HF checkpoint folder: distil first, then train with the student
    teacher_layer: str = "mean"
    student_epochs: int = 30
    embed_dim: int = 64
    max_clips: int | None = None  # per split, for tests and smoke runs
    command: str = ""
    spec: dict = field(default_factory=dict)  # SpeechNetSpec fields to override


def command_line() -> str:
    """The running ``dsrter ...`` command line (for the training record in the model card)."""
    return "dsrter " + " ".join(shlex.quote(a) for a in sys.argv[1:])


# --------------------------------------------------------------------------------------------
# data


def training_windows(items, recipe, cfg: SpeechTrainConfig) -> tuple[WindowSet, WindowSet]:
    """(clean windows every train_hop_s, clean + augmented windows) of the training clips."""
    clean = build_windows(items, recipe, cfg.train_hop_s, cache_dir=cfg.cache_dir, workers=cfg.workers,
                          progress=len(items) > 200)
    if cfg.aug_copies <= 0:
        return clean, clean
    aug = build_windows(items, recipe, recipe["hop_s"], aug_copies=cfg.aug_copies, seed=cfg.aug_seed,
                        cache_dir=cfg.cache_dir, workers=cfg.workers, progress=len(items) > 200)
    aug = aug.subset(aug.aug > 0)
    both = WindowSet(np.concatenate([clean.logmel, aug.logmel]), np.concatenate([clean.egemaps, aug.egemaps]),
                     np.concatenate([clean.labels, aug.labels]), np.concatenate([clean.clip, aug.clip]),
                     np.concatenate([clean.aug, aug.aug]), clean.items)
    return clean, both


def corpus_of(items: Sequence[SpeechItem], sets: Sequence[SpeechDataset]) -> np.ndarray:
    """Index of the ``--data`` corpus each item comes from."""
    where = {it.path: k for k, ds in enumerate(sets) for it in ds.items}
    return np.array([where[it.path] for it in items], np.int64)


def sample_weights(labels: np.ndarray, corpus: np.ndarray) -> np.ndarray:
    """Per-window weights: classes balanced within each corpus, and each corpus's total weight
    proportional to the square root of its window count (a small corpus counts more than its size,
    without its few speakers dominating)."""
    w = np.zeros(len(labels))
    ks = np.unique(corpus)
    sizes = np.array([np.count_nonzero(corpus == k) for k in ks], float)
    share = np.sqrt(sizes) / np.sqrt(sizes).sum()
    for k, sh in zip(ks, share):
        m = corpus == k
        cw = class_weights(labels[m])
        w[m] = cw[labels[m]] * sh * len(labels) / m.sum()
    return w


def selection_score(probs: np.ndarray, ws: WindowSet, corpus: np.ndarray) -> tuple[float, dict[str, float]]:
    """Validation score: per corpus the mean of window and clip UA, averaged over the corpora."""
    per = {}
    for k in np.unique(corpus):
        keep = corpus[ws.clip] == k
        sub = WindowSet(ws.logmel[:0], ws.egemaps[:0], ws.labels[keep], ws.clip[keep], ws.aug[keep], ws.items)
        r = window_and_clip_reports(probs[keep], sub)
        per[f"val{k}_window_ua"] = r["window"].unweighted_accuracy
        per[f"val{k}_clip_ua"] = r["clip"].unweighted_accuracy
    score = float(np.mean([0.5 * (per[f"val{k}_window_ua"] + per[f"val{k}_clip_ua"]) for k in np.unique(corpus)]))
    return score, per


def class_weights(labels: np.ndarray) -> np.ndarray:
    """Balanced weights n / (k * n_c) over the classes present (absent classes get 0)."""
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(float)
    present = counts > 0
    w = np.zeros(NUM_CLASSES)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return w


# --------------------------------------------------------------------------------------------
# evaluation helpers (numpy only)


def window_and_clip_reports(probs: np.ndarray, ws: WindowSet) -> dict[str, Any]:
    """Window-level and clip-level (mean of window probabilities) reports of predictions on ``ws``."""
    wrep = classification_report(ws.labels, probs.argmax(1))
    cprobs, has = clip_probabilities(probs, ws.clip, len(ws.items))
    crep = classification_report(ws.clip_labels[has], cprobs[has].argmax(1))
    return {"window": wrep, "clip": crep, "clip_probs": cprobs, "clip_has": has}


def per_speaker(cprobs: np.ndarray, has: np.ndarray, items: Sequence[SpeechItem]) -> dict[str, dict[str, float]]:
    """Clip-level accuracy and UA per speaker: how the model generalises across unseen speakers."""
    out: dict[str, dict[str, float]] = {}
    speakers = np.array([it.speaker for it in items])
    labels = np.array([it.label for it in items])
    for spk in sorted(set(speakers[has]), key=lambda s: (len(s), s)):
        m = (speakers == spk) & has
        rep = classification_report(labels[m], cprobs[m].argmax(1))
        out[spk] = {"clips": int(m.sum()), "accuracy": rep.accuracy, "unweighted_accuracy": rep.unweighted_accuracy}
    return out


def fit_logreg(x: np.ndarray, y: np.ndarray, seed: int = 0):
    """The baseline: standardised eGeMAPS + multinomial logistic regression (balanced classes)."""
    from sklearn.linear_model import LogisticRegression  # scikit-learn: train extra, only for the baseline
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1, class_weight="balanced",
                                                             random_state=seed))
    clf.fit(x, y)
    return clf


def logreg_probs(clf, x: np.ndarray) -> np.ndarray:
    """Probabilities in LABELS order (columns for classes absent from training are 0)."""
    p = clf.predict_proba(x)
    out = np.zeros((len(x), NUM_CLASSES), np.float32)
    out[:, clf.classes_] = p
    return out


# --------------------------------------------------------------------------------------------
# training


def _keras_dataset(lm, eg, y, weights, batch_size, seed, augment):
    """Shuffled batches ((log-mel, eGeMAPS), one-hot, per-window weight) with optional SpecAugment."""
    import keras  # train extra, loaded only when batches are built for training

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(y))

        def __len__(self):
            return int(np.ceil(len(y) / batch_size))

        def __getitem__(self, i):
            idx = self.order[i * batch_size : (i + 1) * batch_size]
            x_lm = lm[idx]
            if augment:
                x_lm = spec_augment(x_lm, self.rng)
            yy = np.eye(NUM_CLASSES, dtype=np.float32)[y[idx]]
            return (x_lm, eg[idx]), yy, weights[idx].astype(np.float32)

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(y))

    return Batches()


def prepare_stats(train_items, recipe, cfg: SpeechTrainConfig) -> tuple[dict[str, Any], WindowSet, WindowSet]:
    clean, both = training_windows(train_items, recipe, cfg)
    if len(clean) == 0:
        raise ValueError("no speech windows in the training split (all clips silent?)")
    stats = sf_.fit_stats(clean.logmel, clean.egemaps, recipe)
    return stats, clean, both


def train_speech(cfg: SpeechTrainConfig) -> dict[str, Any]:
    """Train the window classifier; returns the summary also written to ``train_info.json``."""
    set_threads(cfg.threads)
    import keras  # TensorFlow/Keras: train extra, loaded only when a model is trained (after openSMILE)
    import tensorflow as tf

    from dsrter.train.speech_model import SpeechNetSpec, build_speech_model, count_params

    keras.utils.set_random_seed(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    sets = load_corpora(cfg.data)
    train_items = split_items(sets, "train", cfg.max_clips)
    val_items = split_items(sets, "val", cfg.max_clips)
    if not train_items:
        raise ValueError("the data has no training split (RAVDESS actors 1-18 / CREMA-D 1001-1060 / split=train rows)")
    recipe = cfg.feature_recipe()

    student = None
    student_info = None
    if cfg.teacher and not cfg.student:
        dcfg = DistillConfig(teacher=cfg.teacher, data=cfg.data, out_dir=str(out / "student"), cache_dir=cfg.cache_dir,
                             layer=cfg.teacher_layer, epochs=cfg.student_epochs, embed_dim=cfg.embed_dim,
                             threads=cfg.threads, workers=cfg.workers, max_clips=cfg.max_clips, seed=cfg.seed,
                             **cfg.window_settings())
        distill(dcfg)
        cfg.student = dcfg.out_dir
    if cfg.student:
        student, student_info = load_student(cfg.student)
        srec = student_info["recipe"]
        for k in ("sample_rate", "window_samples", "logmel", "window_cmn"):
            if srec[k] != recipe[k]:
                raise ValueError(f"student {cfg.student} was distilled with a different feature recipe ({k}: "
                                 f"{srec[k]} vs {recipe[k]})")

    log.info("features: %d training clips (+%d augmented copies each), %d validation clips",
             len(train_items), cfg.aug_copies, len(val_items))
    stats, clean, train_ws = prepare_stats(train_items, recipe, cfg)
    if student_info is not None:  # the student must see exactly the inputs it was distilled on
        stats["logmel_mean"] = student_info["stats"]["logmel_mean"]
        stats["logmel_std"] = student_info["stats"]["logmel_std"]
    val_ws = build_windows(val_items, recipe, recipe["hop_s"], cache_dir=cfg.cache_dir, workers=cfg.workers) \
        if val_items else None
    x_lm, x_eg = normalise_set(train_ws, recipe, stats)
    y = train_ws.labels
    if val_ws is not None and len(val_ws):
        v_lm, v_eg = normalise_set(val_ws, recipe, stats)
    else:
        val_ws = None
    log.info("windows: train %d (%d clean), val %d; features ready in %.0f s", len(y), len(clean),
             len(val_ws) if val_ws is not None else 0, time.time() - t0)

    spec = SpeechNetSpec.from_dict({**SpeechNetSpec().to_dict(), **cfg.spec})
    model = build_speech_model(recipe["logmel"]["frames"], recipe["logmel"]["n_mels"], x_eg.shape[1], spec, student)
    steps = int(np.ceil(len(y) / cfg.batch_size)) * cfg.epochs
    sched = keras.optimizers.schedules.CosineDecay(cfg.lr * 0.1, decay_steps=max(1, steps), alpha=0.01,
                                                   warmup_target=cfg.lr, warmup_steps=max(1, steps // 20))
    model.compile(optimizer=keras.optimizers.AdamW(sched, weight_decay=cfg.weight_decay),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing))
    weights = class_weights(y)
    train_corpus = corpus_of(train_ws.items, sets)[train_ws.clip]
    val_corpus = corpus_of(val_ws.items, sets) if val_ws is not None else None
    data = _keras_dataset(x_lm, x_eg, y, sample_weights(y, train_corpus), cfg.batch_size, cfg.seed, cfg.spec_augment)

    history: list[dict[str, Any]] = []
    best = {"score": -1.0, "epoch": 0, "weights": None}
    for epoch in range(1, cfg.epochs + 1):
        te = time.time()
        h = model.fit(data, epochs=1, verbose=0)
        row: dict[str, Any] = {"epoch": epoch, "loss": float(h.history["loss"][-1]), "seconds": round(time.time() - te, 1)}
        if val_ws is not None:
            probs = model.predict([v_lm, v_eg], batch_size=256, verbose=0)
            r = window_and_clip_reports(probs, val_ws)
            row.update(val_window_ua=r["window"].unweighted_accuracy, val_clip_ua=r["clip"].unweighted_accuracy,
                       val_window_wa=r["window"].accuracy, val_clip_wa=r["clip"].accuracy)
            score, per_corpus = selection_score(probs, val_ws, val_corpus)
            row.update(per_corpus, score=score)
            if cfg.select == "val" and score > best["score"]:
                best = {"score": score, "epoch": epoch, "weights": model.get_weights()}
        history.append(row)
        log.info("epoch %d/%d %s", epoch, cfg.epochs, " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                                              for k, v in row.items() if k != "epoch"))
    if cfg.select == "val" and best["weights"] is not None:
        model.set_weights(best["weights"])
        selected = best["epoch"]
    else:
        selected = cfg.epochs
    model.save(out / "model.keras")

    val_summary = None
    if val_ws is not None:
        probs = model.predict([v_lm, v_eg], batch_size=256, verbose=0)
        r = window_and_clip_reports(probs, val_ws)
        val_summary = {"window": r["window"].to_dict(), "clip": r["clip"].to_dict(),
                       "per_speaker": per_speaker(r["clip_probs"], r["clip_has"], val_ws.items)}
    checksums = []
    for p, ds in zip(cfg.data, sets):
        checksums.append({"data": str(p), **dataset_checksums(ds)})
    info = {
        "labels": list(LABELS),
        "recipe": recipe,
        "stats": stats,
        "egemaps_names": sf_.egemaps_names(),
        "spec": spec.to_dict(),
        "params": count_params(model),
        "config": {k: v for k, v in asdict(cfg).items()},
        "command": cfg.command or command_line(),
        "data": checksums,
        "splits": {
            "train": {"clips": len(train_items), "windows": int(len(y)), "clean_windows": int(len(clean)),
                      "speakers": sorted({it.speaker for it in train_items}, key=lambda s: (len(s), s))},
            "val": {"clips": len(val_items), "windows": int(len(val_ws)) if val_ws is not None else 0,
                    "speakers": sorted({it.speaker for it in val_items}, key=lambda s: (len(s), s))},
        },
        "class_weights": weights.round(4).tolist(),
        "history": history,
        "selected_epoch": selected,
        "val": val_summary,
        "student": student_info and {k: v for k, v in student_info.items() if k not in ("stats", "recipe")},
        "train_seconds": round(time.time() - t0, 1),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    (out / "train_info.json").write_text(json.dumps(info, indent=1))
    log.info("saved %s (selected epoch %d, %d parameters) in %.0f s", out / "model.keras", selected, info["params"],
             info["train_seconds"])
    return info


# --------------------------------------------------------------------------------------------
# evaluation of .tflite files and of the baseline (shared by `convert speech` and `eval speech`)


def tflite_window_probs(model, lm: np.ndarray, eg: np.ndarray) -> np.ndarray:
    """Run a speech TFLite model (a dsrter.edge.infer.model_io.TFLiteModel) window by window, exactly as
    the device does; inputs are the normalised log-mel (N, T, M) and eGeMAPS (N, 88)."""
    i_lm = model.input_index("logmel")
    i_eg = model.input_index("egemaps")
    out = np.zeros((len(lm), NUM_CLASSES), np.float32)
    arrays: list[np.ndarray] = [np.empty(0)] * 2
    for n in range(len(lm)):
        arrays[i_lm] = lm[n : n + 1]
        arrays[i_eg] = eg[n : n + 1]
        p = np.clip(model.run(*arrays)[0].reshape(-1), 0.0, None)
        out[n] = p / p.sum() if p.sum() > 0 else 1.0 / NUM_CLASSES
    return out


class BaselineModel:
    """The baseline row: eGeMAPS window functionals + standardised logistic regression, fitted once on
    the training split (of every corpus given) and applied to each evaluated corpus."""

    def __init__(self, clf):
        self.clf = clf

    @classmethod
    def fit(cls, train_items: Sequence[SpeechItem], recipe: dict[str, Any], cache_dir: str | None,
            workers: int = 1, seed: int = 0) -> "BaselineModel":
        train_ws = build_windows(train_items, recipe, recipe["hop_s"], cache_dir=cache_dir, workers=workers,
                                 progress=len(train_items) > 200)
        return cls(fit_logreg(train_ws.egemaps, train_ws.labels, seed))

    def reports(self, eval_ws: WindowSet) -> dict[str, Any]:
        return window_and_clip_reports(logreg_probs(self.clf, eval_ws.egemaps), eval_ws)
