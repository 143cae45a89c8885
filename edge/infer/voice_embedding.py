"""The speech model's voice branch: a speaker encoder's embedding of 1 s partials, and its emotion head.

A GE2E speaker encoder (three LSTM layers and a linear + ReLU layer, run by LiteRT) turns one
second of audio into 512 values: its L2-normalised 256-value embedding and the top LSTM layer's
state averaged over time. Partials start on a grid of stream time (the card's ``grid_s``, by default
the partial's length), so overlapping windows share them: on a 1 s grid a 2 s window averages the
partials wholly inside it (one or two) and, at a 0.5 s hop, one partial in two windows is new; on a
0.5 s grid it averages three, one of them new. A small cache keyed by the partial's samples keeps
the others (:mod:`dsrter.edge.infer.stream_grid`).
Each partial is scaled to ``LEVEL_DBFS`` RMS first (the encoder's input level), so the branch does
not follow the microphone gain. The head is a linear softmax over those values, fitted by
``dsrter convert voice``; the classifier fuses its probabilities with the emotion network's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dsrter.edge.infer.model_io import ModelError, TFLiteModel
from dsrter.edge.infer.stream_grid import BlockCache, SharesBlocks, grid_starts
from dsrter.edge.labels import NUM_CLASSES

SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS = 400, 160, 40
LEVEL_DBFS = -30.0


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / log_step, f * 3.0 / 200.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(log_step * (m - 15.0)), m * 200.0 / 3.0)


def slaney_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangles on Slaney's mel scale, each scaled to unit area (2 / bandwidth)."""
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sample_rate / 2.0)), n_mels + 2))
    lower = (bins[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    upper = (edges[2:, None] - bins[None, :]) / np.diff(edges)[1:, None]
    tri = np.maximum(0.0, np.minimum(lower, upper))
    return tri * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def mel_power(x: np.ndarray, fbank: np.ndarray) -> np.ndarray:
    """(frames, n_mels) mel power of a centred STFT (zero padding, periodic Hann window)."""
    x = np.pad(np.asarray(x, np.float64), N_FFT // 2)
    n = 1 + (len(x) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][:n]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)
    return (np.abs(np.fft.rfft(frames * window, N_FFT)) ** 2) @ fbank.T


def at_level(x: np.ndarray, dbfs: float = LEVEL_DBFS) -> np.ndarray:
    """``x`` scaled to ``dbfs`` RMS (digital silence stays silent)."""
    x = np.asarray(x, np.float64)
    rms = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    return x * (10.0 ** (dbfs / 20.0) / rms) if rms > 1e-9 else x


def partial_layout(spec: dict[str, Any]) -> tuple[float, float]:
    """``(partial_s, grid_s)`` of a card's voice section: 1 s partials by default, each starting where
    the one before ends unless ``grid_s`` says otherwise (TypeError/ValueError for non-numbers)."""
    partial_s = float(spec.get("partial_s", 1.0))
    return partial_s, float(spec.get("grid_s", partial_s))


def fuse(main: np.ndarray, voice: np.ndarray, weight: float) -> np.ndarray:
    """Weighted geometric mean of two probability vectors (last axis), renormalised."""
    z = (1.0 - weight) * np.log(np.maximum(main, 1e-6)) + weight * np.log(np.maximum(voice, 1e-6))
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


class VoiceHead:
    """Linear softmax over the window's voice features (standardisation folded into the weights)."""

    def __init__(self, spec: dict[str, Any], dim: int):
        try:
            self.weights = np.asarray(spec["weights"], np.float32)
            self.bias = np.asarray(spec["bias"], np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"voice head malformed ({exc!r})") from None
        if self.weights.shape != (dim, NUM_CLASSES) or self.bias.shape != (NUM_CLASSES,):
            raise ModelError(f"voice head has shapes {self.weights.shape}, {self.bias.shape}; expected ({dim}, {NUM_CLASSES}) and ({NUM_CLASSES},)")

    def __call__(self, features: np.ndarray) -> np.ndarray:
        z = features @ self.weights + self.bias
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


class VoiceEmbedder(SharesBlocks):
    """The encoder file (input ``(1, frames, 40)`` mel power; output ``(1, dim)``: the L2-normalised
    embedding, then the top layer's mean state) with its partial grid and cache."""

    def __init__(self, model_path: str | Path, partial_s: float = 1.0, threads: int = 1, cache_size: int = 8, grid_s: float | None = None):
        self.model = TFLiteModel(model_path, threads=threads)
        shape = tuple(int(v) for v in self.model.inputs[0]["shape"])
        if len(self.model.inputs) != 1 or len(shape) != 3 or shape[2] != N_MELS:
            raise ModelError(f"{model_path}: expected one (1, frames, {N_MELS}) input, got {[tuple(d['shape']) for d in self.model.inputs]}")
        self.frames = shape[1]
        out = [tuple(int(v) for v in d["shape"]) for d in self.model.outputs]
        if len(out) != 1 or len(out[0]) != 2:
            raise ModelError(f"{model_path}: expected one (1, dim) output, got {out}")
        self.dim = out[0][1]
        self.partial_samples = int(round(partial_s * SAMPLE_RATE))
        self.grid_samples = int(round((partial_s if grid_s is None else grid_s) * SAMPLE_RATE))  # partials start on this grid
        if not 0 < self.grid_samples <= self.partial_samples:
            raise ModelError(f"{model_path}: partial grid {grid_s} s must be > 0 and at most the partial ({partial_s} s)")
        if self.partial_samples < (self.frames - 1) * HOP:
            raise ModelError(f"{model_path}: {self.frames} frames need {partial_s} s partials or longer")
        self.fbank = slaney_filterbank()
        t = np.arange(self.partial_samples) / SAMPLE_RATE
        tone = (0.1 * np.sin(2 * np.pi * 150.0 * t) * (1.0 + np.sin(2 * np.pi * 3.0 * t))).astype(np.float32)
        try:  # a damaged file can load and still fail (or give garbage) when run: find out now, not mid-stream
            probe = self._encode(tone)
        except (RuntimeError, ValueError) as exc:
            detail = " ".join(str(exc).split())[:200]
            raise ModelError(f"{model_path}: LiteRT cannot run this model (file corrupt?): {detail}") from None
        if not np.all(np.isfinite(probe)) or np.abs(probe).max() > 1e3:
            raise ModelError(f"{model_path}: the encoder gives non-finite or absurd values on a test tone (file corrupt?)")
        self._cache = BlockCache(cache_size)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        mel = mel_power(at_level(x), self.fbank)[: self.frames].astype(np.float32)
        return self.model.run(mel[None])[0].reshape(-1).astype(np.float32)

    def partial(self, audio: np.ndarray) -> np.ndarray:
        """The 512 (embedding + state) values of one partial of ``partial_samples`` samples."""
        return self._cache.get(audio, self._encode)

    def window(self, audio: np.ndarray, start: int = 0) -> np.ndarray:
        """Mean over the grid partials inside one window starting at stream sample ``start``."""
        starts = grid_starts(int(start), len(audio), self.partial_samples, self.grid_samples)
        if not starts:
            raise ValueError(f"a window of {len(audio)} samples holds no {self.partial_samples}-sample partial")
        parts = [self.partial(audio[s - start : s - start + self.partial_samples]) for s in starts]
        return np.mean(parts, axis=0)
