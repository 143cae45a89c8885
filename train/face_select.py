"""Compare trained face checkpoints, alone and averaged, on PublicTest (the selection split).

    python -m dsrter.train.face_select --checkpoint runs/face/best.pt runs/face_b/best.pt

Prints PublicTest accuracy of each checkpoint and of every combination, plain and mirror-averaged,
with the PyTorch models. PrivateTest is never looked at here: it is for the final report only.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from dsrter.train.fer_data import PUBLIC_TEST, load_fer
from dsrter.train.ferplus import load_ferplus


def publictest_probabilities(checkpoint: Path, images_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities of one checkpoint on the images and on their mirror images."""
    import torch  # the train extra, loaded only when a checkpoint is scored

    from dsrter.train.face_train import load_checkpoint, predict

    net, state = load_checkpoint(checkpoint)
    eq = bool(state.get("equalize", False))
    with torch.no_grad():
        plain = torch.softmax(torch.as_tensor(predict(net, images_u8, equalize=eq)), 1).numpy()
        mirrored = torch.softmax(torch.as_tensor(predict(net, images_u8[:, :, ::-1].copy(), equalize=eq)), 1).numpy()
    return plain, mirrored


def bootstrap_difference(correct_a: np.ndarray, correct_b: np.ndarray, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of accuracy(a) - accuracy(b) over the same images."""
    rng = np.random.default_rng(seed)
    diffs = [correct_a[i].mean() - correct_b[i].mean() for i in (rng.integers(0, len(correct_a), len(correct_a)) for _ in range(n))]
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def compare(checkpoints: list[Path], data: str, ferplus: bool = False) -> list[dict]:
    """One row per non-empty subset of the checkpoints: accuracy plain and mirror-averaged.

    ``ferplus``: scored against the FER+ majority labels of the PublicTest images that have one,
    else against FER-2013's own labels. A row of several members also gives, mirror-averaged, the
    top-1 agreement of its members and the bootstrap interval of its gain over the best single member."""
    fer = load_fer(data)
    x, y = load_ferplus(data, len(fer)).majority_split(fer, PUBLIC_TEST) if ferplus else fer.split(PUBLIC_TEST)
    if len(x) == 0:
        raise ValueError(f"{data}: no PublicTest images (usage code 1) to select on")
    probs = [publictest_probabilities(c, x) for c in checkpoints]
    mirrored = [(p + m) / 2 for p, m in probs]
    best_single = max(range(len(checkpoints)), key=lambda i: (mirrored[i].argmax(1) == y).mean())
    rows = []
    for k in range(1, len(checkpoints) + 1):
        for subset in itertools.combinations(range(len(checkpoints)), k):
            plain = np.mean([probs[i][0] for i in subset], axis=0)
            both = np.mean([mirrored[i] for i in subset], axis=0)
            row = {"members": [str(checkpoints[i]) for i in subset],
                   "publictest_acc": float((plain.argmax(1) == y).mean()),
                   "publictest_acc_mirror_avg": float((both.argmax(1) == y).mean())}
            if k > 1:
                votes = np.stack([mirrored[i].argmax(1) for i in subset])
                row["member_agreement"] = float((votes == votes[0]).all(0).mean())
                row["gain_vs_best_single_ci95"] = bootstrap_difference(both.argmax(1) == y, mirrored[best_single].argmax(1) == y)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", nargs="+", required=True, type=Path, help="best.pt files from `dsrter train face`")
    ap.add_argument("--data", default="../shared/data/fer2013/fer2013.npz")
    ap.add_argument("--ferplus", action="store_true", help="score against the FER+ majority labels (beside the npz)")
    args = ap.parse_args(argv)
    for r in compare(args.checkpoint, args.data, args.ferplus):
        extra = ""
        if "member_agreement" in r:
            lo, hi = r["gain_vs_best_single_ci95"]
            extra = f"  (members agree {r['member_agreement']:.3f}; gain vs best single, 95% CI {lo:+.4f}..{hi:+.4f})"
        print(f"{r['publictest_acc']:.4f}  mirror-avg {r['publictest_acc_mirror_avg']:.4f}  {' + '.join(r['members'])}{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
