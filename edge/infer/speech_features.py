"""Speech features computed by the same code in training and on the device.

Everything here is numpy plus openSMILE's native library (no scipy, pandas, Torch, TensorFlow or
librosa), so the daemon can import it on a Raspberry Pi.  The pieces, in the order the speech stream
uses them:

* :func:`to_mono_16k` - any sample rate / channel count of float or integer PCM -> float32 mono 16 kHz;
* :func:`is_speech` - an energy gate: silence and near-silence never reach the classifier;
* :func:`split_windows` - fixed-length windows (2 s, hop 0.5 s by default) over a clip;
* :func:`log_mel` - frame-level log-mel spectrogram (numpy FFT, HTK mel filterbank);
* :class:`EgemapsExtractor` - openSMILE eGeMAPSv02 functionals (88 values per window), computed by
  openSMILE's C library driven directly (:mod:`dsrter.edge.infer.smile_api`), the same values as the
  ``opensmile`` Python package gives;
* :func:`normalise_features` - optional per-window mean removal, then the z-score whose
  statistics were fitted on the training split and stored in the model card.

The recipe that fixes every constant is a plain dict (:func:`default_recipe`) stored in the model
card, so a third party can recompute the inputs from the card alone.
"""

from __future__ import annotations

import math
import sys as _sys
import threading
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from dsrter.edge.infer import smile_api
from dsrter.edge.infer.resample import resample
from dsrter.edge.infer.stream_grid import BlockCache, SharesBlocks, grid_starts

# openSMILE's native library must be loaded before TensorFlow's: the reverse order corrupts the heap on
# the first openSMILE call (seen with TF 2.21 + opensmile 2.6). So it is loaded when this module is
# imported, and a process where TensorFlow came first is refused at the first extractor.
_TF_BEFORE_OPENSMILE = "tensorflow" in _sys.modules and not smile_api.loaded()
smile_api.preload()

TARGET_SR = 16000

#: Human-readable description of the recipe, copied into the model card.
RECIPE_TEXT = (
    "Audio: float32 mono 16 kHz in [-1, 1] (integer PCM divided by its full scale; other rates resampled "
    "with a polyphase filter, channels averaged). One window = window_s * 16000 samples. "
    "log-mel: frames of win_length samples every hop_length samples with no padding (frames = "
    "1 + (N - win_length) // hop_length), each frame multiplied by a periodic Hann window, zero-padded to "
    "n_fft, power spectrum |rfft|^2, multiplied by an HTK-mel triangular filterbank of n_mels bands between "
    "fmin and fmax (unit-peak triangles, mel = 2595 log10(1 + f / 700)), then natural log of max(power, "
    "log_floor); array shape (frames, n_mels). If window_cmn is true, the per-band mean over the window's "
    "frames is subtracted. eGeMAPS: openSMILE eGeMAPSv02 functionals (88 values, openSMILE's own order, "
    "see egemaps.names) of the same window levelled as one; or, when egemaps has block_s, the mean of the "
    "functionals of the block_s-second blocks lying wholly inside the window on a grid of stream time "
    "(multiples of block_s from the stream's or clip's first sample), each block levelled on its own. Both are z-scored with the card's mean/std (fitted on the "
    "training split only) and clipped to +-clip. Model inputs: 'logmel' (1, frames, n_mels) and "
    "'egemaps' (1, 88), quantised with each input tensor's own scale/zero point; output: 7 probabilities "
    "in the card's label order. VAD: the window's DC is removed, frame energies in dBFS (10 log10 mean "
    "x^2) are computed on the log-mel framing; the window is speech if at least min_active_s seconds of "
    "frames exceed threshold_dbfs. Silent windows are not classified. Level (when the recipe has 'level'): "
    "before both features the window is scaled so that the mean power of its frames within active_range_db of "
    "the loudest frame (and above floor_dbfs, unless floor_selects is false) equals target_dbfs, with the gain "
    "capped at max_gain_db; a window whose loudest frame is below floor_dbfs is left as it is. Then, "
    "when the level has dither_dbfs, white Gaussian noise of that RMS level is added (the first window_samples "
    "values of numpy.random.default_rng(dither_seed).standard_normal, the same in every window), so the "
    "quantisation noise of a quiet input and a studio's digital silence look alike."
)


def default_recipe(
    window_s: float = 2.0,
    hop_s: float = 0.5,
    n_mels: int = 64,
    window_cmn: bool = False,
    vad_threshold_dbfs: float = -50.0,
    vad_min_active_s: float = 0.25,
    level_target_dbfs: float | None = -26.0,
    level_dither_dbfs: float | None = -60.0,
    egemaps_block_s: float | None = None,
) -> dict[str, Any]:
    """The feature recipe: every constant the device needs to reproduce the training inputs."""
    win_length, hop_length = 400, 160
    n = int(round(window_s * TARGET_SR))
    return {
        "sample_rate": TARGET_SR,
        "window_s": float(window_s),
        "hop_s": float(hop_s),
        "window_samples": n,
        "logmel": {
            "n_fft": 512,
            "win_length": win_length,
            "hop_length": hop_length,
            "n_mels": int(n_mels),
            "fmin": 50.0,
            "fmax": 8000.0,
            "log_floor": 1e-6,
            "window": "hann (periodic)",
            "mel_scale": "htk",
            "center": False,
            "frames": 1 + (n - win_length) // hop_length,
        },
        "egemaps": {"feature_set": "eGeMAPSv02", "level": "functionals", "n": 88,
                    **({} if egemaps_block_s is None else {"block_s": float(egemaps_block_s)})},
        "window_cmn": bool(window_cmn),
        "clip": 5.0,
        "vad": {"threshold_dbfs": float(vad_threshold_dbfs), "min_active_s": float(vad_min_active_s)},
        **({} if level_target_dbfs is None else {"level": {
            "target_dbfs": float(level_target_dbfs), "active_range_db": 30.0, "floor_dbfs": -90.0, "floor_selects": False, "max_gain_db": 60.0,
            **({} if level_dither_dbfs is None else {"dither_dbfs": float(level_dither_dbfs), "dither_seed": 0})}}),
    }


# --------------------------------------------------------------------------------------------
# audio conversion


def to_mono_16k(audio: np.ndarray, sample_rate: int, channel_axis: int = -1) -> np.ndarray:
    """Convert audio of any rate and channel count to float32 mono at 16 kHz.

    ``audio`` is 1-D (mono) or 2-D; for 2-D input ``channel_axis`` says which axis holds the channels
    (-1: ``(frames, channels)`` as soundfile and sounddevice give it; 0: ``(channels, frames)`` as PyAV's
    planar ``to_ndarray`` gives it).  Integer PCM is scaled to [-1, 1) by its full-scale value.  Channels
    are averaged; other rates are resampled by the rational ratio with :func:`dsrter.edge.infer.resample.resample`
    (``scipy.signal.resample_poly``'s filter and alignment, without scipy).
    Raises ValueError for empty input, more than 2 dimensions, a bad rate or non-finite samples.
    """
    x = np.asarray(audio)
    if x.ndim == 0 or x.size == 0:
        raise ValueError("audio is empty")
    if x.ndim > 2:
        raise ValueError(f"audio must be 1-D (mono) or 2-D (multichannel), got shape {x.shape}")
    if not (isinstance(sample_rate, (int, np.integer)) or float(sample_rate).is_integer()) or sample_rate <= 0:
        raise ValueError(f"sample rate must be a positive integer, got {sample_rate!r}")
    sample_rate = int(sample_rate)
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        half = (int(info.max) + 1) / (2 if info.min == 0 else 1)  # full scale of the signed range
        offset = half if info.min == 0 else 0.0  # unsigned PCM (e.g. 8-bit WAV) is centred on half
        x = (x.astype(np.float64) - offset) / half
    x = x.astype(np.float32, copy=False)
    if x.ndim == 2:
        x = x.mean(axis=channel_axis, dtype=np.float64).astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains NaN or infinite samples")
    if sample_rate != TARGET_SR:
        ratio = Fraction(TARGET_SR, sample_rate)
        x = resample(x, ratio.numerator, ratio.denominator)
    return np.ascontiguousarray(x, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# windows and the energy gate


def split_windows(audio: np.ndarray, window: int, hop: int) -> list[tuple[int, np.ndarray]]:
    """``(start_sample, window)`` pairs covering ``audio``.

    Windows start every ``hop`` samples; when the tail after the last full window is longer than half
    a hop, one more window aligned to the end is added.  A clip shorter than one window gives a single
    window zero-padded at the end.
    """
    x = np.asarray(audio, dtype=np.float32)
    n = len(x)
    if n == 0:
        return []
    if n <= window:
        out = np.zeros(window, np.float32)
        out[:n] = x
        return [(0, out)]
    starts = list(range(0, n - window + 1, hop))
    if n - (starts[-1] + window) > hop // 2:
        starts.append(n - window)
    return [(s, x[s : s + window]) for s in starts]


def _frames(x: np.ndarray, win_length: int, hop_length: int) -> np.ndarray:
    if len(x) < win_length:
        x = np.pad(x, (0, win_length - len(x)))
    return np.lib.stride_tricks.sliding_window_view(x, win_length)[::hop_length]


def frame_dbfs(audio: np.ndarray, recipe: dict[str, Any]) -> np.ndarray:
    """Per-frame energy in dBFS (DC removed), on the log-mel framing."""
    lm = recipe["logmel"]
    x = np.asarray(audio, dtype=np.float64)
    x = x - x.mean() if len(x) else x
    fr = _frames(x, lm["win_length"], lm["hop_length"])
    return 10.0 * np.log10(np.mean(fr * fr, axis=1) + 1e-12)


def is_speech(audio: np.ndarray, recipe: dict[str, Any], threshold_dbfs: float | None = None) -> bool:
    """True when at least ``vad.min_active_s`` seconds of frames exceed the dBFS threshold."""
    thr = recipe["vad"]["threshold_dbfs"] if threshold_dbfs is None else threshold_dbfs
    if len(audio) == 0:
        return False
    db = frame_dbfs(audio, recipe)
    active_s = np.count_nonzero(db > thr) * recipe["logmel"]["hop_length"] / recipe["sample_rate"]
    return bool(active_s >= recipe["vad"]["min_active_s"])


# --------------------------------------------------------------------------------------------
# log-mel


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """HTK-mel triangular filters with unit peaks, shape ``(n_fft // 2 + 1, n_mels)``."""
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fb = np.zeros((len(freqs), n_mels), dtype=np.float64)
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - lo) / max(mid - lo, 1e-9)
        down = (hi - freqs) / max(hi - mid, 1e-9)
        fb[:, m] = np.maximum(0.0, np.minimum(up, down))
    fb.setflags(write=False)
    return fb.astype(np.float32)


@lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    w = (0.5 - 0.5 * np.cos(2.0 * math.pi * np.arange(n) / n)).astype(np.float32)
    w.setflags(write=False)
    return w


def log_mel(audio: np.ndarray, recipe: dict[str, Any]) -> np.ndarray:
    """Log-mel spectrogram ``(frames, n_mels)`` float32 of a 16 kHz mono window."""
    lm = recipe["logmel"]
    x = np.asarray(audio, dtype=np.float32)
    fr = _frames(x, lm["win_length"], lm["hop_length"]) * _hann(lm["win_length"])
    spec = np.fft.rfft(fr, n=lm["n_fft"], axis=1)
    power = (spec.real * spec.real + spec.imag * spec.imag).astype(np.float32)
    fb = mel_filterbank(recipe["sample_rate"], lm["n_fft"], lm["n_mels"], lm["fmin"], lm["fmax"])
    return np.log(np.maximum(power @ fb, lm["log_floor"])).astype(np.float32)


# --------------------------------------------------------------------------------------------
# eGeMAPS


class EgemapsExtractor:
    """openSMILE eGeMAPSv02 functionals of one window; openSMILE's configuration is parsed once per rate
    and thread (an openSMILE instance is reset between windows, so each thread has its own).

    Raises :class:`dsrter.edge.infer.smile_api.SmileUnavailable` (one line naming what to install) when
    openSMILE's native library is not installed."""

    def __init__(self) -> None:
        if _TF_BEFORE_OPENSMILE:
            raise RuntimeError(
                "TensorFlow was imported before openSMILE in this process, which makes openSMILE corrupt the heap; "
                "import dsrter.edge.infer.speech_features (or opensmile) before tensorflow/keras"
            )
        self._files = smile_api.locate()
        self._local = threading.local()
        self.names: list[str] = list(self._smile(TARGET_SR).names)

    def _smile(self, sample_rate: int) -> smile_api.SmileFunctionals:
        mine: dict[int, smile_api.SmileFunctionals] = self._local.__dict__.setdefault("smiles", {})
        if sample_rate not in mine:
            mine[sample_rate] = smile_api.SmileFunctionals(sample_rate, files=self._files)
        return mine[sample_rate]

    def __call__(self, audio: np.ndarray, sample_rate: int = TARGET_SR) -> np.ndarray:
        v = self._smile(int(sample_rate))(np.ascontiguousarray(audio, dtype=np.float32))
        # openSMILE leaves a few functionals undefined when no voiced frame exists; 0 is its own
        # value for those elsewhere and the z-score maps it to a finite input.
        return np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)


_EGEMAPS: EgemapsExtractor | None = None


def egemaps(audio: np.ndarray, sample_rate: int = TARGET_SR) -> np.ndarray:
    """eGeMAPSv02 functionals (88,) float32 with a process-wide extractor."""
    global _EGEMAPS
    if _EGEMAPS is None:
        _EGEMAPS = EgemapsExtractor()
    return _EGEMAPS(audio, sample_rate)


def egemaps_names() -> list[str]:
    global _EGEMAPS
    if _EGEMAPS is None:
        _EGEMAPS = EgemapsExtractor()
    return list(_EGEMAPS.names)


# --------------------------------------------------------------------------------------------
# one window -> model inputs


def check_window(audio: np.ndarray, recipe: dict[str, Any]) -> np.ndarray:
    """Validate one device window: 1-D float, exactly ``window_samples`` long, finite."""
    x = np.asarray(audio)
    n = recipe["window_samples"]
    if x.ndim != 1:
        raise ValueError(f"speech window must be 1-D mono at {recipe['sample_rate']} Hz, got shape {x.shape}")
    if len(x) != n:
        raise ValueError(
            f"speech window must have {n} samples ({recipe['window_s']} s at {recipe['sample_rate']} Hz), got {len(x)}"
        )
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError("speech window contains NaN or infinite samples")
    return x


def active_level_dbfs(audio: np.ndarray, recipe: dict[str, Any]) -> float | None:
    """Level of the voiced part: mean power of the frames within ``active_range_db`` of the loudest
    frame (and above ``floor_dbfs`` unless ``floor_selects`` is false, so the same frames count at any
    gain); None when no frame is above the floor (silence)."""
    lv = recipe["level"]
    db = frame_dbfs(audio, recipe)
    if db.size == 0 or db.max() < lv["floor_dbfs"]:
        return None
    active = db >= db.max() - lv["active_range_db"]
    if lv.get("floor_selects", True):  # older cards: the floor also bounded the frames averaged
        active &= db >= lv["floor_dbfs"]
    return float(10.0 * np.log10(np.mean(10.0 ** (db[active] / 10.0))))


def normalise_level(audio: np.ndarray, recipe: dict[str, Any]) -> np.ndarray:
    """Scale a window so its voiced part sits at ``level.target_dbfs`` (gain capped at ``max_gain_db``),
    then add the fixed ``level.dither_dbfs`` noise floor when the recipe has one.

    Makes the features independent of microphone gain and distance; recipes without a ``level``
    entry (older cards) leave the audio as it is."""
    lv = recipe.get("level")
    if not lv:
        return audio
    level = active_level_dbfs(audio, recipe)
    if level is None:
        return audio
    gain_db = min(lv["target_dbfs"] - level, lv["max_gain_db"])
    y: np.ndarray = np.asarray(audio * np.float32(10.0 ** (gain_db / 20.0)), np.float32)
    if lv.get("dither_dbfs") is not None:
        y = y + _dither(len(y), int(lv.get("dither_seed", 0))) * np.float32(10.0 ** (lv["dither_dbfs"] / 20.0))
    return y  # float32 throughout


@lru_cache(maxsize=4)
def _dither(n: int, seed: int) -> np.ndarray:
    """Fixed unit-RMS white noise for :func:`normalise_level` (read-only, shared by every window)."""
    d = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    d.flags.writeable = False
    return d


class WindowEgemaps(SharesBlocks):
    """The eGeMAPS input of a window as the recipe defines it, for one stream (or clip).

    Recipes without ``egemaps.block_s``: the functionals of the whole window, levelled as one. With
    it: the mean of the functionals of the ``block_s`` blocks on a grid of stream time that lie wholly
    inside the window, each levelled on its own (so its value does not depend on the window) and
    computed once: at a 0.5 s hop, 1 s blocks and 2 s windows, one window in two computes a block
    of half its length and the other none. Not thread-safe: one per stream.
    """

    def __init__(self, recipe: dict[str, Any], cache_size: int = 8):
        self.recipe = recipe
        self.sample_rate = int(recipe["sample_rate"])
        block_s = recipe["egemaps"].get("block_s")
        self.block = None if block_s is None else int(round(float(block_s) * self.sample_rate))
        if self.block is not None and not 0 < self.block <= recipe["window_samples"] // 2:
            raise ValueError(f"eGeMAPS block {block_s} s: must be > 0 and at most half the window")
        self._cache = BlockCache(cache_size)

    def _block(self, x: np.ndarray) -> np.ndarray:
        return egemaps(normalise_level(x, self.recipe), self.sample_rate)

    def __call__(self, window: np.ndarray, start: int = 0, levelled: np.ndarray | None = None,
                 valid: int | None = None) -> np.ndarray:
        """(88,) for the window ``window`` (not levelled) starting at stream sample ``start``;
        ``levelled``: the window already levelled as one, if the caller has it; ``valid``: how many of
        its samples are audio (a clip shorter than a window is zero-padded; blocks stay in the audio,
        and a clip shorter than a block is one block of what it has)."""
        if self.block is None:
            x = normalise_level(window, self.recipe) if levelled is None else levelled
            return egemaps(x, self.sample_rate)
        n = len(window) if valid is None else int(valid)
        starts = grid_starts(int(start), n, self.block)
        if not starts:
            return self._block(np.ascontiguousarray(window[:n], np.float32))
        rows = [self._cache.get(window[s - start : s - start + self.block], self._block) for s in starts]
        return np.mean(rows, axis=0).astype(np.float32)


def raw_window_features(audio: np.ndarray, recipe: dict[str, Any], start: int = 0,
                        eg: WindowEgemaps | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Un-normalised ``(log-mel (frames, n_mels), eGeMAPS (88,))`` of one checked window starting at
    stream sample ``start`` (``eg``: the stream's :class:`WindowEgemaps`, which keeps its blocks)."""
    raw = check_window(audio, recipe)
    x = normalise_level(raw, recipe)
    return log_mel(x, recipe), (eg or WindowEgemaps(recipe))(raw, start, levelled=x)


def normalise_features(
    logmel: np.ndarray, egemaps_vec: np.ndarray, recipe: dict[str, Any], stats: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the recipe's normalisation: optional per-window CMN, the stored z-score, clipping.

    Works on one window (``(T, M)``, ``(88,)``) or a batch (``(N, T, M)``, ``(N, 88)``)."""
    lm: np.ndarray = np.asarray(logmel, dtype=np.float32)
    if recipe.get("window_cmn"):
        lm = lm - lm.mean(axis=-2, keepdims=True)
    c = float(recipe.get("clip", 5.0))
    lm = (lm - np.asarray(stats["logmel_mean"], np.float32)) / np.asarray(stats["logmel_std"], np.float32)
    eg = (np.asarray(egemaps_vec, np.float32) - np.asarray(stats["egemaps_mean"], np.float32)) / np.asarray(
        stats["egemaps_std"], np.float32
    )
    return np.clip(lm, -c, c).astype(np.float32), np.clip(eg, -c, c).astype(np.float32)


def fit_stats(logmels: np.ndarray, egemaps_mat: np.ndarray, recipe: dict[str, Any]) -> dict[str, list[float]]:
    """z-score statistics from training windows (after the optional CMN), as JSON-able lists."""
    lm = np.asarray(logmels, dtype=np.float32)
    if recipe.get("window_cmn"):
        lm = lm - lm.mean(axis=-2, keepdims=True)
    flat = lm.reshape(-1, lm.shape[-1]).astype(np.float64)
    eg = np.asarray(egemaps_mat, dtype=np.float64)
    floor = 1e-3
    return {
        "logmel_mean": flat.mean(axis=0).round(6).tolist(),
        "logmel_std": np.maximum(flat.std(axis=0), floor).round(6).tolist(),
        "egemaps_mean": eg.mean(axis=0).round(6).tolist(),
        "egemaps_std": np.maximum(eg.std(axis=0), floor).round(6).tolist(),
    }
