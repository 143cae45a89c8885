"""Live USB camera through OpenCV's V4L2 backend, captured on a background thread.

The capture thread always overwrites a one-frame slot: the pipeline gets the newest
picture and never works through a backlog (frames replaced unread are counted in
``dropped``). A camera that is absent at start or unplugged later puts the source in
``missing``/``reopening`` and is retried with exponential backoff; ``read()`` just
returns ``None`` meanwhile.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from typing import Callable, Optional, Protocol, Union

import numpy as np

from dsrter.edge.config import CameraConfig
from dsrter.edge.sources.base import Backoff, Frame, SourceStatus, StatusReporter

log = logging.getLogger(__name__)


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` the source uses (tests inject fakes)."""

    def isOpened(self) -> bool: ...
    def read(self) -> tuple[bool, Optional[np.ndarray]]: ...
    def release(self) -> None: ...
    def set(self, prop: int, value: float) -> bool: ...
    def get(self, prop: int) -> float: ...


CaptureFactory = Callable[[Union[int, str], CameraConfig], Capture]


def _device_arg(device: Union[int, str]) -> Union[int, str]:
    if isinstance(device, int):
        return device
    s = str(device).strip()
    return int(s) if s.isdigit() else s


def opencv_capture(device: Union[int, str], cfg: CameraConfig) -> Capture:
    """Open a V4L2 device with OpenCV and ask for the configured size/rate/format."""
    import cv2

    dev = _device_arg(device)
    node = f"/dev/video{dev}" if isinstance(dev, int) and sys.platform.startswith("linux") else dev
    if isinstance(node, str) and node.startswith("/dev/"):
        if not os.path.exists(node):
            # checked here so OpenCV does not print a warning on every retry while it is unplugged
            raise FileNotFoundError(f"{node} does not exist")
        # /dev/v4l/by-id/... symlinks name a USB camera stably; resolved again on every reopen
        m = re.fullmatch(r"/dev/video(\d+)", os.path.realpath(node))
        if m:
            dev = int(m.group(1))
    backend = cv2.CAP_V4L2 if os.name == "posix" and hasattr(cv2, "CAP_V4L2") else cv2.CAP_ANY
    cap = cv2.VideoCapture(dev, backend)
    if not cap.isOpened():
        cap.release()
        raise OSError(f"cannot open camera {dev!r}")
    if cfg.fourcc:
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*cfg.fourcc))
    cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
    cap.set(cv2.CAP_PROP_FPS, cfg.fps)
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver queue short: newest frame wins
    if hasattr(cv2, "CAP_PROP_READ_TIMEOUT_MSEC"):  # an unplugged camera fails fast
        cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, 2000)
    return cap


class CameraSource:
    """A :class:`~dsrter.edge.sources.base.FrameSource` for a V4L2 webcam (index or /dev/videoN).

    ``capture_factory(device, cfg)`` returns an opened ``cv2.VideoCapture``-like object or
    raises; it is injectable for tests. ``clock`` stamps frames (``time.monotonic``).
    """

    def __init__(self, cfg: CameraConfig, capture_factory: CaptureFactory | None = None,
                 clock: Callable[[], float] = time.monotonic, open_wait_s: float = 3.0,
                 stall_s: float | None = None) -> None:
        self.cfg = cfg
        self.device = _device_arg(cfg.device)
        self._factory = capture_factory or opencv_capture
        self._clock = clock
        self._open_wait_s = open_wait_s
        # No frame for this long while "open" means the camera is gone.
        self._stall_s = stall_s if stall_s is not None else max(2.0, 10.0 / cfg.fps)
        self._reporter = StatusReporter(log, f"camera {self.device}")
        self._cond = threading.Condition()
        self._slot: Optional[Frame] = None
        self._produced = 0
        self.dropped = 0
        self.ended = False
        self._stop = threading.Event()
        self._first_attempt = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._cap: Optional[Capture] = None
        self._was_ok = False

    # -- FrameSource -------------------------------------------------------------------
    @property
    def status(self) -> SourceStatus:
        return self._reporter.status

    def open(self) -> None:
        """Start the capture thread; waits briefly for the first open attempt so that
        ``status`` says ``ok`` or ``missing`` on return. Never raises for the device."""
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._first_attempt.clear()
        self._thread = threading.Thread(target=self._run, name="camera-capture", daemon=True)
        self._thread.start()
        self._first_attempt.wait(self._open_wait_s)

    def read(self, timeout: Optional[float] = None) -> Optional[Frame]:
        with self._cond:
            if self._slot is None and timeout:
                self._cond.wait_for(lambda: self._slot is not None or self._stop.is_set(), timeout)
            frame, self._slot = self._slot, None
        return frame

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._release()

    # -- capture thread ----------------------------------------------------------------
    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            try:
                cap.release()
            except Exception:  # a half-dead device may fail to release; nothing to do
                log.debug("camera release failed", exc_info=True)

    def _try_open(self) -> bool:
        try:
            cap = self._factory(self.device, self.cfg)
            if cap is None or not cap.isOpened():
                raise OSError(f"cannot open camera {self.device!r}")
        except Exception as exc:  # any driver/OpenCV failure is a status, never a crash
            err = f"{type(exc).__name__}: {exc}"
            if self._was_ok:
                self._reporter.set("reopening", "camera lost; retrying", error=err)
            else:
                self._reporter.set("missing", f"no camera at {self.device!r}; retrying", error=err)
            return False
        self._cap = cap
        return True

    def _run(self) -> None:
        backoff = Backoff(self.cfg.reopen_initial_s, self.cfg.reopen_max_s)
        while not self._stop.is_set():
            if self._cap is None and not self._try_open():
                self._first_attempt.set()
                self._stop.wait(backoff.next_delay())
                continue
            got_any, error = self._capture_until_failure()
            self._first_attempt.set()
            self._release()
            if self._stop.is_set():
                break
            if got_any:
                backoff.reset()  # frames flowed: the next outage starts with a short delay
                self._was_ok = True
                self._reporter.set("reopening", "camera stopped delivering frames; reopening",
                                   error=error, reopened=True)
            elif self._was_ok:
                self._reporter.set("reopening", "camera opened but delivers no frames; retrying", error=error)
            else:
                self._reporter.set("missing", f"camera {self.device!r} opened but delivers no frames; retrying",
                                   error=error)
            self._stop.wait(backoff.next_delay())

    def _capture_until_failure(self) -> tuple[bool, Optional[str]]:
        """Read frames until the camera fails or the source is closed.

        Returns (whether any frame came, what went wrong)."""
        cap = self._cap
        assert cap is not None
        got_any = False
        error: Optional[str] = None
        last_good = self._clock()
        while not self._stop.is_set():
            try:
                ok, image = cap.read()
            except Exception as exc:  # OpenCV raises on some driver errors
                ok, image = False, None
                error = f"{type(exc).__name__}: {exc}"
            now = self._clock()
            if ok and image is not None and image.size > 0:
                if not got_any:
                    got_any = True
                    h, w = image.shape[:2]
                    self._reporter.set("ok", f"capturing {w}x{h}")
                    self._first_attempt.set()
                last_good = now
                self._publish(image, now)
                continue
            if now - last_good > self._stall_s:
                return got_any, error or f"no frame for {self._stall_s:.1f} s"
            time.sleep(0.01)  # a failing read returns at once: don't spin
        return got_any, error

    def _publish(self, image: np.ndarray, t: float) -> None:
        with self._cond:
            if self._slot is not None:
                self.dropped += 1
            self._slot = Frame(image=image, t=t, index=self._produced)
            self._produced += 1
            self._cond.notify_all()
