"""The shipped face model: loadable from its card alone, within the size target, and its card's
PrivateTest numbers reproduced by the evaluation command's code."""

import json
from pathlib import Path

import numpy as np
import pytest

from dsrter.edge.infer.face_classifier import FaceClassifier
from dsrter.edge.infer.model_io import TFLiteModel, sha256_file

MODELS = Path(__file__).resolve().parents[1] / "models"
MODEL = MODELS / "face_emotion.tflite"

pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason="models/face_emotion.tflite not shipped yet")


def test_card_describes_the_file():
    card = json.loads((MODELS / "face_emotion.json").read_text())
    q = TFLiteModel(MODEL)
    assert MODEL.stat().st_size <= 3 * 1024 * 1024
    assert card["files"]["int8"]["sha256"] == sha256_file(MODEL)
    d = q.inputs[0]
    assert d["dtype"] == np.int8 and q.outputs[0]["dtype"] == np.int8
    assert list(d["shape"]) == card["input"]["shape"]
    assert d["quantization"][0] == pytest.approx(card["input"]["quantization"]["scale"])
    assert d["quantization"][1] == card["input"]["quantization"]["zero_point"]
    assert card["verification"]["int8_vs_float_top1_agreement_privatetest"] >= 0.98


def test_card_metrics_reproduce(fer_npz):
    from dsrter.train.face_eval import evaluate_face

    card = json.loads((MODELS / "face_emotion.json").read_text())
    rows, split, n = evaluate_face(fer_npz, [MODEL, MODELS / "face_emotion_float.tflite"], peer=True)
    assert split == "PrivateTest" and n == card["metrics"]["n"] == 3589
    by_name = {r["name"]: r for r in card["metrics"]["rows"]}
    for row in rows:
        ref = by_name[row.name]
        assert row.report.confusion.tolist() == ref["confusion_matrix"], row.name
        assert row.report.accuracy == pytest.approx(ref["accuracy"])
    peer = next(r for r in rows if "peer" in r.name)
    assert peer.report.accuracy == pytest.approx(0.659, abs=0.002)  # the dataset README's figure


def test_classifier_runs_from_the_card_on_a_frame():
    clf = FaceClassifier(MODEL)
    frame = np.full((480, 640, 3), 128, np.uint8)
    crop = clf.crop(frame, (600.0, 400.0, 100.0, 120.0))  # a box running off the frame edge
    assert crop.shape == (48, 48)
    probs = clf.predict(np.stack([crop, crop]))
    assert probs.shape == (2, 7) and np.allclose(probs.sum(1), 1, atol=0.03)


def test_mirror_average_follows_the_card_unless_overridden():
    card = json.loads((MODELS / "face_emotion.json").read_text())
    crop = np.random.default_rng(3).integers(0, 256, (1, 48, 48), dtype=np.uint8)  # not left-right symmetric
    plain = FaceClassifier(MODEL, mirror_average=False)
    both = FaceClassifier(MODEL, mirror_average=True)
    assert FaceClassifier(MODEL).hflip_average == card["inference"]["hflip_average"]
    single, mirrored = plain.predict(crop), plain.predict(crop[:, :, ::-1])
    assert not np.allclose(single, mirrored)
    np.testing.assert_allclose(both.predict(crop), (single + mirrored) / 2, atol=1e-6)
