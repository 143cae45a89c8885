"""Home Assistant MQTT discovery: the config payloads for one device and its entities.

Published (retained) under ``<discovery.prefix>/<component>/<device_id>/<object>/config``:

=========================  ===========================  =============================================
object                     component, device_class      state
=========================  ===========================  =============================================
face_emotion               sensor, enum (7 labels)      ``<base>/face/state`` label of the largest face
speech_emotion             sensor, enum (7 labels)      ``<base>/speech/state`` label while speaking
emotion                    sensor, enum (7 labels)      ``<base>/emotion/state`` fused label
faces                      sensor (measurement)         ``<base>/face/state`` number of faces
fps                        sensor (diagnostic)          ``<base>/stats`` frames per second
connectivity               binary_sensor, connectivity  ``<base>/availability`` online/offline
=========================  ===========================  =============================================

"No face", "no speech" and "no fused result" are ``"label": null`` in the state JSON, shown as
``unknown``. Home Assistant releases differ in how a template gets there (both seen with a real
Home Assistant in ``tests/test_home_assistant.py``):

- 2026.2 keeps the enum ``options``, reads the string ``None`` as "no value" (``unknown``) and
  ignores, with a warning, any other string that is not an option;
- 2024.3 drops ``options`` from MQTT discovery and shows whatever string it gets, ``None``
  included, so only the string ``unknown`` shows as ``unknown``.

So the label templates ask the entity itself (``this``): with enum options in its attributes they
render ``None``, without them ``unknown``. Every entity but the connectivity one carries the
availability topic, so the sensors show "unavailable" while the daemon is offline, and the
connectivity entity shows off.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from dsrter.edge.config import Config
from dsrter.edge.labels import LABELS

_LABEL_TEMPLATE = ("{% if value_json.label is not none %}{{ value_json.label }}"
                   "{% elif this is defined and this.attributes.options is defined %}None"
                   "{% else %}unknown{% endif %}")


def package_version() -> str:
    try:
        return metadata.version("dsrter-edge")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


def base_topic(cfg: Config) -> str:
    return f"{cfg.mqtt.prefix}/{cfg.device_id}"


def availability_topic(cfg: Config) -> str:
    return f"{base_topic(cfg)}/availability"


def status_topic(cfg: Config) -> str:
    """Where Home Assistant announces itself ("online" after it starts)."""
    return f"{cfg.mqtt.discovery.prefix}/status"


def device_block(cfg: Config) -> dict[str, Any]:
    return {
        "identifiers": [f"dsrter_{cfg.device_id}"],
        "name": f"DSRTER {cfg.device_id}",
        "manufacturer": "DSRTER",
        "model": "DSRTER edge emotion recognition",
        "sw_version": package_version(),
    }


def discovery_messages(cfg: Config) -> list[tuple[str, dict[str, Any]]]:
    """(topic, payload) for every entity of this device."""
    base = base_topic(cfg)
    avail = availability_topic(cfg)
    disc = cfg.mqtt.discovery.prefix
    dev = cfg.device_id
    device = device_block(cfg)
    origin = {"name": "dsrter-edge", "sw_version": package_version()}

    def common(obj: str, name: str) -> dict[str, Any]:
        return {"name": name, "unique_id": f"dsrter_{dev}_{obj}", "device": device, "origin": origin,
                "qos": cfg.mqtt.qos}

    def available(d: dict[str, Any]) -> dict[str, Any]:
        d.update({"availability_topic": avail, "payload_available": "online", "payload_not_available": "offline"})
        return d

    def enum_sensor(obj: str, name: str, topic: str, attrs: str, icon: str) -> tuple[str, dict[str, Any]]:
        d = common(obj, name)
        d.update({
            "state_topic": topic,
            "value_template": _LABEL_TEMPLATE,
            "device_class": "enum",
            "options": list(LABELS),
            "json_attributes_topic": topic,
            "json_attributes_template": attrs,
            "icon": icon,
        })
        return f"{disc}/sensor/{dev}/{obj}/config", available(d)

    msgs = [
        enum_sensor("face_emotion", "Face emotion", f"{base}/face/state",
                    "{{ {'confidence': value_json.confidence, 'track_id': value_json.track_id,"
                    " 'faces': value_json.count, 'scores': value_json.scores} | tojson }}",
                    "mdi:emoticon-outline"),
        enum_sensor("speech_emotion", "Speech emotion", f"{base}/speech/state",
                    "{{ {'speaking': value_json.speaking, 'confidence': value_json.confidence,"
                    " 'track_id': value_json.track_id, 'speech_source': value_json.attribution,"
                    " 'scores': value_json.scores} | tojson }}",
                    "mdi:account-voice"),
        enum_sensor("emotion", "Emotion", f"{base}/emotion/state",
                    "{{ {'confidence': value_json.confidence, 'sources': value_json.sources,"
                    " 'track_id': value_json.track_id, 'speech_source': value_json.attribution,"
                    " 'scores': value_json.scores} | tojson }}",
                    "mdi:emoticon"),
    ]

    faces = common("faces", "Faces")
    faces.update({"state_topic": f"{base}/face/state", "value_template": "{{ value_json.count }}",
                  "state_class": "measurement", "icon": "mdi:account-multiple"})
    msgs.append((f"{disc}/sensor/{dev}/faces/config", available(faces)))

    fps = common("fps", "Frame rate")
    fps.update({"state_topic": f"{base}/stats", "value_template": "{{ value_json.fps }}",
                "unit_of_measurement": "fps", "state_class": "measurement", "entity_category": "diagnostic",
                "icon": "mdi:speedometer"})
    msgs.append((f"{disc}/sensor/{dev}/fps/config", available(fps)))

    conn = common("connectivity", "Connectivity")
    conn.update({"state_topic": avail, "payload_on": "online", "payload_off": "offline",
                 "device_class": "connectivity", "entity_category": "diagnostic"})
    msgs.append((f"{disc}/binary_sensor/{dev}/connectivity/config", conn))
    return msgs
