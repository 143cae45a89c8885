"""RingBuffer, the streaming resampler and MicSource (fake sounddevice + this machine's real one)."""

from __future__ import annotations

import threading
import time
import numpy as np
import pytest

from dsrter.edge.sources.base import AudioSource
from dsrter.edge.sources.microphone import MicSource, Resampler
from dsrter.edge.sources.ring_buffer import RingBuffer
from dsrter.edge.config import MicrophoneConfig


def wait_for(pred, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


# -- RingBuffer ------------------------------------------------------------------------------
def test_ring_buffer_keeps_the_newest_samples():
    rb = RingBuffer(10)
    assert len(rb) == 0 and rb.latest(5).shape == (0,)
    rb.write(np.arange(4))
    assert rb.latest(10).tolist() == [0, 1, 2, 3]
    rb.write(np.arange(4, 13))  # wraps
    assert len(rb) == 10 and rb.total_written == 13
    assert rb.latest(10).tolist() == list(range(3, 13))
    assert rb.latest(3).tolist() == [10, 11, 12]
    rb.write(np.arange(100, 125))  # larger than the capacity
    assert rb.latest(100).tolist() == list(range(115, 125))
    assert rb.latest(4).dtype == np.float32
    out = rb.latest(2)
    out[:] = -1  # a copy: the buffer is not changed through it
    assert rb.latest(2).tolist() == [123, 124]
    rb.clear()
    assert len(rb) == 0
    with pytest.raises(ValueError):
        RingBuffer(0)


def test_ring_buffer_is_consistent_across_threads():
    rb = RingBuffer(4096)
    stop = threading.Event()
    errors = []

    def writer():
        v = 0
        while not stop.is_set():
            n = int(np.random.randint(1, 700))
            rb.write(np.arange(v, v + n, dtype=np.float64))
            v += n

    def reader():
        while not stop.is_set():
            x = rb.latest(3000)
            if len(x) > 1 and not np.all(np.diff(x) == 1):
                errors.append(x)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert not errors and rb.total_written > 10000


def test_resampler_keeps_the_pitch_and_joins_blocks():
    r = Resampler(48000, 16000)
    t = np.arange(48000) / 48000
    x = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    y = np.concatenate([r.process(x[i:i + 1536]) for i in range(0, 48000, 1536)])
    assert y.dtype == np.float32 and abs(len(y) - 16000) < 64
    spec = np.abs(np.fft.rfft(y[1000:15000]))
    peak_hz = np.argmax(spec) * 16000 / len(y[1000:15000])
    assert abs(peak_hz - 440) < 3
    # no clicks at block joins: the signal stays a smooth sine
    assert np.max(np.abs(np.diff(y[200:-200]))) < 2 * np.sin(np.pi * 440 / 16000) * 1.1


# -- MicSource with a fake sounddevice -------------------------------------------------------
class FakePortAudioError(Exception):
    pass


class FakeSD:
    """A stand-in for the sounddevice module: one device that can be plugged in and out."""

    PortAudioError = FakePortAudioError

    def __init__(self, rate=48000, channels=1, accepts=(48000,), present=True):
        self.rate = rate
        self.channels = channels
        self.accepts = accepts
        self.present = present
        self.overflow_every = 0
        self.streams = []

    def query_devices(self, device=None, kind=None):
        if not self.present:
            raise FakePortAudioError("Error querying device -1")
        return {"name": "Fake USB mic", "max_input_channels": self.channels, "default_samplerate": float(self.rate)}

    def check_input_settings(self, device=None, samplerate=None, channels=None, dtype=None):
        if samplerate not in self.accepts or channels > self.channels:
            raise FakePortAudioError("Invalid sample rate")

    def InputStream(self, **kw):
        s = FakeStream(self, **kw)
        self.streams.append(s)
        return s


class FakeStream:
    def __init__(self, sd, device, samplerate, channels, dtype, blocksize, callback):
        self.sd, self.rate, self.channels, self.block, self.callback = sd, samplerate, channels, blocksize, callback
        self.active = False
        self.calls = 0
        self._thread = None

    def start(self):
        self.active = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        n = 0
        while self.active and self.sd.present:
            t = (n + np.arange(self.block)) / self.rate
            x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            data = np.repeat(x[:, None], self.channels, axis=1)
            if self.channels > 1:
                data[:, 1] = 0.0  # a stereo device with the mic on the left channel
            self.calls += 1
            ovf = bool(self.sd.overflow_every and self.calls % self.sd.overflow_every == 0)
            self.callback(data, self.block, None, _Flags(ovf))
            n += self.block
            time.sleep(self.block / self.rate / 4)  # 4x real time keeps the test short

    def stop(self):
        self.active = False

    def close(self):
        self.active = False


class _Flags:
    """Like sounddevice.CallbackFlags: falsy when no flag is set."""

    def __init__(self, overflow):
        self.input_overflow = overflow
        self.input_underflow = False

    def __bool__(self):
        return self.input_overflow or self.input_underflow


def mic_cfg(**kw):
    base = dict(reopen_initial_s=0.05, reopen_max_s=0.2, buffer_s=4.0)
    base.update(kw)
    return MicrophoneConfig(**base)


def test_mic_resamples_a_48k_device_and_counts_overflows():
    sd = FakeSD(rate=48000, accepts=(48000,))
    sd.overflow_every = 5
    mic = MicSource(mic_cfg(), sd=sd)
    assert isinstance(mic, AudioSource)
    mic.start()
    try:
        assert mic.status.state == "ok" and "48000" in mic.status.message
        assert mic.device_rate == 48000 and mic.sample_rate == 16000
        assert wait_for(lambda: len(mic.latest(1.0)[0]) >= 16000)
        x, t_end = mic.latest(1.0)
        assert x.dtype == np.float32 and len(x) == 16000
        assert abs(t_end - time.monotonic()) < 1.0
        peak_hz = np.argmax(np.abs(np.fft.rfft(x))) * 16000 / len(x)
        assert abs(peak_hz - 440) < 3
        assert wait_for(lambda: mic.overflows >= 2)
        assert mic.overflows == pytest.approx(sd.streams[0].calls // 5, abs=1)
    finally:
        mic.stop()
    assert not sd.streams[0].active


def test_mic_mixes_a_stereo_only_device_to_mono_at_16k():
    sd = FakeSD(rate=16000, channels=2, accepts=(16000,))
    sd.check_input_settings = lambda device=None, samplerate=None, channels=None, dtype=None: (
        None if channels == 2 else (_ for _ in ()).throw(FakePortAudioError("Invalid number of channels")))
    mic = MicSource(mic_cfg(block_ms=20), sd=sd)
    mic.start()
    try:
        assert mic.status.state == "ok" and mic._resampler is None
        assert wait_for(lambda: len(mic.latest(0.5)[0]) == 8000)
        x, _ = mic.latest(0.5)
        assert 0.2 < np.max(np.abs(x)) <= 0.26  # (left + silent right) / 2
    finally:
        mic.stop()


def test_mic_missing_then_plugged_in_then_unplugged():
    sd = FakeSD(rate=16000, accepts=(16000,), present=False)
    mic = MicSource(mic_cfg(), sd=sd, stall_s=0.2)
    mic.start()
    try:
        assert mic.status.state == "missing"
        x, t_end = mic.latest(2.0)
        assert x.shape == (0,) and isinstance(t_end, float)
        sd.present = True  # hot-plugged: found on a retry
        assert wait_for(lambda: mic.status.state == "ok")
        assert wait_for(lambda: len(mic.latest(0.2)[0]) > 0)
        sd.present = False  # unplugged: callbacks stop coming
        assert wait_for(lambda: mic.status.state == "reopening")
        assert mic.status.reopen_count == 1
        assert isinstance(mic.latest(1.0)[0], np.ndarray)  # still no exception
        sd.present = True
        assert wait_for(lambda: mic.status.state == "ok")
    finally:
        mic.stop()


def test_mic_stream_start_failure_is_a_status():
    sd = FakeSD(rate=16000, accepts=(16000,))

    def broken(**kw):
        raise FakePortAudioError("Device unavailable")

    sd.InputStream = broken
    mic = MicSource(mic_cfg(), sd=sd)
    mic.start()
    try:
        assert mic.status.state == "missing" and "Device unavailable" in mic.status.last_error
        assert mic.latest(1.0)[0].shape == (0,)
    finally:
        mic.stop()


def test_real_sounddevice_without_an_input_device_reports_missing():
    sd = pytest.importorskip("sounddevice")
    try:
        sd.query_devices(kind="input")
        pytest.skip("this machine has an input device")
    except Exception:
        pass
    mic = MicSource(mic_cfg(reopen_initial_s=0.5))
    t0 = time.monotonic()
    mic.start()
    try:
        assert mic.status.state == "missing"
        x, t_end = mic.latest(2.0)
        assert x.shape == (0,) and x.dtype == np.float32
        assert abs(t_end - time.monotonic()) < 1.0
        assert mic.overflows == 0
    finally:
        mic.stop()
    assert time.monotonic() - t0 < 3.0
