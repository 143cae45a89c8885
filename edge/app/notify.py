"""systemd service notifications (``sd_notify``) without libsystemd.

The protocol is one datagram of ``KEY=VALUE`` lines sent to the unix socket named by
``$NOTIFY_SOCKET`` (a path, or an abstract socket when it starts with ``@``). Outside systemd
(the variable unset) every call is a cheap no-op, so the daemon calls these unconditionally:

    n = Notifier()
    n.ready("running: 0.0 fps, 0 faces")     # after models are loaded and sources opened
    n.status("running: 29.7 fps, 2 faces")   # whenever there is news, a few times a minute at most
    n.watchdog()                             # from the main loop, every watchdog_interval() seconds
    n.stopping()                             # when SIGTERM arrives, before the flush

Sending never raises: a lost notification is logged at DEBUG level and the daemon carries on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Mapping, Optional

log = logging.getLogger(__name__)


def _address(value: str) -> str | bytes:
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


class Notifier:
    """Sends READY/STATUS/WATCHDOG/STOPPING to systemd when ``$NOTIFY_SOCKET`` is set."""

    def __init__(self, socket_path: Optional[str] = None, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = socket_path if socket_path is not None else env.get("NOTIFY_SOCKET", "")
        self._addr = _address(path) if path else None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._addr is not None

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; True when it was handed to the socket."""
        if self._addr is None or not lines:
            return False
        message = "\n".join(lines).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(message, self._addr)
                return True
            except OSError as exc:
                if not self._warned:
                    log.debug("sd_notify to %r failed: %s", self._addr, exc)
                    self._warned = True
                return False

    def ready(self, status: Optional[str] = None) -> bool:
        """READY=1 (plus an optional STATUS line): the service is up."""
        lines = ["READY=1"]
        if status:
            lines.append(f"STATUS={_one_line(status)}")
        return self.notify(*lines)

    def status(self, text: str) -> bool:
        """STATUS=<text>: shown by ``systemctl status``."""
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """WATCHDOG=1: the main loop is alive."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: Optional[str] = None) -> bool:
        """STOPPING=1: shutdown has begun."""
        lines = ["STOPPING=1"]
        if status:
            lines.append(f"STATUS={_one_line(status)}")
        return self.notify(*lines)

    def extend_timeout(self, seconds: float) -> bool:
        """EXTEND_TIMEOUT_USEC: ask for more start/stop time (slow model loading on a Pi)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={max(1, int(seconds * 1_000_000))}")

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def watchdog_interval(env: Mapping[str, str] | None = None) -> Optional[float]:
    """How often to call :meth:`Notifier.watchdog`, in seconds, or None when no watchdog is set.

    systemd passes the watchdog timeout as ``$WATCHDOG_USEC`` (and the pid it is meant for as
    ``$WATCHDOG_PID``); this returns half of the timeout, the interval systemd recommends.
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring malformed WATCHDOG_USEC=%r", usec)
        return None
    if value <= 0:
        return None
    return value / 1_000_000 / 2
