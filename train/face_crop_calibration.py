"""Measure where BlazeFace puts its box on FER-2013 faces, to fix the face model's crop rule.

FER-2013 images are already face crops. Each Training image is enlarged, placed on a neutral
canvas and run through the detector used on the device; the crop that reproduces the FER
framing is then expressed relative to the detector box (margin, vertical shift). Only Training
images are used, so the rule is not tuned on test data.

    python -m dsrter.train.face_crop_calibration --data ../shared/data/fer2013/fer2013.npz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from dsrter.edge.infer.face_detector import FaceDetector
from dsrter.train.fer_data import TRAIN, load_fer


def calibrate(data: str | Path, detector_model: str | Path, n: int = 400, face_px: int = 200, seed: int = 0) -> dict:
    fer = load_fer(data)
    x, _ = fer.split(TRAIN)
    idx = np.random.default_rng(seed).permutation(len(x))[:n]
    canvas_side = face_px * 3
    margins, shifts = [], []
    with FaceDetector(detector_model, min_confidence=0.5, mode="image") as det:
        for i in idx:
            face = cv2.resize(x[i], (face_px, face_px), interpolation=cv2.INTER_LINEAR)
            canvas = np.full((canvas_side, canvas_side), int(np.median(x[i])), np.uint8)
            o = face_px
            canvas[o : o + face_px, o : o + face_px] = face
            found = det.detect(canvas)
            if not found:
                continue
            bx, by, bw, bh = found[0].box
            side = max(bw, bh)
            margins.append((face_px / side - 1.0) / 2.0)
            shifts.append(((o + face_px / 2.0) - (by + bh / 2.0)) / face_px)
    if not margins:
        raise RuntimeError("the detector found no face in any sample")
    return {
        "samples": int(len(idx)),
        "detected": len(margins),
        "margin": round(float(np.median(margins)), 3),
        "shift_y": round(float(np.median(shifts)), 3),
        "margin_iqr": [round(float(v), 3) for v in np.percentile(margins, [25, 75])],
        "shift_y_iqr": [round(float(v), 3) for v in np.percentile(shifts, [25, 75])],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/fer2013/fer2013.npz")
    p.add_argument("--detector", default="models/face_detection_short_range.tflite")
    p.add_argument("-n", type=int, default=400)
    args = p.parse_args()
    print(json.dumps(calibrate(args.data, args.detector, args.n), indent=2))


if __name__ == "__main__":
    main()
