"""Small real media files for the source/writer tests, made with PyAV in the test itself.

Video frame ``i`` is a flat grey of level ``gray_level(i)`` (so a decoded frame tells its
index) with a white square moving left to right. The audio is silence until ``tone_at``
seconds and then a sine tone, so a test can check that audio and video share one clock.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Optional

import numpy as np


def gray_level(i: int) -> int:
    return 20 + (i * 23) % 210


def make_clip(path: Path, *, width: int = 160, height: int = 120, fps: int = 25, seconds: float = 2.0,
              audio: Optional[str] = "aac", audio_rate: int = 48000, channels: int = 1,
              tone_hz: float = 1000.0, tone_at: float = 0.5, video_codec: Optional[str] = None) -> Path:
    """Write a clip. ``audio``: None (no track), "aac" or "pcm_s16le" (needs .mkv/.mov).
    ``video_codec`` defaults to libx264 (even sizes) or ffv1 for odd sizes (needs .mkv)."""
    import av

    path = Path(path)
    odd = width % 2 or height % 2
    vcodec = video_codec or ("ffv1" if odd else "libx264")
    n_frames = int(round(seconds * fps))
    with av.open(str(path), mode="w") as out:
        vs = out.add_stream(vcodec, rate=fps)
        vs.width, vs.height = width, height
        vs.pix_fmt = "yuv444p" if vcodec == "ffv1" else "yuv420p"
        if vcodec == "libx264":
            vs.options = {"preset": "ultrafast", "crf": "18", "bframes": "0"}
        as_ = None
        if audio:
            layout = "mono" if channels == 1 else "stereo"
            as_ = out.add_stream(audio, rate=audio_rate, layout=layout)
            fmt = "fltp" if audio == "aac" else "s16"
        for i in range(n_frames):
            img = np.full((height, width, 3), gray_level(i), np.uint8)
            x = int((width - 8) * i / max(1, n_frames - 1))
            img[height // 3: height // 3 + 8, x:x + 8] = 255
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        if as_ is not None:
            total = int(seconds * audio_rate)
            t = np.arange(total) / audio_rate
            sig = np.where(t >= tone_at, 0.5 * np.sin(2 * np.pi * tone_hz * t), 0.0).astype(np.float32)
            block = 1024
            for start in range(0, total, block):
                chunk = sig[start:start + block]
                planes = np.repeat(chunk[None, :], channels, axis=0)
                if fmt == "fltp":
                    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes), format="fltp", layout=layout)
                else:
                    inter = (planes.T.reshape(1, -1) * 32767).astype(np.int16)
                    frame = av.AudioFrame.from_ndarray(inter, format="s16", layout=layout)
                frame.sample_rate = audio_rate
                frame.pts = start
                frame.time_base = Fraction(1, audio_rate)
                for p in as_.encode(frame):
                    out.mux(p)
            for p in as_.encode(None):
                out.mux(p)
    return path


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def audio_only(src: Path, dst: Path, codec: str) -> Path:
    """Write ``src``'s audio track, decoded and encoded again with ``codec`` ("aac", "flac",
    "pcm_s16le", ...), into ``dst``: a file with no video stream (its container from the suffix)."""
    import av

    dst = Path(dst)
    with av.open(str(src)) as inp, av.open(str(dst), mode="w") as out:
        a = inp.streams.audio[0]
        rate = a.rate or 48000
        layout = "mono" if (a.codec_context.channels or 1) == 1 else "stereo"
        fmt = "fltp" if codec == "aac" else ("s16" if codec in ("flac", "pcm_s16le") else "fltp")
        os_ = out.add_stream(codec, rate=rate, layout=layout)
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        for frame in inp.decode(a):
            for f in resampler.resample(frame):
                for p in os_.encode(f):
                    out.mux(p)
        for f in resampler.resample(None):
            for p in os_.encode(f):
                out.mux(p)
        for p in os_.encode(None):
            out.mux(p)
    return dst
