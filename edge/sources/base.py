"""Video frames, the frame-source protocol and the bits every source shares.

A *frame source* hands the pipeline the newest picture it has: a live camera
(:class:`dsrter.edge.sources.camera.CameraSource`) or a media file played as if it
were one (:class:`dsrter.edge.sources.media_file.MediaFileSource`). Sources never raise
out of ``read()``; trouble shows up in ``status`` (and once in the log per change).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Optional, Protocol, Union, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from dsrter.edge.config import CameraConfig

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

    status: SourceStatus
    dropped: int  # frames produced but replaced by a newer one before they were read
    ended: bool  # a file source is finished; a live source never ends

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


def is_live_device(device: Union[int, str, Path]) -> bool:
    """True for a V4L2 camera (index, "2", "/dev/videoN"), False for a media file path."""
    if isinstance(device, int):
        return True
    s = str(device).strip()
    return s.isdigit() or s.startswith("/dev/")


def make_frame_source(cfg: "CameraConfig") -> FrameSource:
    """The source ``camera.device`` names: a live camera, or a media file at real-time pace
    (``camera.realtime``/``camera.loop``) whose ``audio`` can stand in for the microphone."""
    if is_live_device(cfg.device):
        from dsrter.edge.sources.camera import CameraSource

        return CameraSource(cfg)
    from dsrter.edge.sources.media_file import MediaFileSource

    return MediaFileSource(Path(str(cfg.device)), realtime=cfg.realtime, loop=cfg.loop)
