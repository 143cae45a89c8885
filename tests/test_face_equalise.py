"""Histogram equalisation of face crops: what it does to a dim face, and that a card asking for it
makes the device feed the model equalised crops (the same step training and conversion apply)."""

import json
import shutil
from pathlib import Path

import numpy as np

from dsrter.edge.infer.face_classifier import FaceClassifier, equalise
from dsrter.edge.infer.model_io import TFLiteModel

MODELS = Path(__file__).resolve().parents[1] / "models"


def dim_faces(fer_npz: Path, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Real FER-2013 PublicTest faces and the same faces as a dim, low-contrast camera gives them."""
    data = np.load(fer_npz)
    faces = data["images"][data["usage"] == 1][:n]
    return faces, (20 + faces.astype(np.float32) * 0.15).round().astype(np.uint8)


def test_equalise_spreads_a_dim_face_and_keeps_its_order(fer_npz):
    faces, dim = dim_faces(fer_npz)
    eq = equalise(dim)
    assert eq.shape == dim.shape and eq.dtype == np.uint8
    for d, e in zip(dim, eq):
        assert int(d.max()) - int(d.min()) < 45 and int(e.max()) - int(e.min()) >= 240
        order = np.argsort(d.ravel(), kind="stable")
        assert np.all(np.diff(e.ravel()[order].astype(int)) >= 0)  # a monotonic grey mapping
    # a face and its dim copy come out nearly alike: what the model sees no longer depends on the light
    gap_before = np.abs(faces.astype(int) - dim.astype(int)).mean()
    gap_after = np.abs(equalise(faces).astype(int) - eq.astype(int)).mean()
    assert gap_after < gap_before / 4, (gap_before, gap_after)
    assert equalise(np.zeros((0, 48, 48), np.uint8)).shape == (0, 48, 48)


def test_card_equalize_makes_the_classifier_equalise(fer_npz, tmp_path):
    _, dim = dim_faces(fer_npz)
    shutil.copy(MODELS / "face_emotion.tflite", tmp_path / "m.tflite")
    card = json.loads((MODELS / "face_emotion.json").read_text())
    card["input"].pop("equalize", None)
    (tmp_path / "m.json").write_text(json.dumps(card))
    plain = FaceClassifier(tmp_path / "m.tflite", mirror_average=False)
    card["input"]["equalize"] = "histogram"
    (tmp_path / "m.json").write_text(json.dumps(card))
    eqc = FaceClassifier(tmp_path / "m.tflite", mirror_average=False)
    assert not plain.equalise and eqc.equalise
    raw = TFLiteModel(tmp_path / "m.tflite")
    np.testing.assert_array_equal(plain.predict(dim), raw.run(FaceClassifier.scale(dim))[0])
    np.testing.assert_array_equal(eqc.predict(dim), raw.run(FaceClassifier.scale(equalise(dim)))[0])
    assert not np.array_equal(plain.predict(dim), eqc.predict(dim))
