"""``dsrter run``: the long-running service.

Start-up: load every model once (a missing or corrupt model is a clear error and a non-zero
exit), open the camera (or a media file named by ``camera.device``) and the microphone (a
missing device is reported and retried with backoff by the source itself; no microphone means
face-only), start the sinks, then tell systemd READY. The main loop reads the newest frame,
runs the face stream, draws the overlay, pings the watchdog and updates the STATUS line.
SIGTERM/SIGINT: stop the sources, flush the sinks (MQTT publishes "offline"), exit 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Optional

from dsrter.edge.app.notify import Notifier, watchdog_interval
from dsrter.edge.app.wiring import Streams
from dsrter.edge.config import Config
from dsrter.edge.display.backends import Display, NullDisplay, make_display
from dsrter.edge.display.overlay import draw_overlay
from dsrter.edge.infer.model_io import ModelError
from dsrter.edge.infer.models import Models, load_models
from dsrter.edge.sinks.base import Sink
from dsrter.edge.sinks.event_records import EventRecorder
from dsrter.edge.sinks.jsonl import JsonlSink
from dsrter.edge.sinks.mqtt import MqttSink
from dsrter.edge.sinks.stats import PipelineStats, status_line
from dsrter.edge.sources.base import AudioSource, Backoff, FrameSource
from dsrter.edge.sources.factory import is_live_device, make_frame_source
from dsrter.edge.sources.media_file import MediaError, MediaFileSource
from dsrter.edge.sources.microphone import MicSource
from dsrter.edge.streams.events import EventBus
from dsrter.edge.streams.face_stream import FrameResult

log = logging.getLogger("dsrter.daemon")

EXIT_OK = 0
EXIT_CONFIG = 2  # bad config, or a sink that cannot start with it
EXIT_MODEL = 3  # a model file or card missing or corrupt


class Daemon:
    """One run of the service; ``run()`` returns the exit code."""

    STATUS_EVERY_S = 5.0
    NO_FRAMES_S = 1.0  # without a frame for this long, fuse speech on its own
    LOG_EVERY_S = 60.0

    def __init__(self, cfg: Config, models: Models, duration: Optional[float] = None,
                 notifier: Optional[Notifier] = None, video_source: Optional[FrameSource] = None,
                 audio_source: Optional[AudioSource] = None):
        """``video_source``/``audio_source``: ready-made sources to use instead of the ones ``cfg`` names."""
        self.cfg = cfg
        self.models = models
        self.duration = duration
        self.bus = EventBus()
        self.stats = PipelineStats(self.bus)
        self.notifier = notifier if notifier is not None else Notifier()
        self.stop_event = threading.Event()
        self.stop_reason = "end"
        self.video: Optional[FrameSource] = None
        self.audio: Optional[AudioSource] = None
        self._given_video = video_source
        self._given_audio = audio_source
        self.streams = Streams.from_models(cfg, self.bus, models, event_clock=time.time)
        self.display: Optional[Display] = None
        self.sinks: list[tuple[str, Sink]] = []
        self.mqtt: Optional[MqttSink] = None
        self.recorder: Optional[EventRecorder] = None
        self._file_retry_at: Optional[float] = None
        self._file_backoff: Optional[Backoff] = None
        self._display_failed = False

    # -- control ---------------------------------------------------------------------------
    def request_stop(self, reason: str = "requested") -> None:
        if not self.stop_event.is_set():
            self.stop_reason = reason
            self.stop_event.set()

    def _on_signal(self, signum: int, _frame: Optional[FrameType]) -> None:
        self.request_stop(signal.Signals(signum).name)

    # -- sources ---------------------------------------------------------------------------
    def _is_file(self) -> bool:
        return self.cfg.camera.enabled and not is_live_device(self.cfg.camera.device)

    def _open_video(self) -> None:
        if self._given_video is not None:
            self.video = self._given_video
            self.video.open()
            return
        if not self.cfg.camera.enabled:
            self.stats.set_source("camera", "disabled")
            return
        src = make_frame_source(self.cfg.camera)
        if self._is_file():
            try:
                src.open()
            except MediaError as exc:
                self._file_backoff = self._file_backoff or Backoff(self.cfg.camera.reopen_initial_s,
                                                                   self.cfg.camera.reopen_max_s)
                delay = self._file_backoff.next_delay()
                log.warning("camera: %s; retrying in %.0f s", exc, delay)
                self.stats.set_source("camera", "missing", str(exc))
                self._file_retry_at = time.monotonic() + delay
                return
            self._file_retry_at = None
        else:
            src.open()  # never raises: a missing camera is a status, retried by the source
        self.video = src

    def _open_audio(self) -> None:
        if self.models.speech is None:
            self.stats.set_source("microphone", "disabled", "speech stream disabled")
            return
        if self._given_audio is not None:
            self._given_audio.start()
            self.audio = self._given_audio
        elif self._is_file():
            if not isinstance(self.video, MediaFileSource):  # not opened yet: retried with the video
                return
            audio = self.video.audio
            audio.start()
            if not audio.has_audio:
                log.warning("%s has no audio track: face-only", Path(str(self.cfg.camera.device)).name)
                self.stats.set_source("microphone", "missing", "the media file has no audio track")
                return
            self.audio = audio
        elif self.cfg.microphone.enabled:
            mic = MicSource(self.cfg.microphone)
            mic.start()  # never raises: no device = status "missing", face-only meanwhile
            self.audio = mic
        else:
            self.stats.set_source("microphone", "disabled")
            return
        self.streams.add_speech(self.audio, self.models.speech, event_clock=time.time).start()

    def _source_states(self) -> list[str]:
        """Update stats with the sources' states; returns overlay/status lines for the unhealthy ones."""
        lines = []
        for name, src in (("camera", self.video), ("microphone", self.audio)):
            if src is None:
                continue
            st = src.status
            self.stats.set_source(name, st.state, st.message or None)
            if st.state != "ok":
                lines.append(f"{name}: {st.state}" + (f" ({st.message})" if st.message else ""))
        if self.video is None and self._file_retry_at is not None:
            lines.append("camera: missing (media file not readable)")
        return lines

    # -- sinks -----------------------------------------------------------------------------
    def _start_sinks(self) -> None:
        # one recorder: the same records (ids, reasons) reach MQTT and the events file
        self.recorder = EventRecorder(self.cfg.mqtt.publish, self.cfg.device_id, self.models.versions)
        if self.cfg.mqtt.enabled:
            self.mqtt = MqttSink(self.cfg, self.bus, stats=self._stats_snapshot, model_versions=self.models.versions,
                                 recorder=self.recorder)
            self.mqtt.start()
            self.sinks.append(("mqtt", self.mqtt))
        if self.cfg.events_file.enabled:
            jsonl = JsonlSink(self.cfg.events_file, self.bus, device=self.cfg.device_id,
                              model_versions=self.models.versions, recorder=self.recorder)
            jsonl.start()
            self.sinks.append(("events file", jsonl))
        self.recorder.start(self.bus)

    def _stats_snapshot(self) -> dict:
        snap = self.stats.snapshot()
        w = self.streams.speech
        if w is not None:
            last = w.latest
            snap["speech"] = {"windows": w.windows, "errors": w.errors, "last_ms": round(w.last_ms, 1),
                              "speaking": bool(last.speaking) if last else False,
                              "overflows": self.audio.overflows if self.audio is not None else 0}
        return snap

    def _open_display(self) -> None:
        fps = float(getattr(self.video, "fps", 0) or self.cfg.camera.fps)
        audio_from = Path(str(self.cfg.camera.device)) if self._is_file() else None
        try:
            self.display = make_display(self.cfg.overlay, fps, audio_from)
        except Exception as exc:  # no X / no framebuffer: keep running headless, say why
            log.error("overlay backend %r unavailable, continuing without display: %s", self.cfg.overlay.backend, exc)
            self.display = NullDisplay()

    # -- main loop -------------------------------------------------------------------------
    def _show(self, res: FrameResult, status_lines: list[str]) -> None:
        if self.display is None or isinstance(self.display, NullDisplay) or self._display_failed:
            return
        try:
            fps = res.stats.fps if self.cfg.overlay.show_fps else None
            img = draw_overlay(res.frame.image, res.faces, res.speech, res.fused, fps, status_lines)
            self.display.show(img, res.frame.t)
        except Exception:
            self._display_failed = True
            log.exception("overlay display failed; continuing without it")

    def _status(self, lines: list[str]) -> str:
        text = status_line(self.stats.snapshot(), self.mqtt.connected if self.mqtt is not None else None)
        w = self.streams.speech
        if w is not None and w.latest is not None:
            text += ", speech " + ((w.latest.label or "none") if w.latest.speaking else "none")
        return text

    def _loop(self) -> None:
        wd = watchdog_interval()
        t_start = time.monotonic()
        next_wd = next_status = t_start
        next_log = t_start + self.LOG_EVERY_S
        last_frame_at = -1e9
        status_lines = self._source_states()
        while not self.stop_event.is_set():
            now = time.monotonic()
            if self.duration is not None and now - t_start >= self.duration:
                self.request_stop(f"--duration {self.duration:g} s reached")
                break
            if self.video is None and self._file_retry_at is not None and now >= self._file_retry_at:
                self._open_video()
                if self.video is not None:
                    self._open_audio()
            frame = self.video.read(timeout=0.1) if self.video is not None else None
            if frame is not None:
                last_frame_at = time.monotonic()
                res = self.streams.face.process(frame)
                self._show(res, status_lines)
            else:
                if self.video is None:
                    self.stop_event.wait(0.1)
                if self.video is not None and getattr(self.video, "ended", False):
                    self.request_stop("end of media file")
                    break
                if time.monotonic() - last_frame_at > self.NO_FRAMES_S:  # camera away: speech alone
                    self.streams.fuse_speech_alone(time.time())
            now = time.monotonic()
            if wd is not None and now >= next_wd:
                self.notifier.watchdog()
                next_wd = now + wd
            if now >= next_status:
                status_lines = self._source_states()
                text = self._status(status_lines)
                self.notifier.status(text)
                if now >= next_log:
                    log.info("status: %s", text)
                    next_log = now + self.LOG_EVERY_S
                next_status = now + self.STATUS_EVERY_S

    def _summary(self) -> str:
        snap = self.stats.snapshot()
        lat = snap.get("latency_ms", {}).get("total")
        text = f"{snap.get('frames', 0)} frames, {snap.get('dropped_frames', 0)} dropped, {snap.get('fps', 0.0):.1f} fps"
        if lat:
            text += f", frame latency p50 {lat['p50']:.1f} ms / p95 {lat['p95']:.1f} ms"
        w = self.streams.speech
        if w is not None:
            text += f", {w.windows} speech windows"
        return text

    def _shutdown(self) -> None:
        self.notifier.stopping(f"stopping: {self.stop_reason}")
        log.info("stopping (%s)", self.stop_reason)
        if self.streams.speech is not None:
            self.streams.speech.stop()
        if self.video is not None:
            try:
                self.video.close()
            except Exception:
                log.exception("closing the camera source failed")
        if self.audio is not None:
            try:
                self.audio.stop()
            except Exception:
                log.exception("closing the microphone source failed")
        if self.display is not None:
            try:
                self.display.close()
            except Exception:
                log.exception("closing the display failed")
        if self.recorder is not None:
            self.recorder.stop()  # held-back changes reach every sink before they stop
        for name, sink in reversed(self.sinks):
            try:
                sink.stop(timeout=5.0)
            except Exception:
                log.exception("stopping the %s sink failed", name)
        self.stats.close()
        self.models.close()

    def run(self) -> int:
        main_thread = threading.current_thread() is threading.main_thread()
        old = {}
        if main_thread:
            for sig in (signal.SIGTERM, signal.SIGINT):
                old[sig] = signal.signal(sig, self._on_signal)
        try:
            try:
                self._start_sinks()
            except Exception as exc:
                log.error("cannot start the sinks: %s", exc)
                self._shutdown()
                return EXIT_CONFIG
            self._open_video()
            self._open_audio()
            self._open_display()
            lines = self._source_states()
            for line in lines:
                log.warning("%s", line)
            if self.audio is None and self.models.speech is not None and not self._is_file() \
                    and not self.cfg.microphone.enabled:
                log.info("microphone disabled: face-only")
            self.notifier.ready(self._status(lines))
            log.info("running: %s (SIGTERM or Ctrl-C stops)", self._status(lines))
            self._loop()
        finally:
            if main_thread:
                for sig, handler in old.items():
                    signal.signal(sig, handler)
        self._shutdown()
        log.info("stopped cleanly: %s", self._summary())
        return EXIT_OK


def run_daemon(cfg: Config, duration: Optional[float] = None) -> int:
    """Load the models and run the daemon until SIGTERM/SIGINT/--duration; the exit code."""
    try:
        models = load_models(cfg)
    except ModelError as exc:
        log.error("cannot start: %s", exc)
        return EXIT_MODEL
    return Daemon(cfg, models, duration).run()

