"""TimelineRecorder: rows from bus events, the four output files and the summary."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from dsrter.edge.streams.events import EventBus, FaceEvent, FrameStats, FusedEvent, SpeechEvent
from dsrter.edge.labels import LABELS
from dsrter.edge.display.timeline import CSV_COLUMNS, TimelineRecorder


def sc(label, conf):
    v = np.full(7, (1 - conf) / 6)
    v[LABELS.index(label)] = conf
    return v


def feed(bus: EventBus, seconds=6.0, fps=10):
    for i in range(int(seconds * fps)):
        t = i / fps
        bus.publish(FrameStats(t, i, float(fps), 2, {"face": 3.0}, 0))
        l1 = "happy" if t < 4 else "sad"
        bus.publish(FaceEvent(t, 1, (0.1, 0.1, 0.3, 0.4), sc(l1, 0.8), l1, 0.8))
        if 1.0 <= t < 3.0:  # a second face for 2 s
            bus.publish(FaceEvent(t, 7, (0.5, 0.1, 0.2, 0.3), sc("fear", 0.6), "fear", 0.6))
        if i % 5 == 0:  # speech every 0.5 s: speaking 2..5 s
            speaking = 2.0 <= t < 5.0
            bus.publish(SpeechEvent(t, speaking, sc("angry", 0.7) if speaking else None, "angry" if speaking else None,
                                    0.7 if speaking else 0.0, track_id=1 if speaking else None,
                                    attribution="largest_face" if speaking else "none"))
        bus.publish(FusedEvent(t, l1, sc(l1, 0.75), 0.75, 0.6, 0.4, track_id=1, attribution="largest_face"))


def test_timeline_files_and_summary(tmp_path):
    bus = EventBus()
    rec = TimelineRecorder()
    bus.subscribe(rec.on_event)
    feed(bus)
    summary = rec.write(tmp_path / "report", title="test clip")
    out = tmp_path / "report"

    rows = [json.loads(line) for line in (out / "timeline.jsonl").read_text().splitlines()]
    assert len(rows) == 60 + 20 + 12 + 60
    assert [r["t"] for r in rows] == sorted(r["t"] for r in rows)
    face_row = next(r for r in rows if r["kind"] == "face")
    assert set(face_row) == {"t", "kind", "track_id", "label", "confidence", "scores", "speaking", "attribution"}
    assert list(face_row["scores"]) == list(LABELS) and face_row["scores"]["happy"] == 0.8
    silent = next(r for r in rows if r["kind"] == "speech" and not r["speaking"])
    assert silent["label"] is None and silent["scores"] is None

    with open(out / "timeline.csv") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == CSV_COLUMNS and len(table) == len(rows)
    speech_rows = [r for r in table if r["kind"] == "speech"]
    assert {r["speaking"] for r in speech_rows} == {"0", "1"}
    assert all(r["angry"] == "0.7" for r in speech_rows if r["speaking"] == "1")

    png = (out / "timeline.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["frames"] == 60 and summary["face_tracks"] == 2
    assert summary["duration_s"] == pytest.approx(5.9)
    f1 = summary["faces"]["1"]
    assert f1["dominant"] == "happy" and f1["durations_s"]["happy"] == pytest.approx(4.0)
    assert f1["durations_s"]["sad"] == pytest.approx(2.0) and f1["counts"] == {"happy": 40, "sad": 20}
    f7 = summary["faces"]["7"]
    assert f7["dominant"] == "fear" and f7["dominant_fraction"] == 1.0 and f7["first_t"] == 1.0
    assert f7["durations_s"]["fear"] == pytest.approx(2.0)
    sp = summary["speech"]
    assert sp["dominant"] == "angry" and sp["speaking_s"] == pytest.approx(3.0) and sp["silent_s"] == pytest.approx(3.0)
    assert sp["attribution_counts"] == {"largest_face": 6}
    assert summary["fused"]["dominant"] == "happy" and summary["fused"]["mean_confidence"]["happy"] == 0.75
    assert summary["events"] == {"face": 80, "speech": 12, "emotion": 60}


def test_a_vanished_track_does_not_hold_its_label_forever(tmp_path):
    rec = TimelineRecorder(max_gap_s=1.0)
    rec.on_event(FaceEvent(0.0, 1, (0, 0, 1, 1), sc("sad", 0.9), "sad", 0.9))
    rec.on_event(FaceEvent(0.5, 1, (0, 0, 1, 1), sc("sad", 0.9), "sad", 0.9))
    rec.on_event(FaceEvent(20.0, 1, (0, 0, 1, 1), sc("happy", 0.9), "happy", 0.9))
    s = rec.summary()["faces"]["1"]
    assert s["durations_s"]["sad"] == pytest.approx(1.5)  # 0.5 + capped 1.0
    assert s["dominant"] == "sad"


def test_many_tracks_and_empty_recorder(tmp_path):
    empty = TimelineRecorder().write(tmp_path / "empty")
    assert empty["face_tracks"] == 0 and empty["speech"]["dominant"] is None
    assert (tmp_path / "empty" / "timeline.png").stat().st_size > 0
    rec = TimelineRecorder()
    for k in range(20):
        for i in range(5):
            rec.on_event(FaceEvent(k * 0.3 + i * 0.1, k, (0, 0, 0.1, 0.1), sc(LABELS[k % 7], 0.6), LABELS[k % 7], 0.6))
    s = rec.write(tmp_path / "many")
    assert s["face_tracks"] == 20 and (tmp_path / "many" / "timeline.png").exists()
