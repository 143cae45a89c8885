"""Speech evaluation figures shared by `dsrter eval speech`, `dsrter convert speech` and the tests.

One corpus split at a time: window and clip reports of a .tflite exactly as the device computes
them, per-speaker clip figures, calibration error before and after the card's temperature, and the
same at other input levels (the gain sweep).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dsrter.edge.infer.model_io import TFLiteModel, load_card
from dsrter.edge.infer.speech_classifier import temperature_scale
from dsrter.train.speech_data import SpeechItem, WindowSet, build_windows
from dsrter.train.speech_prep import normalise_set
from dsrter.train.speech_train import per_speaker, tflite_window_probs, window_and_clip_reports
from dsrter.train.voice_features import fused_window_probs

DEFAULT_LEVELS = ("0", "-10", "-20", "-30", "peak")


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature (0.25-8, log grid) that minimises the negative log-likelihood of ``labels``."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 121))
    nll = [float(-np.mean(np.log(np.maximum(temperature_scale(probs, t)[np.arange(len(labels)), labels], 1e-9))))
           for t in grid]
    return float(grid[int(np.argmin(nll))])


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE of the top-1 confidence over ``bins`` equal-width bins."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def window_probs(model_path: str | Path, items: Sequence[SpeechItem], cache: str | None, workers: int = 1,
                 threads: int = 1, level: str = "", voice: bool = True) -> tuple[WindowSet, np.ndarray]:
    """The windows of ``items`` (re-recorded at ``level``) and the model's raw window probabilities (fused
    with the card's voice branch when it has one, as the device fuses them; ``voice=False``: the emotion
    network alone)."""
    card = load_card(model_path)
    recipe, stats = card["recipe"], card["normalisation"]
    ws = build_windows(items, recipe, recipe["hop_s"], cache_dir=cache, workers=workers,
                       progress=len(items) > 200, level=level)
    lm, eg = normalise_set(ws, recipe, stats)
    main = tflite_window_probs(TFLiteModel(model_path, threads=threads), lm, eg)
    return ws, fused_window_probs(model_path, main, items, level, cache) if voice else main


def split_report(ws: WindowSet, raw: np.ndarray, temperature: float) -> dict[str, Any]:
    """Window/clip reports (calibrated probabilities), per speaker, ECE before and after calibration."""
    cal = temperature_scale(raw, temperature)
    r = window_and_clip_reports(cal, ws)
    return {
        "windows": len(ws),
        "window": r["window"],
        "clip": r["clip"],
        "per_speaker_clip": per_speaker(r["clip_probs"], r["clip_has"], ws.items),
        "ece_window": {"raw": round(expected_calibration_error(raw, ws.labels), 4),
                       "calibrated": round(expected_calibration_error(cal, ws.labels), 4), "temperature": temperature},
    }


def gain_sweep(model_path: str | Path, items: Sequence[SpeechItem], cache: str | None, levels: Sequence[str],
               workers: int = 1, threads: int = 1) -> dict[str, dict[str, float]]:
    """Clip and window UA at each input level; ``spread`` is the largest minus the smallest clip UA."""
    temperature = float(load_card(model_path).get("calibration", {}).get("temperature", 1.0))
    out: dict[str, dict[str, float]] = {}
    for level in levels:
        ws, raw = window_probs(model_path, items, cache, workers, threads, "" if level in ("0", "") else level)
        r = window_and_clip_reports(temperature_scale(raw, temperature), ws)
        out[level] = {"clip_ua": round(r["clip"].unweighted_accuracy, 4), "window_ua": round(r["window"].unweighted_accuracy, 4),
                      "windows": len(ws)}
    uas = [v["clip_ua"] for v in out.values()]
    out["spread"] = {"clip_ua": round(max(uas) - min(uas), 4)}
    return out
