"""eGeMAPS over blocks of stream time (recipes with ``egemaps.block_s``): each block levelled on its
own and computed once, the same values in training and on the device, short clips, bad cards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dsrter.edge.infer import speech_features as sf_
from dsrter.edge.infer.model_io import ModelError
from dsrter.edge.infer.speech_classifier import SpeechClassifier
from dsrter.train.speech_data import clip_features, read_audio
from test_speech_data import synth_voice

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "speech_emotion.tflite"
RECIPE = sf_.default_recipe(window_cmn=True, egemaps_block_s=1.0)


def block_value(x: np.ndarray) -> np.ndarray:
    return sf_.egemaps(sf_.normalise_level(np.asarray(x, np.float32), RECIPE))


@pytest.fixture(scope="module")
def speech(ravdess_dir) -> np.ndarray:
    return read_audio(ravdess_dir / "Actor_21" / "03-01-05-02-01-01-21.flac")[:64000]


def test_a_window_averages_its_grid_blocks_each_computed_once(speech):
    eg = sf_.WindowEgemaps(RECIPE)
    assert RECIPE["egemaps"]["block_s"] == 1.0 and eg.block == 16000
    seen = []
    for s in range(0, 32001, 8000):  # windows 0.5 s apart, in stream order
        got = eg(speech[s : s + 32000], s)
        seen.append(eg.computed)
        blocks = [block_value(speech[b : b + 16000]) for b in range(0, 64000, 16000) if s <= b and b + 16000 <= s + 32000]
        np.testing.assert_allclose(got, np.mean(blocks, axis=0), rtol=1e-5, atol=1e-5)
    assert seen == [2, 2, 3, 3, 4]  # one new block every second window
    assert not np.allclose(eg(speech[:32000], 0), sf_.WindowEgemaps(sf_.default_recipe())(speech[:32000], 0))


def test_blocks_follow_stream_time_not_the_window(speech):
    eg = sf_.WindowEgemaps(RECIPE)
    w = speech[8000:40000]
    np.testing.assert_allclose(eg(w, 8000), block_value(speech[16000:32000]), rtol=1e-5, atol=1e-5)  # holds one block
    np.testing.assert_allclose(eg(w, 0), np.mean([block_value(w[:16000]), block_value(w[16000:])], axis=0), rtol=1e-5, atol=1e-5)


def test_short_clips_use_only_their_audio():
    clip = synth_voice("happy", 1)[:24000]  # 1.5 s
    f = clip_features(clip, RECIPE, 0.5)
    assert f.egemaps.shape == (1, 88)  # one zero-padded window, one 1 s block of audio in it
    np.testing.assert_allclose(f.egemaps[0], block_value(clip[:16000]), rtol=1e-5, atol=1e-5)
    tiny = synth_voice("sad", 2)[:11200]  # 0.7 s
    f = clip_features(tiny, RECIPE, 0.5)
    np.testing.assert_allclose(f.egemaps[0], block_value(tiny), rtol=1e-5, atol=1e-5)  # shorter than a block: all of it


def block_card(tmp_path: Path, block_s: float) -> Path:
    card = json.loads(MODEL.with_suffix(".json").read_text())
    card["recipe"]["egemaps"]["block_s"] = block_s
    card.pop("voice", None)
    card.pop("vad", None)
    out = tmp_path / MODEL.name
    shutil.copy(MODEL, out)
    out.with_suffix(".json").write_text(json.dumps(card))
    return out


def test_the_device_computes_what_training_computed(speech, tmp_path):
    clf = SpeechClassifier(block_card(tmp_path, 1.0))
    recipe = clf.recipe
    f = clip_features(speech, recipe, 0.5)
    want_lm, want_eg = sf_.normalise_features(f.logmel, f.egemaps, recipe, clf.stats)
    for i, s in enumerate(f.starts):
        if not f.speech[i]:
            continue
        lm, eg = clf.features(speech[s : s + 32000], s / 16000)
        np.testing.assert_allclose(lm, want_lm[i], atol=1e-5)
        np.testing.assert_allclose(eg, want_eg[i], atol=1e-4)
    assert clf.egemaps.computed == 4  # 4 s of stream, four blocks
    clf.clear()
    clf.features(speech[:32000], 0.0)
    assert clf.egemaps.computed == 6


def test_a_block_longer_than_half_the_window_is_refused(tmp_path):
    with pytest.raises(ModelError, match="block 1.5 s"):
        SpeechClassifier(block_card(tmp_path, 1.5))
