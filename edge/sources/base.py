"""What every source shares: the frame and audio source protocols, status, retry backoff.

A *frame source* hands the face stream the newest picture it has: a live camera
(:class:`dsrter.edge.sources.camera.CameraSource`) or a media file played as if it
were one (:class:`dsrter.edge.sources.media_file.MediaFileSource`). An *audio source*
hands the speech stream its newest samples (the microphone, or the media file's track).
Sources never raise out of ``read()``/``latest()``; trouble shows up in ``status`` (and
once in the log per change), and a lost device is reopened with :class:`Backoff`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from typing import Literal, Optional, Protocol, runtime_checkable

import numpy as np

TARGET_RATE = 16000  # Hz: what every audio source delivers (mono float32)

SourceState = Literal["ok", "missing", "reopening", "ended"]


@dataclass
class Frame:
    """One decoded picture.

    ``image`` is BGR uint8 HxWx3 as decoded. Sources may deliver odd sizes (and a
    capture driver may hand over 1 or 4 channels), so consumers must cope.
    ``t`` is seconds on the source clock: 0 at the start of a file (the container's
    start, so audio and video share it), ``time.monotonic()`` based for a live camera.
    ``index`` counts frames the source produced, including ones dropped before
    anybody read them, so a gap in ``index`` is a dropped frame.
    """

    image: np.ndarray
    t: float
    index: int


@dataclass(frozen=True)
class SourceStatus:
    """A snapshot of a source's health (sources hand out a new object on every change).

    ``state``: ``ok`` delivering; ``missing`` never opened (no device / no track);
    ``reopening`` was working, failed, and is being retried with backoff;
    ``ended`` a file source reached its end (not looping).
    """

    state: SourceState = "ok"
    message: str = ""
    reopen_count: int = 0
    last_error: Optional[str] = None

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class FrameSource(Protocol):
    """What the pipeline reads pictures from."""

    # Read-only to the pipeline (the sources expose some as properties).
    @property
    def status(self) -> SourceStatus: ...

    @property
    def dropped(self) -> int:
        """Frames produced but replaced by a newer one before they were read."""
        ...

    @property
    def ended(self) -> bool:
        """A file source is finished; a live source never ends."""
        ...

    def open(self) -> None:
        """Start delivering. Live sources never raise here (a missing device is a status);
        a file source raises :class:`dsrter.edge.sources.media_file.MediaError` for a missing or
        unreadable file."""

    def read(self, timeout: Optional[float] = None) -> Optional[Frame]:
        """The next frame, or ``None`` when there is none right now (or the source ended).

        Waits at most ``timeout`` seconds; ``None`` or ``0`` means return at once.
        Never raises because of the device.
        """

    def close(self) -> None:
        """Stop and release the device or file (idempotent)."""


@runtime_checkable
class AudioSource(Protocol):
    """Where the speech stream takes its audio from (microphone or a media file's track)."""

    sample_rate: int  # of what latest() returns: 16000
    overflows: int  # audio lost because the consumer side could not keep up (device overruns)

    @property
    def status(self) -> SourceStatus: ...  # read-only to the speech stream (the sources make it a property)

    def start(self) -> None:
        """Begin capturing; never raises for a missing device (see ``status``)."""

    def stop(self) -> None:
        """Stop capturing and release the device (idempotent)."""

    def latest(self, seconds: float) -> tuple[np.ndarray, float]:
        """The newest ``seconds`` of float32 mono audio at ``sample_rate`` and the stream time
        (same clock as the frames: ``time.monotonic()`` live, clip seconds for a file) of its
        last sample's end. Shorter (possibly empty) when less is buffered; never raises."""


class StatusReporter:
    """Holds a source's :class:`SourceStatus` and logs each change of state once.

    Repeated failures in the same state update ``message``/``last_error`` silently,
    so an unplugged camera retried every 30 s does not flood the journal.
    """

    def __init__(self, logger: logging.Logger, name: str, initial: SourceStatus | None = None) -> None:
        self._log = logger
        self._name = name
        self._lock = threading.Lock()
        self.status = initial or SourceStatus(state="missing", message="not opened")
        self._logged_state: Optional[str] = None

    def set(self, state: SourceState, message: str = "", error: Optional[str] = None,
            reopened: bool = False) -> SourceStatus:
        with self._lock:
            old = self.status
            new = SourceStatus(state=state, message=message,
                               reopen_count=old.reopen_count + (1 if reopened else 0),
                               last_error=error if error is not None else old.last_error)
            self.status = new
            changed = state != self._logged_state
            self._logged_state = state
        if changed:
            text = f"{self._name}: {state}" + (f" - {message}" if message else "")
            if state in ("ok", "ended"):
                self._log.info(text)
            else:
                self._log.warning(text + (f" ({error})" if error and error not in message else ""))
        return new


class Backoff:
    """Exponential retry delays: ``initial``, 2x, 4x ... capped at ``maximum``."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = float(initial)
        self.maximum = max(float(maximum), self.initial)
        self._next = self.initial

    def next_delay(self) -> float:
        d = self._next
        self._next = min(self._next * 2.0, self.maximum)
        return d

    def reset(self) -> None:
        self._next = self.initial
