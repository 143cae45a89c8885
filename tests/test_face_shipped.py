"""The shipped face model: loadable from its card alone, within the size target, and its card's
figures (original and FER+ labels, de-duplicated, under camera corruptions) reproduced by the
evaluation command's code and stated in the README."""

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


@pytest.fixture(scope="module")
def evaluation(fer_npz):
    """`dsrter eval face`'s own code on the shipped files: every set, corruptions for int8 and the peer."""
    from dsrter.train.face_eval import evaluate_face

    return evaluate_face(fer_npz, [MODEL, MODELS / "face_emotion_float.tflite"], peer=True, corruptions="first")


def test_card_metrics_reproduce(evaluation):
    card = json.loads((MODELS / "face_emotion.json").read_text())["metrics"]
    assert evaluation.split == card["split"] == "PrivateTest" and evaluation.n == card["n"] == 3589
    by_name = {r["name"]: r for r in card["rows"]}
    for row in evaluation.results:
        ref = by_name[row.name]
        assert row.report.confusion.tolist() == ref["confusion_matrix"], row.name
        assert row.report.accuracy == pytest.approx(ref["accuracy"])
    peer = evaluation.peer
    assert peer.report.accuracy == pytest.approx(0.659, abs=0.002)  # the dataset README's figure


def test_card_set_and_corruption_figures_reproduce(evaluation):
    """The card's FER+ / de-duplicated / corruption figures are what eval computes now (the card cannot drift)."""
    from dsrter.train.face_eval import face_card_metrics

    card = json.loads((MODELS / "face_emotion.json").read_text())["metrics"]
    now = face_card_metrics(evaluation)
    # counts fixed by the data (dataset README and issue 16)
    assert {k: v["n"] for k, v in now["sets"].items()} == {"fer2013": 3589, "ferplus": 3136, "fer2013_dedup": 3301, "ferplus_dedup": 2879}
    assert now["duplicates_of_training"] == 288
    assert {k: v["n"] for k, v in card["sets"].items()} == {k: v["n"] for k, v in now["sets"].items()}
    assert card["duplicates_of_training"] == now["duplicates_of_training"]
    assert set(card["accuracy"]) == set(now["accuracy"])
    for model, accs in now["accuracy"].items():
        assert card["accuracy"][model] == pytest.approx(accs), model
    assert now["accuracy"]["fer mini-Xception (peer)"]["ferplus"] == pytest.approx(0.674, abs=0.002)  # issue 16's figure
    cc, nc = card["corruptions"], now["corruptions"]
    assert (cc["set"], cc["n"], cc["seed"], cc["list"]) == (nc["set"], nc["n"], nc["seed"], nc["list"]) == ("ferplus", 3136, 0, nc["list"])
    assert set(cc["accuracy"]) == set(nc["accuracy"]) == {"dsrter int8 +flip", "fer mini-Xception (peer)"}
    for model, accs in nc["accuracy"].items():
        assert cc["accuracy"][model] == pytest.approx(accs), model
        assert accs["mean_drop"] == pytest.approx(accs["clean"] - accs["mean"])


def test_readme_states_the_card_figures():
    """The README's face figures for the shipped int8 model are the card's, rounded to 3 places."""
    card = json.loads((MODELS / "face_emotion.json").read_text())["metrics"]
    readme = (MODELS.parent / "README.md").read_text()
    ours = next(name for name in card["accuracy"] if name.startswith("dsrter int8"))
    stated = {**card["accuracy"][ours], "corruption mean drop": card["corruptions"]["accuracy"][ours]["mean_drop"]}
    missing = {k: f"{v:.3f}" for k, v in stated.items() if f"{v:.3f}" not in readme}
    assert not missing, f"README does not state these card figures: {missing}"


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
