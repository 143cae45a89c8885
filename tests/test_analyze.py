"""``dsrter analyze`` on the av-samples clips: outputs, clip timeline, no-speech / no-face / two faces,
and (once the trained models ship) agreement with the clips' labels."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

try:  # openSMILE before anything loads TensorFlow (see edge/infer/face_detector.py)
    import opensmile  # noqa: F401
except ImportError:  # pragma: no cover
    pass
import pytest
from model_factory import face_model, speech_model  # noqa: F401  (fixtures)

from dsrter.edge.config import parse_config

REPO = Path(__file__).resolve().parents[1]
# The trained models: models/ (or another folder, e.g. a candidate's, in $DSRTER_TEST_MODELS_DIR).
MODELS_DIR = Path(os.environ.get("DSRTER_TEST_MODELS_DIR", REPO / "models"))
REAL_FACE = MODELS_DIR / "face_emotion.tflite"
REAL_SPEECH = MODELS_DIR / "speech_emotion.tflite"
REAL_MODELS = REAL_FACE.is_file() and REAL_SPEECH.is_file()

# Agreement with the clips' labels over the whole set (23 faces, 19 utterances) that the trained
# models must reach: a floor well above chance (1/7 = 0.14), not every clip (FER-2013 labels are
# noisy). Measured: see the README's analyze section.
# Measured with the shipped models (README "End to end"): face 15/23, speech 14/19 (the level-invariant
# two-corpus speech model trained on four corrupted copies, with its voice branch; the two-copy model
# before it 13/19, without its branch 11/19; the RAVDESS-only model 14/19).
# The floors sit at or below one clip under the measured figures (a changed model that loses more than
# one clip fails), not at chance.
MIN_FACE_AGREEMENT = 13 / 23
MIN_SPEECH_AGREEMENT = 13 / 19


def manifest(av_samples: Path) -> dict[str, dict]:
    with open(av_samples / "manifest.csv", newline="") as fh:
        return {row["file"]: row for row in csv.DictReader(fh)}


def clip_named(av_samples: Path, prefix: str) -> Path:
    (p,) = sorted(av_samples.glob(f"{prefix}_*.mp4"))
    return p


@pytest.fixture(scope="module")
def cfg(face_model, speech_model, tmp_path_factory):
    face = REAL_FACE if REAL_MODELS else face_model
    speech = REAL_SPEECH if REAL_MODELS else speech_model
    data = {"face": {"model": str(face), "detector_model": str(REPO / "models" / "face_detection_short_range.tflite")},
            "speech": {"model": str(speech)}, "mqtt": {"enabled": False}}
    path = tmp_path_factory.mktemp("analyze-config") / "config.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    return path, parse_config(data)


@pytest.fixture(scope="module")
def analysed(cfg, tmp_path_factory):
    """clip path -> summary, each clip analysed once per module (no annotated video: faster)."""
    from dsrter.edge.app.analyze import analyze_clip
    from dsrter.edge.app.daemon import load_models

    models = load_models(cfg[1])
    cache: dict[Path, dict] = {}

    def run(clip: Path) -> dict:
        if clip not in cache:
            out = tmp_path_factory.mktemp(clip.stem[:6])
            cache[clip] = analyze_clip(clip, out, cfg[1], models, video=False, progress=False)
            cache[clip]["_out"] = out
        return cache[clip]

    yield run
    models.close()


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "timeline.jsonl").read_text().splitlines()]


def test_cli_writes_every_output_and_the_video_keeps_its_audio(av_samples, cfg, tmp_path):
    import av

    clip = clip_named(av_samples, "clip03")
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "dsrter.edge.cli.main", "analyze", str(clip), "--out", str(out),
                        "-c", str(cfg[0])], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    for name in ("annotated.mp4", "timeline.jsonl", "timeline.csv", "timeline.png", "summary.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    a = summary["analysis"]
    duration = float(manifest(av_samples)[clip.name]["duration_s"])
    assert a["has_audio"] and a["frames"] >= 150 and a["dropped_frames"] == 0
    # speech: 2 s windows every 0.5 s of clip time, not per-frame chunks
    assert a["speech_window_s"] == 2.0 and a["speech_hop_s"] == 0.5
    assert abs(a["speech_windows"] - duration / 0.5) <= 3
    with av.open(str(out / "annotated.mp4")) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
        vdur = float(c.streams.video[0].duration * c.streams.video[0].time_base)
        n_audio = sum(f.samples for f in c.decode(audio=0))
        sr = c.streams.audio[0].rate
    with av.open(str(out / "annotated.mp4")) as c:
        n_video = sum(1 for _ in c.decode(video=0))
    assert n_video == a["frames"] and abs(vdur - duration) < 0.2
    assert abs(n_audio / sr - duration) < 0.3  # the original sound is there, as long as the clip
    # event timestamps are clip seconds
    evs = rows(out)
    assert {"face", "speech", "emotion"} <= {r["kind"] for r in evs}
    assert 0.0 <= min(r["t"] for r in evs) and max(r["t"] for r in evs) <= duration + 0.05
    speech = [r for r in evs if r["kind"] == "speech"]
    gaps = [b["t"] - a_["t"] for a_, b in zip(speech, speech[1:])]
    # a speech state every hop (0.5 s) while it lasts; a change of state (speech starts or ends) at the next
    # voice-activity tick (0.25 s), then the tail
    assert all(min(abs(g - 0.5), abs(g - 0.25)) < 0.05 for g in gaps[:-1]) and 0 < gaps[-1] < 0.55
    assert sum(abs(g - 0.5) < 0.05 for g in gaps) >= len(gaps) // 2
    with open(out / "timeline.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(evs)


def test_silence_gives_the_no_speech_state(av_samples, analysed):
    s = analysed(clip_named(av_samples, "clip18"))
    sp = s["speech"]
    assert sp["events"] >= 5 and sp["dominant"] is None and sp["speaking_s"] == 0.0
    assert s["face_tracks"] == 1
    assert s["fused"]["dominant"] == next(iter(s["faces"].values()))["dominant"]  # face only


def test_no_face_gives_speech_only(av_samples, analysed):
    s = analysed(clip_named(av_samples, "clip19"))
    assert s["face_tracks"] == 0 and s["events"]["face"] == 0
    assert s["speech"]["dominant"] is not None and s["speech"]["speaking_s"] > 2.0
    fused = [r for r in rows(s["_out"]) if r["kind"] == "emotion" and r["label"]]
    assert fused and all(r["track_id"] is None and r["attribution"] == "none" for r in fused)
    assert {r["attribution"] for r in rows(s["_out"]) if r["kind"] == "speech" and r["speaking"]} == {"none"}


def _two_tracks(s: dict) -> dict[str, dict]:
    tracks = s["analysis"]["tracks"]
    long_lived = {k: v for k, v in tracks.items() if v["frames"] >= 0.5 * s["analysis"]["frames"]}
    assert len(long_lived) == 2, tracks
    return long_lived


@pytest.mark.parametrize("prefix", ["clip14", "clip15", "clip16", "clip17"])
def test_two_faces_speech_goes_to_the_larger_face(av_samples, analysed, prefix):
    s = analysed(clip_named(av_samples, prefix))
    tracks = _two_tracks(s)
    larger = max(tracks, key=lambda k: tracks[k]["mean_area"])
    windows = s["analysis"]["speech_attribution"]
    total = sum(w["windows"] for w in windows)
    to_larger = sum(w["windows"] for w in windows if str(w["track_id"]) == larger
                    and w["attribution"] in ("largest_face", "speaking_face"))
    assert total >= 4 and to_larger >= 0.8 * total, windows


CLIP16_WHY = ("manifest largest_face=0 names the larger picture tile (250 px); the face inside it is the smaller "
              "one: BlazeFace boxes ~130 px vs ~155 px, eye distance 50 vs 67 px")


@pytest.mark.parametrize("prefix", ["clip14", "clip15", pytest.param("clip16", marks=pytest.mark.xfail(
    strict=True, reason=CLIP16_WHY)), "clip17"])
def test_the_larger_face_is_the_one_the_manifest_names(av_samples, analysed, prefix):
    clip = clip_named(av_samples, prefix)
    tracks = _two_tracks(analysed(clip))
    left_to_right = sorted(tracks, key=lambda k: tracks[k]["mean_box"][0])
    named = left_to_right[int(manifest(av_samples)[clip.name]["largest_face"])]
    assert named == max(tracks, key=lambda k: tracks[k]["mean_area"])


def _speech_states(out: Path) -> list[tuple[float, bool]]:
    return [(r["t"], bool(r["speaking"])) for r in rows(out) if r["kind"] == "speech"]


def test_an_audio_only_file_gets_the_speech_stream_alone(av_samples, cfg, analysed, tmp_path):
    """An av-samples clip's sound alone, as .m4a/.mp4 (AAC), .flac and .wav: speech and fused events on the
    clip's timeline, no annotated video, a warning that says so; the speaking states those of the clip."""
    from mediagen import audio_only

    from dsrter.edge.app.analyze import analyze_clip
    from dsrter.edge.app.daemon import load_models

    clip = clip_named(av_samples, "clip03")
    duration = float(manifest(av_samples)[clip.name]["duration_s"])
    m4a = audio_only(clip, tmp_path / "voice.m4a", "aac")
    out = tmp_path / "m4a"
    p = subprocess.run([sys.executable, "-m", "dsrter.edge.cli.main", "analyze", str(m4a), "--out", str(out),
                        "-c", str(cfg[0]), "--no-progress"], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert "dsrter analyze: warning: voice.m4a: no video stream: speech analysed alone" in p.stderr
    assert "no annotated.mp4" in p.stderr
    assert sorted(f.name for f in out.iterdir()) == ["summary.json", "timeline.csv", "timeline.jsonl", "timeline.png"]
    s = json.loads((out / "summary.json").read_text())
    a = s["analysis"]
    assert a["has_video"] is False and a["has_audio"] is True and a["frames"] == 0 and a["video_fps"] is None
    assert any("no annotated.mp4" in w for w in a["warnings"]) and "annotated.mp4" not in a["outputs"]
    assert abs(a["duration_s"] - duration) < 0.1 and abs(a["speech_windows"] - duration / 0.5) <= 3
    evs = rows(out)
    speech = [r for r in evs if r["kind"] == "speech"]
    fused = [r for r in evs if r["kind"] == "emotion"]
    assert {r["kind"] for r in evs} == {"speech", "emotion"} and s["events"]["face"] == 0
    assert 0.0 <= min(r["t"] for r in evs) and max(r["t"] for r in evs) <= duration + 0.05
    # each speech event fused on its own, once: same time, same label, no face
    assert [(r["t"], r["label"]) for r in fused] == [(r["t"], r["label"]) for r in speech]
    assert all(r["track_id"] is None and r["attribution"] == "none" for r in speech + fused)
    assert s["speech"]["speaking_s"] > 1.0 and s["fused"]["dominant"] == s["speech"]["dominant"] is not None

    # the clip itself, with its video: the speech stream steps on frame times there (up to a frame later),
    # so the same speaking states show at the same hops
    video = analysed(clip)
    here, there = _speech_states(out), _speech_states(video["_out"])
    assert len(here) == len(there)
    assert all(abs(t1 - t2) <= 1 / 25 + 1e-3 and k1 == k2 for (t1, k1), (t2, k2) in zip(here, there)), (here, there)
    assert abs(s["speech"]["speaking_s"] - video["speech"]["speaking_s"]) <= 0.1

    # other containers: the same decoded sound gives the same timeline (lossless .flac/.wav alike; AAC again
    # in an .mp4 with no video like the .m4a)
    models = load_models(cfg[1])
    try:
        got = {}
        for name, codec in (("voice.flac", "flac"), ("voice.wav", "pcm_s16le"), ("voice.mp4", "aac")):
            f = audio_only(clip, tmp_path / name, codec)
            res = analyze_clip(f, tmp_path / name.replace(".", "_"), cfg[1], models, video=False, progress=False)
            assert res["analysis"]["has_video"] is False and res["events"]["speech"] == s["events"]["speech"]
            got[name] = rows(tmp_path / name.replace(".", "_"))
    finally:
        models.close()
    assert got["voice.flac"] == got["voice.wav"]
    assert [(r["t"], r["kind"], r["label"]) for r in got["voice.mp4"]] == [(r["t"], r["kind"], r["label"]) for r in evs]
    assert _speech_states(tmp_path / "voice_flac") == here


def test_a_real_speech_recording_analysed_as_it_ships(cfg, ravdess_dir, tmp_path):
    """A RAVDESS .flac as it comes: speech found where the actor speaks."""
    from dsrter.edge.app.analyze import analyze_clip
    from dsrter.edge.app.daemon import load_models

    flac = sorted((ravdess_dir / "Actor_01").glob("*.flac"))[0]
    models = load_models(cfg[1])
    try:
        s = analyze_clip(flac, tmp_path / "out", cfg[1], models, progress=False)
    finally:
        models.close()
    assert s["analysis"]["has_video"] is False and s["analysis"]["frames"] == 0
    assert s["speech"]["speaking_s"] >= 1.0 and s["speech"]["silent_s"] > 0.0
    assert s["events"]["emotion"] == s["events"]["speech"] and s["fused"]["dominant"] == s["speech"]["dominant"]


def test_a_file_without_audio(cfg, tmp_path, analysed):
    import av
    from mediagen import make_clip

    from dsrter.edge.app.analyze import analyze_clip
    from dsrter.edge.app.daemon import load_models

    clip = make_clip(tmp_path / "mute.mp4", width=320, height=240, fps=25, seconds=1.2, audio=None)
    models = load_models(cfg[1])
    try:
        s = analyze_clip(clip, tmp_path / "out", cfg[1], models, video=True, progress=False)
    finally:
        models.close()
    assert s["analysis"]["has_audio"] is False and s["events"]["speech"] == 0
    assert s["analysis"]["frames"] == 30 and s["frames"] == 30
    with av.open(str(tmp_path / "out" / "annotated.mp4")) as c:
        assert not c.streams.audio and sum(1 for _ in c.decode(video=0)) == 30


@pytest.mark.skipif(not REAL_MODELS, reason=f"needs face_emotion.tflite and speech_emotion.tflite in {MODELS_DIR}")
def test_labels_agree_with_the_clips_over_the_set(av_samples, analysed):
    face_hits, speech_hits = [], []
    for name, row in sorted(manifest(av_samples).items()):
        s = analysed(av_samples / name)
        tracks = s["analysis"]["tracks"]
        labels = [x for x in row["face_labels"].split(";") if x]
        long_lived = sorted((k for k, v in tracks.items() if v["frames"] >= 0.3 * s["analysis"]["frames"]),
                            key=lambda k: tracks[k]["mean_box"][0])
        if len(long_lived) == len(labels):
            face_hits += [s["faces"][k]["dominant"] == lab for k, lab in zip(long_lived, labels)]
        else:
            face_hits += [False] * len(labels)
        if row["speech_label"]:
            speech_hits.append(s["speech"]["dominant"] == row["speech_label"])
    face_acc, speech_acc = sum(face_hits) / len(face_hits), sum(speech_hits) / len(speech_hits)
    print(f"agreement over av-samples: face {face_acc:.2f} ({sum(face_hits)}/{len(face_hits)}), "
          f"speech {speech_acc:.2f} ({sum(speech_hits)}/{len(speech_hits)})")
    assert face_acc >= MIN_FACE_AGREEMENT
    assert speech_acc >= MIN_SPEECH_AGREEMENT


def test_unreadable_clip_is_a_clear_error(cfg, tmp_path):
    from dsrter.edge.app.analyze import analyze_clip
    from dsrter.edge.app.daemon import Models
    from dsrter.edge.sources.media_file import MediaError

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    with pytest.raises(MediaError, match="broken.mp4"):
        analyze_clip(bad, tmp_path / "out", cfg[1], Models(), video=False, progress=False)
    with pytest.raises(MediaError, match="no such file"):
        analyze_clip(tmp_path / "nope.mp4", tmp_path / "out", cfg[1], Models(), video=False, progress=False)
