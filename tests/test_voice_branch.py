"""The speech model's voice branch: the partial grid, the shipped encoder file, device = evaluation,
the converter on a tiny encoder, and bad files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import dsrter.edge.infer.speech_features  # noqa: F401  (openSMILE before TensorFlow)
from dsrter.edge.infer import voice_embedding as ve
from dsrter.edge.infer.model_io import ModelError
from dsrter.edge.infer.stream_grid import grid_starts
from test_speaker_teacher import make_tiny_encoder
from test_speech_data import synth_voice
from test_speech_model import dsrter

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "speech_emotion.tflite"
VOICE = REPO / "models" / "speech_voice.tflite"
CARD = json.loads(MODEL.with_suffix(".json").read_text())


def test_partials_lie_on_a_one_second_grid_of_stream_time():
    assert grid_starts(0, 32000, 16000) == [0, 16000]
    assert grid_starts(8000, 32000, 16000) == [16000]  # a window starting mid-second holds one partial
    assert grid_starts(16000, 32000, 16000) == [16000, 32000]
    assert grid_starts(-8000, 32000, 16000) == [0]  # the zero-led first window of a stream
    assert grid_starts(100, 16000, 16000) == []
    assert grid_starts(8000, 32000, 16000, 8000) == [8000, 16000, 24000]  # 1 s partials every 0.5 s


def test_a_half_second_grid_computes_one_new_partial_per_window(ravdess_dir):
    from dsrter.train.speech_data import read_audio

    audio = read_audio(ravdess_dir / "Actor_21" / "03-01-05-02-01-01-21.flac")[:64000]
    emb = ve.VoiceEmbedder(VOICE, grid_s=0.5)
    one_s = ve.VoiceEmbedder(VOICE)
    for k, s in enumerate(range(0, 32001, 8000)):
        w = audio[s : s + 32000]
        got = emb.window(w, s)
        assert emb.computed == 3 + k  # the first window computes its three, each later one a single new partial
        parts = [one_s.partial(w[p - s : p - s + 16000]) for p in range(s, s + 16001, 8000)]
        np.testing.assert_allclose(got, np.mean(parts, axis=0), atol=1e-6)
    with pytest.raises(ModelError, match="grid"):
        ve.VoiceEmbedder(VOICE, grid_s=1.5)  # partials would leave gaps
    with pytest.raises(ModelError, match="grid"):
        ve.VoiceEmbedder(VOICE, grid_s=0.0)  # a card's grid_s: 0 is an error, not the default


def test_fusion_is_a_weighted_geometric_mean():
    a, b = np.array([0.7, 0.2, 0.1]), np.array([0.1, 0.2, 0.7])
    np.testing.assert_allclose(ve.fuse(a, b, 0.0), a, atol=1e-6)
    np.testing.assert_allclose(ve.fuse(a, b, 1.0), b, atol=1e-6)
    mid = ve.fuse(a, b, 0.5)
    np.testing.assert_allclose(mid, np.sqrt(a * b) / np.sqrt(a * b).sum(), atol=1e-6)


def test_the_shipped_encoder_shares_partials_and_ignores_the_gain(ravdess_dir):
    from dsrter.train.speech_data import read_audio

    emb = ve.VoiceEmbedder(VOICE)
    assert emb.dim == 512 and emb.frames == 100
    audio = read_audio(ravdess_dir / "Actor_21" / "03-01-05-02-01-01-21.flac")[:64000]
    hop, n = 8000, 32000
    feats = [emb.window(audio[s : s + n], s) for s in range(0, len(audio) - n + 1, hop)]
    # five windows 0.5 s apart span partials at 0, 1, 2 and 3 s: each computed once
    assert len(feats) == 5 and emb.computed == 4
    one = emb.partial(audio[:16000])  # from the cache: no new computation
    assert emb.computed == 4 and np.linalg.norm(one[:256]) == pytest.approx(1.0, abs=1e-4)  # a unit embedding
    quiet = ve.VoiceEmbedder(VOICE)
    q = quiet.window(audio[:n] * 10 ** (-30 / 20), 0)
    np.testing.assert_allclose(q, feats[0], atol=2e-3)  # each partial is levelled first


def test_device_and_evaluation_give_the_same_window_probabilities(ravdess_dir, tmp_path):
    """SpeechClassifier.predict at each window's stream time == the eval path (window_probs + temperature)."""
    from dsrter.edge.infer import speech_features as sf_
    from dsrter.edge.infer.speech_classifier import SpeechClassifier, temperature_scale
    from dsrter.train.speech_data import load_dataset, read_audio, speech_windows_of
    from dsrter.train.speech_report import window_probs

    clf = SpeechClassifier(MODEL)
    assert clf.voice is not None and 0 < clf.voice_weight < 1
    item = [it for it in load_dataset(ravdess_dir).split("test") if "03-01-03-02-02-02-22" in it.rel][0]
    ws, raw = window_probs(MODEL, [item], str(tmp_path / "cache"))
    audio = read_audio(item.path)
    speech, fallback = speech_windows_of(audio, clf.recipe, clf.hop_s)
    wins = [(s, w) for i, (s, w) in enumerate(sf_.split_windows(audio, clf.window_samples, int(clf.hop_s * 16000))) if speech[i] or i == fallback]
    device = np.stack([clf.predict(w, s / 16000) for s, w in wins])
    assert len(device) == len(ws) >= 3
    np.testing.assert_allclose(device, temperature_scale(raw, clf.temperature), atol=2e-4)
    alone = SpeechClassifier(MODEL, voice=False)  # speech.voice_branch: false
    assert alone.voice is None and alone.temperature == CARD["calibration"]["temperature_without_voice"]
    # the emotion network by itself answers differently: the branch is in use
    assert np.abs(np.stack([alone.predict(w) for _, w in wins]) - device).max() > 0.01


def test_both_card_temperatures_are_fitted_on_validation(ravdess_dir, emodb_dir, tmp_path):
    """The card's temperatures, with and without the voice branch, recomputed on the validation windows."""
    from dsrter.train.speech_data import load_dataset
    from dsrter.train.speech_report import fit_temperature, window_probs

    items = [it for d in (ravdess_dir, emodb_dir) for it in load_dataset(d).split("val")]
    ws, fused = window_probs(MODEL, items, str(tmp_path / "cache"))
    _, alone = window_probs(MODEL, items, str(tmp_path / "cache"), voice=False)
    assert round(fit_temperature(fused, ws.labels), 4) == CARD["calibration"]["temperature"]
    assert round(fit_temperature(alone, ws.labels), 4) == CARD["calibration"]["temperature_without_voice"]


def test_the_config_switches_the_voice_branch_off(tmp_path):
    from dsrter.edge.config import parse_config
    from dsrter.edge.infer.models import load_models

    base = {"camera": {"enabled": False}, "face": {"enabled": False}, "speech": {"model": str(MODEL)}}
    on = load_models(parse_config(base))
    off = load_models(parse_config({**base, "speech": {"model": str(MODEL), "voice_branch": False}}))
    try:
        assert on.speech is not None and on.speech.voice is not None
        assert off.speech is not None and off.speech.voice is None
        assert off.speech.temperature == CARD["calibration"]["temperature_without_voice"] != on.speech.temperature
    finally:
        on.close()
        off.close()


@pytest.mark.parametrize(
    "value, expect",
    [
        (None, 1.0),
        ("warm", "temperature_without_voice must be a number > 0"),
        (0, "temperature_without_voice must be a number > 0"),
        ("list", "'calibration' must be a mapping, got list"),
    ],
)
def test_a_card_without_a_separate_temperature(tmp_path, value, expect):
    """An older card (no temperature for the network alone) runs uncalibrated; a bad value is one line."""
    from dsrter.edge.infer.speech_classifier import SpeechClassifier

    def change(card, folder):
        if value is None:
            del card["calibration"]["temperature_without_voice"]
        elif value == "list":
            card["calibration"] = [0.9]
        else:
            card["calibration"]["temperature_without_voice"] = value

    path = _card_with(tmp_path, change)
    if isinstance(expect, float):
        assert SpeechClassifier(path, voice=False).temperature == expect
        return
    with pytest.raises(ModelError) as err:
        SpeechClassifier(path, voice=False)
    assert expect in str(err.value) and "\n" not in str(err.value)


def _card_with(tmp_path: Path, change) -> Path:
    folder = tmp_path / "m"
    folder.mkdir()
    for f in ("speech_emotion.tflite", "silero_vad.tflite", "speech_voice.tflite"):
        (folder / f).write_bytes((REPO / "models" / f).read_bytes())
    card = json.loads(MODEL.with_suffix(".json").read_text())
    change(card, folder)
    (folder / "speech_emotion.json").write_text(json.dumps(card))
    return folder / "speech_emotion.tflite"


@pytest.mark.parametrize(
    "case, expect",
    [
        ("missing", "speech_voice.tflite: voice encoder named by speech_emotion.json not found"),
        ("corrupt", "speech_voice.tflite: not a TFLite flatbuffer"),
        ("head", "voice head has shapes (511, 7)"),
        ("weight", "voice weight 1.5 outside 0..1"),
        ("no-model", "'voice' must name its encoder file"),
    ],
)
def test_a_bad_voice_branch_is_one_clear_error(tmp_path, case, expect):
    from dsrter.edge.infer.speech_classifier import SpeechClassifier

    def change(card, folder):
        if case == "missing":
            (folder / "speech_voice.tflite").unlink()
        elif case == "corrupt":
            (folder / "speech_voice.tflite").write_bytes(b"\0" * 4096)
        elif case == "head":
            card["voice"]["head"]["weights"] = card["voice"]["head"]["weights"][:-1]
        elif case == "weight":
            card["voice"]["weight"] = 1.5
        else:
            del card["voice"]["model"]

    with pytest.raises(ModelError) as err:
        SpeechClassifier(_card_with(tmp_path, change))
    assert expect in str(err.value) and "\n" not in str(err.value)


def _wheel(path: Path, encoder: Path | None, licence: str | None = "Apache License 2.0 (test)") -> Path:
    with zipfile.ZipFile(path, "w") as z:
        if encoder is not None:
            z.write(encoder, "resemblyzer/pretrained.pt")
        if licence is not None:
            z.writestr("Resemblyzer-0.1.4.dist-info/LICENSE", licence)
    return path


def test_the_tiny_encoder_converts_and_matches_pytorch(tmp_path):
    from dsrter.convert import voice_convert as vc
    from dsrter.train.speaker_teacher import load_encoder_state

    pt, text, where = vc.read_source(_wheel(tmp_path / "r.whl", make_tiny_encoder(tmp_path / "e.pt")), None, tmp_path)
    assert text.startswith("Apache License") and "resemblyzer/pretrained.pt" in where
    state = load_encoder_state(pt)
    out = tmp_path / "voice.tflite"
    out.write_bytes(vc.to_tflite_dynamic(vc.build_encoder(state, 100)))
    voice = [synth_voice(lab, 3)[:16000] for lab in ("angry", "sad", "happy")]
    check = vc.check_encoder(state, out, voice)
    assert check["partials"] == 3 and check["min_cosine"] > 0.98, check
    emb = ve.VoiceEmbedder(out)
    assert emb.dim == 8 + 16 and emb.frames == 100  # embedding (8) + top state (16)


def test_bad_encoder_sources_say_why(tmp_path):
    from dsrter.convert import voice_convert as vc

    with pytest.raises(vc.VoiceSourceError, match="wheel has no resemblyzer/pretrained.pt"):
        vc.read_source(_wheel(tmp_path / "a.whl", None), None, tmp_path)
    (tmp_path / "b.whl").write_bytes(b"not a zip")
    with pytest.raises(vc.VoiceSourceError, match="b.whl: not a wheel"):
        vc.read_source(tmp_path / "b.whl", None, tmp_path)
    with pytest.raises(vc.VoiceSourceError, match="no licence text found; name it with --licence"):
        vc.read_source(make_tiny_encoder(tmp_path / "c.pt"), None, tmp_path)
    r = dsrter("convert", "voice", "--encoder", str(tmp_path / "nope.whl"), "--data", str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr and "nope.whl: speaker-encoder source not found" in r.stderr
