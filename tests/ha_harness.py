"""A headless Home Assistant wired to a local mosquitto, for the tests (standard library only).

Home Assistant runs from its own interpreter (``DSRTER_HA_PY``; by default the venv that
``.ci/home_assistant.sh`` caches), or inside a chroot holding a newer Python (``DSRTER_HA_ROOT``
plus ``DSRTER_HA_PY`` as seen inside it). It gets the MQTT integration through a pre-written config
entry and ``mqtt_statestream``, which republishes every sensor's state under ``hastate/`` on the
same broker, so a test sees Home Assistant's states live. After ``stop()`` the entity and device
registries are read from ``.storage``.

    python tests/ha_harness.py --warm-up PYTHON   # first start with pip on: Home Assistant installs
                                                   # its core integrations' requirements, then stops
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Optional

HA_VERSION = "2024.3.3"
STATESTREAM = "hastate"


def cache_python() -> Path:
    """Where .ci/home_assistant.sh puts Home Assistant's interpreter."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dsrter-ci" / f"ha-{HA_VERSION}" / "bin" / "python"


def find_python() -> Optional[str]:
    """Home Assistant's interpreter (as seen inside DSRTER_HA_ROOT when set), or None."""
    if os.environ.get("DSRTER_HA_PY"):
        return os.environ["DSRTER_HA_PY"]
    p = cache_python()
    return str(p) if p.is_file() and (p.parent.parent / ".ready").is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: Optional[subprocess.Popen] = None) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.25)
    return False


def _config_yaml(http_port: int) -> str:
    return f"""homeassistant:
  name: dsrter-test
  time_zone: UTC
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  currency: EUR
  country: DE
http:
  server_host: 127.0.0.1
  server_port: {http_port}
logger:
  default: warning
mqtt_statestream:
  base_topic: {STATESTREAM}
  publish_attributes: true
  include:
    domains: [sensor, binary_sensor]
"""


def _mqtt_entry(port: int) -> dict:
    entry = {"entry_id": uuid.uuid4().hex, "version": 1, "minor_version": 1, "domain": "mqtt",
             "title": "127.0.0.1", "data": {"broker": "127.0.0.1", "port": port, "discovery": True},
             "options": {}, "pref_disable_new_entities": False, "pref_disable_polling": False,
             "source": "user", "unique_id": None, "disabled_by": None}
    return {"version": 1, "minor_version": 1, "key": "core.config_entries", "data": {"entries": [entry]}}


class HomeAssistant:
    """One Home Assistant process with a fresh configuration folder; ``start()``/``stop()``."""

    def __init__(self, python: str, mqtt_port: int, root: Optional[str] = None, pip: bool = False) -> None:
        self.python = python
        self.root = root or ""
        self.mqtt_port = mqtt_port
        self.pip = pip
        self.http_port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="dsrter-ha-", dir=f"{self.root}/tmp" if self.root else None))
        self.config = self.dir / "config"
        self.log_path = self.dir / "ha.log"
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 600.0) -> None:
        """Write the configuration, start Home Assistant and wait until its HTTP port is open."""
        (self.config / ".storage").mkdir(parents=True)
        (self.config / "configuration.yaml").write_text(_config_yaml(self.http_port))
        (self.config / ".storage" / "core.config_entries").write_text(json.dumps(_mqtt_entry(self.mqtt_port)))
        inner = str(self.config)[len(self.root):]
        cmd = (["chroot", self.root] if self.root else []) + [self.python, "-m", "homeassistant", "-c", inner]
        if not self.pip:
            cmd.append("--skip-pip")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_port(self.http_port, timeout, self.proc):
            self.kill()
            raise RuntimeError(f"Home Assistant did not open its HTTP port within {timeout:.0f} s; "
                               f"log tail:\n{self.log_tail()}")

    def stop(self, timeout: float = 90.0) -> int:
        """SIGTERM and wait (Home Assistant then writes its registries and restore state)."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- what Home Assistant recorded ------------------------------------------------------------
    def _storage(self, name: str) -> dict:
        return json.loads((self.config / ".storage" / name).read_text())["data"]

    def entities(self) -> list[dict]:
        """The MQTT entities of the entity registry."""
        return [e for e in self._storage("core.entity_registry")["entities"] if e["platform"] == "mqtt"]

    def devices(self) -> dict[str, dict]:
        return {d["id"]: d for d in self._storage("core.device_registry")["devices"]}

    def restored_states(self) -> dict[str, dict]:
        """entity_id -> the state Home Assistant saved when it stopped."""
        return {s["state"]["entity_id"]: s["state"] for s in self._storage("core.restore_state")}

    def version(self) -> str:
        """The release that ran (Home Assistant writes it to .HA_VERSION)."""
        return (self.config / ".HA_VERSION").read_text().strip()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def problems(self) -> list[str]:
        """WARNING/ERROR lines of the log that concern MQTT or sensors (with their continuation lines)."""
        out, keep = [], False
        for line in self.log_text().splitlines():
            head = len(line) > 24 and line[:4].isdigit() and line[4] == "-"
            if head:
                keep = (" WARNING " in line or " ERROR " in line) and any(
                    k in line.lower() for k in ("mqtt", "sensor", "template", "dsrter"))
                if keep:
                    out.append(line)
            elif keep:
                out[-1] += "\n" + line
        return out


class Mosquitto:
    """A throw-away mosquitto on a free port (for the warm-up; the tests use their own fixture)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="dsrter-mosq-"))
        (self.dir / "mosquitto.conf").write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.dir / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port, 10, self.proc):
            raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def warm_up(python: str) -> int:
    """Start Home Assistant once with pip enabled (it installs what its core integrations need)."""
    broker = Mosquitto()
    ha = HomeAssistant(python, broker.port, root=os.environ.get("DSRTER_HA_ROOT"), pip=True)
    try:
        ha.start(timeout=900)
        time.sleep(10)  # let the MQTT entry and statestream set up (and install what they need)
        rc = ha.stop()
        problems = [p for p in ha.problems() if "Unable to install" in p or "Error setting up" in p]
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        print(f"Home Assistant started and stopped (exit {rc})", file=sys.stderr)
        return 0
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        ha.cleanup()
        broker.stop()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--warm-up":
        print("usage: python tests/ha_harness.py --warm-up HOME_ASSISTANT_PYTHON", file=sys.stderr)
        sys.exit(2)
    sys.exit(warm_up(sys.argv[2]))
