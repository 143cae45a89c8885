"""``dsrter convert face``: checkpoint -> float + full-int8 TFLite, verified, with a model card."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

from dsrter.edge.cli.groups import require_train_extra

HELP = "convert a trained face checkpoint to float and full-int8 TFLite and write its model card"
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", nargs="+", default=["runs/face/best.pt"],
                   help="best.pt from `dsrter train face`; several make one file averaging their probabilities")
    p.add_argument("--data", default="../shared/data/fer2013/fer2013.npz", help="FER-2013 source (representative set + verification)")
    p.add_argument("--out", default="models", help="folder for face_emotion.tflite, face_emotion_float.tflite, face_emotion.json")
    p.add_argument("--margin", type=float, default=None, help="crop margin for the card (default: the calibrated value)")
    p.add_argument("--shift-y", type=float, default=None, help="crop centre shift for the card")
    p.add_argument("--train-command", default="dsrter train face --data ../shared/data/fer2013/fer2013.npz --out runs/face",
                   help="the command that produced the checkpoint, recorded in the card")
    p.add_argument("--mirror", choices=("auto", "on", "off"), default="auto",
                   help="mirror averaging (2 runs per face): auto = keep it if it helps on PublicTest")
    p.add_argument("--no-eval", action="store_true", help="skip the PrivateTest evaluation written into the card")


def main(args: argparse.Namespace) -> int:
    require_train_extra()
    from dsrter.convert.face_convert import DEFAULT_CROP, convert_face, write_card
    from dsrter.train.face_eval import evaluate_face, face_card_metrics

    missing = [c for c in args.checkpoint if not Path(c).is_file()]
    if missing:
        log.error("%s: checkpoint not found (train first: dsrter train face)", ", ".join(missing))
        return 2
    crop = dict(DEFAULT_CROP)
    if args.margin is not None:
        crop["margin"] = args.margin
    if args.shift_y is not None:
        crop["shift_y"] = args.shift_y
    out = Path(args.out)
    card = convert_face([Path(c) for c in args.checkpoint], Path(args.data), out, crop=crop, train_command=args.train_command,
                        mirror=args.mirror)
    write_card(card, out / "face_emotion.json")
    if not args.no_eval:
        ev = evaluate_face(args.data, [out / "face_emotion.tflite", out / "face_emotion_float.tflite"])
        card["metrics"] = face_card_metrics(ev)
        write_card(card, out / "face_emotion.json")
        for r in ev.results:
            print(f"{r.name:<28} acc {r.report.accuracy:.4f}  macro F1 {r.report.macro_f1:.4f}  {r.ms_per_face:.3f} ms/face")
    print(json.dumps(card["verification"], indent=2))
    print("command:", " ".join(shlex.quote(a) for a in sys.argv))
    return 0
