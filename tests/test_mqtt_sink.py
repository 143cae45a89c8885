"""MqttSink against a real mosquitto: every topic's payload, HA discovery, the publish policy."""

from __future__ import annotations

import json
import re
import time

import pytest

from dsrter.edge.streams.events import EventBus
from dsrter.edge.labels import LABELS
from dsrter.edge.sinks.mqtt import EventPolicy, MqttSink
from dsrter.edge.sinks.stats import PipelineStats

from mqtt_support import (EMOTION, FACE, FACE_ENTRY, FACE_STATE, SPEECH, STATS, Collector, check, face, frame,
                          fused, mqtt_cfg, speech)

MODELS = {"face": "face_emotion.tflite sha256:0123abcd", "speech": "speech_emotion.tflite sha256:4567ef01"}


@pytest.fixture
def sink_factory():
    made: list[MqttSink] = []

    def make(cfg, bus, **kw) -> MqttSink:
        s = MqttSink(cfg, bus, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop(timeout=2)


def test_every_topic_payload_matches_its_schema(mqtt_broker, sink_factory):
    dev = "schema-dev"
    cfg = mqtt_cfg(mqtt_broker, dev, stats_interval_s=0.3, publish={"heartbeat_s": 0, "max_rate_hz": 50})
    col = Collector(mqtt_broker.host, mqtt_broker.port, (f"dsrter/{dev}/#", f"homeassistant/+/{dev}/#")).start()
    bus = EventBus()
    stats = PipelineStats(bus)
    stats.set_source("camera", "ok")
    stats.set_source("microphone", "missing", "no input device")
    sink = sink_factory(cfg, bus, stats=stats.snapshot, model_versions=MODELS)
    sink.start()
    assert sink.wait_connected(5)
    for i in range(5):
        bus.publish(frame(i, faces=2))
    bus.publish(face(1, "happy"))
    bus.publish(face(2, "sad", box=(0.5, 0.5, 0.1, 0.1)))
    bus.publish(speech("angry"))
    bus.publish(fused("happy"))
    time.sleep(0.05)
    bus.publish(speech(None, changed=True))  # no speech: label null
    bus.publish(fused(None, changed=True))
    base = f"dsrter/{dev}"
    want = {f"{base}/face": 2, f"{base}/speech": 2, f"{base}/emotion": 2, f"{base}/stats": 1,
            f"{base}/face/state": 1, f"{base}/speech/state": 1, f"{base}/emotion/state": 1, f"{base}/availability": 1}
    assert col.wait_for(lambda msgs: all(sum(t == k for t, _, _ in msgs) >= n for k, n in want.items()), 10), \
        sorted({t for t, _, _ in col.msgs})
    assert sink.flush(5)
    assert col.wait_for(lambda msgs: any(t == f"{base}/emotion/state" and b'"label":null' in p for t, p, _ in msgs), 3)
    # the first stats may go out right at connect, before any frame: wait for one that saw the frames
    assert col.wait_for(lambda msgs: any(t == f"{base}/stats" and b'"frames":5' in p for t, p, _ in msgs), 3)

    assert col.on(f"{base}/availability")[0][0] == b"online"  # (live delivery: retain flag not set)
    faces = col.json(f"{base}/face")
    for f in faces:
        check(f, FACE, "face")
        assert f["models"] == MODELS and f["device"] == dev
    assert [f["track_id"] for f in faces] == [1, 2]
    speeches = col.json(f"{base}/speech")
    for s in speeches:
        check(s, SPEECH, "speech")
    assert [s["label"] for s in speeches] == ["angry", None]
    assert speeches[1]["speaking"] is False and speeches[1]["scores"] is None
    emotions = col.json(f"{base}/emotion")
    for e in emotions:
        check(e, EMOTION, "emotion")
    assert [e["label"] for e in emotions] == ["happy", None]
    # ids: one run, gap-free sequence across the event topics, id = run-seq
    events = sorted(faces + speeches + emotions, key=lambda r: r["seq"])
    assert [r["seq"] for r in events] == list(range(1, len(events) + 1))
    assert len({r["run"] for r in events}) == 1
    assert all(r["id"] == f"{r['run']}-{r['seq']}" for r in events)
    for r in events:
        assert abs(time.time() - r["epoch"]) < 60

    state_msgs = col.on(f"{base}/face/state")
    fs = json.loads(state_msgs[-1][0])
    check(fs, FACE_STATE, "face/state")
    assert fs["count"] == 2 and fs["label"] == "happy" and fs["track_id"] == 1  # the larger face leads
    for entry in fs["faces"]:
        check(entry, FACE_ENTRY, "face/state faces[]")
    ss = col.json(f"{base}/speech/state")[-1]
    check(ss, SPEECH, "speech/state")
    es = col.json(f"{base}/emotion/state")[-1]
    check(es, EMOTION, "emotion/state")
    assert es["label"] is None

    st = [r for r in col.json(f"{base}/stats") if r["frames"] == 5][-1]
    check(st, STATS, "stats")
    assert st["fps"] == 29.5 and st["faces"] == 2
    assert set(st["latency_ms"]) == {"detect", "classify", "total"}
    assert all(set(v) == {"p50", "p95"} and v["p50"] <= v["p95"] for v in st["latency_ms"].values())
    assert st["camera"]["status"] == "ok" and st["microphone"]["status"] == "missing"
    assert st["mqtt"]["connected"] is True

    # retained topics really are retained: a late subscriber gets them at once
    late = Collector(mqtt_broker.host, mqtt_broker.port, (f"{base}/+/state", f"{base}/availability", f"{base}/stats"))
    late.start()
    assert late.wait_for(lambda msgs: {t for t, _, r in msgs if r} >= {
        f"{base}/face/state", f"{base}/speech/state", f"{base}/emotion/state", f"{base}/availability", f"{base}/stats"}, 5)
    late.stop()

    sink.stop(timeout=3)
    assert col.wait_for(lambda msgs: col.on(f"{base}/availability")[-1][0] == b"offline", 5)
    col.stop()


HA_SENSOR_KEYS = {"name", "unique_id", "device", "origin", "qos", "state_topic", "value_template", "device_class",
                  "options", "json_attributes_topic", "json_attributes_template", "icon", "availability_topic",
                  "payload_available", "payload_not_available", "state_class", "unit_of_measurement",
                  "entity_category"}
HA_BINARY_KEYS = {"name", "unique_id", "device", "origin", "qos", "state_topic", "payload_on", "payload_off",
                  "device_class", "entity_category"}


def _validate_discovery(topic: str, cfg: dict, dev: str) -> None:
    m = re.fullmatch(r"homeassistant/(sensor|binary_sensor)/([A-Za-z0-9_-]+)/([A-Za-z0-9_-]+)/config", topic)
    assert m, topic
    component, node, obj = m.groups()
    assert node == dev
    allowed = HA_SENSOR_KEYS if component == "sensor" else HA_BINARY_KEYS
    assert set(cfg) <= allowed, f"{topic}: unexpected keys {set(cfg) - allowed}"
    assert cfg["unique_id"] == f"dsrter_{dev}_{obj}"
    assert cfg["device"]["identifiers"] == [f"dsrter_{dev}"] and cfg["device"]["name"]
    for k, v in cfg.items():
        if k.endswith("_topic"):
            assert isinstance(v, str) and v.startswith(f"dsrter/{dev}/") and "#" not in v and "+" not in v, (k, v)
    assert cfg["qos"] in (0, 1, 2)
    if component == "sensor":
        if cfg.get("device_class") == "enum":
            assert cfg["options"] == list(LABELS)
            assert "unit_of_measurement" not in cfg and "state_class" not in cfg
        assert cfg["availability_topic"] == f"dsrter/{dev}/availability"
    else:
        assert cfg["device_class"] == "connectivity" and cfg["state_topic"] == f"dsrter/{dev}/availability"
        assert (cfg["payload_on"], cfg["payload_off"]) == ("online", "offline")


def test_discovery_configs_are_valid_and_resent_when_home_assistant_starts(mqtt_broker, sink_factory):
    dev = "disc-dev"
    cfg = mqtt_cfg(mqtt_broker, dev)
    col = Collector(mqtt_broker.host, mqtt_broker.port, (f"homeassistant/+/{dev}/+/config",)).start()
    sink = sink_factory(cfg, EventBus())
    sink.start()
    objects = {"face_emotion", "speech_emotion", "emotion", "faces", "fps", "connectivity"}
    assert col.wait_for(lambda msgs: len(msgs) >= len(objects), 10)
    configs = {t: json.loads(p) for t, p, _ in col.msgs}
    assert {t.split("/")[3] for t in configs} == objects
    for topic, c in configs.items():
        _validate_discovery(topic, c, dev)
    enums = [c for c in configs.values() if c.get("device_class") == "enum"]
    assert {c["state_topic"].split("/", 2)[2] for c in enums} == {"face/state", "speech/state", "emotion/state"}
    assert len({json.dumps(c["device"], sort_keys=True) for c in configs.values()}) == 1  # one device

    jinja2 = pytest.importorskip("jinja2")  # render the templates the way HA does
    env = jinja2.Environment()
    for c in enums:
        tpl = env.from_string(c["value_template"])
        assert tpl.render(value_json={"label": "fear"}) == "fear"
        # "no label": "None" where HA keeps the enum options (it reads "None" as unknown), the string
        # "unknown" where it drops them (2024.3); the entity's own attributes tell which (see ha_discovery)
        with_options = {"attributes": {"options": ["fear"]}}
        assert tpl.render(value_json={"label": None}, this=with_options) == "None"
        assert tpl.render(value_json={"label": None}, this={"attributes": {}}) == "unknown"
        assert tpl.render(value_json={"label": "fear"}, this=with_options) == "fear"
        attrs = env.from_string(c["json_attributes_template"]).render(value_json={
            "confidence": 0.5, "track_id": 1, "count": 1, "scores": None, "speaking": True,
            "attribution": "only_face", "sources": {"face": 0.6, "speech": 0.4}})
        assert "speech_source" in json.loads(attrs) or "speaking" not in c["json_attributes_template"]
        assert "attribution" not in json.loads(attrs)  # Home Assistant's own attribute name

    col.clear()
    col.publish("homeassistant/status", "offline")
    time.sleep(0.3)
    assert col.msgs == []  # only "online" triggers a resend
    col.publish("homeassistant/status", "online")
    assert col.wait_for(lambda msgs: len(msgs) >= len(objects), 5)
    assert {t.split("/")[3] for t, _, _ in col.msgs} == objects
    col.stop()


def test_discovery_can_be_turned_off(mqtt_broker, sink_factory):
    dev = "nodisc-dev"
    cfg = mqtt_cfg(mqtt_broker, dev, discovery={"enabled": False})
    col = Collector(mqtt_broker.host, mqtt_broker.port, (f"homeassistant/+/{dev}/#", f"dsrter/{dev}/availability")).start()
    sink = sink_factory(cfg, EventBus())
    sink.start()
    assert col.wait_for(lambda msgs: any(t.endswith("/availability") for t, _, _ in msgs), 5)
    col.publish("homeassistant/status", "online")
    time.sleep(0.5)
    assert [t for t, _, _ in col.msgs if t.startswith("homeassistant/")] == []
    col.stop()


def test_publish_policy_on_change_heartbeat_and_rate_limit(mqtt_broker, sink_factory):
    dev = "policy-dev"
    cfg = mqtt_cfg(mqtt_broker, dev, publish={"heartbeat_s": 0.6, "max_rate_hz": 4})
    topic = f"dsrter/{dev}/face"
    col = Collector(mqtt_broker.host, mqtt_broker.port, (topic,)).start()
    bus = EventBus()
    sink = sink_factory(cfg, bus)
    sink.start()
    assert sink.wait_connected(5)
    t0 = time.monotonic()
    bus.publish(face(1, "happy", changed=True))  # first
    for _ in range(10):  # unchanged at 50 Hz for 0.2 s: nothing
        bus.publish(face(1, "happy"))
        time.sleep(0.02)
    bus.publish(face(1, "sad", changed=True))  # a change inside the 0.25 s window: held back, then sent
    assert col.wait_for(lambda msgs: len(msgs) >= 2, 3)
    recs = col.json(topic)
    assert [(r["reason"], r["label"]) for r in recs[:2]] == [("first", "happy"), ("change", "sad")]
    assert recs[1]["epoch"] - recs[0]["epoch"] >= 0.2
    # quiet stream: heartbeats every ~0.6 s on a timer, with the latest label
    assert col.wait_for(lambda msgs: len(msgs) >= 4, 4)
    recs = col.json(topic)
    assert [r["reason"] for r in recs[2:4]] == ["heartbeat", "heartbeat"]
    assert all(r["label"] == "sad" for r in recs[2:4])
    assert time.monotonic() - t0 >= 1.1
    # 200 changes in a burst: rate-limited to 4 Hz on this stream
    col.clear()
    t1 = time.monotonic()
    for i in range(200):
        bus.publish(face(1, ("angry", "fear")[i % 2], changed=True))
        time.sleep(0.005)
    elapsed = time.monotonic() - t1
    time.sleep(0.4)
    n = len(col.on(topic))
    assert 1 <= n <= elapsed * 4 + 2, (n, elapsed)
    assert col.json(topic)[-1]["label"] == "fear"  # the last change is not lost
    col.stop()


def test_faces_leave_the_state_after_the_timeout(mqtt_broker, sink_factory):
    dev = "expire-dev"
    cfg = mqtt_cfg(mqtt_broker, dev, publish={"heartbeat_s": 0, "face_timeout_s": 0.4})
    topic = f"dsrter/{dev}/face/state"
    col = Collector(mqtt_broker.host, mqtt_broker.port, (topic,)).start()
    bus = EventBus()
    sink = sink_factory(cfg, bus)
    sink.start()
    assert sink.wait_connected(5)
    bus.publish(face(1, "happy"))
    bus.publish(face(2, "surprise", box=(0.0, 0.0, 0.6, 0.6)))
    assert col.wait_for(lambda msgs: any(json.loads(p)["count"] == 2 for _, p, _ in msgs), 5)
    for _ in range(10):  # track 2 stays, track 1 is gone
        bus.publish(face(2, "surprise", box=(0.0, 0.0, 0.6, 0.6)))
        time.sleep(0.1)
    assert col.wait_for(lambda msgs: json.loads(msgs[-1][1])["count"] == 1, 3)
    st = json.loads(col.msgs[-1][1])
    assert st["label"] == "surprise" and [f["track_id"] for f in st["faces"]] == [2]
    assert col.wait_for(lambda msgs: json.loads(msgs[-1][1])["count"] == 0, 3)  # nobody left
    st = json.loads(col.msgs[-1][1])
    assert st["label"] is None and st["faces"] == [] and st["track_id"] is None
    check(st, FACE_STATE, "empty face/state")
    col.stop()


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_policy_unit_first_change_heartbeat_rate_flush():
    clk = FakeClock()
    p = EventPolicy(on_change=True, heartbeat_s=10, max_rate_hz=2, clock=clk)
    k = ("face", 1)
    assert p.offer(k, face(changed=False))[1] == "first"
    clk.t += 1
    assert p.offer(k, face()) is None
    assert p.offer(k, face(changed=True))[1] == "change"
    clk.t += 0.1
    held = face(label="sad", changed=True)
    assert p.offer(k, held) is None  # inside 0.5 s
    newer = face(label="sad")
    assert p.offer(k, newer) is None  # replaces the held one, keeps reason "change"
    assert p.due() == []
    clk.t += 0.5
    assert p.due() == [(k, newer, "change")]
    clk.t += 10
    assert p.due() == [(k, newer, "heartbeat")]  # timer heartbeat of a quiet stream
    clk.t += 10
    live = face(label="sad")
    assert p.offer(k, live) == (live, "heartbeat")  # a live stream sends it with its own event
    clk.t += 10
    assert p.offer(k, face(label="sad")) is not None and p.due() == []  # offered just now: not quiet
    clk.t += 10.4
    assert [r for _, _, r in p.due()] == ["heartbeat"]
    clk.t += 0.1
    assert p.offer(k, face(label="fear", changed=True)) is None
    assert [r for _, _, r in p.flush()] == ["change"]
    clk.t += 5
    assert p.expire("face", 2.0) == [k]
    assert p.offer(k, face())[1] == "first"

    off = EventPolicy(on_change=False, heartbeat_s=0, max_rate_hz=100, clock=clk)
    assert off.offer(("speech",), speech())[1] == "first"
    clk.t += 100
    assert off.offer(("speech",), speech(changed=True)) is None
    assert off.due() == []
