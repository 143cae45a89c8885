"""Trained face checkpoint -> float and full-int8 TFLite + model card, verified on PrivateTest."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np

from dsrter.edge.labels import LABELS
from dsrter.edge.model_io import TFLiteModel, sha256_file
from dsrter.train.fer_data import PRIVATE_TEST, TRAIN, load_fer

log = logging.getLogger(__name__)

# Crop rule relative to a BlazeFace short-range box that reproduces FER-2013's framing, measured on
# 400 Training images (396 detected; medians) by `python -m dsrter.train.face_crop_calibration`.
DEFAULT_CROP = {"margin": 0.085, "shift_y": -0.09,
                "calibration": "python -m dsrter.train.face_crop_calibration --data ../shared/data/fer2013/fer2013.npz"}


def scale_images(images_u8: np.ndarray) -> np.ndarray:
    return (images_u8.astype(np.float32) / 127.5 - 1.0)[..., None]


def convert_face(checkpoint: Path, data: Path, out_dir: Path, name: str = "face_emotion", crop: dict | None = None,
                 representative_n: int = 1000, train_command: str = "", seed: int = 0) -> dict:
    """Write NAME.tflite (int8), NAME_float.tflite and NAME.json to ``out_dir``; returns the card."""
    import torch

    from dsrter.convert.face_keras import max_abs_difference, torch_to_keras
    from dsrter.convert.tflite_export import representative_from, to_tflite
    from dsrter.train.face_train import load_trained

    state = torch.load(checkpoint, weights_only=False)
    net = load_trained(checkpoint)
    fer = load_fer(data)
    x_tr, _ = fer.split(TRAIN)
    x_te, y_te = fer.split(PRIVATE_TEST)
    if len(x_tr) == 0:
        raise ValueError(f"{data}: no Training images for the representative set")
    if len(x_te) == 0:  # sources without the split: verify on everything
        x_te, y_te = fer.images, fer.labels

    logits_model = torch_to_keras(net, with_softmax=False)
    probe = scale_images(x_te[:64])
    diff = max_abs_difference(net, logits_model, probe)
    log.info("PyTorch vs Keras max |logit difference| on 64 test faces: %.2e", diff)
    if diff > 1e-3:
        raise RuntimeError(f"Keras twin differs from the PyTorch model by {diff:.3g}")
    keras_model = torch_to_keras(net, with_softmax=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    float_path, int8_path = out_dir / f"{name}_float.tflite", out_dir / f"{name}.tflite"
    float_path.write_bytes(to_tflite(keras_model))
    int8_path.write_bytes(to_tflite(keras_model, representative_from(scale_images(x_tr), representative_n, seed)))

    f_model, q_model = TFLiteModel(float_path), TFLiteModel(int8_path)
    xs = scale_images(x_te)
    p_float = np.concatenate([f_model.run(xs[i : i + 256])[0] for i in range(0, len(xs), 256)])
    p_int8 = np.concatenate([q_model.run(xs[i : i + 256])[0] for i in range(0, len(xs), 256)])
    agreement = float((p_float.argmax(1) == p_int8.argmax(1)).mean())
    log.info("int8 vs float top-1 agreement on %d PrivateTest faces: %.4f", len(xs), agreement)

    # Mirror averaging is kept only if it helps on PublicTest (the selection split, never PrivateTest).
    x_pub, y_pub = fer.split(1)
    tta = {"hflip_average": False}
    if len(x_pub):
        xp = scale_images(x_pub)
        plain = np.concatenate([q_model.run(xp[i : i + 256])[0] for i in range(0, len(xp), 256)])
        flipped = np.concatenate([q_model.run(xp[i : i + 256, :, ::-1])[0] for i in range(0, len(xp), 256)])
        acc_plain = float((plain.argmax(1) == y_pub).mean())
        acc_flip = float((((plain + flipped) / 2).argmax(1) == y_pub).mean())
        tta = {"hflip_average": acc_flip > acc_plain, "publictest_int8_accuracy": {"plain": acc_plain, "hflip_average": acc_flip}}
        log.info("PublicTest int8 accuracy: plain %.4f, mirror-averaged %.4f", acc_plain, acc_flip)

    qi, qo = q_model.inputs[0], q_model.outputs[0]
    from dsrter.train.face_model import count_params

    card = {
        "name": name,
        "version": dt.date.today().isoformat(),
        "task": "facial expression classification of one face crop",
        "labels": list(LABELS),
        "architecture": {
            "summary": "hybrid: MobileNetV2-style inverted-residual trunk + 3-stage plain CNN branch on a shared "
                       "stride-1 stem; global-average-pooled features concatenated before a dense softmax head",
            "spec": net.spec.to_dict(),
            "parameters": count_params(net),
            "framework": "trained in PyTorch, weights copied into an identical Keras model, converted with TensorFlow Lite",
        },
        "input": {
            "name": "face",
            "shape": [int(v) for v in qi["shape"]],
            "dtype": "int8",
            "colour": "grey, from BGR with OpenCV COLOR_BGR2GRAY",
            "crop": {
                "reference": "MediaPipe BlazeFace short-range detection box (x, y, w, h) in pixels",
                "rule": "square side = max(w, h) * (1 + 2 * margin); centre = box centre moved down by shift_y * side; "
                        "edge pixels replicated where the square leaves the frame",
                **(crop or DEFAULT_CROP),
            },
            "resize": "to 48x48, cv2.INTER_AREA when shrinking, cv2.INTER_LINEAR when enlarging",
            "scaling": "x = pixel / 127.5 - 1 (range -1..1), then q = round(x / scale) + zero_point, clipped to int8",
            "quantization": {"scale": float(qi["quantization"][0]), "zero_point": int(qi["quantization"][1])},
        },
        "output": {
            "shape": [int(v) for v in qo["shape"]],
            "dtype": "int8",
            "kind": "probabilities (softmax) in label order; p = (q - zero_point) * scale",
            "quantization": {"scale": float(qo["quantization"][0]), "zero_point": int(qo["quantization"][1])},
        },
        "inference": {
            **tta,
            "note": "hflip_average: classify the crop and its left-right mirror and average the probabilities "
                    "(chosen on PublicTest); the metrics below are measured this way",
        },
        "training": {
            "command": train_command,
            "data": "FER-2013 (Goodfellow et al. 2013), original split: Training to fit, PublicTest to select, PrivateTest to report",
            "data_file": Path(data).name,
            "data_sha256": sha256_file(data) if Path(data).is_file() else None,
            "best_epoch": state.get("best", {}).get("epoch"),
            "publictest_accuracy_at_selection": state.get("best", {}).get("val_acc"),
            "representative_set": f"{representative_n} random Training images (seed {seed})",
        },
        "files": {
            "int8": {"file": int8_path.name, "bytes": int8_path.stat().st_size, "sha256": sha256_file(int8_path)},
            "float": {"file": float_path.name, "bytes": float_path.stat().st_size, "sha256": sha256_file(float_path)},
        },
        "verification": {
            "pytorch_vs_keras_max_abs_logit_diff": diff,
            "int8_vs_float_top1_agreement_privatetest": agreement,
        },
        "license": "model weights: Apache-2.0 (this project); trained on FER-2013, which is for research use",
    }
    return card


def write_card(card: dict, path: Path) -> None:
    path.write_text(json.dumps(card, indent=2) + "\n")
