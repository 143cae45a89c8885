"""app.wiring: the face stream and the speech stream built once and connected both ways; the
typed seams (sinks) the daemon holds. No models needed: small stand-ins for detector and classifiers."""

from __future__ import annotations

import numpy as np

from dsrter.edge.app.wiring import Streams
from dsrter.edge.config import parse_config
from dsrter.edge.infer.face_detector import Detection
from dsrter.edge.sinks.base import Sink
from dsrter.edge.sinks.jsonl import JsonlSink
from dsrter.edge.sinks.mqtt import MqttSink
from dsrter.edge.sources.base import Frame
from dsrter.edge.streams.events import EventBus, FusedEvent, SpeechEvent

BOX = (100.0, 80.0, 120.0, 120.0)


class OneFace:
    last_pass = None  # every call searches the whole frame

    def covers(self, box):
        return True

    def detect(self, frame, t=0.0):
        return [Detection(box=BOX, score=0.9, keypoints=((140, 120), (180, 120), (160, 140), (160, 170),
                                                                  (110, 130), (210, 130)))]


class Happy:
    def crop(self, frame, box):
        return np.zeros((48, 48), np.uint8)

    def predict(self, crops):
        p = np.full((len(crops), 7), 0.02, np.float32)
        p[:, 3] = 0.88
        return p


class LoudAudio:
    sample_rate = 16000
    status = None
    overflows = 0

    def __init__(self):
        self.t = 0.0

    def latest(self, seconds):
        n = int(seconds * 16000)
        return (np.sin(np.arange(n) * 0.3) * 0.3).astype(np.float32), self.t


class Angry:
    sample_rate, window_s, hop_s = 16000, 2.0, 0.5

    def is_speech(self, audio):
        return True

    def predict(self, audio, start_s=None):
        p = np.full(7, 0.05, np.float32)
        p[0] = 0.7
        return p


def cfg():
    return parse_config({"mqtt": {"enabled": False}})


def test_the_streams_meet_both_ways():
    bus = EventBus()
    got: list = []
    bus.subscribe(got.append)
    streams = Streams(cfg(), bus, OneFace(), Happy())
    assert streams.speech_latest() is None
    audio = LoudAudio()
    worker = streams.add_speech(audio, Angry())
    assert streams.speech is worker and worker.analyser.hop_s == cfg().speech.hop_s  # classification hop; the worker ticks faster
    res = streams.face.process(Frame(np.zeros((480, 640, 3), np.uint8), 0.0, 0))
    assert res.faces and res.attribution[0] == res.faces[0].track_id  # the only face gets the speech
    audio.t = 2.0
    ev = worker.step()  # attribution comes from the face stream
    assert ev.speaking and ev.track_id == res.faces[0].track_id and streams.speech_latest() is ev
    res = streams.face.process(Frame(np.zeros((480, 640, 3), np.uint8), 0.04, 1))
    assert res.speech is ev and res.fused is not None  # fusion reads the speech stream
    assert any(isinstance(e, SpeechEvent) for e in got) and any(isinstance(e, FusedEvent) for e in got)


def test_speech_alone_is_fused_once_per_speech_event():
    bus = EventBus()
    streams = Streams(cfg(), bus, None, None)  # no face stream: camera missing or disabled
    assert streams.fuse_speech_alone(1.0) is None
    audio = LoudAudio()
    worker = streams.add_speech(audio, Angry(), event_clock=lambda: 123.0)
    audio.t = 2.0
    worker.step()
    fused = streams.fuse_speech_alone(50.0)
    assert fused is not None and fused.label == "angry" and fused.timestamp == 50.0 and fused.track_id is None
    assert streams.fuse_speech_alone(51.0) is None  # same speech event: nothing new


def test_the_sinks_are_sinks(tmp_path):
    c = parse_config({"events_file": {"enabled": True, "path": str(tmp_path / "e.jsonl")}})
    bus = EventBus()
    assert isinstance(JsonlSink(c.events_file, bus), Sink)
    assert isinstance(MqttSink(c, bus), Sink)
