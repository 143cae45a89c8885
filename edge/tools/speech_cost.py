"""Per-window cost of the speech path on one thread: features and inference, stage by stage.

    python -m dsrter.edge.tools.speech_cost [--model FILE] [--clips N] [--repeat R]

Real speech windows (2 s, as the daemon classifies them) are cut from the clips of
``$DSRTER_SHARED_DATA/av-samples`` (else ``../shared/data/av-samples`` beside the checkout) and run
through the shipped speech model's pipeline on this thread. For every stage it prints the thread's
CPU time per window (what the window costs, little affected by other processes on the machine) and
the wall time, each as median and best over all runs. eGeMAPS of the whole window is timed three ways: with
one openSMILE instance reset between windows (the runtime's way), with a fresh openSMILE instance per window
(its configuration parsed every time), and through the ``opensmile`` Python package's
``process_signal`` when that package can be imported (the development environment), which is how
the runtime computed it before; for a card whose eGeMAPS is the mean over blocks of stream time, a
fourth row times it as the runtime runs it (each block computed once, windows in stream order).
Exit 2 when the clips or the model are missing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from dsrter.edge.infer import smile_api
from dsrter.edge.infer import speech_features as sf_
from dsrter.edge.infer.model_io import ModelError
from dsrter.edge.infer.speech_classifier import SpeechClassifier
from dsrter.edge.resources import shipped_model
from dsrter.edge.tools.checkout import shared_av_samples


def speech_windows(folder: Path, clips: int, window: int, hop: int) -> list[tuple[float, np.ndarray]]:
    """(clip time, 2 s window) every ``hop`` samples over the spoken part of the first ``clips`` clips."""
    import csv

    import av

    rows = list(csv.DictReader((folder / "manifest.csv").open()))[:clips]
    out: list[tuple[float, np.ndarray]] = []
    for row in rows:
        with av.open(str(folder / row["file"])) as c:
            stream = c.streams.audio[0]
            x = np.concatenate([f.to_ndarray().astype(np.float32).reshape(-1) for f in c.decode(stream)])
            x = sf_.to_mono_16k(x, int(stream.rate))
        a, b = int(float(row["speech_start_s"]) * 16000), int(float(row["speech_end_s"]) * 16000)
        seg = x[a:b]
        out += [((a + s) / 16000, w) for s, w in sf_.split_windows(seg, window, hop)]
    return out


def timed(fn: Callable, windows: list, repeat: int, fresh: Callable[[], None] | None = None) -> dict[str, float]:
    """Median, mean and best thread-CPU and wall milliseconds per call over ``repeat`` passes
    (``fresh`` is called before each pass: no partial computed in one pass is reused in the next)."""
    fn(windows[0])  # warm-up: first-call set-up is not a per-window cost
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(repeat):
        if fresh is not None:
            fresh()
        for w in windows:
            c0, t0 = time.thread_time(), time.perf_counter()
            fn(w)
            cpu.append((time.thread_time() - c0) * 1e3)
            wall.append((time.perf_counter() - t0) * 1e3)
    return {
        "cpu_median": statistics.median(cpu),
        "cpu_mean": statistics.mean(cpu),
        "cpu_best": min(cpu),
        "wall_median": statistics.median(wall),
        "wall_mean": statistics.mean(wall),
        "wall_best": min(wall),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dsrter.edge.tools.speech_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None, help="speech model (default: the shipped one)")
    p.add_argument("--clips", type=int, default=6, help="av-samples clips to cut windows from (default 6)")
    p.add_argument("--repeat", type=int, default=3, help="passes over the windows (default 3)")
    args = p.parse_args(argv)
    folder = shared_av_samples()
    if folder is None:
        print("speech_cost: av-samples not found (set DSRTER_SHARED_DATA or put ../shared/data beside the checkout)", file=sys.stderr)
        return 2
    model = args.model or shipped_model(Path("models/speech_emotion.tflite"))
    if model is None:
        print("speech_cost: no shipped speech model; give --model", file=sys.stderr)
        return 2
    try:
        clf = SpeechClassifier(model, threads=1)
    except ModelError as exc:
        print(f"speech_cost: {exc}", file=sys.stderr)
        return 2
    recipe = clf.recipe
    stream = speech_windows(folder, max(1, args.clips), clf.window_samples, int(round(clf.hop_s * clf.sample_rate)))
    windows = [w for _, w in stream]
    levelled = [sf_.normalise_level(w, recipe) for w in windows]
    eg_reset = smile_api.SmileFunctionals(clf.sample_rate)

    def eg_fresh(w: np.ndarray) -> None:
        s = smile_api.SmileFunctionals(clf.sample_rate)
        s(w)
        s.close()

    rows: list[tuple[str, list, Callable]] = [
        ("level normalisation", windows, lambda w: sf_.normalise_level(w, recipe)),
        ("log-mel", levelled, lambda w: sf_.log_mel(w, recipe)),
        ("eGeMAPS, one instance reset per window" + (" (runtime)" if clf.egemaps.block is None else " (whole window)"), levelled, eg_reset),
        ("eGeMAPS, fresh instance per window", levelled, eg_fresh),
    ]
    try:
        import opensmile  # the development environment only

        ref = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)
        rows.append(("eGeMAPS, opensmile package process_signal (before)", levelled, lambda w: ref.process_signal(w, 16000)))
    except ImportError:
        pass
    if clf.egemaps.block is not None:  # windows in stream order: each computes only the blocks not yet computed
        rows.append(
            (
                f"eGeMAPS as the card asks ({clf.egemaps.block / clf.sample_rate:g} s blocks, shared)",
                stream,
                lambda sw: clf.egemaps(sw[1], int(round(sw[0] * clf.sample_rate))),
            )
        )
    rows.append(("features (all of the above as the runtime runs them)", stream, lambda sw: clf.features(sw[1], sw[0])))
    voice = clf.voice
    if voice is not None:  # windows in stream order: each computes only the partials not yet computed
        per = "one per two windows" if voice.grid_samples >= 2 * int(round(clf.hop_s * clf.sample_rate)) else "one per window"
        rows.append((f"voice branch (its new partials: {per})", stream, lambda sw: voice.window(sw[1], int(round(sw[0] * clf.sample_rate)))))
    rows.append(("features + inference + calibration (SpeechClassifier.predict)", stream, lambda sw: clf.predict(sw[1], sw[0])))
    print(
        f"speech cost per 2 s window on one thread: {len(windows)} windows of real speech from {args.clips} av-samples "
        f"clips, {args.repeat} passes; model {model.name}"
    )
    print(f"{'stage':<66} {'cpu med':>8} {'cpu mean':>8} {'cpu best':>8} {'wall med':>8} {'wall mean':>9}  (ms)")
    for name, data, fn in rows:
        r = timed(fn, data, max(1, args.repeat), clf.clear)
        print(f"{name:<66} {r['cpu_median']:8.2f} {r['cpu_mean']:8.2f} {r['cpu_best']:8.2f} {r['wall_median']:8.2f} {r['wall_mean']:9.2f}")
    eg_reset.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
