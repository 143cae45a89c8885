"""Helpers for the MQTT tests: a recording subscriber, event factories, payload schemas."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from typing import Any, Callable, Optional

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from dsrter.edge.config import Config, parse_config
from dsrter.edge.streams.events import FaceEvent, FrameStats, FusedEvent, SpeechEvent
from dsrter.edge.labels import LABELS


class Collector:
    """A real MQTT subscriber that records (topic, payload, retain) in arrival order."""

    def __init__(self, host: str, port: int, topics: tuple[str, ...] = ("#",), client_id: Optional[str] = None,
                 clean: bool = True, auth: Optional[tuple[str, str]] = None) -> None:
        self.host, self.port, self.topics = host, port, topics
        self.msgs: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or "", clean_session=clean)
        self.client.reconnect_delay_set(0.1, 0.5)
        if auth:
            self.client.username_pw_set(*auth)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        if not rc.is_failure:
            client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client, userdata, msg) -> None:
        with self._cond:
            self.msgs.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def start(self, timeout: float = 5.0) -> "Collector":
        self._subscribed.clear()
        self.client.connect_async(self.host, self.port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(timeout), "collector: subscription not acknowledged"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_for(self, pred: Callable[[list[tuple[str, bytes, bool]]], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self.msgs):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
            return True

    def on(self, topic: str) -> list[tuple[bytes, bool]]:
        with self._cond:
            return [(p, r) for t, p, r in self.msgs if t == topic]

    def json(self, topic: str) -> list[dict]:
        return [json.loads(p) for p, _ in self.on(topic)]

    def clear(self) -> None:
        with self._cond:
            self.msgs.clear()

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)


def mqtt_cfg(broker, device: str, **mqtt_overrides: Any) -> Config:
    mqtt_section: dict[str, Any] = {"host": broker.host, "port": broker.port, "reconnect_min_s": 0.1,
                                    "reconnect_max_s": 0.5, "keepalive_s": 5}
    for k, v in mqtt_overrides.items():
        if isinstance(v, dict) and isinstance(mqtt_section.get(k), dict):
            mqtt_section[k].update(v)
        else:
            mqtt_section[k] = v
    return parse_config({"device_id": device, "mqtt": mqtt_section}, env={})


def scores(label: str, p: float = 0.7) -> np.ndarray:
    v = np.full(len(LABELS), (1.0 - p) / (len(LABELS) - 1), dtype=np.float32)
    v[LABELS.index(label)] = p
    return v


def face(track: int = 1, label: str = "happy", changed: bool = False, box=(0.1, 0.2, 0.3, 0.4)) -> FaceEvent:
    return FaceEvent(time.time(), track, tuple(np.float32(b) for b in box), scores(label), label,
                     float(scores(label).max()), changed=changed)


def speech(label: Optional[str] = "sad", changed: bool = False, track: Optional[int] = 1) -> SpeechEvent:
    if label is None:
        return SpeechEvent(time.time(), False, None, None, 0.0, window=(1.0, 3.0), changed=changed)
    return SpeechEvent(time.time(), True, scores(label, 0.6), label, 0.6, window=(1.0, 3.0), changed=changed,
                       track_id=track, attribution="only_face")


def fused(label: Optional[str] = "happy", changed: bool = False) -> FusedEvent:
    s = scores(label) if label else None
    return FusedEvent(time.time(), label, s, 0.65 if label else 0.0, 0.6, 0.4, track_id=1 if label else None,
                      attribution="only_face" if label else "none", changed=changed)


def frame(i: int, faces: int = 1) -> FrameStats:
    return FrameStats(time.time(), i, 29.5, faces, {"detect": 1.0 + (i % 5) * 0.1, "classify": 0.5, "total": 2.0}, 0)


# -- payload schemas -------------------------------------------------------------------------------------
Spec = dict[str, Any]
NUM = (int, float)
OPT_STR = (str, type(None))
OPT_INT = (int, type(None))


def is_scores(v: Any) -> bool:
    return isinstance(v, dict) and list(v) == list(LABELS) and all(isinstance(x, NUM) and 0 <= x <= 1 for x in v.values())


def is_box(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {"x", "y", "w", "h"} and all(isinstance(x, NUM) and 0 <= x <= 1 for x in v.values())


def is_label(v: Any) -> bool:
    return v in LABELS


def is_opt_label(v: Any) -> bool:
    return v is None or v in LABELS


def is_iso(v: Any) -> bool:
    if not isinstance(v, str) or not v.endswith("Z"):
        return False
    datetime.fromisoformat(v.replace("Z", "+00:00"))
    return True


HEADER: Spec = {"schema": lambda v: v == 1, "device": str, "run": str, "ts": is_iso, "epoch": NUM}
EVENT: Spec = {**HEADER, "id": str, "seq": int, "reason": lambda v: v in ("first", "change", "heartbeat"),
               "models": dict, "kind": str}
FACE: Spec = {**EVENT, "kind": lambda v: v == "face", "track_id": int, "label": is_label, "confidence": NUM,
              "scores": is_scores, "box": is_box}
SPEECH: Spec = {**EVENT, "kind": lambda v: v == "speech", "speaking": bool, "label": is_opt_label,
                "confidence": NUM, "scores": lambda v: v is None or is_scores(v), "window": list,
                "track_id": OPT_INT, "attribution": lambda v: v in ("speaking_face", "only_face", "largest_face", "none")}
EMOTION: Spec = {**EVENT, "kind": lambda v: v == "emotion", "label": is_opt_label, "confidence": NUM,
                 "scores": lambda v: v is None or is_scores(v), "sources": dict, "track_id": OPT_INT,
                 "attribution": str}
FACE_ENTRY: Spec = {"track_id": int, "label": is_label, "confidence": NUM, "scores": is_scores, "box": is_box,
                    "epoch": NUM}
FACE_STATE: Spec = {**HEADER, "kind": lambda v: v == "face_state", "count": int, "label": is_opt_label,
                    "confidence": NUM, "track_id": OPT_INT, "scores": lambda v: v is None or is_scores(v),
                    "faces": list}
STATS: Spec = {**HEADER, "kind": lambda v: v == "stats", "uptime_s": NUM, "fps": NUM, "faces": int, "frames": int,
               "dropped_frames": int, "latency_ms": dict, "cpu_percent": NUM, "memory_rss_mb": NUM,
               "camera": dict, "microphone": dict, "mqtt": dict}


def check(obj: Any, spec: Spec, where: str = "") -> None:
    """Assert obj has every key of spec with a matching type/predicate, and nothing unexpected missing."""
    assert isinstance(obj, dict), f"{where}: not an object: {obj!r}"
    for key, want in spec.items():
        assert key in obj, f"{where}: missing key {key!r} in {obj!r}"
        v = obj[key]
        if isinstance(want, (type, tuple)):
            ok = isinstance(v, want) and not (want in (int, NUM) and isinstance(v, bool))
        else:
            ok = bool(want(v))
        assert ok, f"{where}: key {key!r} has unexpected value {v!r}"
