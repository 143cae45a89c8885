"""The GE2E speaker-encoder teacher: its mel front end, its targets, the teacher choice and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dsrter.edge.infer.speech_features  # noqa: F401  (openSMILE before TensorFlow)
from dsrter.edge.infer import voice_embedding as ve
from dsrter.train import speaker_teacher as st
from test_speech_data import synth_voice


def make_tiny_encoder(path: Path, hidden: int = 16, out: int = 8) -> Path:
    """A randomly initialised encoder saved the way resemblyzer saves its pretrained one."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    lstm, linear = nn.LSTM(st.N_MELS, hidden, 2, batch_first=True), nn.Linear(hidden, out)
    state = {
        **{f"lstm.{k}": v for k, v in lstm.state_dict().items()},
        **{f"linear.{k}": v for k, v in linear.state_dict().items()},
        "similarity_weight": torch.tensor([10.0]),
        "similarity_bias": torch.tensor([-5.0]),
    }
    torch.save({"step": 1, "model_state": state}, path)
    return path


def test_slaney_mel_scale_and_unit_area_filters():
    assert float(ve._hz_to_mel(np.array(1000.0))) == pytest.approx(15.0)
    f = np.array([100.0, 700.0, 1000.0, 3000.0, 7900.0])
    np.testing.assert_allclose(ve._mel_to_hz(ve._hz_to_mel(f)), f, rtol=1e-9)
    fb = ve.slaney_filterbank()
    assert fb.shape == (ve.N_MELS, ve.N_FFT // 2 + 1)
    area = fb.sum(axis=1) * (ve.SAMPLE_RATE / ve.N_FFT)  # each triangle integrates to about 1 over Hz
    assert np.all(np.abs(area[5:] - 1.0) < 0.05)
    tone = np.sin(2 * np.pi * 2000.0 * np.arange(16000) / 16000)
    band = ve.mel_power(tone, fb).mean(axis=0).argmax()
    centres = ve._mel_to_hz(np.linspace(0.0, float(ve._hz_to_mel(np.array(8000.0))), ve.N_MELS + 2))[1:-1]
    assert abs(centres[band] - 2000.0) < 150.0


def test_targets_shape_level_independence_and_voices(tmp_path):
    teacher = st.SpeakerTeacher(make_tiny_encoder(tmp_path / "enc.pt"))
    assert teacher.hidden_size == 16 + 8 and teacher.describe()["num_hidden_layers"] == 2
    angry, sad = synth_voice("angry", 1)[:32000], synth_voice("sad", 2)[:32000]
    e = teacher.embed(np.stack([angry, angry * 0.05, sad]), batch=2)
    assert e.shape == (3, 24) and np.all(np.isfinite(e))
    np.testing.assert_allclose(e[0], e[1], atol=1e-5)  # 26 dB quieter: the same targets
    assert np.abs(e[0] - e[2]).max() > 1e-3
    assert teacher.embed(np.zeros((0, 32000), np.float32)).shape == (0, 24)


def test_a_pt_file_makes_a_speaker_teacher_and_bad_files_say_why(tmp_path):
    from dsrter.train.distill import make_teacher

    assert isinstance(make_teacher(make_tiny_encoder(tmp_path / "enc.pt")), st.SpeakerTeacher)
    with pytest.raises(FileNotFoundError, match="config.json"):
        make_teacher(tmp_path)  # a folder is a Hugging Face checkpoint, and this one is not
    with pytest.raises(FileNotFoundError, match="missing.pt: speaker-encoder weights not found"):
        make_teacher(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt: not a speaker-encoder checkpoint"):
        make_teacher(tmp_path / "junk.pt")
    import torch

    torch.save({"model_state": {"linear.weight": torch.zeros(2, 2)}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other.pt: not a GE2E speaker encoder \(no lstm.weight_ih_l0"):
        make_teacher(tmp_path / "other.pt")  # a torch file of something else: one line, not a KeyError


@pytest.mark.slow
def test_distill_from_a_speaker_encoder_file(tmp_path):
    """`dsrter train distill --teacher FILE.pt`: the student imitates the encoder's targets."""
    import json

    from test_speech_data import write_ravdess
    from test_speech_model import dsrter

    enc = make_tiny_encoder(tmp_path / "enc.pt")
    rav = write_ravdess(tmp_path / "ravdess", actors=(1, 2, 19), labels=("angry", "sad", "happy"))
    r = dsrter(
        "train", "distill", "--teacher", str(enc), "--data", str(rav), "--out", str(tmp_path / "student"), "--cache", str(tmp_path / "cache"), "--epochs", "3"
    )
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads((tmp_path / "student" / "student.json").read_text())
    assert info["teacher"]["model_type"] == "ge2e-speaker-encoder" and info["teacher"]["hidden_size"] == 24
    hist = info["history"]
    assert len(hist) == 3 and hist[-1]["loss"] < hist[0]["loss"]
    r = dsrter("train", "distill", "--teacher", str(tmp_path / "nope.pt"), "--data", str(rav), "--out", str(tmp_path / "s2"))
    assert r.returncode == 2 and "Traceback" not in r.stderr and "nope.pt: speaker-encoder weights not found" in r.stderr
