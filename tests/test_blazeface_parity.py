"""The LiteRT BlazeFace decoder against MediaPipe's own FaceDetector (test extra only) on real frames.

Same short-range model file, same threshold: the same number of faces, boxes within 2 px and
keypoints within 2 px (MediaPipe rounds its boxes to whole pixels), scores within 0.01."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dsrter.edge.infer.face_detector import FaceDetector, to_rgb

REPO = Path(__file__).resolve().parents[1]
SHORT = REPO / "models" / "face_detection_short_range.tflite"
CLIPS = ("clip03_face-happy_speech-happy.mp4", "clip15_face-fear-surprise_speech-sad.mp4",
         "clip17_face-fear-happy_speech-surprise.mp4", "real-footage-hamilton.mp4")


def _mediapipe_detector(min_confidence: float):
    """MediaPipe Tasks' FaceDetector in image mode (TensorFlow hidden: see the conftest's note)."""
    hide = "tensorflow" not in sys.modules
    if hide:
        sys.modules["tensorflow"] = None  # type: ignore[assignment]
    try:
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions
    except ImportError:
        pytest.skip("mediapipe (the test extra) is not installed")
    finally:
        if hide and sys.modules.get("tensorflow", 0) is None:
            del sys.modules["tensorflow"]
    opts = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_buffer=SHORT.read_bytes()),
                                      running_mode=vision.RunningMode.IMAGE,
                                      min_detection_confidence=min_confidence)
    return vision.FaceDetector.create_from_options(opts)


def _frames(path: Path, every: int, limit: int) -> list[np.ndarray]:
    import av

    out = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % every == 0:
                out.append(f.to_ndarray(format="bgr24"))
            if len(out) >= limit:
                break
    return out


def test_litert_decoder_gives_mediapipe_boxes(av_samples):
    import mediapipe as mp

    ref = _mediapipe_detector(0.5)
    ours = FaceDetector(SHORT, min_confidence=0.5, mode="image")
    compared = faces = 0
    worst_box = worst_kp = 0.0
    for name in CLIPS:
        for frame in _frames(av_samples / name, every=7, limit=20):
            rgb = to_rgb(frame)
            h, w = rgb.shape[:2]
            res = ref.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
            theirs = sorted(res.detections, key=lambda d: d.bounding_box.origin_x)
            mine = sorted(ours.detect(frame), key=lambda d: d.box[0])
            assert len(mine) == len(theirs), f"{name}: {len(mine)} faces here, MediaPipe {len(theirs)}"
            for a, b in zip(mine, theirs):
                bb = b.bounding_box
                d_box = np.abs(np.array(a.box) - [bb.origin_x, bb.origin_y, bb.width, bb.height]).max()
                d_kp = np.abs(np.array(a.keypoints) - [(k.x * w, k.y * h) for k in b.keypoints]).max()
                assert d_box <= 2.0 and d_kp <= 2.0, f"{name}: box off by {d_box:.2f} px, keypoints {d_kp:.2f} px"
                assert abs(a.score - b.categories[0].score) < 0.01
                worst_box, worst_kp = max(worst_box, d_box), max(worst_kp, d_kp)
                faces += 1
            compared += 1
    ref.close()
    assert compared >= 60 and faces >= 60, (compared, faces)
    print(f"{compared} frames, {faces} faces: worst box {worst_box:.2f} px, keypoints {worst_kp:.2f} px")
