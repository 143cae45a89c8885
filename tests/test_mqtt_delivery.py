"""Delivery guarantees against real mosquitto brokers: outages, restarts, bounds, spool, SIGKILL/SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


from conftest import make_broker
from dsrter.edge.streams.events import EventBus
from dsrter.edge.sinks.mqtt import MqttSink

from mqtt_support import Collector, face, mqtt_cfg

FAST = {"publish": {"heartbeat_s": 0, "max_rate_hz": 1000}}


def persistent_broker(tmp: Path):
    """A broker that keeps subscriber sessions across stop/start (a real restart, not a new broker)."""
    return make_broker(tmp, extra_conf=f"persistence true\npersistence_location {tmp}/\n")


def prepare_session(broker, topic: str, client_id: str) -> Collector:
    """Register a persistent QoS 1 subscription, then go away: the broker queues for it meanwhile."""
    col = Collector(broker.host, broker.port, (topic,), client_id=client_id, clean=False).start()
    col.stop()
    return Collector(broker.host, broker.port, (topic,), client_id=client_id, clean=False)


def seqs(col: Collector, topic: str) -> list[int]:
    return [r["seq"] for r in col.json(topic)]


def first_occurrences(values: list) -> list:
    seen, out = set(), []
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def test_broker_stopped_mid_stream_then_restarted_every_event_arrives_in_order(tmp_path):
    broker = persistent_broker(tmp_path / "b")
    broker.start()
    dev = "restart-dev"
    topic = f"dsrter/{dev}/face"
    col = Collector(broker.host, broker.port, (topic,), client_id="restart-col", clean=False).start()
    bus = EventBus()
    sink = MqttSink(mqtt_cfg(broker, dev, **FAST), bus)
    sink.start()
    try:
        assert sink.wait_connected(5)
        produced = 0

        def produce(n: int) -> None:
            nonlocal produced
            for _ in range(n):
                bus.publish(face(1, ("happy", "sad")[produced % 2], changed=True))
                produced += 1
                time.sleep(0.01)

        produce(20)
        assert col.wait_for(lambda msgs: len(msgs) >= 20, 5)
        produce(5)  # some of these are in flight when the broker goes
        broker.stop()
        deadline = time.monotonic() + 5
        while sink.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not sink.connected
        produce(30)  # all while the broker is down
        assert sink.pending >= 30
        broker.start()
        produce(20)  # during and after the reconnect
        assert col.wait_for(lambda msgs: len(set(json.loads(p)["seq"] for _, p, _ in msgs)) >= produced, 20), \
            (len(col.msgs), produced)
        got = seqs(col, topic)
        assert first_occurrences(got) == list(range(1, produced + 1))  # every id, in order
        assert len({r["run"] for r in col.json(topic)}) == 1
        assert sink.flush(5) and sink.pending == 0
        assert sink.dropped == 0 and sink.delivered == produced == 75
        assert sink.connects == 2
    finally:
        sink.stop(timeout=2)
        col.stop()
        broker.stop()


def test_broker_down_at_start_events_are_buffered_and_delivered(tmp_path):
    broker = persistent_broker(tmp_path / "b")
    dev = "late-dev"
    topic = f"dsrter/{dev}/face"
    broker.start()
    col = prepare_session(broker, topic, "late-col")
    broker.stop()

    bus = EventBus()
    sink = MqttSink(mqtt_cfg(broker, dev, **FAST), bus)
    sink.start()  # must not block or raise with the broker down
    try:
        for i in range(15):
            bus.publish(face(1, changed=True))
            time.sleep(0.003)  # > 1/max_rate_hz: a burst inside the window would be coalesced
        time.sleep(0.6)
        assert not sink.connected and sink.connect_failures >= 1
        assert sink.pending == 15 and sink.delivered == 0
        broker.start()
        col.start()
        assert sink.wait_connected(5)
        assert col.wait_for(lambda msgs: len(msgs) >= 15, 10)
        assert first_occurrences(seqs(col, topic)) == list(range(1, 16))
        assert sink.flush(5)
    finally:
        sink.stop(timeout=2)
        col.stop()
        broker.stop()


def test_buffer_is_bounded_oldest_dropped_first_and_counted(tmp_path):
    broker = persistent_broker(tmp_path / "b")
    dev = "bound-dev"
    topic = f"dsrter/{dev}/face"
    broker.start()
    col = prepare_session(broker, topic, "bound-col")
    broker.stop()
    bus = EventBus()
    sink = MqttSink(mqtt_cfg(broker, dev, buffer={"max_events": 10}, **FAST), bus)
    sink.start()
    try:
        for i in range(25):
            bus.publish(face(1, changed=True))
            time.sleep(0.003)
        assert sink.pending == 10 and sink.dropped == 15
        broker.start()
        col.start()
        assert col.wait_for(lambda msgs: len(msgs) >= 10, 10)
        assert sink.flush(5)
        assert first_occurrences(seqs(col, topic)) == list(range(16, 26))  # the newest 10, in order
        sink._publish_stats()  # the drop count is reported on the stats topic too
        stats = Collector(broker.host, broker.port, (f"dsrter/{dev}/stats",)).start()
        assert stats.wait_for(lambda msgs: len(msgs) >= 1, 5)
        assert stats.json(f"dsrter/{dev}/stats")[-1]["mqtt"]["dropped"] == 15
        stats.stop()
    finally:
        sink.stop(timeout=2)
        col.stop()
        broker.stop()


CHILD = r"""
import json, signal, sys, time
from dsrter.edge.config import parse_config
from dsrter.edge.streams.events import EventBus, FaceEvent
from dsrter.edge.sinks.mqtt import MqttSink
import numpy as np

mode, cfg_json = sys.argv[1], sys.argv[2]
cfg = parse_config(json.loads(cfg_json), env={})
bus = EventBus()
sink = MqttSink(cfg, bus)
stop = False

def on_term(signum, frame):  # the daemon's pattern: flag in the handler, stop from the main loop
    global stop
    stop = True

signal.signal(signal.SIGTERM, on_term)
sink.start()
scores = np.array([0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1], dtype=np.float32)
def event():
    return FaceEvent(time.time(), 1, (0.1, 0.1, 0.2, 0.2), scores, "happy", 0.4, changed=True)

if mode == "run":
    if not sink.wait_connected(10):
        sys.exit(3)
    print("READY", flush=True)
    n = 0
    while not stop:
        bus.publish(event()); n += 1
        time.sleep(0.01)
    t = time.monotonic()
    sink.stop(timeout=5)
    print(f"PRODUCED {n} PENDING {sink.pending} STOP_S {time.monotonic() - t:.2f}", flush=True)
    sys.exit(0)
elif mode == "spool":
    for _ in range(int(sys.argv[3])):
        bus.publish(event())
        time.sleep(0.003)
    print(f"SPOOLED {sink.pending}", flush=True)
    while True:
        time.sleep(1)
"""


def start_child(tmp_path: Path, mode: str, cfg: dict, *extra: str) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.Popen([sys.executable, str(script), mode, json.dumps(cfg), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def child_cfg(broker, dev: str, **mqtt) -> dict:
    m = {"host": broker.host, "port": broker.port, "keepalive_s": 5, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5,
         "publish": {"heartbeat_s": 0, "max_rate_hz": 1000}}
    m.update(mqtt)
    return {"device_id": dev, "mqtt": m}


def wait_line(proc: subprocess.Popen, prefix: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line.strip()
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"child did not print {prefix!r}; stderr: {proc.stderr.read()[-2000:]}")


def test_last_will_offline_when_the_process_is_killed(private_broker, tmp_path):
    dev = "lwt-dev"
    avail = f"dsrter/{dev}/availability"
    col = Collector(private_broker.host, private_broker.port, (avail,)).start()
    proc = start_child(tmp_path, "run", child_cfg(private_broker, dev))
    try:
        wait_line(proc, "READY")
        assert col.wait_for(lambda msgs: [p for _, p, _ in msgs][-1:] == [b"online"], 5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        assert col.wait_for(lambda msgs: [p for _, p, _ in msgs][-1:] == [b"offline"], 10), col.msgs
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    col.stop()
    late = Collector(private_broker.host, private_broker.port, (avail,)).start()
    assert late.wait_for(lambda msgs: msgs == [(avail, b"offline", True)], 5)  # retained
    late.stop()


def test_sigterm_flushes_publishes_offline_and_exits_zero(private_broker, tmp_path):
    dev = "term-dev"
    base = f"dsrter/{dev}"
    col = Collector(private_broker.host, private_broker.port, (f"{base}/face", f"{base}/availability")).start()
    proc = start_child(tmp_path, "run", child_cfg(private_broker, dev))
    try:
        wait_line(proc, "READY")
        time.sleep(0.5)
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        line = wait_line(proc, "PRODUCED")
        assert proc.wait(10) == 0
        assert time.monotonic() - t < 10
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    produced = int(line.split()[1])
    assert produced > 10 and " PENDING 0 " in line
    assert col.wait_for(lambda msgs: col.on(f"{base}/availability")[-1:] == [(b"offline", False)], 5)
    assert first_occurrences(seqs(col, f"{base}/face")) == list(range(1, produced + 1))
    # "offline" came after the last event
    topics = [t for t, _, _ in col.msgs]
    assert len(topics) - 1 - topics[::-1].index(f"{base}/face") < topics.index(f"{base}/availability", 1)
    col.stop()


def test_on_disk_spool_survives_a_crash_and_is_delivered_after_restart(tmp_path):
    broker = persistent_broker(tmp_path / "b")
    dev = "spool-dev"
    topic = f"dsrter/{dev}/face"
    spool = tmp_path / "spool"
    broker.start()
    col = prepare_session(broker, topic, "spool-col")
    broker.stop()
    cfg = child_cfg(broker, dev, buffer={"max_events": 100, "spool_dir": str(spool)})
    proc = start_child(tmp_path, "spool", cfg, "12")
    try:
        assert wait_line(proc, "SPOOLED") == "SPOOLED 12"
        os.kill(proc.pid, signal.SIGKILL)  # a crash: nothing is flushed on the way out
        proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
    broker.start()
    col.start()
    from dsrter.edge.config import parse_config

    sink = MqttSink(parse_config(cfg, env={}), EventBus())
    assert sink.pending == 12 and sink.spool.restored == 12
    sink.start()
    try:
        assert col.wait_for(lambda msgs: len(msgs) >= 12, 10)
        recs = col.json(topic)
        assert first_occurrences([r["seq"] for r in recs]) == list(range(1, 13))
        assert len({r["run"] for r in recs}) == 1 and recs[0]["run"] != sink.encoder.run_id  # the dead run's ids
        assert sink.flush(5)
    finally:
        sink.stop(timeout=2)
        col.stop()
        broker.stop()
    again = MqttSink(parse_config(cfg, env={}), EventBus())
    assert again.pending == 0  # delivered records are not sent again after the next restart
    again.stop()
