"""Bad input to the CLI: one clear line naming the problem, a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = all((REPO / "models" / f).is_file() for f in ("face_emotion.tflite", "speech_emotion.tflite"))


def dsrter(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DSRTER_CONFIG"}
    return subprocess.run([sys.executable, "-m", "dsrter.edge.cli.main", *args], cwd=cwd, env=env, timeout=timeout, capture_output=True, text=True, check=False)


def one_clear_line(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    hits = [ln for ln in lines if all(n in ln for n in needles)]
    assert hits, lines
    return hits[0]


@pytest.fixture
def latin1_config(tmp_path: Path) -> Path:
    p = tmp_path / "config.yaml"
    p.write_bytes("device_id: kitchen  # caf\u00e9\n".encode("latin-1"))
    return p


def test_check_config_and_run_name_a_non_utf8_config(latin1_config: Path, tmp_path: Path):
    line = one_clear_line(dsrter("check-config", str(latin1_config), cwd=tmp_path), str(latin1_config), "UTF-8")
    assert line.startswith("error: ")
    one_clear_line(dsrter("run", "-c", str(latin1_config), "--duration", "1", cwd=tmp_path), str(latin1_config), "UTF-8")


def test_analyze_out_that_is_a_file_is_refused_and_left_alone(tmp_path: Path):
    from mediagen import make_clip

    clip = make_clip(tmp_path / "c.mp4", seconds=0.4, audio=None)
    out = tmp_path / "out"
    out.write_text("keep me")
    one_clear_line(dsrter("analyze", str(clip), "--out", str(out), cwd=tmp_path), "--out", "not a folder")
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("kind", ["missing", "folder", "pipe"])
def test_analyze_names_why_its_input_is_not_a_file(tmp_path: Path, kind: str):
    """A typo, a folder or a named pipe (analyze opens its input several times: probe, frames, audio)."""
    clip = tmp_path / "clip.mp4"
    if kind == "folder":
        clip.mkdir()
    elif kind == "pipe":
        os.mkfifo(clip)
    why = {"missing": "no such file", "folder": "is a folder", "pipe": "not a regular file"}[kind]
    one_clear_line(dsrter("analyze", str(clip), "--out", str(tmp_path / "out"), cwd=tmp_path, timeout=60), str(clip), why)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["missing", "text"])
def test_run_with_an_unplayable_camera_file_stops_at_once(tmp_path: Path, kind: str):
    name = "typo.mp4"
    if kind == "text":
        (tmp_path / name).write_text("not a video\n")
    r = dsrter("run", "--camera", name, "--duration", "30", cwd=tmp_path, timeout=60)
    one_clear_line(r, "camera", name)


def test_is_live_device_keeps_dev_paths_as_retried_cameras():
    from dsrter.edge.cli.run import _unplayable_camera_file
    from dsrter.edge.config import parse_config

    for device in ("/dev/video9", 3, "7"):
        cfg = parse_config({"camera": {"device": device}}, env={})
        assert _unplayable_camera_file(cfg) is None  # a device that is absent now is retried, not refused


@pytest.mark.skipif(not SHIPPED, reason="shipped models missing")
def test_short_and_truncated_clips_are_reported_in_summary_and_on_stderr(tmp_path: Path):
    from mediagen import make_clip

    short = make_clip(tmp_path / "short.mp4", width=160, height=120, seconds=0.1, audio="aac")  # less audio than a first decision needs
    r = dsrter("analyze", str(short), "--out", str(tmp_path / "s"), "--no-video", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    warnings = json.loads((tmp_path / "s" / "summary.json").read_text())["analysis"]["warnings"]
    assert any("speech not analysed" in w and "shorter than" in w for w in warnings), warnings
    assert "warning: short.mp4: speech not analysed" in r.stderr

    # Matroska keeps its header in front, so the first half still plays (an MP4 with its index at
    # the end is refused outright, which the unreadable-clip tests cover).
    whole = make_clip(tmp_path / "whole.mkv", width=160, height=120, seconds=4.0, audio="aac")
    cut = tmp_path / "cut.mkv"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    r = dsrter("analyze", str(cut), "--out", str(tmp_path / "t"), "--no-video", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert any("truncated" in w for w in summary["analysis"]["warnings"]), summary["analysis"]
    assert "dsrter analyze: warning: cut.mkv: video decoded up to" in r.stderr


def _subtitles_only(path: Path) -> Path:
    """A Matroska file whose only stream is subtitles (remuxed by PyAV from an .srt FFmpeg reads)."""
    import av

    srt = path.with_suffix(".srt")
    srt.write_text("1\n00:00:00,000 --> 00:00:02,000\nno picture\n\n2\n00:00:02,500 --> 00:00:04,000\nno sound\n")
    with av.open(str(srt)) as inp, av.open(str(path), mode="w") as out:
        sub = out.add_stream_from_template(inp.streams.subtitles[0])
        for packet in inp.demux(inp.streams.subtitles[0]):
            if packet.dts is not None:
                packet.stream = sub
                out.mux(packet)
    return path


def test_analyze_a_file_with_neither_video_nor_audio_is_refused(tmp_path: Path):
    import av

    subs = _subtitles_only(tmp_path / "subs.mkv")
    with av.open(str(subs)) as c:
        assert [s.type for s in c.streams] == ["subtitle"]
    r = dsrter("analyze", str(subs), "--out", str(tmp_path / "out"), "--no-progress", cwd=tmp_path)
    one_clear_line(r, "subs.mkv", "no video stream and no audio track")
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.skipif(not SHIPPED, reason="shipped models missing")
def test_a_truncated_audio_only_file_is_reported(tmp_path: Path):
    from mediagen import audio_only, make_clip

    whole = audio_only(make_clip(tmp_path / "tone.mkv", seconds=6.0, audio="aac"), tmp_path / "tone.mka", "flac")
    cut = tmp_path / "cut.mka"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    r = dsrter("analyze", str(cut), "--out", str(tmp_path / "t"), "--no-progress", cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    warnings = json.loads((tmp_path / "t" / "summary.json").read_text())["analysis"]["warnings"]
    assert any("no video stream" in w for w in warnings) and any("truncated" in w for w in warnings), warnings
    assert "dsrter analyze: warning: cut.mka: audio decoded up to" in r.stderr
