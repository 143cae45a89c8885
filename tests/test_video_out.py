"""AnnotatedVideoWriter: re-decode what it wrote and check streams, durations and sync."""

from __future__ import annotations

import av
import numpy as np
import pytest

from dsrter.edge.streams.events import FaceEvent
from dsrter.edge.labels import LABELS
from dsrter.edge.sources.media_file import MediaFileSource
from dsrter.edge.display.overlay import draw_overlay
from dsrter.edge.display.video_writer import AnnotatedVideoWriter
from mediagen import make_clip, rms


def probe(path):
    with av.open(str(path)) as c:
        info = {"duration": c.duration / 1e6, "video": None, "audio": None}
        if c.streams.video:
            v = c.streams.video[0]
            frames = [f for f in c.decode(v)]
            info["video"] = {"codec": v.codec_context.name, "size": (v.codec_context.width, v.codec_context.height),
                             "frames": len(frames), "first_t": frames[0].time, "last_t": frames[-1].time,
                             "images": [f.to_ndarray(format="bgr24") for f in frames[::10]]}
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            rs = av.AudioResampler(format="flt", layout="mono", rate=16000)
            chunks = [g.to_ndarray().reshape(-1) for f in c.decode(a) for g in rs.resample(f)]
            x = np.concatenate(chunks)
            info["audio"] = {"codec": a.codec_context.name, "samples": x, "seconds": len(x) / 16000}
    return info


def annotate(src_path, out_path, audio=True):
    src = MediaFileSource(src_path, realtime=False)
    src.open()
    scores = np.eye(7)[LABELS.index("happy")]
    writer = AnnotatedVideoWriter(out_path, src.fps, (src.width, src.height), audio_from=src_path if audio else None)
    n = 0
    while (f := src.read()) is not None:
        ev = FaceEvent(f.t, 1, (0.2, 0.2, 0.5, 0.5), scores, "happy", 0.9)
        writer.write(draw_overlay(f.image, [ev], None, None, src.fps), f.t)
        n += 1
    src.close()
    assert writer.close() == out_path
    return n


def test_annotated_video_keeps_the_aac_audio(tmp_path):
    src = make_clip(tmp_path / "in.mp4", seconds=2.0, fps=25, tone_at=0.5)
    out = tmp_path / "out" / "annotated.mp4"
    n = annotate(src, out)
    info = probe(out)
    assert info["video"]["codec"] == "h264" and info["video"]["frames"] == n == 50
    assert info["video"]["size"] == (160, 120)
    assert info["video"]["first_t"] == pytest.approx(0.0, abs=0.01)
    assert info["video"]["last_t"] == pytest.approx(1.96, abs=0.01)
    assert info["audio"]["codec"] == "aac"
    assert info["audio"]["seconds"] == pytest.approx(2.0, abs=0.06)
    assert info["duration"] == pytest.approx(2.0, abs=0.06)
    x = info["audio"]["samples"]  # the tone still starts at 0.5 s: sound and picture in sync
    assert rms(x[int(0.1 * 16000):int(0.4 * 16000)]) < 0.02 and rms(x[int(0.6 * 16000):int(1.9 * 16000)]) > 0.2
    assert not list(out.parent.glob(".*"))  # temporary files are gone


def test_pcm_audio_is_reencoded_to_aac_and_odd_sizes_become_even(tmp_path):
    src = make_clip(tmp_path / "in.mkv", width=161, height=121, seconds=1.0, fps=10, audio="pcm_s16le",
                    audio_rate=44100, channels=2, tone_at=0.3)
    out = tmp_path / "annotated.mp4"
    annotate(src, out)
    info = probe(out)
    assert info["video"]["size"] == (160, 120) and info["video"]["frames"] == 10
    assert info["audio"]["codec"] == "aac" and info["audio"]["seconds"] == pytest.approx(1.0, abs=0.06)
    x = info["audio"]["samples"]
    assert rms(x[: int(0.25 * 16000)]) < 0.02 and rms(x[int(0.4 * 16000):int(0.9 * 16000)]) > 0.2


def test_source_without_audio_gives_a_silent_video(tmp_path):
    src = make_clip(tmp_path / "in.mp4", seconds=1.0, fps=20, audio=None)
    out = tmp_path / "annotated.mp4"
    annotate(src, out)
    info = probe(out)
    assert info["video"]["frames"] == 20 and info["audio"] is None


def test_frames_of_other_sizes_and_channels_are_resized(tmp_path):
    out = tmp_path / "mixed.mp4"
    with AnnotatedVideoWriter(out, 10.0, (64, 48)) as w:
        w.write(np.full((48, 64, 3), 200, np.uint8))
        w.write(np.full((100, 30), 50, np.uint8))  # gray, other size
        w.write(np.full((47, 65, 4), 120, np.uint8))  # BGRA
    info = probe(out)
    assert info["video"]["size"] == (64, 48) and info["video"]["frames"] == 3
    assert info["duration"] == pytest.approx(0.3, abs=0.05)


def test_timestamps_place_frames_and_duplicates_are_skipped(tmp_path):
    out = tmp_path / "ts.mp4"
    w = AnnotatedVideoWriter(out, 10.0, (32, 32))
    for t in (100.0, 100.1, 100.1, 100.5, 101.0):  # live clock: t0 = first frame
        w.write(np.zeros((32, 32, 3), np.uint8), t)
    assert w.frames_skipped == 1 and w.frames_written == 4
    assert w.duration == pytest.approx(1.1)
    w.close()
    with av.open(str(out)) as c:
        times = [f.time for f in c.decode(video=0)]
    assert times == pytest.approx([0.0, 0.1, 0.5, 1.0], abs=0.01)
    with pytest.raises(RuntimeError):
        w.write(np.zeros((32, 32, 3), np.uint8))


@pytest.mark.data
def test_av_sample_clip_annotated_with_audio(av_samples, tmp_path):
    src = av_samples / "clip18_face-happy_speech-none.mp4"
    out = tmp_path / "clip18.mp4"
    n = annotate(src, out)
    info = probe(out)
    with av.open(str(src)) as c:
        src_dur = c.duration / 1e6
    assert info["video"]["frames"] == n
    assert info["audio"] is not None and info["audio"]["seconds"] == pytest.approx(src_dur, abs=0.1)
    assert info["duration"] == pytest.approx(src_dur, abs=0.1)
