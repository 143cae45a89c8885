"""Where the annotated frames go: nowhere, a desktop window, the framebuffer, or a video file.

``make_display(cfg.overlay, fps)`` returns a :class:`Display`; the daemon calls
``show(image)`` once per frame and ``close()`` at the end.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Protocol, runtime_checkable

import numpy as np

from dsrter.edge.config import OverlayConfig
from dsrter.edge.display.framebuffer import Framebuffer, FramebufferError
from dsrter.edge.display.video_writer import AnnotatedVideoWriter

if TYPE_CHECKING:
    from dsrter.edge.display.video_writer import AnnotatedVideoWriter

log = logging.getLogger(__name__)


class DisplayError(RuntimeError):
    """The chosen overlay backend cannot run here (message says why and what to use)."""


@runtime_checkable
class Display(Protocol):
    def show(self, image: np.ndarray, t: Optional[float] = None) -> None:
        """Present one annotated frame (``t``: its source time; used by the video backend)."""

    def close(self) -> None:
        """Release the window/device/file (idempotent)."""


class NullDisplay:
    """backend ``none``: the frames are not shown (MQTT only, headless)."""

    def show(self, image: np.ndarray, t: Optional[float] = None) -> None:
        pass

    def close(self) -> None:
        pass


class WindowDisplay:
    """backend ``window``: an OpenCV HighGUI window on the desktop (X11/Wayland)."""

    def __init__(self, title: str = "DSRTER") -> None:
        import cv2

        self._cv2 = cv2
        self.title = title
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise DisplayError("overlay.backend 'window' needs a desktop session (DISPLAY/WAYLAND_DISPLAY is not set); "
                               "on the HDMI console without X use 'framebuffer', headless use 'none' or 'video'")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise DisplayError(f"overlay.backend 'window': OpenCV cannot open a window ({exc.msg.strip() if hasattr(exc, 'msg') else exc}); "
                               "this OpenCV build may have no GUI support (opencv-*-headless)") from None
        self._open = True

    def show(self, image: np.ndarray, t: Optional[float] = None) -> None:
        if not self._open:
            return
        self._cv2.imshow(self.title, image)
        self._cv2.waitKey(1)  # lets HighGUI paint and handle events

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._cv2.destroyWindow(self.title)
                self._cv2.waitKey(1)
            except self._cv2.error:
                pass


class FramebufferDisplay:
    """backend ``framebuffer``: letterboxed onto /dev/fbN (see :mod:`dsrter.edge.display.framebuffer`)."""

    def __init__(self, device: Path, sysfs_dir: Path | None = None) -> None:
        try:
            self.fb = Framebuffer(device, sysfs_dir)
        except FramebufferError as exc:
            raise DisplayError(f"overlay.backend 'framebuffer': {exc}") from None

    def show(self, image: np.ndarray, t: Optional[float] = None) -> None:
        self.fb.show(image)

    def close(self) -> None:
        self.fb.close()


class VideoFileDisplay:
    """backend ``video``: an MP4 of the annotated frames, sized by the first frame."""

    def __init__(self, path: Path, fps: float, audio_from: Path | None = None) -> None:
        self.path = Path(path)
        self.fps = fps
        self.audio_from = audio_from
        self.writer: Optional[AnnotatedVideoWriter] = None

    def show(self, image: np.ndarray, t: Optional[float] = None) -> None:
        if self.writer is None:
            h, w = image.shape[:2]
            self.writer = AnnotatedVideoWriter(self.path, self.fps, (w, h), audio_from=self.audio_from)
        self.writer.write(image, t)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def make_display(cfg: OverlayConfig, fps: float = 30.0, audio_from: Path | None = None) -> Display:
    """The display ``cfg.backend`` names; raises :class:`DisplayError` when it cannot work here.

    ``fps`` is the frame rate of the ``video`` backend's file; ``audio_from`` (a media file)
    gives that file the source's audio track, in which case ``show(image, t)`` expects
    ``t`` on the media file's clock."""
    if cfg.backend == "none":
        return NullDisplay()
    if cfg.backend == "window":
        return WindowDisplay()
    if cfg.backend == "framebuffer":
        return FramebufferDisplay(cfg.framebuffer_device)
    if cfg.backend == "video":
        return VideoFileDisplay(cfg.video_path, fps, audio_from)
    raise DisplayError(f"overlay.backend: unknown backend {cfg.backend!r}")
