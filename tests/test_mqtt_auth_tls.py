"""User name/password (file and systemd credential) and TLS (CA, client certificate) against mosquitto."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import make_broker
from dsrter.edge.streams.events import EventBus
from dsrter.edge.sinks.mqtt import MqttSink, MqttSinkError

from mqtt_support import Collector, face, mqtt_cfg

SECRET = "s3cret-Pa55-42"
WRONG = "not-the-password-17"


@pytest.fixture
def auth_broker(tmp_path):
    exe = shutil.which("mosquitto_passwd")
    if exe is None:
        pytest.skip("mosquitto_passwd not installed")
    pw = tmp_path / "broker-passwd"
    subprocess.run([exe, "-c", "-b", str(pw), "edge", SECRET], check=True, capture_output=True)
    b = make_broker(tmp_path / "auth", extra_conf=f"allow_anonymous false\npassword_file {pw}\n")
    b.start()
    yield b
    b.stop()


def _secret_file(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def test_wrong_password_logs_a_clear_error_and_retries_with_backoff(auth_broker, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="dsrter")
    cfg = mqtt_cfg(auth_broker, "auth-bad", username="edge", password_file=str(_secret_file(tmp_path / "pw", WRONG)),
                   reconnect_min_s=0.1, reconnect_max_s=0.4)
    sink = MqttSink(cfg, EventBus())
    sink.start()
    try:
        deadline = time.monotonic() + 8
        while sink.refusals < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sink.refusals >= 3, "the sink should keep retrying"
        assert not sink.connected and sink._thread.is_alive()
    finally:
        sink.stop(timeout=1)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("refused the connection" in m and "not authori" in m.lower() and "check mqtt.username" in m
               and "password_file" in m for m in errors), errors
    assert WRONG not in caplog.text and SECRET not in caplog.text


def _deliver_one_face(cfg, col: Collector, track_id: int, expect_total: int) -> MqttSink:
    """Connect a sink with ``cfg``, publish one face event and wait until the subscriber has it."""
    bus = EventBus()
    sink = MqttSink(cfg, bus)
    sink.start()
    assert sink.wait_connected(5)
    # Nagle off on the broker socket, TLS or not (PUBLISHes are small and latency matters)
    assert sink._client.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    bus.publish(face(track_id))
    assert col.wait_for(lambda m: len(m) == expect_total, 5)
    sink.stop(timeout=2)
    return sink


def test_right_password_from_file_or_systemd_credential(auth_broker, tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG, logger="dsrter")
    topic = "dsrter/auth-ok/face"
    col = Collector(auth_broker.host, auth_broker.port, (topic,), auth=("edge", SECRET)).start()
    # 1. mqtt.password_file
    cfg = mqtt_cfg(auth_broker, "auth-ok", username="edge", password_file=str(_secret_file(tmp_path / "pw", SECRET)),
                   publish={"heartbeat_s": 0})
    _deliver_one_face(cfg, col, 1, expect_total=1)
    # 2. LoadCredential: $CREDENTIALS_DIRECTORY/mqtt_password
    creds = tmp_path / "creds"
    creds.mkdir()
    _secret_file(creds / "mqtt_password", SECRET)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    cfg2 = mqtt_cfg(auth_broker, "auth-ok", username="edge", publish={"heartbeat_s": 0})
    sink2 = _deliver_one_face(cfg2, col, 2, expect_total=2)
    col.stop()
    assert "systemd credential 'mqtt_password'" in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in repr(sink2._password) and SECRET not in f"{sink2._password}"


# -- TLS -----------------------------------------------------------------------------------------------
def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash", cwd=d)


def _make_leaf(d: Path, name: str, ca: str, usage: str, san: str | None) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    ext = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
           f"extendedKeyUsage={usage}", "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid"]
    if san:
        ext.append(f"subjectAltName={san}")
    (d / f"{name}.ext").write_text("\n".join(ext) + "\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    d = tmp_path_factory.mktemp("pki")
    _make_ca(d, "test-ca")
    _make_ca(d, "other-ca")
    _make_leaf(d, "server", "test-ca", "serverAuth", "IP:127.0.0.1,DNS:localhost")
    _make_leaf(d, "client", "test-ca", "clientAuth", None)
    return d


def _tls_broker(tmp: Path, pki: Path, require_cert: bool):
    conf = (f"cafile {pki / 'test-ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
            f"require_certificate {'true' if require_cert else 'false'}\n")
    b = make_broker(tmp, extra_conf=conf)
    b.start()
    return b


def _tls_subscriber(broker, pki: Path, topic: str) -> Collector:
    col = Collector(broker.host, broker.port, (topic,))
    col.client.tls_set(ca_certs=str(pki / "test-ca.crt"), certfile=str(pki / "client.crt"), keyfile=str(pki / "client.key"))
    return col.start()


def test_tls_with_a_ca_generated_in_the_test(tmp_path, pki, caplog):
    caplog.set_level(logging.INFO, logger="dsrter")
    broker = _tls_broker(tmp_path / "tls", pki, require_cert=False)
    try:
        topic = "dsrter/tls-dev/face"
        col = _tls_subscriber(broker, pki, topic)
        cfg = mqtt_cfg(broker, "tls-dev", tls={"enabled": True, "ca_file": str(pki / "test-ca.crt")},
                       publish={"heartbeat_s": 0})
        _deliver_one_face(cfg, col, 1, expect_total=1)

        # a server certificate from another CA is refused, with the reason in the log; retries go on
        bad = mqtt_cfg(broker, "tls-bad", tls={"enabled": True, "ca_file": str(pki / "other-ca.crt")})
        sink2 = MqttSink(bad, EventBus())
        sink2.start()
        deadline = time.monotonic() + 5
        while sink2.connect_failures < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sink2.connect_failures >= 2 and not sink2.connected
        sink2.stop(timeout=1)
        assert "certificate verify failed" in caplog.text
        col.stop()
    finally:
        broker.stop()


def test_tls_with_a_client_certificate(tmp_path, pki):
    broker = _tls_broker(tmp_path / "mtls", pki, require_cert=True)
    try:
        topic = "dsrter/mtls-dev/face"
        col = _tls_subscriber(broker, pki, topic)
        tls = {"enabled": True, "ca_file": str(pki / "test-ca.crt"), "cert_file": str(pki / "client.crt"),
               "key_file": str(pki / "client.key")}
        _deliver_one_face(mqtt_cfg(broker, "mtls-dev", tls=tls, publish={"heartbeat_s": 0}), col, 3, expect_total=1)
        # without the client certificate the broker refuses the handshake
        nocert = MqttSink(mqtt_cfg(broker, "mtls-none", tls={"enabled": True, "ca_file": str(pki / "test-ca.crt")}),
                          EventBus())
        nocert.start()
        assert not nocert.wait_connected(1.0)
        nocert.stop(timeout=1)
        col.stop()
    finally:
        broker.stop()


def test_tls_and_password_file_problems_are_clear_errors_at_start(tmp_path):
    cfg = mqtt_cfg(type("B", (), {"host": "127.0.0.1", "port": 1})(), "tls-missing",
                   tls={"enabled": True, "ca_file": str(tmp_path / "nope.crt")})
    with pytest.raises(MqttSinkError, match="mqtt.tls.ca_file"):
        MqttSink(cfg, EventBus()).start()
    cfg = mqtt_cfg(type("B", (), {"host": "127.0.0.1", "port": 1})(), "pw-missing", username="edge",
                   password_file=str(tmp_path / "no-such-file"))
    with pytest.raises(MqttSinkError, match="no-such-file: secret file not found"):
        MqttSink(cfg, EventBus()).start()
