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


def publictest_probabilities(checkpoint: Path, images_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities of one checkpoint on the images and on their mirror images."""
    import torch

    from dsrter.train.face_train import load_trained, predict

    net = load_trained(checkpoint)
    with torch.no_grad():
        plain = torch.softmax(torch.as_tensor(predict(net, images_u8)), 1).numpy()
        mirrored = torch.softmax(torch.as_tensor(predict(net, images_u8[:, :, ::-1].copy())), 1).numpy()
    return plain, mirrored


def compare(checkpoints: list[Path], data: str) -> list[dict]:
    """One row per non-empty subset of the checkpoints: accuracy plain and mirror-averaged."""
    x, y = load_fer(data).split(PUBLIC_TEST)
    if len(x) == 0:
        raise ValueError(f"{data}: no PublicTest images (usage code 1) to select on")
    probs = [publictest_probabilities(c, x) for c in checkpoints]
    rows = []
    for k in range(1, len(checkpoints) + 1):
        for subset in itertools.combinations(range(len(checkpoints)), k):
            plain = np.mean([probs[i][0] for i in subset], axis=0)
            both = np.mean([(probs[i][0] + probs[i][1]) / 2 for i in subset], axis=0)
            rows.append({"members": [str(checkpoints[i]) for i in subset],
                         "publictest_acc": float((plain.argmax(1) == y).mean()),
                         "publictest_acc_mirror_avg": float((both.argmax(1) == y).mean())})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", nargs="+", required=True, type=Path, help="best.pt files from `dsrter train face`")
    ap.add_argument("--data", default="../shared/data/fer2013/fer2013.npz")
    args = ap.parse_args(argv)
    for r in compare(args.checkpoint, args.data):
        print(f"{r['publictest_acc']:.4f}  mirror-avg {r['publictest_acc_mirror_avg']:.4f}  {' + '.join(r['members'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
