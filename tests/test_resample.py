"""The runtime's numpy resampler (edge/infer/resample.py) against scipy.signal.resample_poly, which the
training environment has: same length, same samples to 1e-6 on real speech and noise, for the
microphone and video rates that matter (48, 44.1, 32, 22.05, 11.025 and 8 kHz -> 16 kHz)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from dsrter.edge.infer import speech_features as sf_
from dsrter.edge.infer.resample import lowpass, resample

signal = pytest.importorskip("scipy.signal", reason="scipy is the reference (train extra)")

RATES = (48000, 44100, 32000, 22050, 11025, 8000)


@pytest.fixture(scope="module")
def speech_48k(av_samples) -> np.ndarray:
    """Real speech at 48 kHz: the AAC track of an av-samples clip, decoded by PyAV."""
    import av

    clip = sorted(av_samples.glob("clip*.mp4"))[0]
    with av.open(str(clip)) as c:
        stream = c.streams.audio[0]
        assert stream.rate == 48000
        parts = [f.to_ndarray().astype(np.float32).mean(axis=0) for f in c.decode(stream)]
    return np.concatenate(parts)


@pytest.mark.parametrize("rate", RATES)
def test_matches_resample_poly_on_speech_and_noise(rate, speech_48k):
    r = Fraction(16000, rate)
    rng = np.random.default_rng(rate)
    inputs = [
        speech_48k[: len(speech_48k) * rate // 48000],  # real speech (played as if at this rate)
        (0.3 * rng.standard_normal(4321)).astype(np.float32),
        np.float32([0.7]),
        (0.5 * rng.standard_normal(7)).astype(np.float32),
    ]
    for x in inputs:
        want = signal.resample_poly(x, r.numerator, r.denominator)
        got = resample(x, r.numerator, r.denominator)
        assert got.dtype == want.dtype == np.float32 and got.shape == want.shape, (len(x), got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=f"{rate} Hz, {len(x)} samples")
    x64 = inputs[1].astype(np.float64)
    want64 = signal.resample_poly(x64, r.numerator, r.denominator)
    np.testing.assert_allclose(resample(x64, r.numerator, r.denominator), want64, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rate", RATES)
def test_same_filter_as_scipy(rate):
    r = Fraction(16000, rate)
    m = max(r.numerator, r.denominator)
    want = signal.firwin(20 * m + 1, 1.0 / m, window=("kaiser", 5.0))
    np.testing.assert_allclose(lowpass(r.numerator, r.denominator), want, rtol=0, atol=1e-15)


def test_to_mono_16k_uses_it():
    rng = np.random.default_rng(3)
    stereo = (0.2 * rng.standard_normal((44100, 2))).astype(np.float32)
    mono = stereo.mean(axis=1, dtype=np.float64).astype(np.float32)
    np.testing.assert_allclose(sf_.to_mono_16k(stereo, 44100), signal.resample_poly(mono, 160, 441), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(sf_.to_mono_16k(mono, 16000), mono)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="1-D"):
        resample(np.zeros((2, 3), np.float32), 1, 3)
    with pytest.raises(ValueError, match=">= 1"):
        resample(np.zeros(3, np.float32), 0, 3)
