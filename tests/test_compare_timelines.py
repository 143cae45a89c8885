"""The emulated Raspberry Pi run's comparison (.ci/compare_timelines.py) and what makes it strict:
frames decoded to the same pixels on every CPU, and the same results with LiteRT's XNNPACK on or off."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]


def _load_compare():
    spec = importlib.util.spec_from_file_location("compare_timelines", REPO / ".ci" / "compare_timelines.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


ct = _load_compare()


def row(t: float, kind: str, label: str | None, scores: dict | None, track: int | None = 1, speaking=None) -> dict:
    return {"t": t, "kind": kind, "track_id": track, "label": label, "scores": scores, "speaking": speaking}


def s(happy: float, neutral: float) -> dict:
    return {"happy": happy, "neutral": neutral, "sad": round(1 - happy - neutral, 4)}


def test_same_results_pass_and_every_kind_of_difference_fails():
    ref = [row(0.0, "face", "happy", s(0.6, 0.3)), row(0.1, "face", "happy", s(0.42, 0.40)),
           row(0.1, "speech", None, None, None, False)]
    problems, summary = ct.compare(ref, [dict(r) for r in ref], 0.05, 0.1, 0.05)
    assert problems == [] and "0 labels differ" in summary
    # a near-tie may go the other way
    tie = [ref[0], row(0.1, "face", "neutral", s(0.41, 0.42)), ref[2]]
    problems, summary = ct.compare(ref, tie, 0.05, 0.1, 0.05)
    assert problems == [] and "1 labels differ at a tie" in summary
    # a clear difference may not, even with close scores elsewhere
    clear = [row(0.0, "face", "neutral", s(0.6, 0.3)), ref[1], ref[2]]
    assert "not a tie" in ct.compare(ref, clear, 0.05, 0.1, 0.05)[0][0]
    drift = [row(0.0, "face", "happy", s(0.52, 0.38)), ref[1], ref[2]]
    assert "face scores differ by 0.0800" in ct.compare(ref, drift, 0.05, 0.1, 0.05)[0][0]
    voice = [ref[0], ref[1], row(0.1, "speech", None, None, None, True)]
    assert "speaking True" in ct.compare(ref, voice, 0.05, 0.1, 0.05)[0][0]
    assert "only in the reference" in ct.compare(ref, ref[:2], 0.05, 0.1, 0.05)[0][0]


def test_the_command_line_prints_one_line_and_exits_1_on_a_difference(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps(row(0.0, "face", "happy", s(0.6, 0.3))) + "\n")
    b.write_text(json.dumps(row(0.0, "face", "sad", s(0.6, 0.3))) + "\n")
    same = subprocess.run([sys.executable, str(REPO / ".ci" / "compare_timelines.py"), str(a), str(a)],
                          capture_output=True, text=True)
    diff = subprocess.run([sys.executable, str(REPO / ".ci" / "compare_timelines.py"), str(a), str(b)],
                          capture_output=True, text=True)
    assert same.returncode == 0 and same.stdout.startswith("compare: same labels")
    assert diff.returncode == 1 and diff.stdout.startswith("compare: DIFFERENT") and len(diff.stdout.splitlines()) == 1
    missing = subprocess.run([sys.executable, str(REPO / ".ci" / "compare_timelines.py"), str(a), str(tmp_path / "no")],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr


def test_video_frames_are_converted_by_opencv_from_the_decoders_planes(av_samples):
    """H.264's 4:2:0 frames: OpenCV's integer conversion (the same pixels on x86-64 and aarch64, where
    swscale rounds differently per CPU) agrees with swscale to a few levels; other layouts use swscale."""
    import av
    import cv2

    from dsrter.edge.sources.media_file import to_bgr

    with av.open(str(av_samples / "real-footage-hamilton.mp4")) as c:
        f = next(iter(c.decode(video=0)))
    assert f.format.name == "yuv420p"
    ours, sws = to_bgr(f).astype(int), f.to_ndarray(format="bgr24").astype(int)
    assert ours.shape == sws.shape and np.abs(ours - sws).mean() < 2.0 and np.abs(ours - sws).max() <= 16
    assert np.array_equal(to_bgr(f), cv2.cvtColor(f.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2BGR_I420))
    rgb = av.VideoFrame.from_ndarray(np.full((6, 8, 3), 90, np.uint8), format="rgb24")
    assert to_bgr(rgb).shape == (6, 8, 3)  # not 4:2:0: swscale
    odd = av.VideoFrame.from_ndarray(np.zeros((7, 9, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
    assert to_bgr(odd).shape[:2] == (odd.height, odd.width)


_NO_XNNPACK = """
import sys
from dsrter.edge.infer import model_io
plain = model_io.make_interpreter
model_io.make_interpreter = lambda data, threads=1, delegates=True: plain(data, threads, False)
from dsrter.edge.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_analyze_gives_the_same_labels_with_and_without_xnnpack(av_samples, tmp_path):
    """What the emulated Pi run checks, on this machine: LiteRT's reference kernels against XNNPACK
    (another set of int8 kernels, as on another CPU) on clip06, smoothing off as there."""
    clip = av_samples / "clip06_face-neutral_speech-surprise.mp4"
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    for stream in ("face", "speech"):
        cfg[stream]["smoothing"] = {"alpha": 1.0, "hysteresis": 0.0, "min_hold": 1}
    cfg["fusion"]["hysteresis"] = 0.0
    conf = tmp_path / "unsmoothed.yaml"
    conf.write_text(yaml.safe_dump(cfg))
    (tmp_path / "no_xnnpack.py").write_text(_NO_XNNPACK)
    runs = {}
    for name, entry in (("xnnpack", ["-m", "dsrter.edge.cli.main"]), ("reference", [str(tmp_path / "no_xnnpack.py")])):
        p = subprocess.run([sys.executable, *entry, "analyze", str(clip), "-c", str(conf), "--out", str(tmp_path / name),
                            "--no-video", "--no-progress"], capture_output=True, text=True, timeout=300, cwd=REPO)
        assert p.returncode == 0, p.stderr[-1500:]
        runs[name] = ct.read(tmp_path / name / "timeline.jsonl")
    problems, summary = ct.compare(runs["xnnpack"], runs["reference"], 0.05, 0.1, 0.05)
    print("\n" + summary)
    assert not problems, problems
    assert sum(r["kind"] == "face" for r in runs["xnnpack"]) > 100  # the face stream ran on every frame
    assert any(r["kind"] == "speech" and r["speaking"] for r in runs["xnnpack"])
