"""Wav2Vec2 distillation end to end with a tiny randomly initialised teacher saved in the test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import dsrter.edge.infer.speech_features  # noqa: F401  (openSMILE before TensorFlow)
from test_speech_data import synth_voice, write_ravdess
from test_speech_model import dsrter


def make_tiny_teacher(folder: Path) -> Path:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                         vocab_size=8)
    Wav2Vec2Model(cfg).save_pretrained(folder)
    return folder


def test_teacher_embeddings_shape_and_layers(tmp_path):
    from dsrter.train.distill import Teacher

    folder = make_tiny_teacher(tmp_path / "w2v")
    wins = np.stack([synth_voice(lab, 1)[:32000] for lab in ("angry", "sad", "happy")])
    t_mean = Teacher(folder, "mean")
    e = t_mean.embed(wins, batch=2)
    assert e.shape == (3, 32) and np.all(np.isfinite(e))
    e_last = Teacher(folder, "last").embed(wins)
    assert e_last.shape == (3, 32) and not np.allclose(e, e_last)
    assert Teacher(folder, "1").embed(wins[:1]).shape == (1, 32)
    assert t_mean.describe()["model_type"] == "wav2vec2"
    with pytest.raises(FileNotFoundError, match="config.json"):
        Teacher(tmp_path)


def test_the_teacher_sees_the_windows_training_keeps(tmp_path, ravdess_dir):
    """A quiet recording (35 dB under RAVDESS's level): the energy gate runs after the level stage, so
    the teacher must get the same windows as the features (it used to get only the loudest one, and
    distillation stopped on the count mismatch)."""
    import soundfile

    from dsrter.edge.infer.speech_features import default_recipe
    from dsrter.train import speech_data as sd
    from dsrter.train.distill import speech_windows

    recipe = default_recipe()
    quiet = sd.read_audio(ravdess_dir / "Actor_02" / "03-01-05-02-01-01-02.flac") * np.float32(10 ** (-35 / 20))
    soundfile.write(tmp_path / "quiet.wav", quiet, 16000, subtype="PCM_16")
    item = sd.SpeechItem((tmp_path / "quiet.wav").resolve(), "quiet.wav", 0, "2", "custom", "train")
    kept = sd.build_windows([item], recipe, 0.5)
    wins = speech_windows(item, recipe, 0.5)
    assert len(kept) >= 3 and len(wins) == len(kept)


@pytest.mark.slow
def test_distill_then_speech_model_end_to_end(tmp_path):
    teacher = make_tiny_teacher(tmp_path / "teacher")
    rav = write_ravdess(tmp_path / "ravdess", actors=(1, 2, 19, 21))
    cache = str(tmp_path / "cache")
    r = dsrter("train", "distill", "--teacher", str(teacher), "--data", str(rav), "--out", str(tmp_path / "student"),
               "--cache", cache, "--epochs", "3")
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads((tmp_path / "student" / "student.json").read_text())
    assert info["teacher"]["hidden_size"] == 32 and info["embed_dim"] >= 1
    hist, m = info["history"], info["metrics"]
    print(f"distillation: train MSE {[round(h['loss'], 4) for h in hist]}, validation R2 {[round(h['val_r2'], 3) for h in hist]}, "
          f"cosine to the teacher {m['val_cosine_to_teacher']:.3f}")
    assert len(hist) == 3
    # the student learned its targets: training MSE fell by more than 5% over the 3 epochs (measured by hand
    # with the same commands: 1.118 -> 0.979). On the one held-out speaker its R2 stays near 0 at this size
    # (measured -0.02): not asserted. The epoch kept is the one with the best validation fit.
    assert hist[-1]["loss"] < 0.95 * hist[0]["loss"]
    assert m["val_r2"] == pytest.approx(max(h["val_r2"] for h in hist))

    r = dsrter("train", "speech", "--data", str(rav), "--student", str(tmp_path / "student"), "--epochs", "1",
               "--out", str(tmp_path / "run"), "--cache", cache, "--spec", '{"channels": [16, 16, 16]}')
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "m" / "speech_emotion.tflite"
    r = dsrter("convert", "speech", "--run", str(tmp_path / "run"), "--out", str(out), "--cache", cache,
               "--no-bench", "--no-baseline")
    assert r.returncode == 0, r.stderr[-3000:]
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["model"]["embedding"]["used"] is True
    assert "wav2vec2" in card["model"]["embedding"]["teacher"]
    from dsrter.edge.infer.speech_classifier import SpeechClassifier

    clf = SpeechClassifier(out)
    assert all(np.dtype(d["dtype"]) == np.int8 for d in clf.model.inputs)
    assert clf.predict(synth_voice("fear", 4)[:32000]).shape == (7,)


@pytest.mark.slow
def test_train_speech_with_teacher_flag(tmp_path):
    """`dsrter train speech --teacher DIR` distils first and trains with the student in one command."""
    teacher = make_tiny_teacher(tmp_path / "teacher")
    rav = write_ravdess(tmp_path / "ravdess", actors=(1, 19), labels=("angry", "sad", "happy"))
    r = dsrter("train", "speech", "--data", str(rav), "--teacher", str(teacher), "--student-epochs", "1",
               "--epochs", "1", "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache"),
               "--spec", '{"channels": [8, 8, 8]}')
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads((tmp_path / "run" / "train_info.json").read_text())
    assert info["student"]["teacher"]["model_type"] == "wav2vec2"
    assert (tmp_path / "run" / "student" / "student.keras").is_file()
