"""Frame-source basics and the live camera source (with an injected fake capture)."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from dsrter.edge.sources.camera import CameraSource
from dsrter.edge.config import CameraConfig
from dsrter.edge.sources.base import Backoff, Frame, FrameSource, SourceStatus, StatusReporter
from dsrter.edge.sources.factory import is_live_device, make_frame_source


def wait_for(pred, timeout=3.0, step=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


class FakeCamera:
    """A pluggable camera: ``plugged`` False makes opening fail and reads return nothing."""

    def __init__(self, shape=(48, 64, 3), period=0.005):
        self.plugged = True
        self.shape = shape
        self.period = period
        self.opens = 0
        self.counter = 0
        self.lock = threading.Lock()

    def factory(self, device, cfg):
        if not self.plugged:
            raise OSError(f"cannot open camera {device!r}")
        self.opens += 1
        return FakeCapture(self)


class FakeCapture:
    def __init__(self, cam: FakeCamera):
        self.cam = cam
        self.released = False

    def isOpened(self):
        return not self.released

    def read(self):
        time.sleep(self.cam.period)
        if not self.cam.plugged or self.released:
            return False, None
        with self.cam.lock:
            self.cam.counter += 1
            n = self.cam.counter
        img = np.full(self.cam.shape, n % 256, np.uint8)
        return True, img

    def release(self):
        self.released = True

    def set(self, prop, value):
        return True

    def get(self, prop):
        return 0.0


def cfg(**kw) -> CameraConfig:
    base = dict(device=0, reopen_initial_s=0.05, reopen_max_s=0.2)
    base.update(kw)
    return CameraConfig(**base)


def test_backoff_doubles_up_to_max_and_resets():
    b = Backoff(0.5, 3.0)
    assert [b.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next_delay() == 0.5


def test_status_reporter_logs_once_per_state_change(caplog):
    log = logging.getLogger("test.status")
    r = StatusReporter(log, "cam")
    with caplog.at_level(logging.INFO, logger="test.status"):
        for _ in range(5):
            r.set("missing", "no camera", error="ENOENT")
        r.set("ok", "capturing")
        r.set("reopening", "lost", reopened=True)
        r.set("reopening", "lost", reopened=False)
    msgs = [rec.getMessage() for rec in caplog.records]
    assert sum("missing" in m for m in msgs) == 1
    assert sum("reopening" in m for m in msgs) == 1
    assert r.status.reopen_count == 1 and r.status.last_error == "ENOENT"
    assert r.status.to_dict()["state"] == "reopening"


def test_live_device_detection_and_factory(tmp_path):
    assert is_live_device(0) and is_live_device("2") and is_live_device("/dev/video0")
    assert not is_live_device(str(tmp_path / "clip.mp4"))
    assert isinstance(make_frame_source(cfg(device="/dev/video0")), CameraSource)
    from dsrter.edge.sources.media_file import MediaFileSource

    src = make_frame_source(cfg(device=str(tmp_path / "clip.mp4"), realtime=False, loop=True))
    assert isinstance(src, MediaFileSource) and not src.realtime and src.loop


def test_camera_delivers_newest_frame_and_counts_drops():
    cam = FakeCamera(period=0.002)
    src = CameraSource(cfg(), capture_factory=cam.factory)
    assert isinstance(src, FrameSource)
    src.open()
    try:
        assert src.status.state == "ok"
        first = src.read(timeout=1.0)
        assert isinstance(first, Frame) and first.image.shape == (48, 64, 3)
        time.sleep(0.1)  # a slow consumer: the capture thread keeps replacing the slot
        newest = src.read(timeout=1.0)
        assert newest.index > first.index + 5
        assert src.dropped >= newest.index - first.index - 1 > 0
        assert newest.t > first.t and abs(newest.t - time.monotonic()) < 0.5
        # nothing new without waiting -> None at once
        t0 = time.monotonic()
        src.read(timeout=None)  # a poll: returns at once, frame or not
        src.read(timeout=0)
        assert time.monotonic() - t0 < 0.2  # no waiting (generous: the test machine may be busy)
    finally:
        src.close()
    assert not src.ended


def test_camera_unplugged_mid_stream_reopens_with_backoff(caplog):
    cam = FakeCamera(period=0.003)
    src = CameraSource(cfg(), capture_factory=cam.factory, stall_s=0.1)
    with caplog.at_level(logging.INFO, logger="dsrter.edge.sources.camera"):
        src.open()
        try:
            assert src.read(timeout=1.0) is not None
            cam.plugged = False
            assert wait_for(lambda: src.status.state == "reopening")
            assert src.status.reopen_count == 1
            time.sleep(0.5)  # several failed reopen attempts at 0.05 .. 0.2 s
            assert src.read(timeout=0.05) is None  # no exception, just no frame
            assert src.status.state == "reopening" and src.status.last_error
            cam.plugged = True
            assert wait_for(lambda: src.status.state == "ok")
            assert src.read(timeout=1.0) is not None
            assert cam.opens == 2
        finally:
            src.close()
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("reopening" in m for m in msgs) == 1, msgs  # logged once, not per attempt
    assert sum(": ok" in m for m in msgs) == 2


def test_camera_that_opens_but_never_delivers_is_retried():
    cam = FakeCamera()
    cam.shape = (0, 0, 3)  # reads "succeed" with an empty image
    src = CameraSource(cfg(), capture_factory=cam.factory, stall_s=0.05, open_wait_s=1.0)
    src.open()
    try:
        assert wait_for(lambda: cam.opens >= 2)
        assert src.status.state == "missing"
        assert src.read(timeout=0.02) is None
    finally:
        src.close()


@pytest.mark.parametrize("device", ["/dev/video97", 97, "/dev/null"])  # /dev/null: OpenCV itself refuses it
def test_camera_absent_at_start_reports_missing_without_raising(device):
    src = CameraSource(cfg(device=device, reopen_initial_s=0.2))
    t0 = time.monotonic()
    src.open()
    try:
        assert src.status.state == "missing"
        assert str(device) in src.status.message and src.status.last_error
        assert src.read(timeout=0.1) is None
        assert time.monotonic() - t0 < 3.0
    finally:
        src.close()
    assert src.status.state == "missing"


@pytest.mark.parametrize("shape", [(37, 51, 3), (37, 51), (37, 51, 1), (37, 51, 4)])
def test_camera_passes_odd_sizes_and_channel_counts_through(shape):
    cam = FakeCamera(shape=shape)
    src = CameraSource(cfg(), capture_factory=cam.factory)
    src.open()
    try:
        f = src.read(timeout=1.0)
        assert f is not None and f.image.shape == shape
    finally:
        src.close()


def test_read_with_timeout_waits_at_most_timeout():
    cam = FakeCamera()
    cam.plugged = False
    src = CameraSource(cfg(), capture_factory=cam.factory, open_wait_s=0.5)
    src.open()
    try:
        assert src.status == SourceStatus(state="missing", message=src.status.message, reopen_count=0,
                                           last_error=src.status.last_error)
        t0 = time.monotonic()
        assert src.read(timeout=0.15) is None
        assert 0.1 < time.monotonic() - t0 < 1.0
    finally:
        src.close()


def test_opencv_capture_opens_by_index_and_applies_the_config(monkeypatch):
    import cv2

    from dsrter.edge.sources import camera as camera_source

    opened = []

    class RecordingCapture(FakeCapture):
        def __init__(self, dev, backend):
            super().__init__(FakeCamera())
            opened.append((dev, backend))
            self.props = {}

        def set(self, prop, value):
            self.props[prop] = value
            return True

    monkeypatch.setattr(cv2, "VideoCapture", RecordingCapture)
    monkeypatch.setattr(camera_source.os.path, "exists", lambda p: p in ("/dev/v4l/by-id/usb-cam-index0", "/dev/video3"))
    monkeypatch.setattr(camera_source.os.path, "realpath", lambda p: "/dev/video3" if "by-id" in p else p)
    cap = camera_source.opencv_capture("/dev/v4l/by-id/usb-cam-index0", cfg(width=1280, height=720, fps=15, fourcc="MJPG"))
    assert opened[-1] == (3, cv2.CAP_V4L2)  # a by-id link is opened as the index it points at
    assert cap.props[cv2.CAP_PROP_FRAME_WIDTH] == 1280 and cap.props[cv2.CAP_PROP_FPS] == 15
    assert cap.props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter_fourcc(*"MJPG")
    camera_source.opencv_capture(3, cfg())
    assert opened[-1][0] == 3
    with pytest.raises(FileNotFoundError):
        camera_source.opencv_capture("/dev/video4", cfg())
