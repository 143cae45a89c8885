"""Real daemons for the MQTT and Home Assistant tests: a config on the shipped models and a
labelled clip of ../shared/data/av-samples, started as ``dsrter run`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def daemon_config(tmp_path: Path, broker, device: str, clip: Path, loop: bool, events: Path | None = None) -> Path:
    """config.yaml with the shipped models, ``clip`` as the camera, no overlay, MQTT at ``broker``."""
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, name in (("model", "face_emotion.tflite"), ("detector_model", "face_detection_short_range.tflite")):
        data["face"][key] = str(REPO / "models" / name)
    data["speech"]["model"] = str(REPO / "models" / "speech_emotion.tflite")
    data["device_id"] = device
    data["camera"].update({"device": str(clip), "loop": loop})
    data["overlay"]["backend"] = "none"
    data["mqtt"].update({"host": broker.host, "port": broker.port, "stats_interval_s": 1.0})
    if events is not None:
        data["events_file"].update({"enabled": True, "path": str(events)})
    p = tmp_path / f"config-{clip.stem}.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def start_daemon(cfg: Path, log: Path) -> subprocess.Popen:
    """``dsrter run -c cfg`` with stderr in ``log`` (no DSRTER_* overrides from this environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSRTER_", "NOTIFY_SOCKET", "WATCHDOG"))}
    env.update(PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3", GLOG_minloglevel="2")
    return subprocess.Popen([sys.executable, "-m", "dsrter.edge.cli.main", "run", "-c", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env)


def clip(av_samples: Path, prefix: str) -> Path:
    """The one av-samples clip whose name starts with ``prefix``."""
    (p,) = sorted(av_samples.glob(f"{prefix}*.mp4"))
    return p
