"""Real-footage check: the shipped detector + face model on hand-annotated frames of a real clip.

The annotation (``tests/fixtures/real_footage_faces.json``) marks each visible face's box and
whether it is smiling or laughing. Reported three ways:

* the detector and the face model on the annotated frame alone: how many annotated faces the
  whole-frame detector finds (IoU with a detection >= ``MIN_IOU``, one detection per face) and how
  many smiling faces it labels ``happy`` (one frame each, no smoothing);
* the label of each hand-marked box itself (a detector-sized square crop around it), to tell the
  classifier's misses from the detector's;
* the face stream as ``dsrter analyze`` runs it with the shipped config (tiled detection, tracks,
  classification every few frames, smoothing) over the clip from its start: the face it shows at
  each annotated box on that frame and its label. This is what a user sees.

    python -m dsrter.train.face_footage_check --clip ../shared/data/av-samples/real-footage-hamilton.mp4
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dsrter.edge.app.wiring import Streams
from dsrter.edge.config import Config, ConfigError, load_config
from dsrter.edge.infer.face_classifier import FaceClassifier
from dsrter.edge.infer.face_detector import Detection, FaceDetector
from dsrter.edge.infer.model_io import ModelError
from dsrter.edge.infer.models import load_models
from dsrter.edge.labels import LABELS
from dsrter.edge.sources.base import Frame
from dsrter.edge.sources.media_file import MediaError, MediaFileSource
from dsrter.edge.streams.events import EventBus
from dsrter.edge.streams.tracker import iou

MIN_IOU = 0.25
REPO = Path(__file__).resolve().parents[1]
ANNOTATION = REPO / "tests" / "fixtures" / "real_footage_faces.json"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceResult:
    t: float
    box: tuple[float, float, float, float]
    smiling: bool
    found: bool
    label: str | None  # the pipeline's label for the matched detection; None when not found
    marked_label: str  # the face model's label for the hand-marked box, whether found or not
    stream_label: str | None = None  # the face stream's shown label at this box; None when it shows no face there


def match(boxes: list, detections: list) -> list[int | None]:
    """Greedy best-IoU assignment: for each annotated box, the index of its detection (or None)."""
    pairs = sorted(((iou(tuple(b), d.box), ai, di) for ai, b in enumerate(boxes) for di, d in enumerate(detections)), reverse=True)
    out: list[int | None] = [None] * len(boxes)
    used: set[int] = set()
    for score, ai, di in pairs:
        if score < MIN_IOU:
            break
        if out[ai] is None and di not in used:
            out[ai], used = di, used | {di}
    return out


def _walk(clip: Path, times: list[float], each: Callable[[Frame], Any] | None = None) -> list[tuple[float, np.ndarray, Any]]:
    """The first decoded frame at or after each time (clip time, as the daemon decodes it), with what
    ``each`` returned for it; ``each`` sees every frame in order up to the last of ``times``."""
    src = MediaFileSource(clip, realtime=False)
    src.open()
    out: list[tuple[float, np.ndarray, Any]] = []
    todo = sorted(times)
    try:
        while todo and (frame := src.read(1.0)) is not None:
            result = each(frame) if each is not None else None
            while todo and frame.t + 1e-6 >= todo[0]:
                todo.pop(0)
                out.append((frame.t, frame.image, result))
    finally:
        src.close()
    return out


def annotated_frames(clip: Path, times: list[float]) -> list[tuple[float, np.ndarray]]:
    """The first decoded frame at or after each time (clip time, as the daemon decodes it)."""
    return [(t, image) for t, image, _ in _walk(clip, times)]


Shown = list[tuple[tuple[float, float, float, float], str]]  # (box in pixels, label) of each face shown on a frame


def stream_frames(clip: Path, cfg: Config, times: list[float]) -> list[tuple[float, np.ndarray, Shown]]:
    """Like ``annotated_frames``, with the faces the face stream shows on each (as ``dsrter analyze``
    runs it, speech off, the clip played from its start)."""
    cfg = cfg.model_copy(deep=True)
    cfg.speech.enabled = False
    face = Streams.from_models(cfg, EventBus(), load_models(cfg)).face
    out = []
    for t, image, res in _walk(clip, times, face.process):
        h, w = image.shape[:2]
        out.append((t, image, [((f.box[0] * w, f.box[1] * h, f.box[2] * w, f.box[3] * h), f.label) for f in res.faces]))
    return out


def check(clip: Path, detector, classifier, annotation: dict, cfg: Config | None = None) -> list[FaceResult]:
    """Every annotated face with its three labels (the face stream's only when ``cfg`` is given)."""
    frames = annotation["frames"]
    times = [fr["t"] for fr in frames]
    # one pass over the clip: the face stream's, when there is one
    decoded = stream_frames(clip, cfg, times) if cfg is not None else [(t, image, []) for t, image in annotated_frames(clip, times)]
    if len(decoded) != len(frames):
        raise ValueError(f"{clip}: only {len(decoded)} of {len(frames)} annotated times decoded")
    results = []
    for fr, (t, image, on_screen) in zip(frames, decoded):
        dets = detector.detect(image, t)
        faces = fr["faces"]
        hit = match([f["box"] for f in faces], dets)
        at = match([f["box"] for f in faces], [Detection(box=b, score=1.0, keypoints=()) for b, _ in on_screen])
        stream = [on_screen[i][1] if i is not None else None for i in at]
        found_boxes = [dets[i].box for i in hit if i is not None]
        crops = [classifier.crop(image, b) for b in found_boxes + [tuple(f["box"]) for f in faces]]
        labels = [LABELS[int(k)] for k in np.argmax(classifier.predict(np.stack(crops)), axis=1)]
        found, marked = iter(labels[: len(found_boxes)]), labels[len(found_boxes) :]
        for f, i, at_mark, in_stream in zip(faces, hit, marked, stream):
            label = next(found) if i is not None else None
            results.append(FaceResult(t, tuple(f["box"]), bool(f["smiling"]), i is not None, label, at_mark, in_stream))
    return results


def summary(results: list[FaceResult]) -> dict:
    smiling = [r for r in results if r.smiling]
    return {
        "faces": len(results),
        "found": sum(r.found for r in results),
        "smiling": len(smiling),
        "smiling_found": sum(r.found for r in smiling),
        "smiling_labelled_happy": sum(r.label == "happy" for r in smiling),
        "not_smiling_labelled_happy": sum(r.label == "happy" for r in results if not r.smiling),
        "smiling_labels": [r.label for r in smiling],
        "smiling_marked_labelled_happy": sum(r.marked_label == "happy" for r in smiling),
        "not_smiling_marked_labelled_happy": sum(r.marked_label == "happy" for r in results if not r.smiling),
        "stream_shown": sum(r.stream_label is not None for r in results),
        "smiling_stream_labelled_happy": sum(r.stream_label == "happy" for r in smiling),
        "not_smiling_stream_labelled_happy": sum(r.stream_label == "happy" for r in results if not r.smiling),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", type=Path, required=True, help="real-footage-hamilton.mp4 from the shared av-samples")
    p.add_argument("--annotation", type=Path, default=ANNOTATION)
    p.add_argument("--model", type=Path, default=REPO / "models" / "face_emotion.tflite")
    p.add_argument("--detector", type=Path, default=REPO / "models" / "face_detection_full_range_sparse.tflite",
                   help="face detector (default: the full-range model the shipped config uses)")
    p.add_argument("--config", type=Path, default=REPO / "config.yaml",
                   help="the config the face stream runs with (default: the shipped one; its face model is used there)")
    args = p.parse_args(argv)

    try:
        annotation = json.loads(args.annotation.read_text())
        detector, classifier = FaceDetector(args.detector), FaceClassifier(args.model, threads=1)
        cfg = load_config(args.config)
        results = check(args.clip, detector, classifier, annotation, cfg)
    except (OSError, ValueError, ModelError, MediaError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s = summary(results)
    for r in results:
        print(f"t={r.t:5.2f} box={list(r.box)} smiling={r.smiling!s:<5} found={r.found!s:<5} label={r.label} "
              f"label at the marked box={r.marked_label} face stream={r.stream_label}")
    print(f"detector finds {s['found']} of {s['faces']} annotated faces; "
          f"{s['smiling_labelled_happy']} of {s['smiling']} smiling/laughing faces labelled happy "
          f"({s['smiling_found']} of them found); {s['not_smiling_labelled_happy']} not-smiling faces labelled happy")
    print(f"at the hand-marked boxes: {s['smiling_marked_labelled_happy']} of {s['smiling']} smiling/laughing faces "
          f"labelled happy, {s['not_smiling_marked_labelled_happy']} of {s['faces'] - s['smiling']} others")
    print(f"the face stream as `dsrter analyze` runs it ({args.config.name}): shows {s['stream_shown']} of {s['faces']} "
          f"annotated faces; {s['smiling_stream_labelled_happy']} of {s['smiling']} smiling/laughing faces labelled happy, "
          f"{s['not_smiling_stream_labelled_happy']} of {s['faces'] - s['smiling']} others")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
