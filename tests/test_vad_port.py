"""The shipped Silero VAD on LiteRT: made by `dsrter convert vad`, equal to the ONNX original, no onnxruntime at run time."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dsrter.train.speech_data import load_dataset, read_audio

from conftest import REPO

ONNX = REPO / "models" / "silero_vad.onnx"
TFLITE = REPO / "models" / "silero_vad.tflite"


def test_the_shipped_file_is_what_the_converter_makes():
    pytest.importorskip("tensorflow")
    from dsrter.convert.vad_convert import to_tflite

    assert to_tflite(ONNX) == TFLITE.read_bytes(), "models/silero_vad.tflite is stale: run `dsrter convert vad`"


def test_the_port_gives_the_onnx_probabilities_on_real_speech_and_noise(ravdess_dir, emodb_dir):
    pytest.importorskip("onnxruntime")
    from dsrter.convert.vad_convert import check_port

    rng = np.random.default_rng(5)
    clips = [read_audio(it.path) for ds in (load_dataset(ravdess_dir), load_dataset(emodb_dir))
             for it in rng.choice(ds.split("test"), 6, replace=False)]
    # speech at a low level, white noise and a clipped square wave (the loud-sound cases of the issue)
    t = np.arange(3 * 16000) / 16000
    clips += [0.03 * clips[0], rng.normal(0, 0.2, 3 * 16000).astype(np.float32),
              np.clip(np.sign(np.sin(2 * np.pi * 220 * t)), -1, 1).astype(np.float32)]
    chunks, worst, differ = 0, 0.0, 0
    for audio in clips:
        r = check_port(ONNX, TFLITE, audio)
        chunks, worst, differ = chunks + r.chunks, max(worst, r.max_abs_diff), differ + r.decisions_differ
    print(f"{chunks} chunks: largest difference {worst:.2e}, decisions that differ {differ}")
    assert chunks > 1000
    assert worst < 1e-4
    assert differ == 0


def test_the_speech_stream_runs_its_voice_detector_without_onnxruntime():
    code = ("import sys, numpy as np; from pathlib import Path; "
            "from dsrter.edge.infer.speech_classifier import SpeechClassifier; "
            f"c = SpeechClassifier(Path({str(REPO / 'models' / 'speech_emotion.tflite')!r})); v = c.make_vad(); "
            "v.update(np.zeros(16000, np.float32), 1.0); "
            "print(type(v).__name__, 'onnxruntime' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["SileroVad", "False"]
