"""Soak: 20,000 frames through the whole pipeline, faster than real time, without leaking.

Decoded (looping) clip -> BlazeFace detector (every DETECT_EVERY frames, the tracker predicts in
between) -> tracker -> crop + int8 classifier -> smoothing -> lip-motion attribution -> fusion ->
bus -> MqttSink (a real mosquitto) + a counting subscriber; the overlay is drawn for every frame;
the speech worker runs on the clip's audio track. To keep CI time sane the frames are 320x240
(the face about 150 px tall) and detection runs every 5th frame; both are stated in the
assertion messages. Memory (RSS) must grow less than 5 % after the warm-up, and the numbers of
threads and open file descriptors must not grow at all.
"""

from __future__ import annotations

import gc
import os
import time

import psutil
import pytest
from model_factory import face_model, speech_model  # noqa: F401  (fixtures)
from mqtt_support import mqtt_cfg

FRAMES = int(os.environ.get("DSRTER_SOAK_FRAMES", "20000"))
WARMUP = 2000
SAMPLE_EVERY = 1000
DETECT_EVERY = 5
SIZE = (320, 240)


@pytest.mark.slow
@pytest.mark.timeout(1500)  # ~1-2 min on an idle 2-core machine; generous for a shared, busy one
def test_soak_20000_frames_no_memory_thread_or_fd_growth(tmp_path, mqtt_broker, face_model, speech_model):  # noqa: F811
    from dsrter.edge.tools.bench import make_bench_clip
    from dsrter.edge.streams.events import EventBus, FaceEvent, FrameStats, FusedEvent, SpeechEvent
    from dsrter.edge.infer.face_classifier import FaceClassifier
    from dsrter.edge.infer.face_detector import FaceDetector
    from dsrter.edge.streams.fusion import Attributor, LipMotion
    from dsrter.edge.sources.media_file import MediaFileSource
    from dsrter.edge.sinks.mqtt import MqttSink
    from dsrter.edge.display.overlay import draw_overlay
    from dsrter.edge.streams.face_stream import FaceStream
    from dsrter.edge.streams.smoothing import LabelSmoother
    from dsrter.edge.infer.speech_classifier import SpeechClassifier
    from dsrter.edge.streams.speech_stream import SpeechWorker

    assert FRAMES >= 20000 or os.environ.get("DSRTER_SOAK_FRAMES"), "the soak runs at least 20,000 frames"
    clip = make_bench_clip(tmp_path / "soak.mp4", seconds=4.0, fps=30, size=SIZE)
    proc = psutil.Process()
    counts = {"face": 0, "speech": 0, "fused": 0, "frames": 0}

    def count(ev) -> None:
        if isinstance(ev, FaceEvent):
            counts["face"] += 1
        elif isinstance(ev, SpeechEvent):
            counts["speech"] += 1
        elif isinstance(ev, FusedEvent):
            counts["fused"] += 1
        elif isinstance(ev, FrameStats):
            counts["frames"] += 1

    bus = EventBus()
    bus.subscribe(count)
    det = FaceDetector(face_model.parent / "face_detection_short_range.tflite", mode="video")
    clf = FaceClassifier(face_model)
    src = MediaFileSource(clip, realtime=False, loop=True)
    src.open()
    worker = None
    pipe = FaceStream(bus, det, clf, detect_every=DETECT_EVERY, attributor=Attributor(LipMotion()),
                         speech_state=lambda: worker.latest if worker else None, event_clock=time.time)
    worker = SpeechWorker(src.audio, SpeechClassifier(speech_model), bus, LabelSmoother(), hop_s=0.5,
                          attribution=pipe.attribution, event_clock=time.time)
    sink = MqttSink(mqtt_cfg(mqtt_broker, "soak"), bus)
    sink.start()
    assert sink.wait_connected(5)
    worker.start()
    samples: list[tuple[int, int, int, int]] = []  # (frame, rss, threads, fds)
    faces_seen = 0
    t0 = time.perf_counter()
    try:
        for i in range(FRAMES):
            frame = src.read()
            assert frame is not None, f"the looping clip stopped at frame {i}"
            res = pipe.process(frame)
            draw_overlay(frame.image, res.faces, res.speech, res.fused, res.stats.fps)
            faces_seen += bool(res.faces)
            if i + 1 >= WARMUP and (i + 1) % SAMPLE_EVERY == 0:
                gc.collect()
                samples.append((i + 1, proc.memory_info().rss, proc.num_threads(), proc.num_fds()))
        wall = time.perf_counter() - t0
    finally:
        worker.stop()
        sink.stop(timeout=5)
        src.close()
        det.close()
    clip_seconds = FRAMES / 30.0
    fps = FRAMES / wall
    base_rss = max(s[1] for s in samples[:2])  # the warm-up's end (allocator settled)
    last_rss = max(s[1] for s in samples[-3:])
    growth = last_rss / base_rss - 1.0
    how = (f"{FRAMES} frames at {SIZE[0]}x{SIZE[1]}, detection every {DETECT_EVERY} frames, {fps:.0f} fps "
           f"({clip_seconds / wall:.1f}x real time); RSS {base_rss / 2**20:.1f} -> {last_rss / 2**20:.1f} MB "
           f"({100 * growth:+.2f} %); threads {[s[2] for s in samples]}; fds {[s[3] for s in samples]}")
    print(how)
    assert counts["frames"] == FRAMES and pipe.frames == FRAMES, how
    assert wall < clip_seconds, f"not faster than real time: {how}"
    assert faces_seen > 0.9 * FRAMES, f"the face was lost: {faces_seen} frames with a face; {how}"
    assert counts["face"] > 0.9 * FRAMES and counts["fused"] == FRAMES and counts["speech"] > 0, (counts, how)
    assert growth < 0.05, f"memory grew {100 * growth:.2f} % after the warm-up: {how}"
    # A sample can land while the looping clip is being reopened (its decoder threads and file are
    # briefly doubled), so compare the typical (median) count of the last third of the run with
    # that of the first third.
    third = max(1, len(samples) // 3)

    def typical(xs):
        return sorted(xs)[len(xs) // 2]

    for k, what in ((2, "thread count"), (3, "open file descriptors")):
        first, last = typical([s[k] for s in samples[:third]]), typical([s[k] for s in samples[-third:]])
        assert last <= first, f"{what} grew ({first} -> {last}): {how}"
    assert max(s[3] for s in samples) - min(s[3] for s in samples) <= 6, f"file descriptors fluctuated: {how}"
    assert sink.dropped == 0 and sink.delivered > 0, (sink.delivered, sink.dropped)
