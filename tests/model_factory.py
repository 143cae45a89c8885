"""Small int8 TFLite models + cards in the shipped cards' formats, for tests that must not wait for
(or depend on) the real trained models. Built with TensorFlow once and cached in pytest's cache.

Use the fixtures by importing them into a test module:  ``from model_factory import face_model``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dsrter.edge.labels import LABELS

FACTORY_VERSION = "face-v1"  # bump when the model recipe changes (invalidates the cache)
FACE_SIZE = 48


def build_face_tflite(seed: int = 0) -> bytes:
    """A tiny CNN 48x48x1 -> 7 softmax with random weights, converted to full int8 (int8 in/out)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((FACE_SIZE, FACE_SIZE, 1), name="face")
    x = tf.keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inp)
    x = tf.keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(len(LABELS), activation="softmax")(x)
    model = tf.keras.Model(inp, out)
    rng = np.random.default_rng(seed)

    def representative():
        for _ in range(32):
            yield [rng.uniform(-1, 1, (1, FACE_SIZE, FACE_SIZE, 1)).astype(np.float32)]

    from dsrter.convert.tflite_export import to_tflite

    return to_tflite(model, representative)


def face_card(margin: float = 0.25, shift_y: float = 0.0) -> dict:
    """The parts of models/face_emotion.json the runtime reads."""
    return {
        "name": "face_emotion", "version": "test", "labels": list(LABELS),
        "input": {"name": "face", "shape": [1, FACE_SIZE, FACE_SIZE, 1], "dtype": "int8",
                  "crop": {"margin": margin, "shift_y": shift_y}},
        "output": {"shape": [1, len(LABELS)], "dtype": "int8"},
    }


def write_face_model(out_dir: Path, data: bytes, name: str = "face_emotion") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.tflite"
    path.write_bytes(data)
    (out_dir / f"{name}.json").write_text(json.dumps(face_card(), indent=2))
    return path


def _cached_bytes(request, tmp_path_factory, key: str, builder: str) -> bytes:
    """The model ``builder()`` (a function of this module) makes, built once in a child process:
    TensorFlow must not share the test process with LiteRT/openSMILE (seen: heap corruption).
    Kept in pytest's cache across runs (or for this session with ``-p no:cacheprovider``)."""
    cache = getattr(request.config, "cache", None)
    cache_dir = Path(cache.mkdir("dsrter-test-models")) if cache is not None else tmp_path_factory.getbasetemp()
    f = cache_dir / f"{key}.tflite"
    if not f.is_file():
        tmp = f.with_suffix(f".{os.getpid()}.tmp")
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import model_factory as m; "
                f"open(sys.argv[2], 'wb').write(m.{builder}())")
        subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(tmp)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
        tmp.replace(f)
    return f.read_bytes()


@pytest.fixture(scope="session")
def face_model(request, tmp_path_factory) -> Path:
    """A test face_emotion.tflite + card in a temporary models folder (real detector copied beside)."""
    data = _cached_bytes(request, tmp_path_factory, FACTORY_VERSION, "build_face_tflite")
    out = tmp_path_factory.mktemp("models")
    repo_models = Path(__file__).resolve().parents[1] / "models"
    for f in ("face_detection_short_range.tflite", "face_detection_short_range.json"):
        shutil.copy(repo_models / f, out / f)
    return write_face_model(out, data)


# -- speech -------------------------------------------------------------------------------------
SPEECH_VERSION = "speech-v1"


def build_speech_tflite(recipe: dict | None = None, seed: int = 0) -> bytes:
    """A tiny two-input model ('logmel' (frames, n_mels), 'egemaps' (88,)) -> 7 softmax, full int8."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    if recipe is None:
        from dsrter.edge.infer.speech_features import default_recipe

        recipe = default_recipe()
    tf.keras.utils.set_random_seed(seed)
    frames, n_mels, n_eg = recipe["logmel"]["frames"], recipe["logmel"]["n_mels"], recipe["egemaps"]["n"]
    lm = tf.keras.Input((frames, n_mels), name="logmel")
    eg = tf.keras.Input((n_eg,), name="egemaps")
    a = tf.keras.layers.Conv1D(8, 5, strides=4, activation="relu")(lm)
    a = tf.keras.layers.GlobalAveragePooling1D()(a)
    b = tf.keras.layers.Dense(8, activation="relu")(eg)
    out = tf.keras.layers.Dense(len(LABELS), activation="softmax")(tf.keras.layers.Concatenate()([a, b]))
    model = tf.keras.Model([lm, eg], out)
    rng = np.random.default_rng(seed)
    from dsrter.convert.tflite_export import to_tflite

    def representative():  # by name: the converted model may order its inputs differently
        for _ in range(16):
            yield {"logmel": rng.normal(0, 1, (1, frames, n_mels)).astype(np.float32),
                   "egemaps": rng.normal(0, 1, (1, n_eg)).astype(np.float32)}

    return to_tflite(model, representative)


def speech_card(recipe: dict) -> dict:
    """The parts of models/speech_emotion.json that SpeechClassifier reads (identity z-score)."""
    n_mels, n_eg = recipe["logmel"]["n_mels"], recipe["egemaps"]["n"]
    return {"name": "speech_emotion", "version": "test", "labels": list(LABELS), "recipe": recipe,
            "normalisation": {"logmel_mean": [0.0] * n_mels, "logmel_std": [1.0] * n_mels,
                              "egemaps_mean": [0.0] * n_eg, "egemaps_std": [1.0] * n_eg}}


@pytest.fixture(scope="session")
def speech_model(request, tmp_path_factory, face_model) -> Path:
    """A test speech_emotion.tflite + card beside the test face model."""
    from dsrter.edge.infer.speech_features import default_recipe

    recipe = default_recipe()
    data = _cached_bytes(request, tmp_path_factory, SPEECH_VERSION, "build_speech_tflite")
    path = face_model.parent / "speech_emotion.tflite"
    path.write_bytes(data)
    (face_model.parent / "speech_emotion.json").write_text(json.dumps(speech_card(recipe), indent=2))
    return path
