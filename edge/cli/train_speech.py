"""``dsrter train speech``: the speaker-independent window classifier (log-mel 1D-CNN + eGeMAPS head)."""

from __future__ import annotations

import argparse
import json
import logging

HELP = "train the speech emotion model on RAVDESS / CREMA-D / manifest data (speaker-independent splits)"
DESCRIPTION = (
    "Train the speech emotion window classifier: a log-mel 1D-CNN joined with an eGeMAPS head (and, with "
    "--teacher or --student, a distilled Wav2Vec2-style embedding). Splits are speaker-independent as design.md "
    "fixes them per corpus; the best validation epoch is kept. Writes OUT/model.keras and OUT/train_info.json; "
    "then run `dsrter convert speech --run OUT`."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", action="append", required=True, metavar="PATH",
                   help="dataset folder (RAVDESS Actor_XX/ or CREMA-D AudioWAV/ layout, or a folder with manifest.csv) "
                        "or a manifest .csv; repeat to combine corpora")
    p.add_argument("--out", default="runs/speech/train", help="output folder")
    p.add_argument("--cache", default="runs/speech/cache", help="feature cache folder ('' to disable)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--aug-copies", type=int, default=1, help="corrupted copies of every training clip")
    p.add_argument("--no-spec-augment", action="store_true", help="disable time/frequency masking")
    p.add_argument("--window-cmn", action="store_true", help="per-window log-mel mean removal before the z-score")
    p.add_argument("--train-hop", type=float, default=0.5, help="hop of the clean training windows (s)")
    p.add_argument("--n-mels", type=int, default=64)
    p.add_argument("--egemaps-block", type=float, default=None, metavar="S",
                   help="eGeMAPS as the mean over S-second blocks on a grid of stream time, each computed once "
                        "and shared by the windows that hold it (default: over the whole window)")
    p.add_argument("--select", choices=["val", "last"], default="val", help="keep the best validation epoch or the last")
    p.add_argument("--teacher", default=None, metavar="DIR|FILE.pt",
                   help="HF Wav2Vec2/HuBERT/WavLM checkpoint folder (or hub id) or a GE2E speaker encoder's .pt file: "
                        "distil it first (into OUT/student) and train with the student branch")
    p.add_argument("--teacher-layer", default="mean", help="teacher hidden state: mean (over layers), last, or an index")
    p.add_argument("--student", default=None, metavar="DIR", help="an existing `dsrter train distill` output folder")
    p.add_argument("--embed-dim", type=int, default=64, help="student embedding size (PCA dims of the teacher)")
    p.add_argument("--student-epochs", type=int, default=30)
    p.add_argument("--spec", default=None, help='JSON overrides of the network spec, e.g. \'{"channels": [32, 48, 64]}\'')
    p.add_argument("--max-clips", type=int, default=None, help="use at most N clips per split (smoke runs)")
    p.add_argument("--seed", type=int, default=0, help="model initialisation / batch order seed")
    p.add_argument("--aug-seed", type=int, default=0, help="seed of the corrupted copies of the training clips")
    p.add_argument("--threads", type=int, default=1, help="TensorFlow threads")
    p.add_argument("--workers", type=int, default=1, help="feature-extraction processes")


def main(args: argparse.Namespace) -> int:
    import dsrter.edge.infer.speech_features  # noqa: F401  (loads openSMILE before TensorFlow; see that module)
    from dsrter.edge.cli.groups import require_train_extra

    require_train_extra()
    from dsrter.train.speech_data import SpeechDataError
    from dsrter.train.speech_train import SpeechTrainConfig, command_line, train_speech

    cfg = SpeechTrainConfig(
        data=list(args.data), out_dir=args.out, cache_dir=args.cache or None, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, aug_copies=args.aug_copies, spec_augment=not args.no_spec_augment,
        window_cmn=args.window_cmn, train_hop_s=args.train_hop, n_mels=args.n_mels, egemaps_block_s=args.egemaps_block, select=args.select,
        teacher=args.teacher, teacher_layer=args.teacher_layer, student=args.student, embed_dim=args.embed_dim,
        student_epochs=args.student_epochs, spec=json.loads(args.spec) if args.spec else {},
        max_clips=args.max_clips, seed=args.seed, aug_seed=args.aug_seed, threads=args.threads,
        workers=args.workers, command=command_line(),
    )
    try:
        info = train_speech(cfg)
    except (SpeechDataError, ValueError, OSError) as exc:
        logging.getLogger(__name__).error("%s", exc)
        return 2
    if info.get("val"):
        v = info["val"]
        print(f"validation (epoch {info['selected_epoch']}): window UA {v['window']['unweighted_accuracy']:.4f}  "
              f"clip UA {v['clip']['unweighted_accuracy']:.4f}")
    print(f"saved {args.out}/model.keras; next: dsrter convert speech --run {args.out}")
    return 0
