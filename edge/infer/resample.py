"""Rational-ratio polyphase resampling in numpy, the same filter and alignment as ``scipy.signal.resample_poly``.

The runtime needs one resampler (microphones and video files at 48, 44.1, 32, 22.05 or 8 kHz ->
16 kHz) and should not carry scipy for it. This one designs the same low-pass filter as
``resample_poly`` with its default window: a windowed sinc with ``2 * 10 * max(up, down) + 1`` taps,
cut-off ``1 / max(up, down)`` of Nyquist, Kaiser window (beta 5), unit DC gain, times ``up``; pads
the filter as it does so that output sample ``k`` sits at input time ``k * down / up``; treats the
signal as zero outside its ends; and for float32 input sums each output's products in float32 in the
order scipy's upfirdn does (oldest input sample first), so on the same machine the output is the
same to the last bit or very nearly (tests/test_resample.py compares them).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

_KAISER_BETA = 5.0
_HALF_LEN_PER_RATE = 10  # resample_poly's filter half-length, in units of max(up, down)


@lru_cache(maxsize=16)
def lowpass(up: int, down: int) -> np.ndarray:
    """The float64 anti-aliasing filter for a reduced ratio ``up/down`` (unit DC gain, before ``* up``)."""
    max_rate = max(up, down)
    numtaps = 2 * _HALF_LEN_PER_RATE * max_rate + 1
    cutoff = 1.0 / max_rate  # relative to Nyquist
    m = np.arange(numtaps, dtype=np.float64) - 0.5 * (numtaps - 1)
    h = cutoff * np.sinc(cutoff * m)
    h = h * np.kaiser(numtaps, _KAISER_BETA)
    h = h / np.sum(h)
    h.setflags(write=False)
    return h


@lru_cache(maxsize=16)
def _plan(up: int, down: int, dtype: str) -> tuple[np.ndarray, int]:
    """Per-tap coefficients ``(taps, up)`` (row j: the tap that multiplies the input ``taps - 1 - j``
    samples before the newest one, for each phase) and how many leading outputs of the full
    convolution are dropped so that the output is centred (resample_poly's ``n_pre_remove``)."""
    half_len = _HALF_LEN_PER_RATE * max(up, down)
    h = lowpass(up, down).astype(dtype) * np.asarray(up, dtype)
    n_pre_pad = down - half_len % down  # zeros in front of the filter put output 0 at input time 0
    skip = (half_len + n_pre_pad) // down
    h = np.concatenate([np.zeros(n_pre_pad, dtype), h])
    taps = -(-len(h) // up)
    h = np.concatenate([h, np.zeros(taps * up - len(h), dtype)])
    # h[r * up + p] is tap r of phase p (r = 0: the newest input); rows reversed: oldest input first
    coef = np.ascontiguousarray(h.reshape(taps, up)[::-1])
    coef.setflags(write=False)
    return coef, skip


def resample(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """Resample 1-D ``x`` by ``up/down``: ``ceil(len(x) * up / down)`` samples, float32 for float32 input
    (float64 otherwise), as ``scipy.signal.resample_poly(x, up, down)`` gives them."""
    g = math.gcd(int(up), int(down))
    up, down = int(up) // g, int(down) // g
    if up < 1 or down < 1:
        raise ValueError(f"up and down must be >= 1, got {up}/{down}")
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"resample takes 1-D input, got shape {x.shape}")
    dtype = np.float32 if x.dtype == np.float32 else np.float64
    x = x.astype(dtype, copy=False)
    if up == down == 1:
        return x.copy()
    coef, skip = _plan(up, down, np.dtype(dtype).name)
    taps = coef.shape[0]
    n_out = -(-len(x) * up // down)
    # output k (after the `skip` dropped ones) uses phase t = pos % up and the `taps` inputs ending at
    # pos // up, pos = (k + skip) * down; the input is zero-padded by `taps - 1` in front and at the end
    pos = np.arange(skip, skip + n_out, dtype=np.int64) * down
    newest = pos // up
    padded: np.ndarray = np.zeros(taps - 1 + max(len(x), int(newest[-1]) + 1), dtype)
    padded[taps - 1 : taps - 1 + len(x)] = x
    # one tap at a time over all outputs, oldest input first: each output's products are added in
    # scipy's order, one rounding per product and per addition
    out: np.ndarray = np.zeros(n_out, dtype)
    if up == 1:  # a single phase: each tap's inputs are a strided slice
        first = int(newest[0])
        for j in range(taps):
            out += padded[first + j : first + j + (n_out - 1) * down + 1 : down] * coef[j, 0]
    else:
        phase = pos % up
        for j in range(taps):
            out += padded[newest + j] * coef[j][phase]
    return out
