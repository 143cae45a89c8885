"""The speech stream on its own thread: newest audio -> voice activity -> classifier -> smoothing -> event.

Every tick (``VAD_TICK_S``, or the hop if shorter) it takes the newest ``window_s`` of audio from an
AudioSource and asks the voice-activity detector about its newest part; while someone speaks, the
newest window is classified every ``hop_s``. Silence is a state, not a gap: a
``SpeechEvent(speaking=False, label=None)`` is published as soon as speech ends. The frame loop
never waits for it; it reads :attr:`SpeechWorker.latest` (a lock-free reference swap).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional, Protocol

import numpy as np

from dsrter.edge.streams.events import EventBus, SpeechEvent
from dsrter.edge.labels import LABELS
from dsrter.edge.streams.smoothing import LabelSmoother
from dsrter.edge.infer.speech_features import to_mono_16k
from dsrter.edge.infer.voice_activity import EnergyVad, VoiceDetector

log = logging.getLogger(__name__)

Attribution = Callable[[], tuple[Optional[int], str]]
VAD_TICK_S = 0.25  # how often the speaking state is re-decided


class SpeechModel(Protocol):
    """What the worker needs of edge.speech_classifier.SpeechClassifier."""

    sample_rate: int
    window_s: float
    hop_s: float

    def is_speech(self, audio: np.ndarray) -> bool: ...

    def predict(self, audio: np.ndarray, start_s: Optional[float] = None) -> np.ndarray: ...


def _make_vad(model: SpeechModel) -> VoiceDetector:
    factory = getattr(model, "make_vad", None)  # SpeechClassifier has one; plain stand-ins use the gate
    return factory() if callable(factory) else EnergyVad(model.is_speech)


def _source_rate(source) -> int:
    sr = getattr(source, "sample_rate", 16000)
    return int(sr() if callable(sr) else sr)


class SpeechAnalyser:
    """One window at a time, no thread: used by the worker and by ``dsrter analyze``."""

    def __init__(self, model: SpeechModel, smoother: LabelSmoother, min_classify_s: float = 0.5,
                 hop_s: Optional[float] = None, vad: Optional[VoiceDetector] = None):
        self.model = model
        self.smoother = smoother
        self.min_classify_s = min_classify_s  # less speech audio than this is not classified yet
        self.hop_s = float(hop_s or model.hop_s)  # while speaking, classify at most this often
        self.vad = vad if vad is not None else _make_vad(model)
        self._last: Optional[SpeechEvent] = None

    def analyse(self, audio: np.ndarray, sample_rate: int, end_t: float, timestamp: Optional[float] = None,
                attribution: tuple[Optional[int], str] = (None, "none")) -> Optional[SpeechEvent]:
        """Event for the newest ``audio`` ending at stream time ``end_t``.

        None when nothing changed: too little audio for a state yet, or speech going on with its
        next classification not yet due."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if sample_rate != self.model.sample_rate and audio.size:
            if self.model.sample_rate != 16000:
                raise ValueError(f"speech model wants {self.model.sample_rate} Hz; only 16 kHz is supported")
            audio = to_mono_16k(audio, sample_rate)
        n = int(round(self.model.window_s * self.model.sample_rate))
        if audio.size < self.vad.lookback_s * self.model.sample_rate:
            return None
        if audio.size > n:
            audio = audio[-n:]
        start_t = end_t - audio.size / self.model.sample_rate
        ts = end_t if timestamp is None else timestamp
        prev = self._last
        speaking = self.vad.update(audio, end_t)
        if not speaking:
            if prev is not None and not prev.speaking and end_t - prev.window[1] < self.hop_s - 1e-6:
                return None  # still silent: the state is re-sent every hop, not every tick
            self.smoother.reset()  # the next utterance starts fresh (maybe another speaker)
            ev = SpeechEvent(timestamp=ts, speaking=False, scores=None, label=None, confidence=0.0,
                             window=(start_t, end_t), changed=prev is None or prev.speaking)
        elif audio.size < self.min_classify_s * self.model.sample_rate:
            return None
        elif prev is not None and prev.speaking and end_t - prev.window[1] < self.hop_s - 1e-6:
            return None
        else:
            if audio.size < n:  # the first window of a stream or a short clip: lead with silence
                audio = np.concatenate([np.zeros(n - audio.size, np.float32), audio])
            probs = np.asarray(self.model.predict(audio, end_t - self.model.window_s), np.float32).reshape(-1)
            sm = self.smoother.update(probs)
            label = LABELS[sm.index]
            track_id, how = attribution
            ev = SpeechEvent(timestamp=ts, speaking=True, scores=sm.scores, label=label, confidence=sm.confidence,
                             window=(start_t, end_t), changed=prev is None or prev.label != label,
                             track_id=track_id, attribution=how)
        self._last = ev
        return ev


class SpeechWorker:
    """Runs a SpeechAnalyser on ``source.latest(window_s)`` every ``hop_s`` on a daemon thread."""

    def __init__(self, source, model: SpeechModel, bus: EventBus, smoother: LabelSmoother,
                 hop_s: Optional[float] = None, attribution: Optional[Attribution] = None,
                 event_clock: Optional[Callable[[], float]] = None):
        self.source = source
        self.model = model
        self.bus = bus
        self.analyser = SpeechAnalyser(model, smoother, hop_s=hop_s)
        self.hop_s = min(self.analyser.hop_s, VAD_TICK_S)  # the tick: the speaking state is decided this often
        self._attribution = attribution
        self._event_clock = event_clock
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._last_end: Optional[float] = None
        self.latest: Optional[SpeechEvent] = None
        self.windows = 0
        self.last_ms = 0.0
        self.errors = 0

    def step(self) -> Optional[SpeechEvent]:
        """Analyse the newest window once; publishes and returns the event (None: no new audio)."""
        audio, end_t = self.source.latest(self.model.window_s)
        if audio is None or end_t is None or np.size(audio) == 0 or end_t == self._last_end:
            return None
        self._last_end = end_t
        t0 = time.perf_counter()
        attribution = self._attribution() if self._attribution else (None, "none")
        ts = self._event_clock() if self._event_clock else None
        ev = self.analyser.analyse(audio, _source_rate(self.source), end_t, ts, attribution)
        self.last_ms = (time.perf_counter() - t0) * 1000.0
        if ev is None:
            return None
        self.windows += 1
        self.latest = ev
        self.bus.publish(ev)
        return ev

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # a bad window or a source hiccup must not end the stream
                self.errors += 1
                log.exception("speech window failed")
            next_at += self.hop_s
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (slow CPU): skip missed hops, never queue them
                next_at = time.monotonic()
                delay = 0.0
            self._stop.wait(delay)

    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="speech-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
            self._thread = None
