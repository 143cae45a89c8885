"""A mosquitto process on 127.0.0.1 with a generated config, for `dsrter bench` and the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional


class BrokerError(RuntimeError):
    """mosquitto is missing or did not start."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> bool:
    """True once something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def mosquitto_exe() -> Optional[str]:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).is_file()), None)


class LocalBroker:
    """mosquitto on 127.0.0.1; ``stop``/``kill`` and ``start`` again keep the same port and config.

    ``extra_conf`` is appended to the generated config (password file, TLS listener, persistence)."""

    def __init__(self, workdir: Path, extra_conf: str = "", port: Optional[int] = None):
        exe = mosquitto_exe()
        if exe is None:
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
        self.exe = exe
        self.host = "127.0.0.1"
        self.port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "stderr.log"
        self.proc: Optional[subprocess.Popen] = None
        lines = [f"listener {self.port} 127.0.0.1", "set_tcp_nodelay true", "persistence false", f"log_dest file {workdir / 'mosquitto.log'}"]
        if "allow_anonymous" not in extra_conf and "password_file" not in extra_conf:
            lines.append("allow_anonymous true")
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise mosquitto drops to a user that cannot write workdir
        self.conf.write_text("\n".join(lines) + "\n" + extra_conf)

    def start(self) -> None:
        if self.proc and self.proc.poll() is None:
            return
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=err)
        if not wait_port(self.port):
            self.stop()
            raise BrokerError(f"mosquitto did not start on port {self.port}; see {self.log}")

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
