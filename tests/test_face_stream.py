"""The per-frame pipeline and the speech worker, with the real detector and a small int8 classifier."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from model_factory import face_model  # noqa: F401  (fixture)

from dsrter.edge.streams.events import EventBus, FaceEvent, FrameStats, FusedEvent, SpeechEvent
from dsrter.edge.infer.face_classifier import FaceClassifier
from dsrter.edge.infer.face_detector import Detection, FaceDetector
from dsrter.edge.sources.base import Frame
from dsrter.edge.streams.face_stream import STAGES, FaceStream
from dsrter.edge.streams.smoothing import LabelSmoother
from dsrter.edge.streams.speech_stream import SpeechWorker


class Collect:
    def __init__(self, bus: EventBus):
        self.events = []
        bus.subscribe(self.events.append)

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture(scope="module")
def models(face_model):
    det = FaceDetector(face_model.parent / "face_detection_short_range.tflite", mode="video")
    clf = FaceClassifier(face_model)
    yield det, clf
    det.close()


def clip_frames(av_samples, name: str, n: int | None = None) -> list[Frame]:
    from dsrter.edge.sources.media_file import MediaFileSource

    src = MediaFileSource(av_samples / name, realtime=False)
    src.open()
    out = []
    while (f := src.read()) is not None and (n is None or len(out) < n):
        out.append(f)
    src.close()
    return out


def test_odd_frame_sizes_and_channel_counts(models):
    det, clf = models
    bus = EventBus()
    got = Collect(bus)
    pipe = FaceStream(bus, det, clf)
    rng = np.random.default_rng(1)
    shapes = [(480, 640, 3), (123, 77, 3), (5, 5, 3), (1, 1, 3), (99, 201), (64, 48, 1), (240, 320, 4), (1080, 1920, 3)]
    for i, shape in enumerate(shapes):
        img = rng.integers(0, 255, shape, dtype=np.uint8)
        res = pipe.process(Frame(img, i / 30, i))
        assert set(res.stats.stage_ms) == set(STAGES)
    stats = got.of(FrameStats)
    assert len(stats) == len(shapes) and all(s.dropped_frames == 0 for s in stats)
    assert len(got.of(FusedEvent)) == len(shapes)


def test_real_faces_keep_ids_through_occlusion_and_drops(models, av_samples):
    det, clf = models
    bus = EventBus()
    got = Collect(bus)
    pipe = FaceStream(bus, det, clf)
    frames = clip_frames(av_samples, "clip03_face-happy_speech-happy.mp4", 60)
    ids = set()
    for i, f in enumerate(frames):
        img = f.image.copy()
        if 30 <= i < 34:  # a hand in front of the face for 4 frames
            img[:] = 0
        if i in (40, 41):  # two frames the source dropped: the index jumps
            continue
        res = pipe.process(Frame(img, f.t, f.index))
        ids |= {t.id for t in res.tracks}
        if 30 <= i < 34:
            assert res.tracks and res.tracks[0].missed == i - 29  # coasting, not lost
    assert ids == {1}
    faces = got.of(FaceEvent)
    assert len(faces) == 58 and {e.track_id for e in faces} == {1}
    x, y, w, h = faces[0].box
    assert 0 <= x < 1 and 0 <= y < 1 and 0.2 < w < 0.6
    assert got.of(FrameStats)[-1].dropped_frames == 2
    fused = got.of(FusedEvent)[-1]
    assert fused.track_id == 1 and fused.attribution == "only_face" and fused.label is not None


def test_two_faces_keep_two_ids_when_the_small_one_flickers(models, av_samples):
    det, clf = models
    pipe = FaceStream(EventBus(), det, clf)
    ids, attributed = set(), []
    for f in clip_frames(av_samples, "clip15_face-fear-surprise_speech-sad.mp4"):
        res = pipe.process(f)
        ids |= {t.id for t in res.tracks}
        if len(res.tracks) == 2:
            big = max(res.tracks, key=lambda t: t.area)
            attributed.append(res.attribution == (big.id, "largest_face"))
    assert len(ids) == 2, ids  # the detector misses the small face now and then; the tracker bridges it
    assert np.mean(attributed) > 0.95


class CountingDetector:
    def __init__(self):
        self.calls = 0

    last_pass = None  # every call searches the whole frame

    def covers(self, box):
        return True

    def detect(self, frame, t=0.0):
        self.calls += 1
        return [Detection((40 + 30 * self.calls, 50, 80, 80), 0.9, ())]


def test_detect_every_n_frames_tracks_in_between(models):
    _, clf = models
    det = CountingDetector()
    pipe = FaceStream(EventBus(), det, clf, detect_every=3)
    xs = []
    for i in range(9):
        res = pipe.process(Frame(np.zeros((240, 480, 3), np.uint8), i / 30, i))
        xs.append(res.tracks[0].box[0])
        assert len(res.faces) == 1 and res.faces[0].track_id == 1
    assert det.calls == 3
    assert xs[4] > xs[3] > xs[2]  # predicted forward between detector runs


def test_speech_state_is_fused(models):
    det, clf = models
    bus = EventBus()
    s = np.full(7, 0.02, np.float32)
    s[3] = 0.88
    speech = SpeechEvent(0.5, True, s, "happy", 0.88, (0.0, 0.5))
    pipe = FaceStream(bus, None, None, speech_state=lambda: speech)
    res = pipe.process(Frame(np.zeros((48, 64, 3), np.uint8), 0.6, 0))
    assert res.fused.label == "happy" and res.fused.speech_weight == 1.0 and res.fused.attribution == "none"


# -- speech worker -------------------------------------------------------------------------
class FakeAudio:
    sample_rate = 16000

    def __init__(self):
        self.t = 0.0
        self.loud = False
        self.status = None
        self.overflows = 0

    def latest(self, seconds):
        n = int(seconds * 16000)
        x = (np.sin(np.arange(n) * 0.3) * 0.3 if self.loud else np.zeros(n)).astype(np.float32)
        return x, self.t


class FakeSpeechModel:
    sample_rate, window_s, hop_s = 16000, 2.0, 0.5

    def __init__(self, slow_s: float = 0.0):
        self.slow_s = slow_s

    def is_speech(self, audio):
        return float(np.abs(audio).max()) > 0.01

    def predict(self, audio, start_s=None):
        time.sleep(self.slow_s)
        p = np.full(7, 0.05, np.float32)
        p[0] = 0.7
        return p


def test_speech_worker_states_and_attribution():
    bus = EventBus()
    got = Collect(bus)
    audio = FakeAudio()
    w = SpeechWorker(audio, FakeSpeechModel(), bus, LabelSmoother(0.5, 0.05, 1), attribution=lambda: (7, "only_face"))
    audio.t = 2.0
    ev = w.step()
    assert ev.speaking is False and ev.label is None and ev.window == (0.0, 2.0)
    assert w.step() is None  # no new audio since: nothing to do
    audio.t, audio.loud = 2.5, True
    ev = w.step()
    assert ev.speaking and ev.label == "angry" and ev.track_id == 7 and ev.attribution == "only_face" and ev.changed
    audio.t, audio.loud = 3.0, False
    ev = w.step()
    assert not ev.speaking and ev.changed
    assert [e.speaking for e in got.of(SpeechEvent)] == [False, True, False]


class StuckSpeechModel(FakeSpeechModel):
    """A classifier that hangs in ``predict`` until the test releases it."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def predict(self, audio, start_s=None):
        self.entered.set()
        self.release.wait(120)  # never longer than the test
        return super().predict(audio)


class CountRecords:
    """A second recorder listener: every record the sinks were offered."""

    def __init__(self):
        self.n = 0

    def on_record(self, rec):
        self.n += 1

    def on_faces_gone(self, track_ids):
        pass


def full_fifo(folder: Path) -> tuple[Path, int, int, int]:
    """A named pipe whose kernel buffer is full and which nobody reads yet, as a stalled events file:
    (path, non-blocking reader fd, non-blocking filler fd, bytes of filler written)."""
    fifo = folder / "events.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    filler = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    n = 0
    for size in (65536, 4096, 512, 1):
        while True:
            try:
                n += os.write(filler, b"#" * size)
            except BlockingIOError:
                break
    return fifo, reader, filler, n


def read_to_end(reader: int, into: bytearray, timeout_s: float) -> bool:
    """Read a non-blocking pipe into ``into`` until end of file, which comes only once every writer has
    closed it, so nothing a writer flushes as it closes can be missed; False if ``timeout_s`` ran out first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            chunk = os.read(reader, 65536)
        except BlockingIOError:  # a writer still has the pipe open
            time.sleep(0.01)
            continue
        if not chunk:
            return True
        into.extend(chunk)
    return False


def test_a_stuck_events_file_and_a_stuck_speech_model_never_block_the_frame_loop(models, av_samples, tmp_path, monkeypatch):
    """Real frames through the face stream, the bus, the event recorder and the JSONL sink, with the speech
    worker wired in as the daemon wires it. The events file is a named pipe whose buffer is full and which
    nobody reads (the sink's writer thread hangs in write(), as on a dead SD card), and the speech classifier
    hangs in predict(). Every frame must still be processed while both hang (the sink's queue overflows
    and counts drops); once released, the worker goes on and every record is written or counted as dropped.
    (A sink that waited for room in its queue, or a frame loop that waited for the speech worker, hangs
    here and fails the join below.)"""
    from dsrter.edge.app.wiring import Streams
    from dsrter.edge.config import EventsFileConfig, PublishPolicy, parse_config
    from dsrter.edge.sinks import jsonl
    from dsrter.edge.sinks.event_records import EventRecorder

    det, clf = models
    frames = clip_frames(av_samples, "clip03_face-happy_speech-happy.mp4", 60)
    monkeypatch.setattr(jsonl, "MAX_QUEUE", 8)  # a queue that fills within a few frames
    fifo, reader, filler, prefill = full_fifo(tmp_path)

    bus = EventBus()
    # every event becomes a record (no rate limit to speak of, a heartbeat at every event)
    recorder = EventRecorder(PublishPolicy(heartbeat_s=0.001, max_rate_hz=1000.0), "test")
    counted = CountRecords()
    recorder.listen(counted)
    sink = jsonl.JsonlSink(EventsFileConfig(enabled=True, path=fifo), bus, recorder=recorder)
    streams = Streams(parse_config({}, env={}), bus, det, clf)
    audio = FakeAudio()
    audio.loud = True
    model = StuckSpeechModel()
    worker = streams.add_speech(audio, model)
    stop = threading.Event()

    def audio_clock():
        while not stop.is_set():
            audio.t += 0.01
            time.sleep(0.01)

    processed = []

    def frame_loop():
        for f in frames:
            streams.face.process(f)
            processed.append(f.index)

    loop = threading.Thread(target=frame_loop, daemon=True)
    sink.start()
    recorder.start(bus)
    threading.Thread(target=audio_clock, daemon=True).start()
    worker.start()
    drained = bytearray()
    try:
        assert model.entered.wait(20), "the speech worker never reached the classifier"
        loop.start()
        loop.join(90)
        hung = loop.is_alive()
        done_while_stuck = len(processed)
        assert not model.release.is_set()
        assert not hung and done_while_stuck == len(frames), f"frame loop blocked after {done_while_stuck} frames"
        assert sink.dropped > 0, "the sink's queue never filled: the writer was not stuck"
        assert worker.windows == 0 or not worker.latest.speaking  # the classifier is still held
    finally:
        model.release.set()

        reading = threading.Thread(target=read_to_end, args=(reader, drained, 300), daemon=True)
        reading.start()
        loop.join(60)
    # released: the speech worker classifies, then the writer catches up
    deadline = time.monotonic() + 20
    while not (worker.latest is not None and worker.latest.speaking) and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.stop()
    recorder.stop()
    writer = sink._thread
    sink.stop(timeout=60)  # not stuck any more, but a loaded machine may take its time to write
    writer_done = writer is not None and not writer.is_alive()
    os.close(filler)
    stop.set()
    reading.join(60)
    reader_done = not reading.is_alive()
    os.close(reader)
    assert writer_done and reader_done, f"sink writer finished: {writer_done}; pipe read to its end: {reader_done}"
    assert worker.latest is not None and worker.latest.speaking and worker.latest.label == "angry"
    lines = bytes(drained[prefill:]).decode().splitlines()
    assert len(lines) == sink.written and all(json.loads(line)["kind"] in ("face", "emotion", "speech") for line in lines)
    assert sink.written + sink.dropped == counted.n and sink.written > 0
