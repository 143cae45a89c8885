"""MediaFileSource / MediaAudio on clips generated here, and on the av-samples when present."""

from __future__ import annotations

import csv
import logging
import time

import numpy as np
import pytest

from dsrter.edge.sources.base import AudioSource, FrameSource
from dsrter.edge.sources.media_file import MediaError, MediaFileSource
from mediagen import gray_level, make_clip, rms


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {
        "aac": make_clip(d / "aac.mp4", seconds=2.0, fps=25, tone_at=0.5),
        "silent": make_clip(d / "noaudio.mp4", seconds=1.0, fps=25, audio=None),
        "odd": make_clip(d / "odd.mkv", width=161, height=121, seconds=0.6, fps=10, audio="pcm_s16le",
                         audio_rate=44100, channels=2, tone_at=0.2),
        "short": make_clip(d / "short.mp4", seconds=1.0, fps=20, tone_at=0.0),
    }


def read_all(src, limit=10000):
    frames = []
    while len(frames) < limit:
        f = src.read()
        if f is None:
            break
        frames.append(f)
    return frames


def test_fast_mode_decodes_every_frame_on_the_clip_clock(clips):
    src = MediaFileSource(clips["aac"], realtime=False)
    assert isinstance(src, FrameSource) and isinstance(src.audio, AudioSource)
    src.open()
    try:
        assert (src.width, src.height, src.fps) == (160, 120, 25.0)
        frames = read_all(src)
        assert len(frames) == 50
        assert [f.index for f in frames] == list(range(50))
        assert np.allclose([f.t for f in frames], np.arange(50) / 25, atol=1e-3)
        for f in frames[::7]:  # the picture decoded is the one encoded at that index
            assert f.image.dtype == np.uint8 and f.image.shape == (120, 160, 3)
            assert abs(int(np.median(f.image)) - gray_level(f.index)) <= 8
        assert src.ended and src.status.state == "ended" and src.dropped == 0
        assert src.read() is None
    finally:
        src.close()


def test_audio_tracks_video_time_in_fast_mode(clips):
    src = MediaFileSource(clips["aac"], realtime=False)
    src.open()
    audio = src.audio
    audio.start()
    try:
        assert audio.has_audio and audio.sample_rate == 16000 and audio.status.state == "ok"
        seen = 0
        while (f := src.read()) is not None:
            x, t_end = audio.latest(2.0)
            assert x.dtype == np.float32 and x.ndim == 1
            assert t_end == pytest.approx(f.t, abs=1e-6)  # audio up to the frame's time is there
            assert len(x) == pytest.approx(min(2.0, f.t) * 16000, abs=2)
            if f.t >= 0.9:  # tone from 0.5 s: last 0.3 s loud, what lies before 0.45 s silent
                assert rms(x[-int(0.3 * 16000):]) > 0.2
                before = int(round((t_end - 0.45) * 16000))
                assert rms(x[max(0, len(x) - before - 1600):len(x) - before]) < 0.02
                seen += 1
        assert seen > 20
        # after the last frame the clock moves to the end of the clip: the audio tail is readable
        x, t_end = audio.latest(0.5)
        assert t_end == pytest.approx(2.0, abs=0.03) and len(x) == 8000
        assert audio.overflows == 0
    finally:
        src.close()


def test_file_without_audio_track(clips, caplog):
    with caplog.at_level(logging.INFO, logger="dsrter.edge.sources.media_file"):
        src = MediaFileSource(clips["silent"], realtime=False)
        src.open()
    try:
        assert not src.audio.has_audio and src.audio.status.state == "missing"
        assert any("no audio track" in r.getMessage() for r in caplog.records)
        assert len(read_all(src)) == 25
        x, t_end = src.audio.latest(1.0)
        assert x.shape == (0,) and x.dtype == np.float32 and t_end == pytest.approx(1.0, abs=0.05)
    finally:
        src.close()


def test_odd_size_and_stereo_pcm_audio(clips):
    src = MediaFileSource(clips["odd"], realtime=False)
    src.open()
    try:
        frames = read_all(src)
        assert len(frames) == 6 and frames[0].image.shape == (121, 161, 3)
        assert src.audio.source_rate == 44100 and src.audio.source_channels == 2
        x, t_end = src.audio.latest(10.0)
        assert t_end == pytest.approx(0.6, abs=0.03)
        assert len(x) == pytest.approx(0.6 * 16000, abs=40)
        assert rms(x[: int(0.15 * 16000)]) < 0.01 and rms(x[int(0.3 * 16000):]) > 0.2
    finally:
        src.close()


def test_realtime_mode_paces_frames_and_audio_follows_the_wall_clock(clips):
    src = MediaFileSource(clips["short"], realtime=True)
    src.open()
    try:
        t0 = time.monotonic()
        frames = []
        while not src.ended and time.monotonic() - t0 < 3.0:
            f = src.read(timeout=0.05)
            if f is not None:
                frames.append((time.monotonic() - t0, f))
        elapsed = time.monotonic() - t0
        assert 0.9 < elapsed < 2.5
        assert len(frames) >= 15
        for wall, f in frames:  # never early, and not much late
            assert wall >= f.t - 0.01
            assert wall - f.t < 0.5  # (generous: the test machine may be busy)
        assert src.status.state == "ended"
    finally:
        src.close()


def test_realtime_slow_consumer_gets_newest_frame_and_drops_are_counted(clips):
    src = MediaFileSource(clips["short"], realtime=True)
    src.open()
    try:
        got = []
        t0 = time.monotonic()
        while not src.ended and time.monotonic() - t0 < 3.0:
            f = src.read(timeout=0.2)
            if f is not None:
                got.append(f)
                x, t_end = src.audio.latest(0.2)
                # the audio clock is the wall position: at or past the frame, never ahead of real time
                assert f.t - 1e-6 <= t_end <= time.monotonic() - t0 + 0.01
                assert len(x) > 0
            time.sleep(0.15)  # slower than the clip's 20 fps
        assert 4 <= len(got) <= 10
        assert src.dropped >= 20 - len(got) - 2
        assert all(b.index > a.index for a, b in zip(got, got[1:]))
    finally:
        src.close()


def test_realtime_read_never_blocks_longer_than_timeout(clips):
    src = MediaFileSource(clips["odd"], realtime=True)  # 10 fps: a frame every 100 ms
    src.open()
    try:
        assert src.read(timeout=0.05).index == 0  # frame 0 is due at once
        t0 = time.monotonic()
        f = src.read(timeout=0.0)  # frame 1 is not due yet (unless this machine stalled 100 ms)
        assert time.monotonic() - t0 < 0.05 or f is not None
        if f is None:
            t0 = time.monotonic()
            assert src.read(timeout=0.02) is None
            assert time.monotonic() - t0 < 0.1
            f = src.read(timeout=0.5)
            assert f is not None and f.index == 1
    finally:
        src.close()


def test_loop_keeps_the_clock_running(clips):
    src = MediaFileSource(clips["short"], realtime=False, loop=True)
    src.open()
    try:
        frames = [src.read() for _ in range(50)]
        ts = [f.t for f in frames]
        assert all(b > a for a, b in zip(ts, ts[1:]))
        assert ts[20] == pytest.approx(1.0, abs=0.02) and ts[45] == pytest.approx(2.25, abs=0.02)
        assert not src.ended and src.status.state == "ok"
        x, t_end = src.audio.latest(1.5)  # audio crosses the loop point without a gap
        assert t_end == pytest.approx(ts[-1], abs=1e-6) and len(x) == 24000
        assert rms(x[:4000]) > 0.2 and rms(x[-4000:]) > 0.2
    finally:
        src.close()


def test_missing_and_corrupt_files_raise_media_error(tmp_path, clips):
    with pytest.raises(MediaError, match="no such file"):
        MediaFileSource(tmp_path / "nope.mp4").open()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match="bad.mp4"):
        MediaFileSource(bad).open()
    with pytest.raises(MediaError):
        MediaFileSource(tmp_path).open()


def test_truncated_file_reads_what_is_there(tmp_path):
    # a Matroska clip cut in half still has its header: frames up to the cut decode
    whole = make_clip(tmp_path / "whole.mkv", seconds=2.0, fps=25).read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole[: len(whole) // 2])
    src = MediaFileSource(cut, realtime=False)
    src.open()
    try:
        frames = read_all(src)
        assert 5 < len(frames) < 50
        assert src.ended
        src.audio.latest(1.0)  # no exception either
    finally:
        src.close()


@pytest.mark.data
def test_av_samples_decode_with_audio(av_samples):
    rows = {r["file"]: r for r in csv.DictReader(open(av_samples / "manifest.csv"))}
    name = next(n for n in rows if n.startswith("clip03"))
    src = MediaFileSource(av_samples / name, realtime=False)
    src.open()
    try:
        frames = read_all(src)
        r = rows[name]
        assert frames[0].image.shape == (int(r["height"]), int(r["width"]), 3)
        assert len(frames) == pytest.approx(float(r["duration_s"]) * float(r["fps"]), abs=2)
        x, t_end = src.audio.latest(60.0)
        assert t_end == pytest.approx(float(r["duration_s"]), abs=0.1)
        # the utterance is louder than the lead-in silence before speech_start_s
        start = float(r["speech_start_s"])
        assert rms(x[int((start + 0.3) * 16000):int((start + 1.3) * 16000)]) > 3 * rms(x[: int(0.8 * 16000)]) + 1e-4
    finally:
        src.close()


@pytest.mark.data
def test_real_footage_with_late_video_start_stays_in_sync(av_samples):
    src = MediaFileSource(av_samples / "real-footage-hamilton.mp4", realtime=False)
    src.open()
    try:
        f = src.read()
        assert f.t > 0.5  # the video starts ~0.84 s after the audio in this file
        x, t_end = src.audio.latest(5.0)
        assert t_end == pytest.approx(f.t, abs=1e-6) and len(x) == pytest.approx(f.t * 16000, abs=2)
        n = 1 + len(read_all(src))
        assert 270 <= n <= 280 and src.audio.source_channels == 2
    finally:
        src.close()
