"""Shared fixtures: a real mosquitto broker per test session, the shared datasets when present."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

# openSMILE must be loaded before TensorFlow in one process (TF first corrupts openSMILE's heap on its
# first call); some tests convert models with TensorFlow, others extract speech features.
import dsrter.edge.speech_features  # noqa: F401,E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DSRTER_SHARED_DATA", REPO.parent / "shared" / "data"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@dataclass
class Broker:
    """A mosquitto process on 127.0.0.1; ``stop``/``start`` keep the same port and config."""

    host: str
    port: int
    conf: Path
    log: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        if self.proc and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"))
        if not wait_port(self.port):
            raise RuntimeError(f"mosquitto did not start on port {self.port}; see {self.log}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def make_broker(tmp: Path, extra_conf: str = "", port: int | None = None) -> Broker:
    """Write a mosquitto config in ``tmp`` and return a (not yet started) Broker."""
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        pytest.fail("mosquitto is not installed (the README's test command installs it: apt-get install mosquitto)")
    port = port or free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "persistence false", f"log_dest file {tmp / 'mosquitto.log'}"]
    if "allow_anonymous" not in extra_conf and "password_file" not in extra_conf:
        lines.append("allow_anonymous true")
    if os.geteuid() == 0:
        lines.append("user root")  # otherwise mosquitto drops to a user that cannot write tmp
    conf.write_text("\n".join(lines) + "\n" + extra_conf)
    b = Broker("127.0.0.1", port, conf, tmp / "stderr.log")
    b.conf = conf
    return b


def _ensure_path() -> None:
    for d in ("/usr/sbin", "/sbin"):
        if d not in os.environ.get("PATH", "").split(":"):
            os.environ["PATH"] = os.environ.get("PATH", "") + ":" + d


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory) -> Broker:
    """A real mosquitto broker for the whole test session."""
    _ensure_path()
    b = make_broker(tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def private_broker(tmp_path) -> Broker:
    """A broker of the test's own, for tests that stop, kill or reconfigure it."""
    _ensure_path()
    b = make_broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data when present; tests that need it are skipped cleanly otherwise."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fer_npz(shared_data) -> Path:
    p = shared_data / "fer2013" / "fer2013.npz"
    if not p.is_file():
        pytest.skip("fer2013.npz not present")
    return p


@pytest.fixture(scope="session")
def ravdess_dir(shared_data) -> Path:
    p = shared_data / "ravdess"
    if not (p / "manifest.csv").is_file():
        pytest.skip("RAVDESS not present")
    return p


@pytest.fixture(scope="session")
def av_samples(shared_data) -> Path:
    p = shared_data / "av-samples"
    if not (p / "manifest.csv").is_file():
        pytest.skip("av-samples not present")
    return p
