"""Two real daemons in a row on a real broker: nothing of the first survives in the second's
retained states; the events file holds exactly the MQTT event records; a clean stop leaves idle
states and a final stats."""

from __future__ import annotations

import json
import signal
import time

import pytest

from daemon_support import clip, daemon_config, start_daemon
from mqtt_support import Collector

STATE_TOPICS = ("face/state", "speech/state", "emotion/state", "stats")
EVENT_TOPICS = ("face", "speech", "emotion")


def retained(broker, base: str) -> dict[str, dict]:
    """What a new subscriber gets on the state topics right now."""
    c = Collector(broker.host, broker.port, tuple(f"{base}/{t}" for t in STATE_TOPICS)).start()
    c.wait_for(lambda m: len(m) >= len(STATE_TOPICS), 3.0)
    c.stop()
    return {t[len(base) + 1:]: json.loads(p) for t, p, r in c.msgs if r}


@pytest.mark.slow
def test_second_daemon_replaces_every_retained_state_of_the_first(tmp_path, private_broker, av_samples):
    device = "retain"
    base = f"dsrter/{device}"
    watch = Collector(private_broker.host, private_broker.port, (f"{base}/#",)).start()

    # 1) a daemon sees a face, then dies without a word (SIGKILL): its retained states stay behind
    first = start_daemon(daemon_config(tmp_path, private_broker, device, clip(av_samples, "clip01_"), loop=True),
                         tmp_path / "first.log")
    try:
        assert watch.wait_for(lambda m: any(t == f"{base}/face/state" and json.loads(p)["count"] >= 1
                                            for t, p, _ in m), 90), (tmp_path / "first.log").read_text()[-2000:]
        assert watch.wait_for(lambda m: any(t == f"{base}/stats" for t, _, _ in m), 10)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    stale = retained(private_broker, base)
    run1 = stale["face/state"]["run"]
    assert stale["face/state"]["count"] >= 1 and stale["face/state"]["label"] is not None
    assert stale["stats"]["mqtt"]["connected"] is True and stale["stats"]["running"] is True

    # 2) a daemon on a clip with nobody in view (speech only), with the events file on
    events = tmp_path / "events.jsonl"
    watch.clear()
    second = start_daemon(daemon_config(tmp_path, private_broker, device, clip(av_samples, "clip19_"), loop=False,
                                        events=events), tmp_path / "second.log")
    online = lambda m: any(t == f"{base}/availability" and p == b"online" for t, p, _ in m)  # noqa: E731
    assert watch.wait_for(online, 90), (tmp_path / "second.log").read_text()[-2000:]
    # its first state messages (sent right after "online") replace all of the first run's
    assert watch.wait_for(lambda m: {t for t, _, _ in m} >= {f"{base}/{s}" for s in STATE_TOPICS}, 5)
    time.sleep(0.5)
    now = retained(private_broker, base)
    assert set(now) == set(STATE_TOPICS)
    run2 = now["stats"]["run"]
    assert run2 != run1 and {s["run"] for s in now.values()} == {run2}, now
    assert now["face/state"]["count"] == 0 and now["face/state"]["label"] is None and now["face/state"]["faces"] == []

    rc = second.wait(60)  # the clip ends: a clean stop
    assert rc == 0, (tmp_path / "second.log").read_text()[-2000:]
    watch.stop()
    # nobody was in view for the whole second run
    states = [json.loads(p) for t, p, _ in watch.msgs if t == f"{base}/face/state"]
    assert states and all(s["run"] == run2 and s["count"] == 0 for s in states)
    # a clean stop leaves idle states and a final stats saying so
    final = retained(private_broker, base)
    assert final["stats"]["running"] is False and final["stats"]["mqtt"]["connected"] is False
    assert final["stats"]["camera"]["status"] == "stopped" and final["stats"]["fps"] == 0
    assert final["speech/state"]["label"] is None and final["emotion/state"]["label"] is None
    assert final["face/state"]["count"] == 0

    # the events file holds the MQTT event records, byte for byte: one event, one id
    mqtt_recs = [p.decode() for t, p, _ in watch.msgs if t in {f"{base}/{k}" for k in EVENT_TOPICS}]
    file_recs = events.read_text().splitlines()
    assert mqtt_recs and file_recs == mqtt_recs
    recs = [json.loads(r) for r in file_recs]
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert all(r["run"] == run2 and r["reason"] in ("first", "change", "heartbeat") for r in recs)
    kinds = {r["kind"] for r in recs}
    assert "speech" in kinds and "face" not in kinds
    assert any(r["kind"] == "speech" and r["speaking"] for r in recs)
