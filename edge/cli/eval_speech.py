"""``dsrter eval speech``: a speech .tflite (shipped or trained) on a dataset, with the eGeMAPS baseline row."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

# speech_report.DEFAULT_LEVELS, written out: `dsrter --help` builds this parser, and importing the
# training code for it would load openSMILE and SciPy into every command (tests/test_import_graph.py)
DEFAULT_GAIN_DB = "0,-10,-20,-30,peak"

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
    p.add_argument("--data", required=True, action="append", metavar="PATH",
                   help="dataset folder or manifest .csv; repeat for several corpora (each reported on its own)")
    p.add_argument("--model", default="models/speech_emotion.tflite", metavar="FILE",
                   help="speech .tflite with its .json card beside it (default models/speech_emotion.tflite)")
    p.add_argument("--split", default="auto", choices=["auto", "test", "val", "train", "all"],
                   help="auto = test when the data has a test split, else all")
    p.add_argument("--gain-db", default=DEFAULT_GAIN_DB, metavar="LIST",
                   help="input levels for the gain sweep: dB relative to the recording and/or 'peak' "
                        "(peak-normalised); '' skips the sweep")
    p.add_argument("--vad", action="store_true",
                   help="also the voice-activity figures: non-speech set, speech in noise, end-of-speech lag "
                        "(needs fluidsynth, fluid-soundfont-gm, sound-theme-freedesktop)")
    p.add_argument("--av-samples", default=None, metavar="DIR",
                   help="with --vad: an av-samples folder (manifest.csv + clips) for silent/spoken time shown right")
    p.add_argument("--json", default=None, metavar="OUT", help="write all reports to this JSON file")
    p.add_argument("--out-dir", default=None,
                   help="folder for the confusion-matrix PNGs (default: beside --json, else runs/speech/eval)")
    p.add_argument("--cache", default="runs/speech/cache", help="feature cache folder ('' to disable)")
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline row")
    p.add_argument("--workers", type=int, default=1, help="feature-extraction processes")
    p.add_argument("--threads", type=int, default=1, help="LiteRT threads")


def _print_rows(rows: dict[str, dict]) -> None:
    print(f"{'row':<44}{'level':<9}{'UA':>8}{'WA':>8}{'P':>8}{'R':>8}{'F1':>8}")
    for name, row in rows.items():
        for level in ("window", "clip", "clip_functionals"):
            if level in row:
                d = row[level]
                print(f"{name:<44}{level[:8]:<9}{d['unweighted_accuracy']:>8.4f}{d['accuracy']:>8.4f}"
                      f"{d['macro_precision']:>8.4f}{d['macro_recall']:>8.4f}{d['macro_f1']:>8.4f}")


def main(args: argparse.Namespace) -> int:
    from dsrter.edge.infer.model_io import ModelError, load_card
    from dsrter.edge.labels import LABELS
    from dsrter.train.metrics import format_report
    from dsrter.train.plots import plot_confusions
    from dsrter.train.nonspeech import NonSpeechError
    from dsrter.train.speech_data import SpeechDataError, load_dataset
    from dsrter.train.speech_report import gain_sweep, split_report, window_probs
    from dsrter.train.speech_train import BaselineModel, window_and_clip_reports

    log = logging.getLogger(__name__)
    levels = [v.strip() for v in args.gain_db.split(",") if v.strip()]
    cache = args.cache or None
    out_dir = Path(args.out_dir) if args.out_dir else (Path(args.json).parent if args.json else Path("runs/speech/eval"))
    result: dict = {"model": str(args.model), "corpora": {}}
    try:
        card = load_card(args.model)
        if "recipe" not in card or "normalisation" not in card:
            raise ModelError(f"{args.model}: card has no speech recipe/normalisation")
        temperature = float(card.get("calibration", {}).get("temperature", 1.0))
        out_dir.mkdir(parents=True, exist_ok=True)
        sets = [load_dataset(d) for d in args.data]
        train_items = [it for ds in sets for it in ds.split("train")]
        base = None
        if not args.no_baseline and train_items:
            base = BaselineModel.fit(train_items, card["recipe"], cache, args.workers)
        for data, ds in zip(args.data, sets):
            split = args.split if args.split != "auto" else ("test" if ds.split("test") else "all")
            items = ds.split(split)
            if not items:
                raise SpeechDataError(f"{data}: no clips in split {split!r}")
            name = Path(data).name or str(data)
            for n in ds.notes:
                print(f"note: {n}")
            print(f"\n######## {name}: {ds.layout} layout, split {split}: {len(items)} clips, "
                  f"{len({it.speaker for it in items})} speakers")
            ws, raw = window_probs(args.model, items, cache, args.workers, args.threads)
            rep = split_report(ws, raw, temperature)
            rows = {Path(args.model).name: {"window": rep["window"].to_dict(), "clip": rep["clip"].to_dict()}}
            if card.get("voice"):  # what the voice branch adds: the emotion network alone, uncalibrated
                _, alone = window_probs(args.model, items, cache, args.workers, args.threads, voice=False)
                r = window_and_clip_reports(alone, ws)
                rows["without_voice_branch"] = {"window": r["window"].to_dict(), "clip": r["clip"].to_dict()}
            for level in ("window", "clip"):
                print("\n" + format_report(rep[level], f"== {Path(args.model).name} [{level} level] =="))
                plot_confusions([(f"{Path(args.model).name} - {level} - {name} {split}", rep[level].confusion)], LABELS,
                                out_dir / f"{name}_{level}_confusion.png")
            if base is not None and split not in ("train", "all"):
                b = base.reports(ws)
                rows["baseline_egemaps_logreg"] = {"window": b["window"].to_dict(), "clip": b["clip"].to_dict()}
            elif not args.no_baseline:
                print("\nbaseline: skipped (no training split separate from the evaluated clips)")
            print(f"\n-- {name} summary (baseline: eGeMAPS + logistic regression fitted on the same training split)")
            _print_rows(rows)
            print("per speaker (clip level): " + ", ".join(
                f"{spk}: UA {v['unweighted_accuracy']:.3f} ({v['clips']} clips)" for spk, v in rep["per_speaker_clip"].items()))
            e = rep["ece_window"]
            print(f"calibration (window ECE): {e['raw']:.4f} before, {e['calibrated']:.4f} after temperature {temperature:.3f}")
            entry = {"split": split, "clips": len(items), "windows": rep["windows"], "rows": rows,
                     "per_speaker_clip": rep["per_speaker_clip"], "ece_window": e}
            if levels:
                sweep = gain_sweep(args.model, items, cache, levels, args.workers, args.threads)
                print("gain sweep (clip UA): " + ", ".join(f"{k} dB: {v['clip_ua']:.4f}" if k not in ("peak", "spread")
                                                         else f"{k}: {v['clip_ua']:.4f}" for k, v in sweep.items()))
                entry["gain_sweep"] = sweep
            result["corpora"][name] = entry
        if args.vad:
            result["vad"] = _vad_figures(card, Path(args.model), sets, args)
    except (SpeechDataError, ModelError, FileNotFoundError, NonSpeechError) as exc:
        log.error("%s", exc)
        return 2
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}; confusion PNGs in {out_dir}")
    else:
        print(f"confusion PNGs in {out_dir}")
    return 0


def _vad_figures(card: dict, model: Path, sets, args: argparse.Namespace) -> dict:
    """Voice-activity comparison on the corpora's test clips (at most 60 per corpus) and the non-speech set."""
    import numpy as np

    from dsrter.edge.infer.voice_activity import SileroVad
    from dsrter.train.nonspeech import NonSpeechError
    from dsrter.train.speech_data import read_audio
    from dsrter.train.vad_eval import av_samples_vad, evaluate_vad

    if "vad" not in card:
        raise NonSpeechError(f"{model}: the card names no voice-activity model")
    vad_path = model.parent / card["vad"]["model"]
    rng = np.random.default_rng(0)
    clips = []
    for ds in sets:
        items = ds.split("test") or ds.items
        clips += [read_audio(items[i].path) for i in sorted(rng.choice(len(items), min(60, len(items)), replace=False))]
    reports = [r.to_dict() for r in evaluate_vad(vad_path, clips, progress=True)]
    print(f"\n######## voice activity: {len(clips)} test clips (+1 s silence each side; clean and mixed with the "
          f"non-speech set at 20/10/0 dB SNR), ticks of 0.25 s")
    print(f"{'detector':<14}{'non-speech->speaking':>22}{'speech found 20dB':>19}{'10dB':>8}{'0dB':>8}{'clean':>8}"
          f"{'end lag p95 s':>15}{'ms/s audio':>12}")
    for r in reports:
        sd = r["speech_detected"]
        print(f"{r['detector']:<14}{r['nonspeech_speaking_rate']:>22.4f}{sd['snr20dB']:>19.4f}{sd['snr10dB']:>8.4f}"
              f"{sd['snr0dB']:>8.4f}{sd['clean']:>8.4f}{r['end_of_speech_lag_s']['p95']:>15.3f}{r['ms_per_second_of_audio']:>12.2f}")
    out: dict = {"detectors": reports, "clips": len(clips)}
    if args.av_samples:
        ravdess = next((Path(d) for d in args.data if Path(d).name == "ravdess"), Path(args.av_samples).parent / "ravdess")
        av = av_samples_vad(Path(args.av_samples), ravdess, SileroVad(vad_path, threshold=card["vad"].get("threshold", 0.5),
                                                                       lookback_s=card["vad"].get("lookback_s", 0.125)))
        print(f"av-samples ({av['clips']} clips): silent time shown as no speech {av['silent_shown_no_speech']:.3f}, "
              f"spoken time shown as speaking {av['spoken_shown_speaking']:.3f}")
        out["av_samples"] = av
    return out
