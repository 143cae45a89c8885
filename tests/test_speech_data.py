"""Speech loaders: RAVDESS / CREMA-D layouts and manifests, audio conversion, clear errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile

from dsrter.edge.infer import speech_features as sf_
from dsrter.edge.labels import LABELS, label_index
from dsrter.train import speech_data as sd

RAVDESS_CODES = {"neutral": "01", "happy": "03", "sad": "04", "angry": "05", "fear": "06", "disgust": "07",
                 "surprise": "08"}
CREMAD_CODES = {"angry": "ANG", "disgust": "DIS", "fear": "FEA", "happy": "HAP", "neutral": "NEU", "sad": "SAD"}


def synth_voice(label: str, speaker: int, seconds: float = 2.2, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced, class-dependent tone complex: pitch, loudness and roughness differ by label."""
    k = LABELS.index(label)
    rng = np.random.default_rng([seed, speaker, k])
    t = np.arange(int(seconds * sr)) / sr
    f0 = (110 + 25 * k) * (1 + 0.03 * (speaker % 5)) * (1 + 0.05 * np.sin(2 * np.pi * (3 + k) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(h * phase) / h for h in range(1, 8))
    env = np.clip(np.sin(np.pi * t / seconds), 0, None) ** 0.5
    x = 0.1 * (0.3 + 0.15 * k) * env * x + 0.002 * (1 + k) * rng.standard_normal(len(t))
    lead = np.zeros(int(0.2 * sr))
    return np.concatenate([lead, x, lead]).astype(np.float32)


def write_ravdess(root: Path, actors=(1, 2, 19, 21), labels=LABELS, sr: int = 16000, ext: str = "wav",
                  seconds: float = 2.2) -> Path:
    """``Actor_XX/03-01-EE-01-01-01-XX.wav`` files, one clip per actor and label."""
    for a in actors:
        d = root / f"Actor_{a:02d}"
        d.mkdir(parents=True, exist_ok=True)
        for lab in labels:
            x = synth_voice(lab, a, seconds)
            if sr != 16000:
                from scipy.signal import resample_poly

                x = resample_poly(x, sr, 16000).astype(np.float32)
            soundfile.write(d / f"03-01-{RAVDESS_CODES[lab]}-01-01-01-{a:02d}.{ext}", x, sr)
    return root


def write_cremad(root: Path, actors=(1001, 1002, 1061, 1067, 1068), seconds: float = 2.2) -> Path:
    """``AudioWAV/ACTOR_SENT_EMO_LVL.wav`` files (44.1 kHz stereo int16 to exercise the conversion)."""
    d = root / "AudioWAV"
    d.mkdir(parents=True, exist_ok=True)
    from scipy.signal import resample_poly

    for a in actors:
        for lab, code in CREMAD_CODES.items():
            x = resample_poly(synth_voice(lab, a, seconds), 441, 160)
            st = np.stack([x, 0.8 * x], axis=1)
            soundfile.write(d / f"{a}_DFA_{code}_XX.wav", (st * 32767).astype(np.int16), 44100, subtype="PCM_16")
    return root


# --------------------------------------------------------------------------------------------


def test_ravdess_layout_splits_and_labels(tmp_path):
    root = write_ravdess(tmp_path / "rav", actors=(1, 19, 21, 24))
    (root / "Actor_01" / "notes.txt").write_text("not audio")
    ds = sd.load_dataset(root)
    assert ds.layout == "ravdess"
    assert len(ds) == 4 * 7
    by_spk = {it.speaker: it.split for it in ds.items}
    assert by_spk == {"1": "train", "19": "val", "21": "test", "24": "test"}
    it = next(i for i in ds.items if i.rel.endswith("03-01-05-01-01-01-01.wav"))
    assert LABELS[it.label] == "angry"
    assert ds.notes  # the stray file is reported


def test_ravdess_calm_is_neutral(tmp_path):
    d = tmp_path / "Actor_03"
    d.mkdir()
    soundfile.write(d / "03-01-02-01-01-01-03.wav", synth_voice("neutral", 3), 16000)
    ds = sd.load_dataset(tmp_path)
    assert LABELS[ds.items[0].label] == "neutral" and ds.items[0].code == "02"


def test_cremad_layout(tmp_path):
    root = write_cremad(tmp_path / "crema", actors=(1001, 1062, 1070, 1080))
    ds = sd.load_dataset(root)
    assert ds.layout == "cremad"
    assert {it.speaker: it.split for it in ds.items} == {"1001": "train", "1062": "val", "1070": "test", "1080": ""}
    assert "surprise" not in {LABELS[it.label] for it in ds.items}
    x = sd.read_audio(ds.items[0].path)  # 44.1 kHz stereo int16 -> 16 kHz mono float
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - int(2.6 * 16000)) <= 2


def test_manifest_loader_and_errors(tmp_path):
    write_ravdess(tmp_path, actors=(1,), labels=("angry", "sad"))
    rows = [("Actor_01/03-01-05-01-01-01-01.wav", "angry", "s1", "train"),
            ("Actor_01/03-01-04-01-01-01-01.wav", "sad", "s2", "test")]

    def write(rows, name="manifest.csv", header=("path", "label", "speaker", "split")):
        p = tmp_path / name
        with open(p, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
        return p

    ds = sd.load_dataset(write(rows))
    assert [it.split for it in ds.items] == ["train", "test"]
    assert [it.label for it in ds.items] == [label_index("angry"), label_index("sad")]
    with pytest.raises(sd.SpeechDataError, match=r"line 3: .*not found"):
        sd.load_dataset(write(rows[:1] + [("Actor_01/missing.wav", "sad", "s2", "test")], "m2.csv"))
    with pytest.raises(sd.SpeechDataError, match=r"line 2: unknown emotion label 'bored'"):
        sd.load_dataset(write([("Actor_01/03-01-05-01-01-01-01.wav", "bored", "s1", "train")], "m3.csv"))
    with pytest.raises(sd.SpeechDataError, match="lacks column"):
        sd.load_dataset(write([("Actor_01/03-01-05-01-01-01-01.wav", "angry")], "m4.csv", header=("path", "label")))


def test_manifest_dataset_column_gives_corpus_split(tmp_path):
    write_ravdess(tmp_path, actors=(20,), labels=("happy",))
    p = tmp_path / "m.csv"
    p.write_text("path,label,speaker,dataset\nActor_20/03-01-03-01-01-01-20.wav,happy,20,ravdess\n")
    assert sd.load_dataset(p).items[0].split == "val"


def test_bad_audio_files_name_the_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(sd.SpeechDataError, match="empty.wav.*empty"):
        sd.read_audio(empty)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF1234WAVEjunkjunkjunk")
    with pytest.raises(sd.SpeechDataError, match="junk.wav.*cannot read"):
        sd.read_audio(junk)
    nan = tmp_path / "nan.wav"
    x = np.zeros(16000, np.float32)
    x[100] = np.nan
    soundfile.write(nan, x, 16000, subtype="FLOAT")
    with pytest.raises(sd.SpeechDataError, match="nan.wav.*NaN"):
        sd.read_audio(nan)
    zero = tmp_path / "zero.wav"
    soundfile.write(zero, np.zeros((0,), np.float32), 16000)
    with pytest.raises(sd.SpeechDataError, match="zero.wav"):
        sd.read_audio(zero)


def test_any_rate_and_channels_to_16k_mono():
    sr = 48000
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    stereo = np.stack([tone, tone], axis=1)
    y = sf_.to_mono_16k(stereo, sr)
    assert y.shape == (16000,) and y.dtype == np.float32
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) - 440) <= 1  # 1 Hz bins for 1 s at 16 kHz
    y2 = sf_.to_mono_16k(stereo.T, sr, channel_axis=0)
    np.testing.assert_allclose(y, y2, atol=1e-6)
    y3 = sf_.to_mono_16k((tone * 32767).astype(np.int16), 22050)
    assert y3.dtype == np.float32 and np.max(np.abs(y3)) <= 1.01
    assert np.allclose(sf_.to_mono_16k(np.full(100, 128, np.uint8), 16000), 0.0)
    with pytest.raises(ValueError, match="empty"):
        sf_.to_mono_16k(np.zeros(0, np.float32), 16000)
    with pytest.raises(ValueError, match="NaN"):
        sf_.to_mono_16k(np.array([0.0, np.nan], np.float32), 16000)
    with pytest.raises(ValueError, match="sample rate"):
        sf_.to_mono_16k(tone, 0)


def test_augmentation_is_deterministic_and_finite():
    x = synth_voice("happy", 1)
    a1, d1 = sd.augment_clip(x, np.random.default_rng(3))
    a2, d2 = sd.augment_clip(x, np.random.default_rng(3))
    assert d1 == d2 and np.array_equal(a1, a2)
    assert np.all(np.isfinite(a1)) and np.max(np.abs(a1)) <= 1.0


def test_not_a_dataset(tmp_path):
    with pytest.raises(sd.SpeechDataError, match="not a speech dataset"):
        sd.load_dataset(tmp_path)
    with pytest.raises(sd.SpeechDataError, match="no such"):
        sd.load_dataset(tmp_path / "nope")


@pytest.mark.data
def test_shared_ravdess_manifest(ravdess_dir):
    ds = sd.load_dataset(ravdess_dir)
    assert {s: len(ds.split(s)) for s in sd.SPLITS} == {"train": 1080, "val": 120, "test": 240}
    assert np.bincount([it.label for it in ds.items], minlength=7)[label_index("neutral")] == 288
