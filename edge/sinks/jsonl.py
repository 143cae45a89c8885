"""JSON-lines event file with size-based rotation (``events_file`` in the config).

Each line is one record of the :class:`EventRecorder` the daemon shares between its sinks: the
very records MQTT publishes on ``face``, ``speech`` and ``emotion`` (same id, reason and
payload), so one id names one event in both places. Retained states, stats and per-frame timing
are not written. (The complete per-frame timeline of a clip is what ``dsrter analyze`` writes.)

Writing happens on a background thread, so a slow SD card never stalls the frame loop; the
queue between them is bounded (``MAX_QUEUE`` lines), and lines that do not fit are counted in
``dropped``. Rotation: when the file would exceed ``max_bytes`` it becomes ``<path>.1`` (older
ones shift to ``.2`` ... ``.<backups>``, the oldest is deleted); ``backups: 0`` just starts the
file again. A path that is not a regular file (a named pipe, ``/dev/stdout``) is written as a
stream and never rotated. Lines are flushed at least every ``FLUSH_INTERVAL_S``, and on ``stop()``.
"""

from __future__ import annotations

import logging
import os
import queue
import stat
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from dsrter.edge.config import EventsFileConfig, PublishPolicy
from dsrter.edge.sinks.event_records import EventRecorder, Record
from dsrter.edge.streams.events import EventBus

log = logging.getLogger(__name__)

MAX_QUEUE = 10_000
FLUSH_INTERVAL_S = 1.0
_STOP = object()


class JsonlSink:
    """Writes bus events to a rotating JSON-lines file; ``start()``/``stop()``."""

    def __init__(self, cfg: EventsFileConfig, bus: EventBus, device: str = "dsrter",
                 model_versions: Optional[dict[str, str]] = None, recorder: Optional[EventRecorder] = None) -> None:
        self.cfg = cfg
        self.bus = bus
        self.path = Path(cfg.path)
        # the daemon shares one recorder with the MQTT sink; alone, the sink runs its own (default policy)
        self._own_recorder = recorder is None
        self.recorder = recorder or EventRecorder(PublishPolicy(), device, model_versions)
        self.written = 0
        self.dropped = 0
        self.rotations = 0
        self._q: queue.Queue = queue.Queue(MAX_QUEUE)
        self._thread: Optional[threading.Thread] = None
        self._unsubscribe: Optional[Callable[[], None]] = None
        self._file: Any = None
        self._size = 0
        self._rotating = True  # a regular file; a pipe or a device is never rotated

    def start(self) -> None:
        if self._thread is not None:
            return
        if not self.cfg.enabled:
            log.info("events file disabled (events_file.enabled: false)")
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open()
        self._thread = threading.Thread(target=self._run, name="dsrter-jsonl", daemon=True)
        self._thread.start()
        self._unsubscribe = self.recorder.listen(self)
        if self._own_recorder:
            self.recorder.start(self.bus)
        log.info("events file: writing %s (rotate at %d bytes, keep %d)", self.path, self.cfg.max_bytes, self.cfg.backups)

    def stop(self, timeout: float = 5.0) -> None:
        if self._own_recorder:
            self.recorder.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._thread is None:
            return
        try:
            self._q.put(_STOP, timeout=timeout)
        except queue.Full:  # pragma: no cover - writer wedged
            log.warning("events file: writer queue full at stop")
        self._thread.join(timeout)
        if self._thread.is_alive():  # the writer owns the file: closing it here would lose what it buffers next
            log.warning("events file: the writer is still blocked after %.0f s; it closes %s when it gets through",
                        timeout, self.path)
        self._thread = None
        if self.dropped:
            log.warning("events file: %d event(s) dropped because the writer fell behind", self.dropped)

    # -- recorder side ----------------------------------------------------------------------------
    def on_record(self, rec: Record) -> None:
        line = rec.payload + "\n"
        try:
            self._q.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def on_faces_gone(self, track_ids: list[int]) -> None:
        """Face tracks leaving are not events; nothing to write."""

    # -- writer thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        last_flush = time.monotonic()
        while True:
            try:
                item = self._q.get(timeout=FLUSH_INTERVAL_S)
            except queue.Empty:
                item = None
            if item is _STOP:
                break
            if item is not None:
                try:
                    self._write(item)
                except OSError as exc:
                    self.dropped += 1
                    log.warning("events file: write to %s failed: %s", self.path, exc)
            if self._file is not None and time.monotonic() - last_flush >= FLUSH_INTERVAL_S:
                try:
                    self._file.flush()
                except OSError:  # pragma: no cover
                    pass
                last_flush = time.monotonic()
        # drain what was queued before the stop marker
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                try:
                    self._write(item)
                except OSError:
                    self.dropped += 1
        self._close()

    def _write(self, line: str) -> None:
        data = line.encode("utf-8")
        if self._rotating and self._size > 0 and self._size + len(data) > self.cfg.max_bytes:
            self._rotate()
        if self._file is None:
            self._open()
        self._file.write(data)
        self._size += len(data)
        self.written += 1

    def _open(self) -> None:
        self._file = open(self.path, "ab")
        self._rotating = stat.S_ISREG(os.fstat(self._file.fileno()).st_mode)
        self._size = self._file.tell() if self._rotating else 0  # a pipe has no position

    def _close(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError:  # pragma: no cover
                pass
            self._file.close()
            self._file = None

    def _rotate(self) -> None:
        self._close()
        n = self.cfg.backups
        if n <= 0:
            self.path.unlink(missing_ok=True)
        else:
            oldest = self.path.with_name(f"{self.path.name}.{n}")
            oldest.unlink(missing_ok=True)
            for i in range(n - 1, 0, -1):
                src = self.path.with_name(f"{self.path.name}.{i}")
                if src.exists():
                    os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self.rotations += 1
        self._open()
