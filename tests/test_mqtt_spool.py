"""EventSpool (bounded, ordered, on-disk), EventEncoder envelopes, stats and credentials: unit tests."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from dsrter.edge.sinks import spool as event_spool
from dsrter.edge.config import MqttConfig
from dsrter.edge.sinks.credentials import CredentialError, Secret, mqtt_password, read_secret_file
from dsrter.edge.sinks.envelope import EventEncoder, dumps, iso_utc
from dsrter.edge.sinks.spool import EventSpool
from dsrter.edge.streams.events import EventBus
from dsrter.edge.sinks.stats import PipelineStats, percentile, status_line

from mqtt_support import face, frame


def keys(spool: EventSpool) -> list[int]:
    return [i.key for i in spool.snapshot()]


def test_memory_spool_is_ordered_bounded_and_counts_drops():
    s = EventSpool(max_events=5)
    for i in range(8):
        s.put("t", f"p{i}")
    assert s.pending == 5 and s.dropped == 3 and keys(s) == [4, 5, 6, 7, 8]
    a, b = s.take(), s.take()
    assert (a.key, b.key) == (4, 5) and s.inflight == 2 and s.queued == 3
    s.requeue(a.key)  # goes back before everything newer
    assert [s.take().key for _ in range(2)] == [4, 6]
    s.ack(5)
    s.ack(5)  # a duplicate acknowledgement counts once
    assert s.delivered == 1 and s.pending == 4
    for _ in range(4):  # in-flight items are never the ones dropped
        s.put("t", "x")
    assert s.inflight == 2 and s.pending == 5 and keys(s)[:2] == [4, 6]


def test_disk_spool_restores_undelivered_records_in_order(tmp_path):
    d = tmp_path / "spool"
    s = EventSpool(max_events=100, spool_dir=d, sync_interval_s=0)
    for i in range(10):
        s.put("dsrter/x/face", json.dumps({"i": i}), qos=1)
    for _ in range(4):
        s.ack(s.take().key)
    s.take()  # in flight when the process dies: must come back
    s.sync()
    # no close(): like a crash
    s2 = EventSpool(max_events=100, spool_dir=d)
    assert s2.restored == 6 and keys(s2) == [5, 6, 7, 8, 9, 10]
    assert [json.loads(i.payload)["i"] for i in s2.snapshot()] == [4, 5, 6, 7, 8, 9]
    assert s2.put("t", "new").key == 11  # keys keep growing across restarts
    while (item := s2.take()) is not None:
        s2.ack(item.key)
    s2.close()
    s3 = EventSpool(max_events=100, spool_dir=d)
    assert s3.pending == 0
    s3.close()
    assert len(list(d.glob("seg-*.jsonl"))) <= 1  # delivered segments are deleted


def test_disk_spool_survives_a_torn_last_line_and_rolls_segments(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(event_spool, "SEGMENT_RECORDS", 3)
    d = tmp_path / "spool"
    s = EventSpool(max_events=100, spool_dir=d)
    for i in range(7):
        s.put("t", f"p{i}")
    assert len(list(d.glob("seg-*.jsonl"))) == 3
    s._segment.write('{"k": 8, "t": "t", "p"')  # crash in the middle of a write
    s._segment.flush()
    with caplog.at_level(logging.WARNING):
        s2 = EventSpool(max_events=100, spool_dir=d)
    assert keys(s2) == list(range(1, 8)) and "unreadable spool line" in caplog.text
    for _ in range(6):
        s2.ack(s2.take().key)
    s2.sync()
    remaining = sorted(p.name for p in d.glob("seg-*.jsonl"))
    assert "seg-000000000001.jsonl" not in remaining and "seg-000000000004.jsonl" not in remaining
    s2.close()


def test_disk_spool_bigger_than_the_bound_keeps_the_newest(tmp_path):
    d = tmp_path / "spool"
    s = EventSpool(max_events=50, spool_dir=d)
    for i in range(30):
        s.put("t", str(i))
    s.close()
    s2 = EventSpool(max_events=10, spool_dir=d)
    assert keys(s2) == list(range(21, 31)) and s2.dropped == 20
    s2.close()


def test_encoder_envelope_ids_and_numpy_values():
    enc = EventEncoder("dev1", {"face": "f1"}, run_id="abc")
    ev = face(7, "fear")
    ev.confidence = np.float32(0.5)
    r1, r2 = enc.encode(ev, "first"), enc.encode(ev, "heartbeat")
    assert (r1["id"], r2["id"]) == ("abc-1", "abc-2") and (r1["seq"], r2["seq"]) == (1, 2)
    assert r1["schema"] == 1 and r1["device"] == "dev1" and r1["models"] == {"face": "f1"}
    assert r1["ts"] == iso_utc(ev.timestamp) and r1["ts"].endswith("Z")
    json.loads(dumps(r1))  # numpy scalars serialise
    assert dumps({"a": np.float32(1.5), "b": np.arange(2)}) == '{"a":1.5,"b":[0,1]}'


def test_stats_percentiles_sources_and_status_line():
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(101)), 95) == pytest.approx(95.0)
    bus = EventBus()
    st = PipelineStats(bus, window=50)
    for i in range(100):
        bus.publish(frame(i, faces=3))
    st.set_source("camera", "ok")
    st.set_source("microphone", "missing", "no input device")
    snap = st.snapshot()
    assert snap["frames"] == 100 and snap["faces"] == 3 and snap["fps"] == 29.5
    lat = snap["latency_ms"]["detect"]
    assert 1.0 <= lat["p50"] <= lat["p95"] <= 1.4
    assert snap["memory_rss_mb"] > 0 and snap["uptime_s"] >= 0
    assert snap["microphone"] == {"status": "missing", "since": snap["microphone"]["since"], "detail": "no input device"}
    json.loads(dumps(snap))
    assert status_line(snap, mqtt_connected=True) == "29.5 fps, 3 faces, camera ok, mic missing, mqtt connected"
    st.close()


def test_password_from_file_credentials_directory_or_none(tmp_path, caplog):
    pw = tmp_path / "pw"
    pw.write_text("hunter2\n")
    pw.chmod(0o600)
    src = mqtt_password(MqttConfig(password_file=pw), env={})
    assert src.secret.reveal() == "hunter2" and src.origin == f"password_file {pw}"
    assert "hunter2" not in repr(src) and "hunter2" not in f"{src.secret} {src.secret!r}"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "broker").write_text("from-systemd")
    src = mqtt_password(MqttConfig(credential="broker"), env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert src.secret.reveal() == "from-systemd" and "systemd credential" in src.origin
    assert mqtt_password(MqttConfig(), env={"CREDENTIALS_DIRECTORY": str(creds)}).secret is None
    assert mqtt_password(MqttConfig(), env={}).origin == "no password"
    (creds / "mqtt_password").write_text("")  # the installer's empty placeholder = no password
    assert mqtt_password(MqttConfig(), env={"CREDENTIALS_DIRECTORY": str(creds)}).secret is None
    with pytest.raises(CredentialError, match="not found"):
        read_secret_file(tmp_path / "missing")
    two = tmp_path / "two"
    two.write_text("a\nb\n")
    with pytest.raises(CredentialError, match="one line") as exc:
        read_secret_file(two)
    assert "a\nb" not in str(exc.value)
    loose = tmp_path / "loose"
    loose.write_text("x")
    loose.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert read_secret_file(loose) == Secret("x")
    assert "readable by every user" in caplog.text
