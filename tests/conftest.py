"""Shared fixtures: a real mosquitto broker per test session, the shared datasets when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# openSMILE must be loaded before TensorFlow in one process (TF first corrupts openSMILE's heap on its
# first call); some tests convert models with TensorFlow, others extract speech features.
import dsrter.edge.infer.speech_features  # noqa: F401,E402
from dsrter.edge.tools.local_broker import BrokerError, LocalBroker  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DSRTER_SHARED_DATA", REPO.parent / "shared" / "data"))
# Under CI (CI=true) missing data or shipped models fail the run instead of skipping tests.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip locally; under CI a missing dataset or model is a failure, not a quiet skip."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required)", pytrace=False)
    pytest.skip(reason)


SHIPPED_MODELS = (
    "face_emotion.tflite",
    "face_emotion_float.tflite",
    "speech_emotion.tflite",
    "face_detection_short_range.tflite",
    "face_detection_full_range_sparse.tflite",
    "silero_vad.tflite",
    "speech_voice.tflite",
)


def pytest_configure(config) -> None:
    """Under CI the shipped models must be there: tests would otherwise skip or use random stand-ins."""
    missing = [f for f in SHIPPED_MODELS if not (REPO / "models" / f).is_file()]
    if IN_CI and missing:
        raise pytest.UsageError(f"CI=true but shipped models are missing from models/: {', '.join(missing)}")


Broker = LocalBroker  # the fixtures' brokers: host, port, start/stop/kill on the same port


def make_broker(tmp: Path, extra_conf: str = "", port: int | None = None) -> Broker:
    """Write a mosquitto config in ``tmp`` and return a (not yet started) broker."""
    try:
        return LocalBroker(tmp, extra_conf, port)
    except BrokerError as exc:
        pytest.fail(f"{exc}; the README's test command installs it")


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
        skip_or_fail(f"shared datasets not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fer_npz(shared_data) -> Path:
    p = shared_data / "fer2013" / "fer2013.npz"
    if not p.is_file():
        skip_or_fail("fer2013.npz not present")
    return p


@pytest.fixture(scope="session")
def ravdess_dir(shared_data) -> Path:
    p = shared_data / "ravdess"
    if not (p / "manifest.csv").is_file():
        skip_or_fail("RAVDESS not present")
    return p


@pytest.fixture(scope="session")
def av_samples(shared_data) -> Path:
    p = shared_data / "av-samples"
    if not (p / "manifest.csv").is_file():
        skip_or_fail("av-samples not present")
    return p


@pytest.fixture(scope="session")
def emodb_dir(shared_data) -> Path:
    p = shared_data / "emodb"
    if not (p / "manifest.csv").is_file():
        skip_or_fail("EmoDB not present")
    return p
