"""The shipped speech model: its card's per-corpus figures (test splits, per speaker, calibration, the
gain sweep) recomputed from the .tflite by `dsrter eval speech`'s own code, and the README's speech
table stating exactly those figures."""

from __future__ import annotations

import json
import re

import pytest

from dsrter.edge.infer.model_io import TFLiteModel, sha256_file
from dsrter.train.speech_data import load_dataset
from dsrter.train.speech_report import gain_sweep, split_report, window_probs
from dsrter.train.speech_train import window_and_clip_reports

from conftest import REPO

MODEL = REPO / "models" / "speech_emotion.tflite"
CARD = json.loads(MODEL.with_suffix(".json").read_text())
README = (REPO / "README.md").read_text()


def _readme_speech_section() -> str:
    start = README.index("### Speech")
    return README[start : README.index("\n### ", start + 5)]


@pytest.fixture(scope="module")
def corpora(ravdess_dir, emodb_dir):
    return {"ravdess": load_dataset(ravdess_dir), "emodb": load_dataset(emodb_dir)}


def test_card_describes_the_file():
    assert CARD["model"]["sha256"] == sha256_file(MODEL)
    m = TFLiteModel(MODEL)
    assert all(d["dtype"].__name__ == "int8" for d in m.inputs + m.outputs)
    assert (MODEL.parent / CARD["vad"]["model"]).is_file()
    voice = MODEL.parent / CARD["voice"]["model"]  # the voice branch the card was scored with
    assert sha256_file(voice) == CARD["voice"]["encoder"]["file_sha256"]
    assert (MODEL.parent / CARD["voice"]["encoder"]["licence"]).read_text().count("Apache License") >= 1
    assert CARD["calibration"]["temperature"] > 0
    assert "level" in CARD["recipe"]  # level-normalised features


@pytest.mark.parametrize("corpus", ["ravdess", "emodb"])
def test_test_split_figures_reproduce(corpora, corpus, tmp_path):
    ref = CARD["metrics"][f"{corpus}:test"]
    items = corpora[corpus].split("test")
    ws, raw = window_probs(MODEL, items, str(tmp_path / "cache"))
    rep = split_report(ws, raw, CARD["calibration"]["temperature"])
    for level in ("window", "clip"):
        assert rep[level].confusion.tolist() == ref["int8"][level]["confusion_matrix"], level
        assert rep[level].unweighted_accuracy == pytest.approx(ref["int8"][level]["unweighted_accuracy"])
    assert rep["per_speaker_clip"] == ref["int8"]["per_speaker_clip"]
    assert rep["ece_window"]["calibrated"] == pytest.approx(ref["ece_window_int8"]["calibrated"], abs=1e-4)
    assert rep["ece_window"]["raw"] == pytest.approx(ref["ece_window_int8"]["raw"], abs=1e-4)
    # the emotion network alone (the card's figures before the voice branch, which the README compares with)
    _, alone = window_probs(MODEL, items, str(tmp_path / "cache"), voice=False)
    r = window_and_clip_reports(alone, ws)
    for level in ("window", "clip"):
        assert r[level].confusion.tolist() == ref["int8_without_voice"][level]["confusion_matrix"], level
    # the part of the gain sweep the level-invariance target is judged on: -30 dB and peak-normalised
    sweep = gain_sweep(MODEL, items, str(tmp_path / "cache"), ["-30", "peak"])
    for level in ("-30", "peak"):
        assert sweep[level]["clip_ua"] == pytest.approx(ref["gain_sweep"][level]["clip_ua"], abs=1e-4), level


@pytest.mark.parametrize("corpus", ["ravdess", "emodb"])
def test_readme_states_the_card(corpus):
    """Every speech figure of the README's table is the card's, to three decimals."""
    text = _readme_speech_section()
    ref = CARD["metrics"][f"{corpus}:test"]
    row = next(line for line in text.splitlines() if line.startswith(f"| {corpus} test"))
    figures = re.findall(r"\d\.\d{3}", row)
    want = [ref["int8"]["window"]["unweighted_accuracy"], ref["int8"]["window"]["accuracy"],
            ref["int8"]["clip"]["unweighted_accuracy"], ref["int8"]["clip"]["accuracy"],
            ref["int8"]["clip"]["macro_f1"], CARD["baseline"]["rows"][f"{corpus}:test"]["clip"]["unweighted_accuracy"],
            ref["gain_sweep"]["spread"]["clip_ua"], ref["ece_window_int8"]["raw"], ref["ece_window_int8"]["calibrated"]]
    assert figures == [f"{v:.3f}" for v in want]
