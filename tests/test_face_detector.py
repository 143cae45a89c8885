"""Face detector: any frame shape/channels/dtype, clear errors for a missing or corrupt model file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dsrter.edge.infer.face_detector import MOUTH, FaceDetector, to_rgb
from dsrter.edge.infer.model_io import ModelError

REPO = Path(__file__).resolve().parents[1]
DETECTOR = REPO / "models" / "face_detection_short_range.tflite"


@pytest.fixture(scope="module")
def detector():
    d = FaceDetector(DETECTOR, min_confidence=0.5, mode="video")
    yield d
    d.close()


def test_missing_and_corrupt_detector_files(tmp_path):
    with pytest.raises(ModelError, match="face detector model not found"):
        FaceDetector(tmp_path / "nope.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a model at all")
    with pytest.raises(ModelError, match="not a TFLite flatbuffer"):
        FaceDetector(junk)
    trunc = tmp_path / "trunc.tflite"
    trunc.write_bytes(DETECTOR.read_bytes()[:50_000])
    with pytest.raises(ModelError, match="cannot load"):
        FaceDetector(trunc)


@pytest.mark.parametrize("shape,dtype", [
    ((1, 1, 3), np.uint8), ((7, 13), np.uint8), ((37, 53, 1), np.uint8), ((481, 641, 4), np.uint8),
    ((240, 320, 3), np.float32), ((120, 160), np.uint16), ((2000, 90, 3), np.uint8),
])
def test_odd_frames_do_not_break_detection(detector, shape, dtype):
    frame = np.random.default_rng(0).integers(0, 255, shape).astype(dtype)
    if dtype == np.float32:
        frame /= 255.0
    dets = detector.detect(frame, 1.0)
    assert isinstance(dets, list)
    rgb = to_rgb(frame)
    assert rgb.dtype == np.uint8 and rgb.shape == (shape[0], shape[1], 3) and rgb.flags["C_CONTIGUOUS"]


def test_non_increasing_timestamps_are_accepted(detector):
    f = np.zeros((64, 64, 3), np.uint8)
    for t in (5.0, 5.0, 4.0, 6.0):
        detector.detect(f, t)


def test_real_face_in_every_channel_layout(av_samples):
    import cv2

    from dsrter.edge.sources.media_file import MediaFileSource

    src = MediaFileSource(av_samples / "clip03_face-happy_speech-happy.mp4", realtime=False)
    src.open()
    frame = src.read()
    src.close()
    det = FaceDetector(DETECTOR, mode="image")
    (ref,) = det.detect(frame.image)
    assert ref.score > 0.5 and 150 < ref.box[2] < 330
    x, y, w, h = ref.box
    mx, my = ref.mouth
    assert x < mx < x + w and y + h / 2 < my < y + h  # the mouth keypoint is in the lower half
    assert len(ref.keypoints) == 6 and ref.keypoints[MOUTH] == ref.mouth
    gray = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
    variants = {"gray": gray, "gray1": gray[..., None], "bgra": cv2.cvtColor(frame.image, cv2.COLOR_BGR2BGRA),
                "noncontig": frame.image[:, ::-1][:, ::-1]}
    for name, img in variants.items():
        (d,) = det.detect(img)
        assert abs(d.box[0] - x) < 0.1 * w and abs(d.box[1] - y) < 0.1 * h, name
    # an odd-sized crop around the face still finds it, in that crop's pixels
    crop = frame.image[int(y) - 41 : int(y + h) + 37, int(x) - 29 : int(x + w) + 33]
    (d,) = det.detect(crop)
    assert abs(d.box[0] - 29) < 0.1 * w
    det.close()


FULL = REPO / "models" / "face_detection_full_range_sparse.tflite"


@pytest.mark.parametrize("wrong", ["face_emotion.tflite", "speech_emotion.tflite"])
def test_an_emotion_model_given_as_detector_is_refused(wrong):
    with pytest.raises(ModelError, match="not a BlazeFace face detector") as exc:
        FaceDetector(REPO / "models" / wrong)
    assert wrong in str(exc.value) and "\n" not in str(exc.value)


def test_wrong_detector_file_from_the_command_line_exits_3(tmp_path):
    """The detector or the second-look model: an emotion model, a truncated file, no file: one line, exit 3."""
    import os
    import subprocess
    import sys

    import yaml

    trunc = tmp_path / "trunc.tflite"
    trunc.write_bytes(FULL.read_bytes()[:100_000])
    for key, bad in [(k, b) for k in ("detector_model", "verify_model")
                     for b in (REPO / "models" / "face_emotion.tflite", trunc, tmp_path / "missing.tflite")]:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(yaml.safe_dump({"face": {key: str(bad), "model": str(REPO / "models" / "face_emotion.tflite")},
                                       "speech": {"enabled": False}, "mqtt": {"enabled": False}}))
        p = subprocess.run([sys.executable, "-m", "dsrter.edge.cli.main", "run", "-c", str(cfg), "--duration", "1"],
                           capture_output=True, text=True, timeout=120, cwd=REPO, env=dict(os.environ))
        assert p.returncode == 3, p.stderr[-1500:]
        assert "Traceback" not in p.stderr and bad.name in p.stderr
        why = {"face_emotion.tflite": "not a BlazeFace", "trunc.tflite": "cannot load", "missing.tflite": "not found"}
        assert why[bad.name] in p.stderr and len(p.stderr.strip().splitlines()[-1]) > 20, (key, p.stderr[-800:])


def test_full_range_finds_the_real_face_and_the_small_ones_short_range_misses(av_samples):
    import av
    import cv2

    with av.open(str(av_samples / "clip03_face-happy_speech-happy.mp4")) as c:
        frame = next(iter(c.decode(video=0))).to_ndarray(format="bgr24")
    short, full = FaceDetector(DETECTOR), FaceDetector(FULL)
    assert full.spec.name == "full_range" and short.spec.name == "short_range"
    (a,), (b,) = short.detect(frame), full.detect(frame)
    assert np.abs(np.array(a.box) - b.box).max() < 0.15 * a.box[2]  # the same face
    # the head shrunk to a ~60 px face box in a 640x480 frame (a person about 3 m from a webcam)
    x, y, w, h = map(int, a.box)
    m = int(0.6 * w)
    head = frame[max(0, y - m): y + h + m // 2, max(0, x - m): x + w + m]
    small = cv2.resize(head, None, fx=60 / h, fy=60 / h, interpolation=cv2.INTER_AREA)
    with av.open(str(av_samples / "clip19_face-none_speech-angry.mp4")) as c:  # a clip without a face
        canvas = cv2.resize(next(iter(c.decode(video=0))).to_ndarray(format="bgr24"), (640, 480))
    canvas[200: 200 + small.shape[0], 400: 400 + small.shape[1]] = small
    (d,) = full.detect(canvas)
    assert 400 < d.box[0] < 480 and 200 < d.box[1] < 280 and 40 < d.box[3] < 90, d
    assert short.detect(canvas) == []
