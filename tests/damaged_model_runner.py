"""Load the models a config names the way the daemon does, then run each on real-looking input.

Run in a child process by tests/test_faults.py (a damaged model may crash the native library; the
test must see that as a crash, not die with it)::

    python damaged_model_runner.py CONFIG.json

Exit 3 with one line on stderr when loading raises ModelError (as ``dsrter run``/``analyze`` do);
otherwise prints one JSON object: per model, the shape of what the runtime hands on and whether
every value is finite. Any other exception escapes as a traceback, which the test counts as a failure.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from dsrter.edge.config import parse_config
from dsrter.edge.infer.model_io import ModelError
from dsrter.edge.infer.models import load_models


def _frame(rng: np.random.Generator) -> np.ndarray:
    """A 320x240 BGR picture: a bright oval with two dark eyes and a mouth on a noisy background."""
    img = rng.integers(0, 90, (240, 320, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:240, :320]
    img[((yy - 120) / 70.0) ** 2 + ((xx - 160) / 52.0) ** 2 <= 1.0] = (150, 170, 200)
    for cx in (140, 180):
        img[((yy - 105) / 6.0) ** 2 + ((xx - cx) / 9.0) ** 2 <= 1.0] = (30, 30, 30)
    img[150:158, 140:180] = (60, 40, 120)
    return img


def _voice(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Voiced-like audio at 16 kHz: a 140 Hz buzz with harmonics, a slow vowel-like swell, some noise."""
    t = np.arange(int(seconds * 16000)) / 16000.0
    f0 = 140 + 15 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000.0
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t) ** 2)
    return (0.1 * x / np.abs(x).max() + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def _describe(values: np.ndarray) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"shape": list(a.shape), "finite": bool(np.all(np.isfinite(a)))}


def main(config_file: str) -> int:
    with open(config_file) as fh:
        cfg = parse_config(json.load(fh), env={})
    try:
        models = load_models(cfg)
    except ModelError as exc:
        print(f"damaged_model_runner: {exc}", file=sys.stderr)
        return 3
    rng = np.random.default_rng(0)
    out: dict[str, dict] = {}
    if models.detector is not None and models.face is not None:
        frame = _frame(rng)
        dets = models.detector.detect(frame)
        coords = [[*d.box, d.score, *(v for p in d.keypoints for v in p)] for d in dets]  # one row per face
        out["detector"] = {"faces": len(dets), **_describe(np.asarray(coords, np.float64))}
        crop = models.face.crop(frame, (108.0, 50.0, 104.0, 140.0))
        out["face"] = _describe(models.face.predict(np.stack([crop, crop[:, ::-1]])))
    if models.speech is not None:
        audio = _voice(rng, models.speech.window_s)
        out["speech"] = _describe(models.speech.predict(audio))
        vad = models.speech.make_vad()
        chunk_probs = getattr(vad, "chunk_probs", None)  # the Silero detector; the energy gate has none
        if chunk_probs is not None:
            out["vad"] = _describe(chunk_probs(audio))
        out["vad_says_speech"] = {"value": bool(vad.update(audio, models.speech.window_s))}
    models.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
