"""Speech features: log-mel, eGeMAPS, windows, the energy gate, normalisation (no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from dsrter.edge.infer import speech_features as sf_
from test_speech_data import synth_voice

RECIPE = sf_.default_recipe()


def test_recipe_shapes():
    assert RECIPE["window_samples"] == 32000
    assert RECIPE["logmel"]["frames"] == 1 + (32000 - 400) // 160 == 198
    lm = sf_.log_mel(np.zeros(32000, np.float32), RECIPE)
    assert lm.shape == (198, 64) and lm.dtype == np.float32
    assert np.allclose(lm, np.log(RECIPE["logmel"]["log_floor"]))


def test_mel_filterbank_and_tone_band():
    fb = sf_.mel_filterbank(16000, 512, 64, 50.0, 8000.0)
    assert fb.shape == (257, 64)
    assert np.all(fb.max(axis=0) > 0.4) and np.all(fb <= 1.0 + 1e-6)  # no empty band at 31 Hz FFT bins
    centres = fb.argmax(axis=0)
    assert np.all(np.diff(centres) >= 0)
    t = np.arange(32000) / 16000
    lm = sf_.log_mel((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), RECIPE)
    band = int(np.argmax(lm.mean(axis=0)))
    freqs = np.linspace(0, 8000, 257)
    assert abs(freqs[centres[band]] - 1000) < 120


def test_egemaps_vector():
    v = sf_.egemaps(synth_voice("happy", 1)[:32000])
    assert v.shape == (88,) and v.dtype == np.float32 and np.all(np.isfinite(v))
    assert v[0] > 0  # F0 mean (semitones) of a voiced signal
    assert len(sf_.egemaps_names()) == 88


def test_split_windows():
    x = np.arange(16000 * 3, dtype=np.float32)
    w = sf_.split_windows(x, 32000, 8000)
    assert [s for s, _ in w] == [0, 8000, 16000]
    x = np.ones(16000 * 3 + 6000, np.float32)  # tail of 6000 > hop/2 -> one end-aligned window
    w = sf_.split_windows(x, 32000, 8000)
    assert w[-1][0] == len(x) - 32000 and all(len(a) == 32000 for _, a in w)
    short = sf_.split_windows(np.ones(1000, np.float32), 32000, 8000)
    assert len(short) == 1 and short[0][1][:1000].sum() == 1000 and short[0][1][1000:].sum() == 0
    assert sf_.split_windows(np.zeros(0, np.float32), 32000, 8000) == []


def test_vad_gate_silence_is_not_speech():
    rng = np.random.default_rng(0)
    assert not sf_.is_speech(np.zeros(32000, np.float32), RECIPE)
    assert not sf_.is_speech((1e-4 * rng.standard_normal(32000)).astype(np.float32), RECIPE)  # ~ -80 dBFS
    assert not sf_.is_speech(np.full(32000, 0.3, np.float32), RECIPE)  # DC offset only
    voice = synth_voice("neutral", 1)[:32000]
    assert sf_.is_speech(voice, RECIPE)
    assert not sf_.is_speech(voice, RECIPE, threshold_dbfs=0.0)
    blip = np.zeros(32000, np.float32)
    blip[:1600] = voice[8000:9600]  # 0.1 s of sound < min_active_s
    assert not sf_.is_speech(blip, RECIPE)


def test_normalisation_single_equals_batch_and_cmn():
    rng = np.random.default_rng(1)
    lms = rng.normal(-5, 2, (5, 198, 64)).astype(np.float32)
    egs = rng.normal(3, 1, (5, 88)).astype(np.float32)
    for cmn in (False, True):
        rec = sf_.default_recipe(window_cmn=cmn)
        stats = sf_.fit_stats(lms, egs, rec)
        blm, beg = sf_.normalise_features(lms, egs, rec, stats)
        for i in range(5):
            slm, seg = sf_.normalise_features(lms[i], egs[i], rec, stats)
            np.testing.assert_array_equal(slm, blm[i])
            np.testing.assert_array_equal(seg, beg[i])
        assert np.abs(blm).max() <= rec["clip"]
        if cmn:  # a gain change is a constant log-mel offset, removed by the per-window mean
            g, _ = sf_.normalise_features(lms[0] + 3.0, egs[0], rec, stats)
            np.testing.assert_allclose(g, blm[0], atol=1e-4)


def test_check_window_errors():
    with pytest.raises(ValueError, match="32000 samples"):
        sf_.check_window(np.zeros(16000, np.float32), RECIPE)
    with pytest.raises(ValueError, match="1-D"):
        sf_.check_window(np.zeros((32000, 2), np.float32), RECIPE)
    bad = np.zeros(32000, np.float32)
    bad[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sf_.check_window(bad, RECIPE)


def test_training_and_device_feature_paths_match(tmp_path):
    """The same audio file through the training loader and through the device path gives the same
    model inputs: read_audio + clip_features (training) vs to_mono_16k + split_windows +
    raw_window_features (the daemon's mic/video path)."""
    import soundfile
    from scipy.signal import resample_poly

    from dsrter.train import speech_data as sd

    x16 = np.concatenate([synth_voice("angry", 2, 3.0), synth_voice("sad", 2, 1.0)])
    x44 = resample_poly(x16, 441, 160).astype(np.float32)
    stereo = np.stack([x44, 0.5 * x44], axis=1)
    f = tmp_path / "clip.wav"
    soundfile.write(f, stereo, 44100, subtype="FLOAT")
    # training path
    item = sd.SpeechItem(f.resolve(), "clip.wav", 0, "1", "custom", "train")
    train_f = sd.item_features(item, RECIPE, RECIPE["hop_s"], cache_dir=tmp_path / "cache")
    cached = sd.item_features(item, RECIPE, RECIPE["hop_s"], cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(cached.logmel, train_f.logmel)
    # device path (the daemon gets (frames, channels) float blocks at the device rate)
    raw, sr = soundfile.read(f, dtype="float32", always_2d=True)
    mono = sf_.to_mono_16k(raw, sr)
    wins = sf_.split_windows(mono, RECIPE["window_samples"], int(RECIPE["hop_s"] * 16000))
    assert len(wins) == len(train_f.starts)
    stats = sf_.fit_stats(train_f.logmel, train_f.egemaps, RECIPE)
    for i, (start, w) in enumerate(wins):
        assert start == train_f.starts[i]
        assert sf_.is_speech(w, RECIPE) == bool(train_f.speech[i])
        lm, eg = sf_.raw_window_features(w, RECIPE)
        np.testing.assert_array_equal(lm, train_f.logmel[i])
        if train_f.speech[i]:
            np.testing.assert_array_equal(eg, train_f.egemaps[i])
            a = sf_.normalise_features(lm, eg, RECIPE, stats)
            b = sf_.normalise_features(train_f.logmel[i], train_f.egemaps[i], RECIPE, stats)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])


def test_level_normalisation_is_gain_free_on_a_quiet_real_recording(ravdess_dir):
    """RAVDESS speech sits near -40 dBFS; re-recorded 30 dB quieter (16-bit rounding included) it must
    come out of the level stage at the same level, with the same frames counted as voiced, and over the
    same noise floor (the recipe's dither masks the amplified quantisation noise)."""
    from dsrter.train.speech_data import apply_level, read_audio

    recipe = sf_.default_recipe()
    lv = recipe["level"]
    clip = read_audio(ravdess_dir / "Actor_19" / "03-01-05-02-01-01-19.flac")
    x = np.asarray(clip[: recipe["window_samples"]], np.float32)
    quiet = apply_level(x, "-30")
    a, b = sf_.normalise_level(x, recipe), sf_.normalise_level(quiet, recipe)
    da, db = sf_.frame_dbfs(a, recipe), sf_.frame_dbfs(b, recipe)
    assert sf_.active_level_dbfs(a, recipe) == pytest.approx(lv["target_dbfs"], abs=0.5)
    assert sf_.active_level_dbfs(b, recipe) == pytest.approx(lv["target_dbfs"], abs=0.5)
    loud = da >= da.max() - lv["active_range_db"]
    assert loud.sum() > 20 and (~loud).sum() > 20  # a clip with both voiced frames and pauses
    np.testing.assert_allclose(db[loud], da[loud], atol=0.1)  # voiced frames: same level either way
    assert np.abs(da - db)[~loud].mean() < 0.5  # pauses: the same dither floor
    # without the dither the pauses differ by several dB (amplified quantisation noise vs the studio's floor)
    plain = {**recipe, "level": {k: v for k, v in lv.items() if k != "dither_dbfs"}}
    pa = sf_.frame_dbfs(sf_.normalise_level(x, plain), plain)
    pb = sf_.frame_dbfs(sf_.normalise_level(quiet, plain), plain)
    assert np.abs(pa - pb)[~loud].mean() > 3.0


def test_level_stage_leaves_silence_and_older_cards_alone():
    recipe = sf_.default_recipe()
    silence = np.zeros(recipe["window_samples"], np.float32)
    assert sf_.normalise_level(silence, recipe) is silence  # nothing to scale: no dither either
    old = {**recipe, "level": {"target_dbfs": -26.0, "active_range_db": 30.0, "floor_dbfs": -75.0, "max_gain_db": 45.0}}
    x = 0.01 * synth_voice("happy", 3)[: recipe["window_samples"]]
    y = sf_.normalise_level(x, old)
    nz = np.abs(x) > 1e-6
    np.testing.assert_allclose(y[nz] / x[nz], y[nz][0] / x[nz][0], rtol=1e-4)  # a pure gain: no noise added
    a, b = sf_.normalise_level(x, recipe), sf_.normalise_level(x, recipe)
    np.testing.assert_array_equal(a, b)  # the dither is the same in every call
