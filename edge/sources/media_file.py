"""A media file (video + its audio track) as a frame source and an audio source on one clock.

``MediaFileSource`` decodes the video with PyAV; its ``audio`` property is a
:class:`MediaAudio` that decodes the same file's audio track, resampled to 16 kHz mono
float32. Both use the clip's own timeline in seconds, measured from the container's
start (so a video that starts 0.8 s after the audio has its first frame at t=0.8 and
the two stay in sync).

* ``realtime=True`` (``dsrter run`` with a file as the camera): frames are released at
  the clip's pace from the first ``read()`` on; a consumer that falls behind gets the
  newest due frame and the skipped ones count as ``dropped``, like a live camera. The
  audio follows the same wall-clock position.
* ``realtime=False`` (``dsrter analyze``): every frame, as fast as the consumer reads;
  the audio clock is the time of the frame last returned, so once ``read()`` returned a
  frame at ``t`` all audio up to ``t`` is readable with ``audio.latest()``. After the last
  frame the clock moves to the end of the clip so the audio tail is readable too.

Video and audio are decoded from two independent demuxers of the same file, so neither
has to buffer the other's packets however the file is interleaved.

A file with an audio track and no video stream (a .wav, .flac, .m4a, or an .mp4 without
video) is read by :class:`AudioFileSource`: the same :class:`MediaAudio`, on a clock the
caller moves (``dsrter analyze`` steps it one speech hop at a time).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Protocol

import cv2
import numpy as np

from dsrter.edge.sources.base import TARGET_RATE, Frame, SourceStatus, StatusReporter
from dsrter.edge.sources.ring_buffer import RingBuffer

log = logging.getLogger(__name__)

_EMPTY = np.zeros(0, dtype=np.float32)
_MAX_GAP_FILL_S = 60.0  # silence inserted for a hole in the audio track, at most


class MediaError(RuntimeError):
    """A media file that is missing, unreadable or has no usable video."""


def _open_container(path: Path):
    import av

    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if not path.is_file():
        raise MediaError(f"{path}: not a regular file")
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{path}: cannot read as a media file ({exc})") from None


def probe_tracks(path: str | Path) -> tuple[bool, bool]:
    """(has a video stream, has an audio track) of a media file; :class:`MediaError` when it cannot be read."""
    container = _open_container(Path(path))
    try:
        return bool(container.streams.video), bool(container.streams.audio)
    finally:
        container.close()


def _short_of_declared(track: str, decoded_s: float, declared_s: Optional[float]) -> Optional[str]:
    """A problem line when a track decoded clearly less than the duration the file declares (more than
    0.5 s and 5% short: a truncated file), else None."""
    if declared_s and decoded_s < declared_s - max(0.5, 0.05 * declared_s):
        return f"{track} decoded up to {decoded_s:.2f} s of the {declared_s:.2f} s the file declares (truncated?)"
    return None


class _Timeline(Protocol):
    """What :class:`MediaAudio` reads of the source that owns it: the file and the clock."""

    path: Path
    loop: bool
    loop_period: Optional[float]

    def clip_time(self) -> float: ...


def _origin(container) -> float:
    """The container start in seconds: t=0 of both streams."""
    st = container.start_time
    return float(st) / 1_000_000 if st is not None else 0.0


def to_bgr(frame: Any) -> np.ndarray:
    """A decoded video frame as BGR uint8.

    Limited-range 4:2:0 frames (what H.264 and most camera files decode to) are converted by OpenCV
    from the decoder's own planes: its integer conversion gives the same pixels on x86-64 and
    aarch64, where FFmpeg's swscale rounds differently per CPU (up to 2 levels here), so one file
    gives the same detections and labels on a Raspberry Pi as on a PC. Other formats go through
    swscale."""
    if (frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0
            and getattr(frame, "color_range", 0) != 2):  # 2: full ("JPEG") range, which OpenCV's conversion is not for
        return cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24")


class MediaFileSource:
    """A :class:`~dsrter.edge.sources.base.FrameSource` decoding a video file (and, via
    :attr:`audio`, its audio track) with PyAV."""

    def __init__(self, path: str | Path, realtime: bool = True, loop: bool = False,
                 clock: Callable[[], float] = time.monotonic, audio_buffer_s: float = 30.0) -> None:
        self.path = Path(path)
        self.realtime = realtime
        self.loop = loop
        self._clock = clock
        self._reporter = StatusReporter(log, f"media {self.path.name}")
        self.dropped = 0
        self.ended = False
        self.width = 0
        self.height = 0
        self.fps = 30.0
        self.duration: Optional[float] = None  # seconds from the container start, when known
        self.loop_period: Optional[float] = None  # clip length used to offset looped playback
        self._container = None
        self._frames: Optional[Iterator[tuple[float, Any]]] = None
        self._pending: Optional[Frame] = None
        self._index = 0
        self._loop_offset = 0.0
        self._last_raw_t = 0.0
        self._start_wall: Optional[float] = None
        self._clip_t = 0.0  # fast mode: time of the frame last returned
        self._bad_packets = 0
        self.problems: list[str] = []  # damage found while decoding (a truncated or corrupt file)
        self._lock = threading.Lock()
        self._audio = MediaAudio(self, buffer_s=audio_buffer_s)

    # -- info ------------------------------------------------------------------------
    @property
    def status(self) -> SourceStatus:
        return self._reporter.status

    @property
    def audio(self) -> "MediaAudio":
        """The file's audio track as an AudioSource (``has_audio`` False when there is none)."""
        return self._audio

    def clip_time(self) -> float:
        """Current position on the clip's timeline (what the audio source reads up to)."""
        if self.realtime:
            if self._start_wall is None:
                return 0.0
            return self._clock() - self._start_wall
        return self._clip_t

    # -- FrameSource -------------------------------------------------------------------
    def open(self) -> None:
        """Open and probe the file; raises :class:`MediaError` if it is missing, corrupt or
        has no video stream. Also probes the audio track (see :attr:`audio`)."""
        with self._lock:
            if self._container is not None:
                return
            container = _open_container(self.path)
            if not container.streams.video:
                container.close()
                raise MediaError(f"{self.path}: no video stream")
            vs = container.streams.video[0]
            self.width, self.height = int(vs.codec_context.width), int(vs.codec_context.height)
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            self.fps = float(rate) if rate else 30.0
            if container.duration is not None:
                self.duration = float(container.duration) / 1_000_000
                self.loop_period = self.duration
            self._container = container
            self._frames = self._decode(container)
            # Decode the first frame now: a file that opens but cannot decode is an error here,
            # not a silent end later.
            try:
                self._pending = self._next_frame_locked()
            except MediaError:
                self._close_locked()
                raise
            if self._pending is None:
                self._close_locked()
                raise MediaError(f"{self.path}: no decodable video frames")
            self.ended = False
            self._reporter.set("ok", f"{self.width}x{self.height} @ {self.fps:.2f} fps"
                                     + (f", {self.duration:.2f} s" if self.duration else "")
                                     + (", realtime" if self.realtime else ", as fast as possible")
                                     + (", looping" if self.loop else ""))
        self._audio._probe()

    def read(self, timeout: Optional[float] = None) -> Optional[Frame]:
        if self.realtime:
            return self._read_realtime(timeout)
        with self._lock:
            if self._container is None or self.ended:
                return None
            if self._pending is not None:
                frame, self._pending = self._pending, None
            else:
                frame = self._next_frame_locked()
            if frame is None:
                self._finish_locked()
                return None
            self._clip_t = frame.t
            return frame

    def close(self) -> None:
        with self._lock:
            self._close_locked()
        self._audio.stop()

    # -- internals ---------------------------------------------------------------------
    def _close_locked(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                log.debug("closing %s failed", self.path, exc_info=True)
        self._container = None
        self._frames = None
        self._pending = None

    def _finish_locked(self) -> None:
        self.ended = True
        end = max(self._last_raw_t + self._loop_offset + 1.0 / self.fps,
                  (self.duration or 0.0) + self._loop_offset)
        self._clip_t = max(self._clip_t, end)
        self._reporter.set("ended", f"end of file after {self._index} frames")
        if self._bad_packets:
            log.warning("%s: %d video packets could not be decoded", self.path.name, self._bad_packets)
            self.problems.append(f"{self._bad_packets} video packets could not be decoded")
        short = _short_of_declared("video", self._last_raw_t + 1.0 / self.fps, self.duration)
        if self._loop_offset == 0.0 and short:
            self.problems.append(short)

    def _decode(self, container) -> Iterator[tuple[float, Any]]:
        import av

        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        origin = _origin(container)
        step = 1.0 / self.fps
        last: Optional[float] = None
        try:
            for packet in container.demux(vs):
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    self._bad_packets += 1
                    if self._bad_packets == 1:
                        log.warning("%s: undecodable video packet skipped (%s)", self.path.name, exc)
                    continue
                for f in frames:
                    t = (f.time - origin) if f.time is not None else ((last + step) if last is not None else 0.0)
                    last = t
                    yield t, f
        except av.FFmpegError as exc:  # a truncated/corrupt tail: end where the damage starts
            log.warning("%s: demuxing stopped: %s", self.path.name, exc)
            self.problems.append(f"video demuxing stopped after {last or 0.0:.2f} s: {exc}")

    def _next_frame_locked(self) -> Optional[Frame]:
        while self._frames is not None:
            try:
                t, f = next(self._frames)
            except StopIteration:
                if not self.loop or self._index == 0:
                    return None
                self._restart_locked()
                continue
            try:
                image = to_bgr(f)
            except Exception as exc:
                raise MediaError(f"{self.path}: cannot convert a decoded frame: {exc}") from None
            self._last_raw_t = t
            frame = Frame(image=image, t=t + self._loop_offset, index=self._index)
            self._index += 1
            return frame
        return None

    def _restart_locked(self) -> None:
        period = max(self.loop_period or 0.0, self._last_raw_t + 1.0 / self.fps)
        self.loop_period = period
        self._loop_offset += period
        if self._container is not None:
            self._container.close()
        self._container = _open_container(self.path)
        self._frames = self._decode(self._container)
        log.info("%s: looping (offset %.2f s)", self.path.name, self._loop_offset)

    def _read_realtime(self, timeout: Optional[float]) -> Optional[Frame]:
        with self._lock:
            if self._container is None or self.ended:
                return None
            if self._start_wall is None:
                self._start_wall = self._clock()
        deadline = self._clock() + (timeout or 0.0)
        while True:
            with self._lock:
                if self._container is None:
                    return None
                pos = self._clock() - self._start_wall
                chosen: Optional[Frame] = None
                while True:
                    if self._pending is None:
                        self._pending = self._next_frame_locked()
                    if self._pending is None:
                        break
                    if self._pending.t > pos:
                        break
                    if chosen is not None:
                        self.dropped += 1
                    chosen, self._pending = self._pending, None
                if chosen is not None:
                    return chosen
                if self._pending is None:
                    self._finish_locked()
                    return None
                due = self._start_wall + self._pending.t
            wait = min(due, deadline) - self._clock()
            if wait <= 0:
                if self._clock() >= deadline:
                    return None
                continue
            time.sleep(wait)


class MediaAudio:
    """A media file's audio track as an :class:`~dsrter.edge.sources.base.AudioSource`.

    Decoding is driven by ``latest()``: it decodes up to the owning source's clip time
    and returns audio ending exactly there. With no audio track ``has_audio`` is False,
    ``status.state`` is ``missing`` and ``latest()`` returns an empty array.
    """

    sample_rate = TARGET_RATE

    def __init__(self, source: _Timeline, buffer_s: float = 30.0) -> None:
        self._src = source
        self._reporter = StatusReporter(log, f"media {source.path.name} audio",
                                        SourceStatus(state="missing", message="not opened"))
        self.overflows = 0
        self.has_audio = False
        self.source_rate: Optional[int] = None
        self.source_channels: Optional[int] = None
        self.ring = RingBuffer(int(round(buffer_s * TARGET_RATE)))
        self._lock = threading.Lock()
        self._container = None
        self._frames: Optional[Iterator] = None
        self._probed = False
        self._eof = False
        self._end_t = 0.0  # clip time just after the last sample in the ring
        self._offset = 0.0  # loop offset of the current pass
        self._bad_packets = 0
        self.problems: list[str] = []  # damage found while decoding

    @property
    def status(self) -> SourceStatus:
        return self._reporter.status

    @property
    def end_t(self) -> float:
        """Clip time just after the last sample decoded so far (the track's end once ``status`` is ``ended``)."""
        return self._end_t

    def start(self) -> None:
        """Open the audio track (the owning source's ``open()`` already probes it)."""
        try:
            self._probe()
        except MediaError as exc:
            self._reporter.set("missing", str(exc), error=str(exc))

    def stop(self) -> None:
        with self._lock:
            self._close_locked()

    def latest(self, seconds: float) -> tuple[np.ndarray, float]:
        target = self._src.clip_time()
        try:
            if not self._probed:
                self.start()
            with self._lock:
                if not self.has_audio:
                    return _EMPTY.copy(), target
                self._decode_until_locked(target)
                end = min(target, self._end_t)
                excess = int(round((self._end_t - end) * TARGET_RATE))
                want = int(round(max(0.0, seconds) * TARGET_RATE))
                samples = self.ring.latest(want + excess)
                if excess:
                    samples = samples[: max(0, samples.shape[0] - excess)]
                return samples[-want:] if want else _EMPTY.copy(), end
        except Exception as exc:  # never raise into the speech stream
            log.exception("%s: audio decoding failed", self._src.path.name)
            self._reporter.set("missing", "audio decoding failed", error=str(exc))
            return _EMPTY.copy(), target

    # -- internals ---------------------------------------------------------------------
    def _close_locked(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                log.debug("closing audio of %s failed", self._src.path, exc_info=True)
        self._container = None
        self._frames = None

    def _probe(self) -> None:
        with self._lock:
            if self._probed:
                return
            container = _open_container(self._src.path)
            self._probed = True
            if not container.streams.audio:
                container.close()
                self.has_audio = False
                self._reporter.set("missing", "the file has no audio track; speech stream idle")
                return
            a = container.streams.audio[0]
            self.source_rate = int(a.rate or a.codec_context.sample_rate or 0)
            self.source_channels = int(a.codec_context.channels or 0)
            self.has_audio = True
            self._container = container
            self._frames = self._decode(container)
            self._reporter.set("ok", f"audio track {a.codec_context.name} {self.source_rate} Hz, "
                                     f"{self.source_channels} ch -> {TARGET_RATE} Hz mono")

    def _decode(self, container) -> Iterator[tuple[float, np.ndarray]]:
        """Yields (clip time of the first sample, 16 kHz mono float32 samples)."""
        import av

        a = container.streams.audio[0]
        origin = _origin(container)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=TARGET_RATE)

        def emit(frames):
            for g in frames:
                x = g.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                yield ((g.time - origin) if g.time is not None else None), x

        try:
            for packet in container.demux(a):
                try:
                    decoded = packet.decode()
                except av.FFmpegError as exc:
                    self._bad_packets += 1
                    if self._bad_packets == 1:
                        log.warning("%s: undecodable audio packet skipped (%s)", self._src.path.name, exc)
                        self.problems.append(f"undecodable audio packets skipped ({exc})")
                    continue
                for f in decoded:
                    yield from emit(resampler.resample(f))
            yield from emit(resampler.resample(None))
        except av.FFmpegError as exc:
            log.warning("%s: audio demuxing stopped: %s", self._src.path.name, exc)
            self.problems.append(f"audio demuxing stopped: {exc}")

    def _append_locked(self, t: Optional[float], x: np.ndarray) -> None:
        if t is not None:
            t += self._offset
            gap = t - self._end_t
            if gap > 1.5 / TARGET_RATE:  # a hole (or a late start): fill with silence
                n = int(round(min(gap, _MAX_GAP_FILL_S) * TARGET_RATE))
                self.ring.write(np.zeros(n, dtype=np.float32))
                self._end_t += n / TARGET_RATE
            elif gap < -1.5 / TARGET_RATE:  # overlap: drop what we already have
                cut = int(round(-gap * TARGET_RATE))
                x = x[cut:]
        if x.shape[0]:
            self.ring.write(x)
            self._end_t += x.shape[0] / TARGET_RATE

    def _decode_until_locked(self, target: float) -> None:
        while self._end_t < target and not self._eof:
            item = next(self._frames, None) if self._frames is not None else None
            if item is not None:
                self._append_locked(*item)
                continue
            # end of this pass
            period = self._src.loop_period
            if self._src.loop and period:
                self._offset += period
                if self._end_t < self._offset:  # track shorter than the clip: silence to the loop point
                    self._append_locked(0.0, _EMPTY)  # times are relative to the pass
                self._close_locked()
                self._container = _open_container(self._src.path)
                self._frames = self._decode(self._container)
                continue
            if self._src.loop:  # period not known yet: wait for the video to find it
                return
            self._eof = True
            self._close_locked()
            self._reporter.set("ended", f"end of audio track at {self._end_t:.2f} s")


class AudioFileSource:
    """A media file's audio track on its own (the file has no video stream), read on a clock the
    caller moves with :meth:`advance_to`: :attr:`audio` returns the audio up to that clip time."""

    loop = False
    loop_period: Optional[float] = None

    def __init__(self, path: str | Path, audio_buffer_s: float = 30.0) -> None:
        self.path = Path(path)
        self.duration: Optional[float] = None  # seconds from the container start, when known
        self._t = 0.0
        self._audio = MediaAudio(self, buffer_s=audio_buffer_s)

    @property
    def audio(self) -> MediaAudio:
        return self._audio

    @property
    def ended(self) -> bool:
        """The clock has passed the last decodable sample (or decoding failed)."""
        return self._audio.status.state != "ok" and self._t >= self._audio.end_t

    def open(self) -> None:
        """Probe the file; raises :class:`MediaError` if it is missing, unreadable or has no audio track."""
        container = _open_container(self.path)
        try:
            if not container.streams.audio:
                raise MediaError(f"{self.path}: no audio track")
            if container.duration is not None:
                self.duration = float(container.duration) / 1_000_000
        finally:
            container.close()
        self._audio._probe()

    def clip_time(self) -> float:
        return self._t

    def advance_to(self, t: float) -> None:
        """Move the clock forward to clip time ``t`` (never back)."""
        self._t = max(self._t, float(t))

    def problems(self) -> list[str]:
        """Damage found while decoding, including a track that ends well before the declared duration."""
        out = list(self._audio.problems)
        short = _short_of_declared("audio", self._audio.end_t, self.duration)
        if self.ended and short:
            out.append(short)
        return out

    def close(self) -> None:
        self._audio.stop()
