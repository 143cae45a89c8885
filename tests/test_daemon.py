"""``dsrter run``: start-up errors, no camera/mic, SIGTERM, sources that fail and come back."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

try:  # openSMILE before anything loads TensorFlow (see edge/infer/face_detector.py)
    import opensmile  # noqa: F401
except ImportError:  # pragma: no cover
    pass
import numpy as np
import pytest
import yaml
from model_factory import face_model, speech_model  # noqa: F401  (fixtures)

from dsrter.edge.config import parse_config
from dsrter.edge.streams.events import FrameStats, FusedEvent

REPO = Path(__file__).resolve().parents[1]
REAL_MODELS = all((REPO / "models" / f).is_file() for f in ("face_emotion.tflite", "speech_emotion.tflite"))


def quiet_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3", GLOG_minloglevel="2",
               OPENCV_LOG_LEVEL="ERROR")
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "DSRTER_CAMERA_DEVICE", "DSRTER_OVERLAY_BACKEND"):
        env.pop(k, None)
    env.update(extra)
    return env


def default_config(tmp_path: Path, face_model: Path, speech_model: Path, **changes) -> Path:
    """The repository's config.yaml as it is; until the real models ship, with the test models swapped in."""
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    data["face"]["model"] = str(REPO / "models" / "face_emotion.tflite" if REAL_MODELS else face_model)
    data["speech"]["model"] = str(REPO / "models" / "speech_emotion.tflite" if REAL_MODELS else speech_model)
    data["face"]["detector_model"] = str(REPO / "models" / "face_detection_short_range.tflite")
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for k in parents:
            node = node[k]
        node[last] = value
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(data))
    return REPO / "config.yaml" if REAL_MODELS and not changes else p


def dsrter(*args: str) -> list[str]:
    return [sys.executable, "-m", "dsrter.edge.cli.main", *args]


# -- start-up errors ------------------------------------------------------------------------
@pytest.mark.parametrize("which,damage", [("face", "missing"), ("face", "garbage"), ("face", "truncated"),
                                          ("face", "bad-card"), ("detector", "missing"), ("speech", "garbage"),
                                          ("speech", "bad-card")])
def test_model_problems_are_clear_startup_errors(tmp_path, face_model, speech_model, which, damage, caplog):
    from dsrter.edge.app.daemon import EXIT_MODEL, run_daemon

    good = {"face": face_model, "speech": speech_model,
            "detector": face_model.parent / "face_detection_short_range.tflite"}
    paths = {}
    for name, src in good.items():
        dst = tmp_path / src.name
        if name != which or damage not in ("missing",):
            dst.write_bytes(src.read_bytes())
        if src.with_suffix(".json").is_file():
            dst.with_suffix(".json").write_text(src.with_suffix(".json").read_text())
        paths[name] = dst
    target = paths[which]
    if damage == "garbage":
        target.write_bytes(b"\x00" * 64)
    elif damage == "truncated":
        target.write_bytes(good[which].read_bytes()[:1000])
    elif damage == "bad-card":
        target.with_suffix(".json").write_text("{not json")
    cfg = parse_config({"face": {"model": str(paths["face"]), "detector_model": str(paths["detector"])},
                        "speech": {"model": str(paths["speech"])}, "mqtt": {"enabled": False}})
    with caplog.at_level("ERROR", logger="dsrter.daemon"):
        assert run_daemon(cfg, duration=0.1) == EXIT_MODEL
    (msg,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert msg.startswith("cannot start: ") and (target.name in msg or target.with_suffix(".json").name in msg)


def test_missing_model_from_the_command_line(tmp_path, face_model):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"face": {"model": str(tmp_path / "nope.tflite")}, "mqtt": {"enabled": False}}))
    p = subprocess.run(dsrter("run", "-c", str(cfg), "--duration", "1"), capture_output=True, text=True,
                       timeout=60, env=quiet_env())
    assert p.returncode == 3
    assert "cannot start" in p.stderr and "nope.tflite" in p.stderr and "not found" in p.stderr


# -- the daemon as systemd runs it: no camera, no microphone, SIGTERM ---------------------
@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.5)
    yield s, path
    s.close()


def _drain(sock: socket.socket, until: float) -> list[str]:
    out = []
    while time.monotonic() < until:
        try:
            out.extend(sock.recv(4096).decode().splitlines())
        except socket.timeout:
            break
    return out


def test_default_config_without_camera_or_mic_runs_until_sigterm(tmp_path, face_model, speech_model, notify_socket,
                                                                 mqtt_broker):
    from mqtt_support import Collector

    sock, path = notify_socket
    cfg = default_config(tmp_path, face_model, speech_model)
    env = quiet_env(NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000", DSRTER_MQTT_PORT=str(mqtt_broker.port),
                    DSRTER_MQTT_HOST=mqtt_broker.host, DSRTER_DEVICE_ID="daemontest")
    sub = Collector(mqtt_broker.host, mqtt_broker.port, ("dsrter/daemontest/#",)).start()
    log_path = tmp_path / "stderr.log"
    with open(log_path, "w") as err:
        proc = subprocess.Popen(dsrter("run", "-c", str(cfg)), stdout=subprocess.DEVNULL, stderr=err, env=env,
                                cwd=tmp_path)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while "READY=1" not in lines and time.monotonic() < deadline and proc.poll() is None:
            lines += _drain(sock, time.monotonic() + 1)
        assert "READY=1" in lines, log_path.read_text()[-3000:]
        status = next(line for line in lines if line.startswith("STATUS="))
        assert "camera missing" in status and "mic missing" in status
        lines += _drain(sock, time.monotonic() + 2.5)  # keeps running, pinging the watchdog
        assert proc.poll() is None
        assert lines.count("WATCHDOG=1") >= 2
        assert sub.wait_for(lambda m: any(t.endswith("/availability") and p == b"online" for t, p, _ in m), 15)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines += _drain(sock, time.monotonic() + 0.5)
    assert "STOPPING=1" in lines
    assert sub.wait_for(lambda m: any(t.endswith("/availability") and p == b"offline" for t, p, _ in m), 10)
    sub.stop()
    log = log_path.read_text()
    assert "camera 0: missing" in log and "microphone default input: missing" in log
    # Neither camera nor microphone: the log must not claim face-only operation.
    assert "no speech analysis until one appears" in log and "face-only" not in log
    assert "stopping (SIGTERM)" in log and "stopped cleanly" in log


# -- media file as the camera ---------------------------------------------------------------
def test_media_file_without_audio_runs_face_only_and_ends(tmp_path, face_model, speech_model):
    from mediagen import make_clip

    clip = make_clip(tmp_path / "silent-film.mp4", width=320, height=240, fps=25, seconds=1.5, audio=None)
    cfg = default_config(tmp_path, face_model, speech_model, mqtt__enabled=False, events_file__enabled=True,
                         events_file__path=str(tmp_path / "events.jsonl"))
    p = subprocess.run(dsrter("run", "-c", str(cfg), "--camera", str(clip), "--overlay", "video"), cwd=tmp_path,
                       capture_output=True, text=True, timeout=120, env=quiet_env())
    assert p.returncode == 0, p.stderr[-3000:]
    assert "no audio track: face-only" in p.stderr and "end of media file" in p.stderr
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events and {"face", "emotion"} >= {e.get("kind") for e in events}  # face-only: no speech events
    overlay = tmp_path / "dsrter-overlay.mp4"
    assert overlay.is_file() and overlay.stat().st_size > 1000
    import av

    with av.open(str(overlay)) as c:
        assert c.streams.video and not c.streams.audio
        assert sum(1 for _ in c.decode(video=0)) > 10


# -- a camera that fails mid-stream and comes back -------------------------------------------
class FlakyCamera:
    """A capture factory: N good frames, then the camera dies; opening fails twice; then it is back."""

    def __init__(self, frames_before: int = 15, failed_opens: int = 2):
        self.frames_before = frames_before
        self.failed_opens = failed_opens
        self.opens = 0
        self.reads = 0
        self.lock = threading.Lock()

    def __call__(self, device, cfg):
        with self.lock:
            self.opens += 1
            if self.opens > 1 and self.failed_opens > 0:
                self.failed_opens -= 1
                raise OSError("no such device (unplugged)")
        return _Capture(self, dies=self.opens == 1)


class _Capture:
    def __init__(self, owner: FlakyCamera, dies: bool):
        self.owner, self.dies, self.n = owner, dies, 0

    def isOpened(self):
        return True

    def read(self):
        time.sleep(1 / 30)
        self.n += 1
        if self.dies and self.n > self.owner.frames_before:
            return False, None
        self.owner.reads += 1
        img = np.full((240, 320, 3), 60 + (self.n % 50), np.uint8)
        return True, img

    def release(self):
        pass

    def set(self, prop, value):
        return True

    def get(self, prop):
        return 0.0


def test_camera_failing_mid_stream_and_coming_back(face_model, speech_model):
    from dsrter.edge.sources.camera import CameraSource
    from dsrter.edge.app.daemon import Daemon, load_models

    cfg = parse_config({"face": {"model": str(face_model), "detector_model": str(face_model.parent / "face_detection_short_range.tflite")},
                        "speech": {"enabled": False}, "mqtt": {"enabled": False},
                        "camera": {"reopen_initial_s": 0.1, "reopen_max_s": 0.2}})
    flaky = FlakyCamera()
    cam = CameraSource(cfg.camera, capture_factory=flaky, stall_s=0.3)
    daemon = Daemon(cfg, load_models(cfg), duration=4.0, video_source=cam)
    got: list = []
    daemon.bus.subscribe(got.append)
    states: list[str] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            s = cam.status.state
            if not states or states[-1] != s:
                states.append(s)
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True).start()
    assert daemon.run() == 0
    stop.set()
    stats = [e for e in got if isinstance(e, FrameStats)]
    states = states[states.index("ok"):]  # before open() it says "missing"
    assert "reopening" in states and "ok" in states[states.index("reopening"):]  # failed, then came back
    assert flaky.opens >= 4 and cam.status.reopen_count >= 1
    assert flaky.reads > flaky.frames_before + 10  # frames flowed again after the outage ...
    assert len(stats) > flaky.frames_before + 10  # ... and the pipeline processed them
    assert any(isinstance(e, FusedEvent) for e in got)


class _LoudAudio:
    """An AudioSource that always has a loud window ending now."""

    sample_rate = 16000
    overflows = 0

    def __init__(self):
        from dsrter.edge.sources.base import SourceStatus

        self.status = SourceStatus(state="ok", message="test tone")

    def start(self):
        pass

    def stop(self):
        pass

    def latest(self, seconds):
        n = int(seconds * 16000)
        return (0.3 * np.sin(np.arange(n) * 0.2)).astype(np.float32), time.monotonic()


class _AngrySpeech:
    sample_rate, window_s, hop_s = 16000, 2.0, 0.5

    def is_speech(self, audio):
        return True

    def predict(self, audio, start_s=None):
        p = np.full(7, 0.05, np.float32)
        p[0] = 0.7
        return p


def test_camera_missing_with_speech_gives_speech_only_results():
    from dsrter.edge.app.daemon import Daemon, Models
    from dsrter.edge.streams.events import SpeechEvent

    cfg = parse_config({"camera": {"device": "/dev/video-none-here"}, "mqtt": {"enabled": False}, "speech": {"hop_s": 0.2}})
    daemon = Daemon(cfg, Models(speech=_AngrySpeech()), duration=2.0, audio_source=_LoudAudio())
    got: list = []
    daemon.bus.subscribe(got.append)
    assert daemon.run() == 0
    speech = [e for e in got if isinstance(e, SpeechEvent)]
    fused = [e for e in got if isinstance(e, FusedEvent)]
    assert len(speech) >= 4 and all(e.speaking and e.label == "angry" and e.attribution == "none" for e in speech)
    assert fused and all(e.label == "angry" and e.speech_weight == 1.0 and e.track_id is None for e in fused)
    assert daemon.video.status.state == "missing"
