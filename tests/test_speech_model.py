"""Train -> convert -> device classifier -> eval, end to end on tiny fixtures in the real layouts.

TensorFlow work runs in `dsrter` subprocesses (as a user runs it), which also keeps TensorFlow out of
the test process (openSMILE must be loaded before it; see edge/infer/speech_features.py)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dsrter.edge.infer import speech_features as sf_
from dsrter.edge.labels import LABELS
from dsrter.edge.infer.model_io import ModelError, TFLiteModel
from dsrter.edge.infer.speech_classifier import SpeechClassifier
from conftest import skip_or_fail
from test_speech_data import synth_voice, write_cremad, write_ravdess

pytestmark = pytest.mark.slow

MIN_BASELINE_UA = 0.8  # measured 1.0 (14 windows of test actor 21) with the commands of tiny_model, run by hand


def dsrter(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "dsrter.edge.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-epoch model trained on a synthetic RAVDESS-layout folder and converted to int8."""
    tmp = tmp_path_factory.mktemp("speech")
    rav = write_ravdess(tmp / "ravdess", actors=(1, 2, 19, 21))
    r = dsrter("train", "speech", "--data", str(rav), "--epochs", "2", "--out", str(tmp / "run"),
               "--cache", str(tmp / "cache"), "--spec", '{"channels": [16, 16, 16]}')
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp / "models" / "speech_emotion.tflite"
    out.parent.mkdir()  # a card with a voice branch is there: the conversion says the branch must be refitted
    out.with_suffix(".json").write_text(json.dumps({"voice": {"command": "dsrter convert voice --encoder rz.whl"}}))
    r = dsrter("convert", "speech", "--run", str(tmp / "run"), "--out", str(out), "--cache", str(tmp / "cache"),
               "--no-bench")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "int8 vs float top-1 agreement on test windows" in r.stdout
    assert "had a voice branch" in r.stdout and r.stdout.rstrip().splitlines()[-2].endswith("--encoder rz.whl")
    return out


def test_conversion_gives_int8_model_litert_loads(tiny_model):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tiny_model))
    it.allocate_tensors()
    ins, outs = it.get_input_details(), it.get_output_details()
    assert sorted("logmel" if "logmel" in d["name"] else "egemaps" for d in ins) == ["egemaps", "logmel"]
    assert all(d["dtype"] == np.int8 for d in ins + outs)
    card = json.loads(tiny_model.with_suffix(".json").read_text())
    assert card["labels"] == list(LABELS)
    assert card["sample_rate"] == 16000 and card["window_s"] == 2.0 and card["hop_s"] == 0.5
    assert len(card["normalisation"]["egemaps_mean"]) == 88 and len(card["egemaps_names"]) == 88
    test = card["metrics"]["ravdess:test"]
    assert {"float", "int8", "int8_float_top1_agreement_windows"} <= set(test)
    assert {"window", "clip"} <= set(test["int8"])
    assert card["model"]["embedding"]["used"] is False
    assert card["training"]["data"][0]["audio_sha256"]
    base = card["baseline"]["rows"]["ravdess:test"]["window"]
    cm = np.asarray(base["confusion_matrix"], np.float64)
    present = cm.sum(1) > 0
    recomputed = float(np.mean(np.diag(cm)[present] / cm.sum(1)[present]))
    print(f"baseline (eGeMAPS + logistic regression) window UA on the test speaker: {base['unweighted_accuracy']:.3f}")
    assert base["unweighted_accuracy"] == pytest.approx(recomputed)
    # the synthetic voices differ by pitch per label (tests/test_speech_data.synth_voice): a working baseline
    # separates most of them for an unseen speaker; chance is 1/7
    assert base["unweighted_accuracy"] >= MIN_BASELINE_UA


def test_classifier_api_and_bad_inputs(tiny_model):
    clf = SpeechClassifier(tiny_model, threads=1)
    assert clf.sample_rate == 16000 and clf.window_s == 2.0 and clf.hop_s == 0.5
    assert clf.vad_threshold == clf.card["recipe"]["vad"]["threshold_dbfs"]
    voice = synth_voice("angry", 3)[:32000]
    p = clf.predict(voice)
    assert p.shape == (7,) and p.dtype == np.float32 and abs(p.sum() - 1) < 1e-5
    assert clf.is_speech(voice)
    assert not clf.is_speech(np.zeros(32000, np.float32))  # silence: never classified
    assert clf.classify(np.zeros(32000, np.float32)) is None
    assert not clf.is_speech(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="32000 samples"):
        clf.predict(voice[:16000])  # e.g. one 2 s window captured at 8 kHz: resample with to_mono_16k first
    with pytest.raises(ValueError, match="1-D"):
        clf.predict(np.stack([voice, voice], axis=1))  # stereo: mix with to_mono_16k first
    bad = voice.copy()
    bad[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(bad)
    with pytest.raises(ValueError, match="NaN"):
        clf.is_speech(bad)
    stereo_8k = np.stack([voice[::2], voice[::2]], axis=1)
    assert clf.predict(sf_.to_mono_16k(stereo_8k, 8000)).shape == (7,)
    assert SpeechClassifier(tiny_model, vad_threshold=-5.0).is_speech(voice) is False


def test_classifier_missing_or_corrupt_files(tiny_model, tmp_path):
    with pytest.raises(ModelError, match="not found"):
        SpeechClassifier(tmp_path / "none.tflite")
    m = tmp_path / "speech_emotion.tflite"
    m.write_bytes(tiny_model.read_bytes()[:100])
    (tmp_path / "speech_emotion.json").write_text(tiny_model.with_suffix(".json").read_text())
    with pytest.raises(ModelError):
        SpeechClassifier(m)
    m.write_bytes(tiny_model.read_bytes())
    (tmp_path / "speech_emotion.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        SpeechClassifier(m)
    (tmp_path / "speech_emotion.json").write_text(json.dumps({"labels": list(LABELS)}))
    with pytest.raises(ModelError, match="recipe"):
        SpeechClassifier(m)


def test_device_path_matches_evaluation_path(tiny_model):
    """SpeechClassifier.predict on a window == the batch evaluation (training-side) path."""
    from dsrter.train.speech_report import temperature_scale
    from dsrter.train.speech_train import tflite_window_probs

    clf = SpeechClassifier(tiny_model)
    card = clf.card
    wins = [synth_voice(lab, 5)[:32000] for lab in LABELS]
    raw = [sf_.raw_window_features(w, card["recipe"]) for w in wins]
    lm, eg = sf_.normalise_features(np.stack([r[0] for r in raw]), np.stack([r[1] for r in raw]),
                                    card["recipe"], card["normalisation"])
    batch = temperature_scale(tflite_window_probs(TFLiteModel(tiny_model), lm, eg), clf.temperature)
    for w, pb in zip(wins, batch):
        np.testing.assert_allclose(clf.predict(w), pb, atol=1e-6)


def test_eval_cli_on_cremad_layout(tiny_model, tmp_path):
    crema = write_cremad(tmp_path / "crema", actors=(1001, 1002, 1067))
    out = tmp_path / "eval" / "crema.json"
    r = dsrter("eval", "speech", "--data", str(crema), "--model", str(tiny_model), "--json", str(out),
               "--cache", str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "(absent from this set)" in r.stdout  # surprise: reported absent, not zero recall
    res = json.loads(out.read_text())["corpora"]["crema"]
    assert res["split"] == "test" and res["clips"] == 6
    row = res["rows"]["speech_emotion.tflite"]
    assert row["window"]["classes_absent"] == ["surprise"] and row["clip"]["n"] == 6
    surprise = next(c for c in row["clip"]["per_class"] if c["label"] == "surprise")
    assert surprise["recall"] is None
    assert "baseline_egemaps_logreg" in res["rows"]
    assert (out.parent / "crema_clip_confusion.png").is_file()


def test_eval_cli_manifest_errors(tiny_model, tmp_path):
    write_ravdess(tmp_path, actors=(1,), labels=("angry",))
    man = tmp_path / "manifest.csv"
    man.write_text("path,label,speaker\nActor_01/03-01-05-01-01-01-01.wav,angry,1\nActor_01/gone.wav,angry,1\n")
    r = dsrter("eval", "speech", "--data", str(man), "--model", str(tiny_model), "--cache", "")
    assert r.returncode == 2 and "gone.wav" in r.stderr and "not found" in r.stderr
    man.write_text("path,label,speaker\nActor_01/03-01-05-01-01-01-01.wav,furious,1\n")
    r = dsrter("eval", "speech", "--data", str(man), "--model", str(tiny_model), "--cache", "")
    assert r.returncode == 2 and "unknown emotion label 'furious'" in r.stderr


def test_eval_cli_manifest_without_splits(tiny_model, tmp_path):
    """A manifest with no split information is evaluated whole; the baseline is skipped (no training split)."""
    write_ravdess(tmp_path / "d", actors=(7,), labels=("happy", "sad"))
    man = tmp_path / "d" / "m.csv"
    with open(man, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "speaker"])
        w.writerow(["Actor_07/03-01-03-01-01-01-07.wav", "happy", "spk7"])
        w.writerow(["Actor_07/03-01-04-01-01-01-07.wav", "sad", "spk7"])
    r = dsrter("eval", "speech", "--data", str(man), "--model", str(tiny_model), "--cache", "",
               "--out-dir", str(tmp_path / "png"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "split all: 2 clips" in r.stdout and "baseline: skipped" in r.stdout


@pytest.mark.data
def test_shipped_model_card_and_device_path(ravdess_dir):
    model = Path(__file__).resolve().parents[1] / "models" / "speech_emotion.tflite"
    if not model.is_file():
        skip_or_fail("models/speech_emotion.tflite not built yet")
    clf = SpeechClassifier(model)
    card = clf.card
    test = card["metrics"]["ravdess:test"]
    assert test["split"].startswith("test (actors 21-24)")
    assert test["int8_float_top1_agreement_windows"] >= 0.97
    from dsrter.train.speech_data import load_dataset, read_audio

    items = load_dataset(ravdess_dir).split("test")[::40]
    for it in items:
        x = read_audio(it.path)
        w = x[:32000] if len(x) >= 32000 else np.pad(x, (0, 32000 - len(x)))
        assert clf.predict(w).shape == (7,)
