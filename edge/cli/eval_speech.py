"""``dsrter eval speech``: a speech .tflite (shipped or trained) on a dataset, with the eGeMAPS baseline row."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

HELP = "evaluate a speech emotion .tflite on a dataset folder or manifest, with an eGeMAPS + logistic-regression baseline"
DESCRIPTION = (
    "PATH is a RAVDESS (Actor_XX/) or CREMA-D (AudioWAV/) folder, a folder with manifest.csv, or any manifest .csv "
    "with at least path,label,speaker columns (paths relative to the manifest, labels from the 7 names). The "
    "evaluated split is the corpus's test split when it has one (RAVDESS actors 21-24, CREMA-D 1067-1076, or "
    "split=test rows), else every row. Prints and writes UA (macro recall over the classes present), WA, macro F1, "
    "per-class tables and confusion matrices at window and clip level, plus a baseline row (eGeMAPS functionals + "
    "standardised logistic regression fitted on the same data's training split)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="PATH", help="dataset folder or manifest .csv")
    p.add_argument("--model", action="append", default=None, metavar="FILE",
                   help="speech .tflite with its .json card beside it (repeatable; default models/speech_emotion.tflite)")
    p.add_argument("--split", default="auto", choices=["auto", "test", "val", "train", "all"],
                   help="auto = test when the data has a test split, else all")
    p.add_argument("--json", default=None, metavar="OUT", help="write all reports to this JSON file")
    p.add_argument("--out-dir", default=None,
                   help="folder for the confusion-matrix PNGs (default: beside --json, else runs/speech/eval)")
    p.add_argument("--cache", default="runs/speech/cache", help="feature cache folder ('' to disable)")
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline row")
    p.add_argument("--speaker-norm-baseline", action="store_true",
                   help="also a baseline row with eGeMAPS z-scored per speaker (oracle speaker statistics)")
    p.add_argument("--workers", type=int, default=1, help="feature-extraction processes")
    p.add_argument("--threads", type=int, default=1, help="LiteRT threads")


def _plot_confusion(cm, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from dsrter.edge.labels import LABELS

    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, np.maximum(rows, 1))
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(LABELS)), LABELS, rotation=45, ha="right")
    ax.set_yticks(range(len(LABELS)), LABELS)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if rows[i, 0]:
                ax.text(j, i, f"{cm[i, j]}", ha="center", va="center", fontsize=8,
                        color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    from dsrter.edge.infer.model_io import ModelError, TFLiteModel, load_card
    from dsrter.train.metrics import format_report
    from dsrter.train.speech_data import SpeechDataError, build_windows, load_dataset
    from dsrter.train.speech_prep import normalise_set
    from dsrter.train.speech_train import per_speaker, tflite_window_probs, window_and_clip_reports

    log = logging.getLogger(__name__)
    models = args.model or ["models/speech_emotion.tflite"]
    try:
        ds = load_dataset(args.data)
        split = args.split
        if split == "auto":
            split = "test" if ds.split("test") else "all"
        items = ds.split(split)
        if not items:
            raise SpeechDataError(f"{args.data}: no clips in split {split!r}")
        for n in ds.notes:
            print(f"note: {n}")
        print(f"data: {args.data} ({ds.layout} layout), split {split}: {len(items)} clips, "
              f"{len({it.speaker for it in items})} speakers")
        cache = args.cache or None
        out_dir = Path(args.out_dir) if args.out_dir else (Path(args.json).parent if args.json else Path("runs/speech/eval"))
        out_dir.mkdir(parents=True, exist_ok=True)
        result: dict = {"data": str(args.data), "layout": ds.layout, "split": split, "clips": len(items), "rows": {}}
        first_ws = first_recipe = None
        for mpath in models:
            card = load_card(mpath)
            if "recipe" not in card or "normalisation" not in card:
                raise ModelError(f"{mpath}: card has no speech recipe/normalisation")
            recipe, stats = card["recipe"], card["normalisation"]
            ws = build_windows(items, recipe, recipe["hop_s"], cache_dir=cache, workers=args.workers,
                               progress=len(items) > 200)
            if first_ws is None:
                first_ws, first_recipe = ws, recipe
            lm, eg = normalise_set(ws, recipe, stats)
            probs = tflite_window_probs(TFLiteModel(mpath, threads=args.threads), lm, eg)
            r = window_and_clip_reports(probs, ws)
            name = Path(mpath).name
            result["rows"][name] = {"model": str(mpath), "windows": len(ws),
                                    "window": r["window"].to_dict(), "clip": r["clip"].to_dict(),
                                    "per_speaker_clip": per_speaker(r["clip_probs"], r["clip_has"], ws.items)}
            for level in ("window", "clip"):
                print("\n" + format_report(r[level], f"== {name} [{level} level] =="))
                _plot_confusion(r[level].confusion, f"{name} - {level} level - {Path(args.data).name} {split}",
                                out_dir / f"{Path(mpath).stem}_{level}_confusion.png")
        if not args.no_baseline:
            train_items = ds.split("train")
            if split in ("train", "all") or not train_items:
                print("\nbaseline: skipped (the data has no training split separate from the evaluated clips)")
                result["baseline"] = None
            else:
                try:
                    import sklearn  # noqa: F401
                except ImportError:
                    raise SystemExit("dsrter: the baseline row needs scikit-learn (the training extra: "
                                     ".venv/bin/pip install -e '.[train]'); or pass --no-baseline") from None
                from dsrter.train.speech_train import baseline_reports

                b = baseline_reports(train_items, first_ws, first_recipe, cache, args.workers,
                                     speaker_norm=args.speaker_norm_baseline)
                result["rows"]["baseline_egemaps_logreg"] = {
                    "model": "eGeMAPS functionals + standardised logistic regression (fitted on the training split)",
                    "windows": len(first_ws), "window": b["window"].to_dict(), "clip": b["clip"].to_dict(),
                    "clip_functionals": b["clip_functionals"].to_dict()}
                if "speaker_norm_window" in b:
                    result["rows"]["baseline_egemaps_logreg_speaker_norm"] = {
                        "model": "the baseline with eGeMAPS z-scored per speaker (oracle speaker statistics)",
                        "windows": len(first_ws), "window": b["speaker_norm_window"].to_dict(),
                        "clip": b["speaker_norm_clip"].to_dict()}
                rows = [("window", "window", b["window"]), ("clip", "clip", b["clip"]),
                        ("clip, whole-clip functionals", "clip_functionals", b["clip_functionals"])]
                if "speaker_norm_window" in b:
                    rows += [("window, per-speaker z-score", "speaker_norm_window", b["speaker_norm_window"]),
                             ("clip, per-speaker z-score", "speaker_norm_clip", b["speaker_norm_clip"])]
                for level, key, rep in rows:
                    print("\n" + format_report(rep, f"== baseline eGeMAPS + logreg [{level} level] =="))
                    _plot_confusion(rep.confusion, f"baseline - {level}", out_dir / f"baseline_{key}_confusion.png")
    except (SpeechDataError, ModelError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2

    print(f"\n{'row':<40}{'level':<8}{'UA':>8}{'WA':>8}{'F1':>8}")
    for name, row in result["rows"].items():
        for level in ("window", "clip", "clip_functionals"):
            if level in row:
                d = row[level]
                print(f"{name:<40}{level[:8]:<8}{d['unweighted_accuracy']:>8.4f}{d['accuracy']:>8.4f}{d['macro_f1']:>8.4f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}; confusion PNGs in {out_dir}")
    else:
        print(f"confusion PNGs in {out_dir}")
    return 0
