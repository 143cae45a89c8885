"""Trained face checkpoint -> float and full-int8 TFLite + model card, verified on PrivateTest."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dsrter.convert.tflite_export import representative_from, to_tflite
from dsrter.edge.infer.face_classifier import equalise
from dsrter.edge.labels import LABELS
from dsrter.edge.infer.model_io import TFLiteModel, sha256_file
from dsrter.train.fer_data import PRIVATE_TEST, TRAIN, load_fer
from dsrter.train.ferplus import FerPlusError, load_ferplus

log = logging.getLogger(__name__)

# Crop rule relative to a BlazeFace short-range box that reproduces FER-2013's framing, measured on
# 400 Training images (396 detected; medians) by `python -m dsrter.train.face_crop_calibration`.
DEFAULT_CROP = {"margin": 0.085, "shift_y": -0.09,
                "calibration": "python -m dsrter.train.face_crop_calibration --data ../shared/data/fer2013/fer2013.npz"}


def scale_images(images_u8: np.ndarray) -> np.ndarray:
    return (images_u8.astype(np.float32) / 127.5 - 1.0)[..., None]


def _as_list(checkpoints: Path | str | Sequence[Path | str]) -> list[Path]:
    if isinstance(checkpoints, (str, Path)):
        return [Path(checkpoints)]
    return [Path(c) for c in checkpoints]


def build_keras(nets: list, probe: np.ndarray):
    """Keras model of one trained net, or of several whose probabilities are averaged (one file).

    Each member's Keras twin is checked against its PyTorch model on ``probe``; returns the model and
    the largest logit difference seen."""
    import keras  # TensorFlow: the train extra, loaded only when a model is converted

    from dsrter.convert.face_keras import max_abs_difference, torch_to_keras

    diff = 0.0
    members = []
    for i, net in enumerate(nets):
        d = max_abs_difference(net, torch_to_keras(net, with_softmax=False), probe)
        log.info("member %d: PyTorch vs Keras max |logit difference| on %d test faces: %.2e", i, len(probe), d)
        if d > 1e-3:
            raise RuntimeError(f"Keras twin of member {i} differs from the PyTorch model by {d:.3g}")
        diff = max(diff, d)
        members.append(torch_to_keras(net, with_softmax=True))
    if len(members) == 1:
        return members[0], diff
    size = {m.input_shape[1:] for m in members}
    if len(size) != 1:
        raise ValueError(f"ensemble members take different input shapes: {sorted(size)}")
    inp = keras.Input(members[0].input_shape[1:], name="face")
    outs = []
    for i, m in enumerate(members):
        m.name = f"member{i}"
        outs.append(m(inp))
    return keras.Model(inp, keras.layers.Average(name="probabilities")(outs), name="face_emotion_ensemble"), diff


def convert_face(checkpoints: Path | str | Sequence[Path | str], data: Path, out_dir: Path, name: str = "face_emotion",
                 crop: dict | None = None, representative_n: int = 1000, train_command: str = "", seed: int = 0,
                 mirror: str = "auto") -> dict:
    """Write NAME.tflite (int8), NAME_float.tflite and NAME.json to ``out_dir``; returns the card.

    Several checkpoints make one file whose output is the mean of the members' probabilities.
    ``mirror``: "auto" keeps mirror averaging if it helps on PublicTest; "on"/"off" decide it (it
    doubles the cost per face), and the PublicTest figures for both are recorded either way."""
    if mirror not in ("auto", "on", "off"):
        raise ValueError(f"mirror must be auto, on or off, not {mirror!r}")
    from dsrter.train.face_model import count_params  # the train extra (torch), loaded only here
    from dsrter.train.face_train import load_checkpoint

    paths = _as_list(checkpoints)
    loaded = [load_checkpoint(c) for c in paths]
    nets, states = [net for net, _ in loaded], [st for _, st in loaded]
    flags = {bool(st.get("equalize", False)) for st in states}
    if len(flags) > 1:
        raise ValueError("the checkpoints disagree on histogram equalisation (dsrter train face --equalize): "
                         "members of one file must see the same input")
    equalize = flags.pop()

    def prep(images_u8: np.ndarray) -> np.ndarray:  # what the device feeds the model (FaceClassifier.predict)
        return scale_images(equalise(images_u8) if equalize else images_u8)

    fer = load_fer(data)
    x_tr, _ = fer.split(TRAIN)
    x_te, y_te = fer.split(PRIVATE_TEST)
    if len(x_tr) == 0:
        raise ValueError(f"{data}: no Training images for the representative set")
    if len(x_te) == 0:  # sources without the split: verify on everything
        x_te = fer.images

    keras_model, diff = build_keras(nets, prep(x_te[:64]))

    out_dir.mkdir(parents=True, exist_ok=True)
    float_path, int8_path = out_dir / f"{name}_float.tflite", out_dir / f"{name}.tflite"
    float_path.write_bytes(to_tflite(keras_model))
    int8_path.write_bytes(to_tflite(keras_model, representative_from(prep(x_tr), representative_n, seed)))

    f_model, q_model = TFLiteModel(float_path), TFLiteModel(int8_path)
    xs = prep(x_te)
    p_float = np.concatenate([f_model.run(xs[i : i + 256])[0] for i in range(0, len(xs), 256)])
    p_int8 = np.concatenate([q_model.run(xs[i : i + 256])[0] for i in range(0, len(xs), 256)])
    agreement = float((p_float.argmax(1) == p_int8.argmax(1)).mean())
    log.info("int8 vs float top-1 agreement on %d PrivateTest faces: %.4f", len(xs), agreement)

    # Mirror averaging is kept only if it helps on PublicTest (the selection split, never PrivateTest).
    x_pub, y_pub = fer.split(1)
    pub_labels = "FER-2013"
    try:  # a model trained on FER+ is judged on the FER+ majority labels of PublicTest
        fp = load_ferplus(data, len(fer))
        keep = (fer.usage == 1) & (fp.majority >= 0)
        x_pub, y_pub, pub_labels = fer.images[keep], fp.majority[keep], "FER+ majority"
    except FerPlusError:
        pass
    tta = {"hflip_average": mirror == "on"}
    if len(x_pub):
        xp = prep(x_pub)
        plain = np.concatenate([q_model.run(xp[i : i + 256])[0] for i in range(0, len(xp), 256)])
        flipped = np.concatenate([q_model.run(xp[i : i + 256, :, ::-1])[0] for i in range(0, len(xp), 256)])
        acc_plain = float((plain.argmax(1) == y_pub).mean())
        acc_flip = float((((plain + flipped) / 2).argmax(1) == y_pub).mean())
        chosen = acc_flip > acc_plain if mirror == "auto" else mirror == "on"
        tta = {"hflip_average": chosen, "decided_by": "PublicTest" if mirror == "auto" else f"--mirror {mirror}",
               "publictest_int8_accuracy": {"plain": acc_plain, "hflip_average": acc_flip, "labels": pub_labels}}
        log.info("PublicTest int8 accuracy: plain %.4f, mirror-averaged %.4f", acc_plain, acc_flip)

    members = [
        {"checkpoint": p.name, "spec": net.spec.to_dict(), "parameters": count_params(net),
         "best_epoch": st.get("best", {}).get("epoch"), "publictest_accuracy_at_selection": st.get("best", {}).get("val_acc"),
         **({"imported_from": st["imported_from"]} if st.get("imported_from") else {})}
        for p, net, st in zip(paths, nets, states)
    ]
    qi, qo = q_model.inputs[0], q_model.outputs[0]

    card = {
        "name": name,
        "version": dt.date.today().isoformat(),
        "task": "facial expression classification of one face crop",
        "labels": list(LABELS),
        "architecture": {
            "summary": ("" if len(nets) == 1 else f"mean of the softmax probabilities of {len(nets)} members, each: ")
                       + "hybrid: MobileNetV2-style inverted-residual trunk + 3-stage plain CNN branch on a shared "
                       "stride-1 stem; global-average-pooled features concatenated before a dense softmax head",
            "spec": nets[0].spec.to_dict() if len(nets) == 1 else None,
            "members": members,
            "parameters": sum(m["parameters"] for m in members),
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
            **({"equalize": "histogram", "equalize_rule": "cv2.equalizeHist on each 48x48 uint8 crop, before scaling"}
               if equalize else {}),
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
                    "(two interpreter runs per face); the metrics below are measured as hflip_average says",
        },
        "training": {
            "command": train_command,
            "data": "FER-2013 (Goodfellow et al. 2013), original split: Training to fit, PublicTest to select, PrivateTest to report",
            "data_file": Path(data).name,
            "data_sha256": sha256_file(data) if Path(data).is_file() else None,
            "best_epoch": [m["best_epoch"] for m in members] if len(members) > 1 else members[0]["best_epoch"],
            "publictest_accuracy_at_selection": (None if len(members) > 1 else members[0]["publictest_accuracy_at_selection"]),
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
