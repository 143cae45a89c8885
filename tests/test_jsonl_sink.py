"""JSON-lines event file: the publish policy's records (with reason), rotation by size, flush on stop."""

from __future__ import annotations

import json

from dsrter.edge.config import EventsFileConfig
from dsrter.edge.streams.events import EventBus
from dsrter.edge.sinks.jsonl import JsonlSink

from mqtt_support import EMOTION, FACE, SPEECH, check, face, frame, fused, speech


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_events_are_written_as_versioned_json_lines(tmp_path):
    path = tmp_path / "logs" / "events.jsonl"
    bus = EventBus()
    sink = JsonlSink(EventsFileConfig(enabled=True, path=path), bus, device="jsonl-dev", model_versions={"face": "f"})
    sink.start()
    bus.publish(face(1, "happy"))
    bus.publish(frame(0))  # per-frame timing is not written
    bus.publish(speech("angry"))
    bus.publish(speech("angry"))  # no change within the rate limit: not a record
    bus.publish(speech(None, changed=True))  # a change held back by the rate limit: written at stop
    bus.publish(fused("happy"))
    sink.stop()
    recs = read_lines(path)
    assert [(r["kind"], r["reason"]) for r in recs] == [("face", "first"), ("speech", "first"), ("emotion", "first"), ("speech", "change")]
    for r, spec in zip(recs, (FACE, SPEECH, EMOTION, SPEECH)):
        check(r, spec, r["kind"])
        assert r["device"] == "jsonl-dev" and r["models"] == {"face": "f"}
    assert [r["seq"] for r in recs] == [1, 2, 3, 4]
    assert recs[3]["label"] is None and recs[3]["speaking"] is False
    assert sink.written == 4 and sink.dropped == 0
    # appending after a restart keeps the old lines
    sink2 = JsonlSink(EventsFileConfig(enabled=True, path=path), bus)
    sink2.start()
    bus.publish(face(2))
    sink2.stop()
    assert len(read_lines(path)) == 5


def test_rotation_keeps_the_configured_number_of_backups(tmp_path):
    path = tmp_path / "events.jsonl"
    cfg = EventsFileConfig(enabled=True, path=path, max_bytes=2000, backups=2)
    bus = EventBus()
    sink = JsonlSink(cfg, bus)
    sink.start()
    for i in range(60):
        bus.publish(face(i))
    sink.stop()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    assert sink.rotations >= 3
    for name in files:
        p = tmp_path / name
        assert p.stat().st_size <= 2000
        read_lines(p)  # whole lines only: never split across files
    # the newest events are in the current file, the older ones in .1, then .2
    cur, one, two = (read_lines(tmp_path / n) for n in files)
    assert two[-1]["seq"] < one[0]["seq"] and one[-1]["seq"] < cur[0]["seq"]
    assert cur[-1]["seq"] == 60


def test_zero_backups_starts_the_file_again_and_disabled_does_nothing(tmp_path):
    path = tmp_path / "events.jsonl"
    bus = EventBus()
    sink = JsonlSink(EventsFileConfig(enabled=True, path=path, max_bytes=1000, backups=0), bus)
    sink.start()
    for i in range(20):
        bus.publish(face(i))
    sink.stop()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]
    assert read_lines(path)[-1]["seq"] == 20
    off = JsonlSink(EventsFileConfig(enabled=False, path=tmp_path / "off.jsonl"), bus)
    off.start()
    bus.publish(face(1))
    off.stop()
    assert not (tmp_path / "off.jsonl").exists()


def test_a_writer_still_blocked_at_stop_loses_nothing_once_it_gets_through(tmp_path):
    """The events file is a pipe nobody reads when the daemon stops (as a stalled SD card): stop() gives
    up waiting after its timeout, and the writer, once the pipe is read again, writes every record it
    counted and closes the file itself. (stop used to flush and close the file from the stopping thread:
    it hung there on the full pipe, and a writer that got through later reopened the file and kept its
    last records in a buffer nobody flushed.)"""
    import os

    from test_face_stream import full_fifo, read_to_end

    fifo, reader, filler, prefill = full_fifo(tmp_path)
    bus = EventBus()
    sink = JsonlSink(EventsFileConfig(enabled=True, path=fifo), bus, device="pipe")
    sink.start()
    for k in range(30):
        bus.publish(face(k + 1, "happy"))
    sink.stop(timeout=0.5)  # the writer is blocked on the full pipe
    drained = bytearray()
    os.close(filler)
    assert read_to_end(reader, drained, 30), "the writer never closed the pipe"
    os.close(reader)
    lines = bytes(drained[prefill:]).decode().splitlines()
    assert sink.written > 0 and len(lines) == sink.written
    assert sink.written + sink.dropped == 30
    assert all(json.loads(line)["kind"] == "face" for line in lines)
