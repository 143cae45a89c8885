"""Voice activity on the newest audio: Silero VAD (ported to TFLite, run by LiteRT) or the old energy gate.

A detector is fed the newest audio of a stream at every tick and answers "is someone speaking
now?" from its last ``lookback_s`` seconds, so the state turns to "no speech" within one tick plus
``lookback_s`` after speech ends. :class:`SileroVad` keeps the network's recurrent state between
ticks and only runs on samples it has not seen (32 ms chunks); a gap or a jump back in stream time
restarts it on the newest ``warmup_s``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from dsrter.edge.infer.model_io import ModelError, TFLiteModel

SAMPLE_RATE = 16000


class VoiceDetector(Protocol):
    """What the speech stream needs of a voice-activity detector."""

    lookback_s: float

    def update(self, audio: np.ndarray, end_t: float) -> bool:
        """Feed the newest 16 kHz mono ``audio`` ending at stream time ``end_t``; True while speaking."""
        ...

    def reset(self) -> None: ...


class SileroVad:
    """Silero VAD v6 (16 kHz, 512-sample chunks with 64 samples of context), streaming.

    Runs ``silero_vad.tflite``, the Silero team's ONNX model rebuilt by ``dsrter convert vad``."""

    CHUNK = 512
    CONTEXT = 64

    def __init__(self, model_path: str | Path, threshold: float = 0.5, lookback_s: float = 0.125,
                 warmup_s: float = 0.5, threads: int = 1):
        self._model = TFLiteModel(model_path, threads=threads)
        shapes = {d["name"]: tuple(d["shape"]) for d in self._model.inputs}
        if sorted(shapes.values()) != [(1, self.CONTEXT + self.CHUNK), (2, 1, 128)]:
            raise ModelError(f"{model_path}: not a Silero VAD model (inputs {shapes})")
        self._audio_in = next(i for i, d in enumerate(self._model.inputs) if len(d["shape"]) == 2)
        self._prob_out = next(i for i, d in enumerate(self._model.outputs) if tuple(d["shape"]) == (1, 1))
        self.threshold = float(threshold)
        self.lookback_s = float(lookback_s)
        self.warmup_s = float(warmup_s)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros((1, self.CONTEXT), np.float32)
        self._done_t: float | None = None  # stream time up to which chunks were run
        self._recent: list[tuple[float, float]] = []  # (chunk end time, probability)

    def chunk_probs(self, audio: np.ndarray) -> np.ndarray:
        """Probabilities of consecutive chunks of ``audio`` (continuing the stream state)."""
        x = np.asarray(audio, np.float32).reshape(-1)
        n = len(x) // self.CHUNK
        out = np.empty(n, np.float32)
        for i in range(n):
            inp = np.concatenate([self._context, x[None, i * self.CHUNK : (i + 1) * self.CHUNK]], axis=1)
            args = (inp, self._state) if self._audio_in == 0 else (self._state, inp)
            outs = self._model.run(*args)
            prob, self._state = outs[self._prob_out], outs[1 - self._prob_out]
            self._context = inp[:, -self.CONTEXT :]
            out[i] = float(prob.reshape(-1)[0])
        return out

    def update(self, audio: np.ndarray, end_t: float) -> bool:
        x = np.asarray(audio, np.float32).reshape(-1)
        start_t = end_t - len(x) / SAMPLE_RATE
        if self._done_t is None or self._done_t < start_t - 1e-6 or self._done_t > end_t + 1e-6:
            self.reset()  # first call, a gap or a new stream: warm up on the newest audio
            self._done_t = max(start_t, end_t - self.warmup_s)
        first = int(round((self._done_t - start_t) * SAMPLE_RATE))
        n = (len(x) - first) // self.CHUNK
        if n > 0:
            probs = self.chunk_probs(x[first : first + n * self.CHUNK])
            t0 = self._done_t
            self._recent.extend((t0 + (i + 1) * self.CHUNK / SAMPLE_RATE, float(p)) for i, p in enumerate(probs))
            self._done_t = t0 + n * self.CHUNK / SAMPLE_RATE
        horizon = end_t - self.lookback_s - self.CHUNK / SAMPLE_RATE
        self._recent = [(t, p) for t, p in self._recent if t > horizon]
        return any(p >= self.threshold for _, p in self._recent)


class EnergyVad:
    """The older energy gate on the newest ``lookback_s``: enough loud frames means speech.

    Kept for speech cards that name no voice-activity model (and for tests with stand-in models);
    it cannot tell speech from music or noise."""

    def __init__(self, is_speech, lookback_s: float = 0.5):
        self._is_speech = is_speech
        self.lookback_s = float(lookback_s)

    def reset(self) -> None:
        pass

    def update(self, audio: np.ndarray, end_t: float) -> bool:
        x = np.asarray(audio, np.float32).reshape(-1)
        return bool(self._is_speech(x[-int(self.lookback_s * SAMPLE_RATE) :]))
