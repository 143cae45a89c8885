"""Real-footage check: hand-annotated faces of the real clip through the real detector and the shipped face model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import skip_or_fail
from dsrter.train.face_footage_check import ANNOTATION, annotated_frames, check, summary

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "face_emotion.tflite"


@pytest.fixture(scope="module")
def clip(av_samples) -> Path:
    p = av_samples / "real-footage-hamilton.mp4"
    if not p.is_file():
        skip_or_fail("real-footage-hamilton.mp4 not present")
    return p


def test_annotation_fits_the_clip(clip):
    ann = json.loads(ANNOTATION.read_text())
    frames = annotated_frames(clip, [fr["t"] for fr in ann["frames"]])
    assert len(frames) == len(ann["frames"]) == 10
    for fr, (t, image) in zip(ann["frames"], frames):
        h, w = image.shape[:2]
        assert (w, h) == (640, 360) and fr["t"] <= t < fr["t"] + 0.5
        for f in fr["faces"]:
            x, y, bw, bh = f["box"]
            assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h and bw > 10 and bh > 10
    assert sum(f["smiling"] for fr in ann["frames"] for f in fr["faces"]) == 12


def test_shipped_pipeline_on_annotated_faces(clip):
    from dsrter.edge.infer.face_classifier import FaceClassifier
    from dsrter.edge.infer.face_detector import FaceDetector

    ann = json.loads(ANNOTATION.read_text())
    results = check(clip, FaceDetector(REPO / "models" / "face_detection_short_range.tflite"), FaceClassifier(MODEL), ann)
    s = summary(results)
    print(f"\nreal footage: detector finds {s['found']} of {s['faces']} annotated faces; "
          f"{s['smiling_labelled_happy']} of {s['smiling']} smiling/laughing faces labelled happy "
          f"({s['smiling_found']} found; labels {s['smiling_labels']}); at the marked boxes "
          f"{s['smiling_marked_labelled_happy']} of 12 smiling and {s['not_smiling_marked_labelled_happy']} of 8 others happy")
    assert s["faces"] == 20 and s["smiling"] == 12
    assert s["found"] >= 5  # BlazeFace short-range found 9 of 20 when this fixture was made; fewer means a broken detector path
    assert len(s["smiling_labels"]) == 12 and s["smiling_labelled_happy"] <= s["smiling_found"]
    # a marked box and the detection matched to it (IoU >= 0.25) are crops of one face: they mostly agree
    same = [r.label == r.marked_label for r in results if r.found]
    assert sum(same) >= 0.6 * len(same), same


def test_the_face_stream_as_analyze_runs_it_and_the_readme_agree(clip):
    """What a user sees: the face stream with the shipped config over the clip, at the annotated boxes."""
    from dsrter.edge.config import load_config
    from dsrter.edge.infer.face_classifier import FaceClassifier
    from dsrter.edge.infer.face_detector import FaceDetector

    ann = json.loads(ANNOTATION.read_text())
    cfg = load_config(REPO / "config.yaml")
    detector = FaceDetector(REPO / "models" / "face_detection_full_range_sparse.tflite")
    s = summary(check(clip, detector, FaceClassifier(MODEL), ann, cfg))
    print(f"\nface stream: shows {s['stream_shown']} of 20; {s['smiling_stream_labelled_happy']} of 12 smiling happy, "
          f"{s['not_smiling_stream_labelled_happy']} of 8 others")
    # the stream runs the tiles the whole-frame detector lacks: it shows at least the faces that detector finds
    assert s["stream_shown"] >= s["found"]
    readme = " ".join((REPO / "README.md").read_text().split())
    assert (f"shows {s['stream_shown']} of the 20 marked faces and labels {s['smiling_stream_labelled_happy']} of the 12 "
            f"smiling or laughing audience faces `happy` ({s['not_smiling_stream_labelled_happy']} of the 8 other faces too)") in readme
    assert (f"the whole-frame detector finds {s['smiling_found']} of the 12 laughing faces and {s['smiling_labelled_happy']} "
            "of the 12 is labelled `happy`") in readme
