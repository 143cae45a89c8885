"""The one validated configuration model, loaded from YAML with environment overrides.

Relative paths in the file are resolved against the folder of the config file, so the
repository's ``config.yaml`` finds ``models/`` wherever the checkout lives; a relative model path
that is not there resolves to the model shipped with the package (edge/resources.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dsrter.edge.resources import find_config, shipped_model


class ConfigError(ValueError):
    """A configuration problem; the message names the file, the key and what is expected."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CameraConfig(_Strict):
    enabled: bool = True
    device: Union[int, str] = Field(0, description="V4L2 index (0), device path (/dev/video0) or a media file")
    width: int = Field(640, ge=64, le=4096, description="capture width; the detector sees a 128x128 downscale")
    height: int = Field(480, ge=48, le=4096)
    fps: float = Field(30.0, gt=0, le=240)
    fourcc: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9 ]{4}$",
                                  description="V4L2 pixel format to ask for, e.g. MJPG (null = driver default)")
    realtime: bool = Field(True, description="for a media-file device: pace frames at the clip's own rate")
    loop: bool = Field(False, description="for a media-file device: start again at the end")
    reopen_initial_s: float = Field(1.0, gt=0)
    reopen_max_s: float = Field(30.0, gt=0)


class MicrophoneConfig(_Strict):
    enabled: bool = True
    device: Union[int, str, None] = Field(None, description="sounddevice index or name; null = system default")
    sample_rate: int = Field(16000, ge=8000, le=192000)
    block_ms: int = Field(32, ge=5, le=500)
    buffer_s: float = Field(10.0, ge=2, le=120)
    reopen_initial_s: float = Field(1.0, gt=0)
    reopen_max_s: float = Field(30.0, gt=0)


class TrackerConfig(_Strict):
    iou_threshold: float = Field(0.3, ge=0, le=1)
    max_missed_frames: int = Field(10, ge=0, le=1000, description="detector runs a track coasts without a detection "
                                   "(runs that could have seen it; see streams/tracker.py)")


class SmoothingConfig(_Strict):
    alpha: float = Field(0.35, gt=0, le=1, description="EMA weight of the newest scores")
    hysteresis: float = Field(0.10, ge=0, le=1, description="margin a new label needs over the shown one")
    min_hold: int = Field(3, ge=1, le=100, description="updates a new label must lead before it is shown")


class FaceConfig(_Strict):
    enabled: bool = True
    model: Path = Path("models/face_emotion.tflite")
    detector_model: Path = Path("models/face_detection_full_range_sparse.tflite")
    min_detection_confidence: float = Field(0.6, gt=0, lt=1, description="detections scored this or higher are faces "
                                            "(MediaPipe's threshold for the full-range model)")
    verify_model: Optional[Path] = Field(
        Path("models/face_detection_short_range.tflite"),
        description="detector for a second look (a zoomed crop) at detections scored from candidate_confidence up to "
                    "min_detection_confidence; null = no second look, such detections are dropped")
    candidate_confidence: float = Field(0.3, gt=0, lt=1, description="lowest detector score that gets a second look")
    verify_per_pass: int = Field(2, ge=0, le=16, description="most second looks per detector pass (the cost bound)")
    detect_every_n_frames: int = Field(3, ge=1, le=30,
                                       description="run the detector on every Nth frame and track in between")
    detect_tiles: Optional[tuple[int, int]] = Field(
        None, description="[columns, rows] of overlapping tiles searched in turn with the whole frame (small faces); "
                          "[1, 1] = whole frame only; null = the detector's own ([3, 2] full range, [1, 1] short range)")
    classify_every_n_frames: int = Field(3, ge=1, le=30,
                                         description="classify each track's face every Nth frame (a new track at once); the smoother holds its label in between")
    max_faces: int = Field(8, ge=1, le=64)
    threads: int = Field(2, ge=1, le=16, description="LiteRT interpreter threads for the classifier")
    mirror_average: Optional[bool] = Field(
        None, description="also classify each crop's mirror image and average (2 runs per face); null = the model card's choice")
    tracker: TrackerConfig = TrackerConfig()
    smoothing: SmoothingConfig = SmoothingConfig()

    @field_validator("detect_tiles")
    @classmethod
    def _tiles(cls, v: Optional[tuple[int, int]]) -> Optional[tuple[int, int]]:
        if v is not None and not all(1 <= n <= 4 for n in v):
            raise ValueError("columns and rows must each be 1 to 4, e.g. [2, 1]")
        return v

    @model_validator(mode="after")
    def _candidates_below_threshold(self) -> "FaceConfig":
        if self.candidate_confidence > self.min_detection_confidence:
            raise ValueError(f"face.candidate_confidence ({self.candidate_confidence}) must not exceed "
                             f"face.min_detection_confidence ({self.min_detection_confidence})")
        return self


class SpeechConfig(_Strict):
    enabled: bool = True
    model: Path = Path("models/speech_emotion.tflite")
    hop_s: float = Field(0.5, gt=0, le=10, description="step between analysed windows")
    vad_threshold: Optional[float] = Field(None, description="energy gate in dBFS, for cards without a voice-activity model; null = the card's")
    vad_probability: Optional[float] = Field(None, gt=0, lt=1, description="Silero VAD speech probability threshold; null = the card's (0.5)")
    threads: int = Field(1, ge=1, le=16, description="LiteRT interpreter threads for the speech model")
    voice_branch: bool = Field(True, description="run the card's voice branch (speaker-encoder partials, about 10% of "
                               "the speech stream's work); false = the emotion network alone, with its own calibration")
    smoothing: SmoothingConfig = SmoothingConfig(alpha=0.5, hysteresis=0.05, min_hold=1)


class FusionConfig(_Strict):
    face_weight: float = Field(0.6, ge=0)
    speech_weight: float = Field(0.4, ge=0)
    half_life_s: float = Field(1.5, gt=0, description="confidence of a result halves every half_life_s")
    stale_after_s: float = Field(4.0, gt=0, description="results older than this are ignored")
    hysteresis: float = Field(0.05, ge=0, le=1, description="margin another class needs over the shown fused label")

    @model_validator(mode="after")
    def _some_weight(self) -> "FusionConfig":
        if self.face_weight + self.speech_weight <= 0:
            raise ValueError("face_weight + speech_weight must be > 0")
        return self


class OverlayConfig(_Strict):
    backend: Literal["none", "window", "framebuffer", "video"] = "none"
    framebuffer_device: Path = Path("/dev/fb0")
    video_path: Path = Path("dsrter-overlay.mp4")
    show_fps: bool = True


class TlsConfig(_Strict):
    enabled: bool = False
    ca_file: Optional[Path] = None
    cert_file: Optional[Path] = None
    key_file: Optional[Path] = None
    insecure: bool = Field(False, description="skip host-name verification (testing only)")


class DiscoveryConfig(_Strict):
    enabled: bool = True
    prefix: str = "homeassistant"


class PublishPolicy(_Strict):
    on_change: bool = Field(True, description="publish an event when the smoothed label changes")
    heartbeat_s: float = Field(10.0, ge=0, description="re-publish the current state this often (0 = never)")
    max_rate_hz: float = Field(5.0, gt=0, description="per-topic rate limit")
    face_timeout_s: float = Field(2.0, gt=0, description="a face track with no event for this long leaves the face state")


class BufferConfig(_Strict):
    max_events: int = Field(10000, ge=10, description="events kept while the broker is away; oldest dropped first")
    spool_dir: Optional[Path] = Field(None, description="persist undelivered events here across restarts")


class MqttConfig(_Strict):
    enabled: bool = True
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    prefix: str = "dsrter"
    client_id: Optional[str] = None
    keepalive_s: int = Field(30, ge=5, le=3600)
    qos: Literal[0, 1, 2] = 1
    username: Optional[str] = None
    password_file: Optional[Path] = Field(None, description="file holding the password (never put it in config)")
    credential: str = Field("mqtt_password", description="systemd LoadCredential name looked up in $CREDENTIALS_DIRECTORY")
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(60.0, gt=0)
    tls: TlsConfig = TlsConfig()
    discovery: DiscoveryConfig = DiscoveryConfig()
    publish: PublishPolicy = PublishPolicy()
    stats_interval_s: float = Field(30.0, gt=0)
    buffer: BufferConfig = BufferConfig()

    @field_validator("prefix")
    @classmethod
    def _topic_safe(cls, v: str) -> str:
        if not v or any(c in v for c in "#+") or v.startswith("/") or v.endswith("/"):
            raise ValueError("must be a non-empty MQTT topic prefix without '#', '+' or leading/trailing '/'")
        return v


class EventsFileConfig(_Strict):
    enabled: bool = False
    path: Path = Path("dsrter-events.jsonl")
    max_bytes: int = Field(10_000_000, ge=1000)
    backups: int = Field(5, ge=0, le=100)


class LoggingConfig(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Config(_Strict):
    """Everything the daemon reads at start; see config.yaml for the documented defaults."""

    device_id: str = Field("dsrter", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    camera: CameraConfig = CameraConfig()
    microphone: MicrophoneConfig = MicrophoneConfig()
    face: FaceConfig = FaceConfig()
    speech: SpeechConfig = SpeechConfig()
    fusion: FusionConfig = FusionConfig()
    overlay: OverlayConfig = OverlayConfig()
    mqtt: MqttConfig = MqttConfig()
    events_file: EventsFileConfig = EventsFileConfig()
    logging: LoggingConfig = LoggingConfig()


# Environment variables an operator sets most, mapped to their keys.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "DSRTER_DEVICE_ID": ("device_id",),
    "DSRTER_MQTT_HOST": ("mqtt", "host"),
    "DSRTER_MQTT_PORT": ("mqtt", "port"),
    "DSRTER_MQTT_USERNAME": ("mqtt", "username"),
    "DSRTER_MQTT_PREFIX": ("mqtt", "prefix"),
    "DSRTER_CAMERA_DEVICE": ("camera", "device"),
    "DSRTER_OVERLAY_BACKEND": ("overlay", "backend"),
    "DSRTER_LOG_LEVEL": ("logging", "level"),
}

_PATH_KEYS: tuple[tuple[str, ...], ...] = (
    ("face", "model"), ("face", "detector_model"), ("face", "verify_model"), ("speech", "model"), ("overlay", "video_path"),
    ("mqtt", "password_file"), ("mqtt", "tls", "ca_file"), ("mqtt", "tls", "cert_file"), ("mqtt", "tls", "key_file"),
    ("mqtt", "buffer", "spool_dir"), ("events_file", "path"),
)


# Model paths that fall back to the shipped models when the config's folder does not have them.
_MODEL_KEYS: tuple[tuple[str, ...], ...] = (("face", "model"), ("face", "detector_model"), ("face", "verify_model"),
                                            ("speech", "model"))


def _format_errors(source: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(x) for x in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            parts.append(f"{source}: unknown key '{key}'")
            continue
        msg = e["msg"]
        if "input" in e and e["type"] != "missing" and not isinstance(e["input"], dict):
            parts.append(f"{source}: {key}: {msg} (got {e['input']!r})")
        else:
            parts.append(f"{source}: {key}: {msg}")
    return "; ".join(parts)


def _apply_env(data: dict, env: dict[str, str]) -> dict:
    for var, keys in ENV_OVERRIDES.items():
        if var not in env:
            continue
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{var}: cannot override {'.'.join(keys)}: '{k}' is not a section")
        raw = env[var].strip()
        # Strings are coerced by the model (e.g. "1884" -> port 1884); a bare number is a camera index.
        node[keys[-1]] = int(raw) if keys[-1] == "device" and raw.isdigit() else raw
    return data


def _resolve_paths(cfg: Config, base: Path) -> Config:
    for keys in _PATH_KEYS:
        node: Any = cfg
        for k in keys[:-1]:
            node = getattr(node, k)
        value = getattr(node, keys[-1])
        if value is not None and not Path(value).is_absolute():
            resolved = base / value
            if keys in _MODEL_KEYS and not resolved.exists():
                resolved = shipped_model(Path(value)) or resolved  # then the models shipped with the package
            setattr(node, keys[-1], resolved)
    device = cfg.camera.device
    if isinstance(device, str) and not device.startswith("/dev/") and not Path(device).is_absolute():
        if (base / device).exists():
            cfg.camera.device = str(base / device)
    return cfg


def parse_config(data: Any, source: str = "config", base_dir: Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Validate a mapping (from YAML) into a Config; raises ConfigError with one line per problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping of sections, got {type(data).__name__}")
    data = _apply_env(data, dict(os.environ) if env is None else env)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from None
    return _resolve_paths(cfg, base_dir or Path.cwd())


def load_config(path: str | Path, env: dict[str, str] | None = None) -> Config:
    """Read and validate a YAML config file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start}: {exc.reason}); save the config as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}: malformed YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_config(data, source=str(p), base_dir=p.resolve().parent, env=env)


def load_found_config(given: str | Path | None, env: dict[str, str] | None = None) -> tuple[Config, Path, str]:
    """Find the config as services do (see resources.find_config), load it; (config, file, how found)."""
    path, how = find_config(given, os.environ if env is None else env)
    return load_config(path, env), path, how
