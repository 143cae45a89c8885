"""``dsrter train face``: train the hybrid face network on FER-2013 (resumable)."""

from __future__ import annotations

import argparse
import json
import logging

from dsrter.edge.cli.groups import require_train_extra

HELP = "train the face emotion network on FER-2013 (npz, csv or image folders)"
DESCRIPTION = (
    "Train the hybrid MobileNetV2 + CNN face network with PyTorch on the CPU. Checkpoints go to "
    "OUT/last.pt (resumable: weights, optimizer, epoch, RNG) and OUT/best.pt (best PublicTest accuracy). "
    "Convert the result with `dsrter convert face --checkpoint OUT/best.pt`."
)
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="../shared/data/fer2013/fer2013.npz", help="fer2013.npz, fer2013.csv or an image-folder root")
    p.add_argument("--out", default="runs/face", help="run folder for checkpoints, history and plots")
    p.add_argument("--epochs", type=int, default=None, help="planned epochs (default 45; on --resume: the run's own plan)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (warm-up then cosine)")
    p.add_argument("--seed", type=int, default=0, help="seed for initialisation, shuffling and augmentation")
    p.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads")
    p.add_argument("--time-budget", type=float, default=None, metavar="MIN", help="stop cleanly before this many minutes (resume later)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="fine-tune: start from these weights (best.pt, or one rebuilt by face_import) with a fresh "
                        "optimizer and schedule; the architecture comes from the checkpoint; OUT/init.pt keeps the start "
                        "as the run sees it (for face_average)")
    p.add_argument("--width", type=float, default=0.5, help="MobileNetV2 width multiplier")
    p.add_argument("--cnn-channels", default="64,128,256", help="channels of the CNN branch's three stages")
    p.add_argument("--augment", type=float, default=0.6, metavar="STRENGTH",
                   help="augmentation strength: scales rotation/shift/photometric ranges and occlusion/blur/noise odds (a resumed run keeps its own)")
    p.add_argument("--ferplus", action="store_true",
                   help="train on the FER+ crowd-vote distributions beside the npz and select on PublicTest FER+ majority labels (a resumed run keeps its own)")
    p.add_argument("--corrupt", type=float, default=0.0, metavar="P",
                   help="share of training faces given living-room camera corruptions (low light, blur, JPEG, small, "
                        "rotated, occluded; a resumed run keeps its own)")
    p.add_argument("--equalize", action="store_true",
                   help="histogram-equalise every face (after the corruptions) in training, selection and, through the "
                        "card, on the device (on by itself with --init from an equalised checkpoint)")
    p.add_argument("--turn", type=float, default=0.0, metavar="P",
                   help="share of training faces warped as if the head were turned sideways (three-quarter views; "
                        "a resumed run keeps its own)")
    p.add_argument("--max-train", type=int, default=None, help="use a random subset of the training images (smoke runs)")


def main(args: argparse.Namespace) -> int:
    require_train_extra()
    from dsrter.train.face_model import FaceNetSpec
    from dsrter.train.face_train import FaceTrainConfig, train_face
    from dsrter.train.fer_data import FerDataError
    from dsrter.train.ferplus import FerPlusError
    from dsrter.train.plots import plot_history

    spec = FaceNetSpec(width=args.width, cnn_channels=tuple(int(c) for c in args.cnn_channels.split(",")))
    cfg = FaceTrainConfig(
        data=args.data, out_dir=args.out, epochs=args.epochs or 45, epochs_override=args.epochs is not None, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        threads=args.threads, time_budget_min=args.time_budget, resume=args.resume, max_train=args.max_train, spec=spec,
        augment_strength=args.augment, init=args.init, ferplus=args.ferplus, corrupt_p=args.corrupt,
        equalize=args.equalize, turn_p=args.turn,
    )
    try:
        summary = train_face(cfg)
    except (FerDataError, FerPlusError, FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    import torch

    state = torch.load(f"{args.out}/last.pt", weights_only=False)
    if state["history"]:
        plot_history(state["history"], ["val_acc", "val_acc_ema", "train_acc_augmented"], f"{args.out}/history.png", "FER-2013 face training")
    print(json.dumps(summary, indent=2))
    if not summary["finished"]:
        print(f"stopped before the last epoch; continue with: dsrter train face --out {args.out} --resume")
    return 0
