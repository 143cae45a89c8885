"""Write the annotated frames to an MP4 (H.264, or MPEG-4 part 2 where libx264 is absent),
optionally with the audio track of the source file so the result keeps its sound.

Frames are encoded as they come into a temporary video-only file; ``close()`` then muxes
that video with the source's audio (AAC packets are copied as they are, any other codec
is re-encoded to AAC) into the final file, cut to the video's length, and removes the
temporary file. Without ``audio_from`` the video is just renamed into place, so a
half-written file never carries the final name.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np

from dsrter.edge.display.image import to_bgr

log = logging.getLogger(__name__)


def _pick_codec() -> str:
    import av

    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:
            continue
    raise RuntimeError("PyAV's FFmpeg has neither the libx264 nor the mpeg4 encoder")


class AnnotatedVideoWriter:
    """An MP4 writer for annotated frames.

    ``size`` is (width, height); odd sizes are rounded down to even (4:2:0 chroma needs it)
    and frames of another size are resized to it. ``write(image, t)`` places the frame at
    ``t`` seconds (minus ``t0``); without ``t`` frames follow each other at ``fps``.
    ``t0`` defaults to 0 when ``audio_from`` is given (``t`` is then the clip's own time,
    which keeps picture and sound in sync) and to the first frame's ``t`` otherwise.
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], audio_from: Path | None = None,
                 t0: float | None = None, codec: str | None = None, crf: int = 23) -> None:
        import av

        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.rate = Fraction(self.fps).limit_denominator(1001)
        w, h = int(size[0]), int(size[1])
        if w < 2 or h < 2:
            raise ValueError(f"video size must be at least 2x2, got {size}")
        self.size = (w - w % 2, h - h % 2)
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self._t0 = t0 if t0 is not None else (0.0 if self.audio_from is not None else None)
        self.codec = codec or _pick_codec()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.stem}.video-{os.getpid()}.mp4")
        self._out = av.open(str(self._tmp), mode="w", format="mp4")
        opts = {"crf": str(crf), "preset": "veryfast"} if self.codec == "libx264" else {}
        self._stream = self._out.add_stream(self.codec, rate=self.rate, options=opts)
        self._stream.width, self._stream.height = self.size
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.time_base = 1 / self.rate
        if self.codec != "libx264":
            self._stream.bit_rate = max(1_000_000, int(self.size[0] * self.size[1] * self.fps * 0.2))
        self._last_pts: Optional[int] = None
        self.frames_written = 0
        self.frames_skipped = 0  # two frames landing on the same tick: the later one is dropped
        self._closed = False

    @property
    def duration(self) -> float:
        """Seconds of video written so far (up to the end of the last frame)."""
        return 0.0 if self._last_pts is None else float((self._last_pts + 1) / self.rate)

    def write(self, image: np.ndarray, t: float | None = None) -> None:
        import av

        if self._closed:
            raise RuntimeError(f"{self.path}: writer is closed")
        img = to_bgr(image)
        if (img.shape[1], img.shape[0]) != self.size:
            img = cv2.resize(img, self.size, interpolation=cv2.INTER_AREA)
        if t is None:
            pts = 0 if self._last_pts is None else self._last_pts + 1
        else:
            if self._t0 is None:
                self._t0 = float(t)
            pts = int(round((float(t) - self._t0) * self.rate))
            if pts < 0 or (self._last_pts is not None and pts <= self._last_pts):
                self.frames_skipped += 1
                return
        frame = av.VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts = pts
        frame.time_base = 1 / self.rate
        for packet in self._stream.encode(frame):
            self._out.mux(packet)
        self._last_pts = pts
        self.frames_written += 1

    def close(self) -> Path:
        """Finish the file (muxing in the source audio if there is any); returns its path."""
        if self._closed:
            return self.path
        self._closed = True
        for packet in self._stream.encode(None):
            self._out.mux(packet)
        self._out.close()
        try:
            if self.frames_written and self.audio_from is not None and self._has_audio(self.audio_from):
                self._mux_audio()
                self._tmp.unlink(missing_ok=True)
            else:
                if self.audio_from is not None and self.frames_written:
                    log.info("%s has no audio track: the annotated video is silent", self.audio_from.name)
                os.replace(self._tmp, self.path)
        except Exception:
            self._tmp.unlink(missing_ok=True)
            raise
        log.info("annotated video written: %s (%d frames, %.2f s)", self.path, self.frames_written, self.duration)
        return self.path

    def __enter__(self) -> "AnnotatedVideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- audio ------------------------------------------------------------------------
    @staticmethod
    def _has_audio(path: Path) -> bool:
        import av

        try:
            with av.open(str(path)) as c:
                return bool(c.streams.audio)
        except (av.FFmpegError, OSError):
            log.warning("%s: cannot read its audio; the annotated video is silent", path)
            return False

    def _mux_audio(self) -> None:
        import av

        end = self.duration
        final_tmp = self.path.with_name(f".{self.path.stem}.final-{os.getpid()}.mp4")
        with av.open(str(self._tmp)) as vin, av.open(str(self.audio_from)) as ain, \
                av.open(str(final_tmp), mode="w", format="mp4") as out:
            vs_in = vin.streams.video[0]
            as_in = ain.streams.audio[0]
            vs_out = out.add_stream_from_template(vs_in)
            origin = float(ain.start_time) / 1_000_000 if ain.start_time is not None else 0.0
            copy = as_in.codec_context.name == "aac"
            if copy:
                as_out = out.add_stream_from_template(as_in)
                audio_packets = self._copied_audio(ain, as_in, origin, end)
            else:
                rate = int(as_in.rate or 48000)
                if rate not in (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000):
                    rate = 48000
                layout = "mono" if (as_in.codec_context.channels or 1) == 1 else "stereo"
                as_out = out.add_stream("aac", rate=rate, layout=layout)
                as_out.bit_rate = 128_000
                audio_packets = self._encoded_audio(ain, as_in, as_out, origin, end, rate, layout)

            def video_packets() -> Iterator:
                for p in vin.demux(vs_in):
                    if p.dts is not None:
                        yield p

            # Interleave by time so players need no large buffers.
            streams = [(video_packets(), vs_out), (audio_packets, as_out)]
            heads = [next(it, None) for it, _ in streams]
            while live := [(k, h) for k, h in enumerate(heads) if h is not None]:
                i, packet = min(live, key=lambda kh: float(kh[1].dts * kh[1].time_base))
                packet.stream = streams[i][1]
                out.mux(packet)
                heads[i] = next(streams[i][0], None)
        os.replace(final_tmp, self.path)

    @staticmethod
    def _copied_audio(ain, as_in, origin: float, end: float) -> Iterator:
        tb = as_in.time_base
        shift = int(round(origin / tb))
        for p in ain.demux(as_in):
            if p.dts is None or p.pts is None:
                continue
            p.pts -= shift
            p.dts -= shift
            if p.pts < 0:
                continue
            if float(p.pts * tb) >= end:
                break
            yield p

    @staticmethod
    def _encoded_audio(ain, as_in, as_out, origin: float, end: float, rate: int, layout: str) -> Iterator:
        import av

        frame_size = as_out.codec_context.frame_size or 1024
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate, frame_size=frame_size)
        next_pts = None
        limit = int(end * rate)

        def encode(frames):
            nonlocal next_pts
            for g in frames:
                if next_pts is None:
                    next_pts = max(0, int(round(((g.time or 0.0) - origin) * rate)))
                if next_pts >= limit:
                    return
                g.pts = next_pts
                g.time_base = Fraction(1, rate)
                next_pts += g.samples
                yield from as_out.encode(g)

        for f in ain.decode(as_in):
            yield from encode(resampler.resample(f))
        yield from encode(resampler.resample(None))
        yield from as_out.encode(None)
