"""sd_notify protocol through a NOTIFY_SOCKET the test creates (path and abstract namespace)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import pytest

from dsrter.edge.app.notify import Notifier, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(2)
    yield str(path), s
    s.close()


def recv_all(s: socket.socket, n: int) -> list[str]:
    return [s.recv(4096).decode() for _ in range(n)]


def test_ready_status_watchdog_stopping_arrive(notify_socket, monkeypatch):
    path, s = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    n = Notifier()
    assert n.enabled
    assert n.ready("running: 0.0 fps, 0 faces")
    assert n.status("running:\n29.7 fps,  2 faces")
    assert n.watchdog()
    assert n.extend_timeout(30)
    assert n.stopping()
    got = recv_all(s, 5)
    assert got[0] == "READY=1\nSTATUS=running: 0.0 fps, 0 faces"
    assert got[1] == "STATUS=running: 29.7 fps, 2 faces"  # one line, whatever the input
    assert got[2] == "WATCHDOG=1"
    assert got[3] == "EXTEND_TIMEOUT_USEC=30000000"
    assert got[4] == "STOPPING=1"
    n.close()


def test_abstract_socket(monkeypatch):
    name = f"dsrter-test-{uuid.uuid4().hex}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(2)
    try:
        n = Notifier(env={"NOTIFY_SOCKET": "@" + name})
        assert n.watchdog()
        assert s.recv(100) == b"WATCHDOG=1"
    finally:
        s.close()


def test_from_another_process_like_the_daemon(notify_socket):
    path, s = notify_socket
    code = ("from dsrter.edge.app.notify import Notifier; n = Notifier(); "
            "n.ready('models loaded'); n.watchdog(); n.status('29.0 fps, 1 face')")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "NOTIFY_SOCKET": path}, check=True, timeout=30)
    assert recv_all(s, 3) == ["READY=1\nSTATUS=models loaded", "WATCHDOG=1", "STATUS=29.0 fps, 1 face"]


def test_no_op_without_systemd(tmp_path):
    n = Notifier(env={})
    assert not n.enabled
    assert n.ready() is False and n.watchdog() is False and n.status("x") is False
    gone = Notifier(env={"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert gone.enabled and gone.watchdog() is False  # a vanished socket never raises


def test_watchdog_interval_is_half_the_timeout_for_this_pid():
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "bogus"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
