"""A real Home Assistant (2024.3.3 from ``.ci/home_assistant.sh``, or ``DSRTER_HA_PY`` /
``DSRTER_HA_ROOT`` for another release) against the real daemon on a labelled clip.

Home Assistant's live states come from its ``mqtt_statestream`` (republished on the broker), its
registries from ``.storage`` after it stopped. Under CI (``CI=true``) a missing Home Assistant
fails the test; elsewhere it is skipped with the command that installs it.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from ha_harness import STATESTREAM, HomeAssistant, find_python
from mqtt_support import Collector
from daemon_support import clip, daemon_config, start_daemon

DEVICE = "hatest"
SENSORS = ("face_emotion", "speech_emotion", "emotion", "faces", "frame_rate")
ENTITIES = {f"sensor.dsrter_{DEVICE}_{s}" for s in SENSORS} | {f"binary_sensor.dsrter_{DEVICE}_connectivity"}
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.fixture
def ha_python() -> str:
    py = find_python()
    if py is None:
        msg = "Home Assistant is not installed; run .ci/home_assistant.sh (or set DSRTER_HA_PY)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return py


def state_log(c: Collector, entity: str) -> list[str]:
    """Every state Home Assistant gave ``entity`` (``sensor.x`` -> hastate/sensor/x/state), in order."""
    domain, obj = entity.split(".")
    return [p.decode() for p in (m[0] for m in c.on(f"{STATESTREAM}/{domain}/{obj}/state"))]


def last_state(c: Collector, entity: str) -> str | None:
    seen = state_log(c, entity)
    return seen[-1] if seen else None


@pytest.mark.slow
def test_home_assistant_shows_the_daemon(tmp_path, private_broker, av_samples, ha_python):
    labelled = clip(av_samples, "clip03_")  # face happy, speech happy (the manifest's labels)
    face_label, speech_label = labelled.stem.split("_")[1].split("-")[1], labelled.stem.split("_")[2].split("-")[1]
    base = f"dsrter/{DEVICE}"
    c = Collector(private_broker.host, private_broker.port, ("#",)).start()
    # what a crashed earlier run would have left: someone disgusted in view
    c.publish(f"{base}/face/state", json.dumps({"schema": 1, "run": "stale", "kind": "face_state", "count": 1,
                                               "label": "disgust", "confidence": 0.9, "track_id": 7,
                                               "scores": None, "faces": []}), retain=True)

    ha = HomeAssistant(ha_python, private_broker.port, root=os.environ.get("DSRTER_HA_ROOT"))
    daemon = None
    try:
        ha.start(timeout=300)
        assert c.wait_for(lambda m: any(t == "homeassistant/status" and p == b"online" for t, p, _ in m), 120), \
            f"Home Assistant did not connect to MQTT:\n{ha.log_tail()}"
        daemon = start_daemon(daemon_config(tmp_path, private_broker, DEVICE, labelled, loop=True),
                              tmp_path / "daemon.log")
        face, speech, fused = (f"sensor.dsrter_{DEVICE}_{s}" for s in ("face_emotion", "speech_emotion", "emotion"))
        # the clip loops: wait until each stream has shown its label (and silence between utterances)
        ok = c.wait_for(lambda m: face_label in state_log(c, face) and speech_label in state_log(c, speech)
                        and "unknown" in state_log(c, speech)[state_log(c, speech).index(speech_label):], 120)
        assert ok, (f"states seen: face {state_log(c, face)}, speech {state_log(c, speech)}\n"
                    f"daemon log:\n{(tmp_path / 'daemon.log').read_text()[-1500:]}\nHA log:\n{ha.log_tail()}")
        live = {e: last_state(c, e) for e in ENTITIES}
        assert live[f"binary_sensor.dsrter_{DEVICE}_connectivity"] == "on"
        assert live[f"sensor.dsrter_{DEVICE}_faces"] == "1"
        assert float(live[f"sensor.dsrter_{DEVICE}_frame_rate"]) > 0
        # the stale face never reached Home Assistant as current: the daemon's start state replaced it
        assert "disgust" not in state_log(c, face)
        # the fused emotion follows the face here (both streams say happy)
        assert face_label in state_log(c, fused)
        # "no speech" is unknown, never a literal None; every state is a label, unknown or unavailable
        for e in (face, speech, fused):
            assert set(state_log(c, e)) <= set(LABELS) | {"unknown", "unavailable"}, (e, state_log(c, e))
        domain, obj = speech.split(".")
        attrs = {t.rsplit("/", 1)[1] for t, _, _ in c.msgs if t.startswith(f"{STATESTREAM}/{domain}/{obj}/")}
        assert {"speech_source", "confidence", "scores", "speaking"} <= attrs and "attribution" not in attrs

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
        gone = c.wait_for(lambda m: all(last_state(c, f"sensor.dsrter_{DEVICE}_{s}") == "unavailable" for s in SENSORS)
                          and last_state(c, f"binary_sensor.dsrter_{DEVICE}_connectivity") == "off", 20)
        assert gone, {e: last_state(c, e) for e in ENTITIES}
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        ha.stop()
        c.stop()
    try:
        entities = {e["entity_id"]: e for e in ha.entities()}
        devices = ha.devices()
        problems = ha.problems()
        version = ha.version()
    finally:
        ha.cleanup()
    assert set(entities) == ENTITIES
    (device_id,) = {e["device_id"] for e in entities.values()}
    dev = devices[device_id]
    assert dev["name"] == f"DSRTER {DEVICE}" and ["mqtt", f"dsrter_{DEVICE}"] in dev["identifiers"]
    classes = {eid.split(f"dsrter_{DEVICE}_")[1]: e["original_device_class"] for eid, e in entities.items()}
    assert classes == {"face_emotion": "enum", "speech_emotion": "enum", "emotion": "enum", "faces": None,
                       "frame_rate": None, "connectivity": "connectivity"}
    # 2024.3 drops enum options from MQTT discovery; later releases keep them
    want = None if version.startswith("2024.3.") else LABELS
    for s in ("face_emotion", "speech_emotion", "emotion"):
        assert (entities[f"sensor.dsrter_{DEVICE}_{s}"].get("capabilities") or {}).get("options") == want, version
    print(f"Home Assistant {version}: face {state_log(c, face)[:6]}..., speech {state_log(c, speech)[:8]}...")
    assert problems == [], "\n".join(problems)
