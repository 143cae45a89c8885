"""The live microphone as an audio source (protocol: :class:`~dsrter.edge.sources.base.AudioSource`).

The microphone is read by a PortAudio callback (via ``sounddevice``) that only mixes to
mono, resamples to 16 kHz when the device runs at another rate, and appends to a
:class:`RingBuffer`; nothing ever does a blocking record. Consumers ask for the newest
``seconds`` of audio with ``latest()``. A missing or unplugged microphone
is a status (``missing``/``reopening``), retried with backoff: the daemon keeps running
face-only.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Optional

import numpy as np

from dsrter.edge.config import MicrophoneConfig
from dsrter.edge.sources.base import TARGET_RATE, Backoff, SourceStatus, StatusReporter
from dsrter.edge.sources.ring_buffer import RingBuffer

log = logging.getLogger(__name__)

_EMPTY = np.zeros(0, dtype=np.float32)


class Resampler:
    """Streaming rate conversion to float32 mono with FFmpeg's swresample (through PyAV).

    Keeps its filter state between calls, so block-by-block output joins without clicks.
    """

    def __init__(self, in_rate: int, out_rate: int = TARGET_RATE) -> None:
        import av

        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self._av = av
        self._rs = av.AudioResampler(format="flt", layout="mono", rate=self.out_rate)
        self._pts = 0

    def process(self, mono: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(mono, dtype=np.float32).reshape(1, -1))
        if x.shape[1] == 0:
            return _EMPTY.copy()
        frame = self._av.AudioFrame.from_ndarray(x, format="flt", layout="mono")
        frame.sample_rate = self.in_rate
        frame.pts = self._pts
        self._pts += x.shape[1]
        out = [f.to_ndarray().reshape(-1) for f in self._rs.resample(frame)]
        return np.concatenate(out).astype(np.float32, copy=False) if out else _EMPTY.copy()


def _sounddevice() -> Any:
    import sounddevice  # needs the PortAudio library (Debian: libportaudio2)

    return sounddevice


class MicSource:
    """The live microphone as an :class:`AudioSource`.

    ``sd`` is the ``sounddevice`` module or a stand-in with ``InputStream``,
    ``query_devices``, ``check_input_settings`` and ``PortAudioError`` (tests inject one).
    """

    sample_rate = TARGET_RATE

    def __init__(self, cfg: MicrophoneConfig, sd: Any = None, clock: Callable[[], float] = time.monotonic,
                 open_wait_s: float = 2.0, stall_s: float = 2.0) -> None:
        self.cfg = cfg
        self._sd = sd
        self._clock = clock
        self._open_wait_s = open_wait_s
        self._stall_s = max(stall_s, 4 * cfg.block_ms / 1000.0)
        name = "default input" if cfg.device is None else repr(cfg.device)
        self._reporter = StatusReporter(log, f"microphone {name}")
        self.ring = RingBuffer(int(round(cfg.buffer_s * TARGET_RATE)))
        self.overflows = 0
        self.underflows = 0
        self.device_rate: Optional[int] = None
        self.device_name: Optional[str] = None
        self._channels = 1
        self._resampler: Optional[Resampler] = None
        self._stream: Any = None
        self._lock = threading.Lock()
        self._t_end: Optional[float] = None
        self._last_callback: Optional[float] = None
        self._stop = threading.Event()
        self._first_attempt = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._was_ok = False
        self._attempts = 0

    @property
    def status(self) -> SourceStatus:
        return self._reporter.status

    # -- AudioSource -------------------------------------------------------------------
    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._first_attempt.clear()
        self._thread = threading.Thread(target=self._run, name="mic-supervisor", daemon=True)
        self._thread.start()
        self._first_attempt.wait(self._open_wait_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._close_stream()

    def latest(self, seconds: float) -> tuple[np.ndarray, float]:
        try:
            with self._lock:
                samples = self.ring.latest(int(round(max(0.0, seconds) * TARGET_RATE)))
                t_end = self._t_end if self._t_end is not None else self._clock()
            return samples, t_end
        except Exception:  # never let the speech stream die because of audio bookkeeping
            log.exception("microphone latest() failed")
            return _EMPTY.copy(), self._clock()

    # -- callback (PortAudio thread) ---------------------------------------------------
    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status:
            if getattr(status, "input_overflow", False):
                self.overflows += 1
            if getattr(status, "input_underflow", False):
                self.underflows += 1
        x = np.asarray(indata, dtype=np.float32)
        mono = x.mean(axis=1) if x.ndim == 2 and x.shape[1] > 1 else x.reshape(-1)
        if self._resampler is not None:
            mono = self._resampler.process(mono)
        now = self._clock()
        with self._lock:
            self.ring.write(mono)
            # Stream time of the newest sample: follow the sample count (no jitter), but
            # re-anchor on the monotonic clock when they drift apart (lost audio, start).
            predicted = (self._t_end + mono.shape[0] / TARGET_RATE) if self._t_end is not None else None
            self._t_end = now if predicted is None or abs(predicted - now) > 0.1 else predicted
            self._last_callback = now

    # -- device handling (supervisor thread) -------------------------------------------
    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        for op in ("stop", "close"):
            try:
                getattr(stream, op)()
            except Exception:
                log.debug("microphone stream %s failed", op, exc_info=True)

    def _open_stream(self) -> None:
        sd = self._sd
        if sd is None:
            sd = self._sd = _sounddevice()  # OSError when PortAudio is not installed
        self._attempts += 1
        if self._attempts > 1 and hasattr(sd, "_terminate") and hasattr(sd, "_initialize"):
            # PortAudio lists devices once at initialisation; re-scan so a replugged mic shows up.
            try:
                sd._terminate()
                sd._initialize()
            except Exception:
                log.debug("PortAudio re-initialisation failed", exc_info=True)
        dev = self.cfg.device
        info = sd.query_devices(dev, "input")  # raises when there is no such/default input
        if int(info.get("max_input_channels", 0)) < 1:
            raise OSError(f"device {info.get('name')!r} has no input channels")
        rate, channels = self.cfg.sample_rate, 1
        try:
            sd.check_input_settings(device=dev, samplerate=rate, channels=1, dtype="float32")
        except Exception:
            rate = int(round(float(info.get("default_samplerate") or 48000)))
            channels = 1
            try:
                sd.check_input_settings(device=dev, samplerate=rate, channels=1, dtype="float32")
            except Exception:
                channels = min(2, int(info["max_input_channels"]))
        self.device_rate, self._channels = int(rate), channels
        self.device_name = str(info.get("name", dev))
        self._resampler = Resampler(rate, TARGET_RATE) if rate != TARGET_RATE else None
        blocksize = max(1, int(round(rate * self.cfg.block_ms / 1000.0)))
        stream = sd.InputStream(device=dev, samplerate=rate, channels=channels, dtype="float32",
                                blocksize=blocksize, callback=self._callback)
        try:
            stream.start()
        except Exception:
            try:
                stream.close()
            finally:
                raise
        with self._lock:
            self._t_end = None
            self._last_callback = self._clock()
        self._stream = stream

    def _run(self) -> None:
        backoff = Backoff(self.cfg.reopen_initial_s, self.cfg.reopen_max_s)
        while not self._stop.is_set():
            if self._stream is None:
                try:
                    self._open_stream()
                except Exception as exc:  # PortAudioError, ValueError (no match), OSError ...
                    err = f"{type(exc).__name__}: {exc}"
                    if self._was_ok:
                        self._reporter.set("reopening", "microphone lost; retrying", error=err)
                    else:
                        self._reporter.set("missing", "no microphone; no speech analysis until one appears", error=err)
                    self._first_attempt.set()
                    self._stop.wait(backoff.next_delay())
                    continue
                resample = f", resampled {self.device_rate}->{TARGET_RATE} Hz" if self._resampler else ""
                self._reporter.set("ok", f"capturing from {self.device_name!r} at {self.device_rate} Hz, "
                                         f"{self._channels} ch{resample}")
                self._first_attempt.set()
                backoff.reset()
                self._was_ok = True
            # Healthy while the callback keeps coming; a dead device stops calling back.
            self._stop.wait(0.25)
            stream = self._stream
            if stream is None or self._stop.is_set():
                continue
            last = self._last_callback or 0.0
            active = bool(getattr(stream, "active", True))
            if not active or self._clock() - last > self._stall_s:
                why = "stream stopped" if not active else f"no audio for {self._clock() - last:.1f} s"
                self._close_stream()
                self._reporter.set("reopening", f"microphone lost ({why}); reopening", error=why, reopened=True)
                self._stop.wait(backoff.next_delay())
