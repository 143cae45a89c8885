"""The frame source the config names: a live camera, or a media file played as if it were one."""

from __future__ import annotations

from pathlib import Path
from typing import Union

from dsrter.edge.config import CameraConfig
from dsrter.edge.sources.base import FrameSource
from dsrter.edge.sources.camera import CameraSource
from dsrter.edge.sources.media_file import MediaFileSource


def is_live_device(device: Union[int, str, Path]) -> bool:
    """True for a V4L2 camera (index, "2", "/dev/videoN"), False for a media file path."""
    if isinstance(device, int):
        return True
    s = str(device).strip()
    return s.isdigit() or s.startswith("/dev/")


def make_frame_source(cfg: CameraConfig) -> FrameSource:
    """The source ``camera.device`` names: a live camera, or a media file at real-time pace
    (``camera.realtime``/``camera.loop``) whose ``audio`` can stand in for the microphone."""
    if is_live_device(cfg.device):
        return CameraSource(cfg)
    return MediaFileSource(Path(str(cfg.device)), realtime=cfg.realtime, loop=cfg.loop)
