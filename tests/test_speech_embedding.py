"""The pretrained speech embedding: vendored files, chunk sharing between windows, gain, bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from dsrter.edge.infer import speech_features as sf_
from dsrter.edge.infer.model_io import ModelError
from dsrter.edge.infer.speech_embedding import SpeechEmbedder, chunk_starts, default_spec

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
RECIPE = sf_.default_recipe(embedding=default_spec())
HOP = int(RECIPE["hop_s"] * RECIPE["sample_rate"])


@pytest.fixture(scope="module")
def speech(ravdess_dir) -> np.ndarray:
    """A real RAVDESS clip at 16 kHz, long enough for three windows."""
    from dsrter.train.speech_data import read_audio

    x = read_audio(ravdess_dir / "Actor_03" / "03-01-05-02-01-01-03.flac")
    assert len(x) >= RECIPE["window_samples"] + 2 * HOP
    return x


def test_chunks_repeat_every_hop():
    """A window one hop later starts where the earlier window's chunks continue: the pattern of chunk
    offsets repeats every hop, so all but the newest chunks_per_hop are shared."""
    starts = chunk_starts(RECIPE["window_samples"], HOP, default_spec())
    assert starts[0] == 0 and starts[-1] + default_spec()["chunk_samples"] <= RECIPE["window_samples"]
    later = [s + HOP for s in starts]
    shared = set(starts) & set(later)
    assert len(starts) - len(shared) == default_spec()["chunks_per_hop"]


def test_overlapping_windows_compute_only_new_chunks_and_match_a_fresh_embedder(speech):
    stream = SpeechEmbedder(MODELS, RECIPE)
    n_chunks = len(chunk_starts(RECIPE["window_samples"], HOP, default_spec()))
    for k in range(3):
        w = speech[k * HOP : k * HOP + RECIPE["window_samples"]]
        before = stream.computed
        v = stream(w)
        assert stream.computed - before == (n_chunks if k == 0 else default_spec()["chunks_per_hop"])
        alone = SpeechEmbedder(MODELS, RECIPE)(w)
        np.testing.assert_array_equal(v, alone)
        assert v.shape == (192,) and np.all(np.isfinite(v)) and np.std(v) > 0


def test_embedding_does_not_depend_on_the_input_gain(speech):
    """Each chunk is levelled on its own: 20 dB quieter (16-bit rounding included) gives nearly the
    same vector; much nearer than another window of the same clip."""
    w = speech[: RECIPE["window_samples"]]
    quiet = np.round(w * 0.1 * 32767) / 32767
    e = SpeechEmbedder(MODELS, RECIPE)
    a, b = e(w), e(quiet.astype(np.float32))
    other = e(speech[2 * HOP : 2 * HOP + RECIPE["window_samples"]])
    gain_diff = np.abs(a - b).mean()
    assert gain_diff < 0.1 * np.abs(a - other).mean()


def test_missing_or_damaged_embedding_file_is_one_model_error(tmp_path):
    with pytest.raises(ModelError, match="speech_embedding_melspec.tflite: model file not found"):
        SpeechEmbedder(tmp_path, RECIPE)
    shutil.copy(MODELS / "speech_embedding_melspec.tflite", tmp_path)
    (tmp_path / "speech_embedding.tflite").write_bytes((MODELS / "speech_embedding.tflite").read_bytes()[:5000])
    with pytest.raises(ModelError, match="speech_embedding.tflite"):
        SpeechEmbedder(tmp_path, RECIPE)
    # the files swapped: the mel model where the embedding network belongs
    shutil.copy(MODELS / "speech_embedding_melspec.tflite", tmp_path / "speech_embedding.tflite")
    with pytest.raises(ModelError, match="speech_embedding.tflite"):
        SpeechEmbedder(tmp_path, RECIPE)


def test_a_recipe_with_an_embedding_needs_its_embedder(speech):
    with pytest.raises(ValueError, match="has an embedding"):
        sf_.raw_window_features(speech[: RECIPE["window_samples"]], RECIPE)
    lm, vec = sf_.raw_window_features(speech[: RECIPE["window_samples"]], RECIPE, SpeechEmbedder(MODELS, RECIPE))
    assert vec.shape == (sf_.descriptor_size(RECIPE),) == (88 + 192,)
