"""``dsrter train distill``: a pretrained speech encoder (Wav2Vec2 / HuBERT / WavLM, or a GE2E speaker encoder)
-> small log-mel student for the device."""

from __future__ import annotations

import argparse
import logging

HELP = "distil a Wav2Vec2/HuBERT/WavLM checkpoint or a GE2E speaker encoder into a small log-mel student"
DESCRIPTION = (
    "Extract the teacher's utterance embeddings for every clean training window, reduce them with PCA and train a "
    "small Keras 1D-CNN on the device's log-mel features to reproduce them. Writes OUT/student.keras + "
    "OUT/student.json; use it with `dsrter train speech --student OUT` (or pass --teacher to train speech directly). "
    "--teacher is a local folder with config.json and the weights, or a hub id that is downloaded where the hub "
    "can be reached (a clear error says so where it cannot), or a GE2E speaker encoder's .pt file (the "
    "resemblyzer wheel's resemblyzer/pretrained.pt)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", required=True, metavar="DIR|FILE.pt",
                   help="local Hugging Face checkpoint folder, a hub id (e.g. facebook/wav2vec2-base) where the hub can be "
                        "reached, or a GE2E speaker encoder's .pt file")
    p.add_argument("--data", action="append", required=True, metavar="PATH",
                   help="dataset folder or manifest (repeat to combine corpora); its training split is used")
    p.add_argument("--out", default="runs/speech/student", help="output folder")
    p.add_argument("--cache", default="runs/speech/cache", help="feature/embedding cache folder ('' to disable)")
    p.add_argument("--layer", default="mean", help="teacher hidden state: mean (over layers), last, or an index")
    p.add_argument("--embed-dim", type=int, default=64, help="PCA dimensions of the teacher embedding to imitate")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--teacher-batch", type=int, default=8)
    p.add_argument("--window-cmn", action="store_true", help="must match the later `train speech` run")
    p.add_argument("--n-mels", type=int, default=64)
    p.add_argument("--train-hop", type=float, default=0.5)
    p.add_argument("--max-clips", type=int, default=None, help="use at most N clips per split (smoke runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=1)


def main(args: argparse.Namespace) -> int:
    import dsrter.edge.infer.speech_features  # noqa: F401  (loads openSMILE before TensorFlow; see that module)
    from dsrter.edge.cli.groups import require_train_extra

    require_train_extra()
    from dsrter.train.distill import DistillConfig, distill
    from dsrter.train.speech_data import SpeechDataError
    from dsrter.train.speech_train import command_line

    cfg = DistillConfig(teacher=args.teacher, data=list(args.data), out_dir=args.out, cache_dir=args.cache or None,
                        layer=args.layer, embed_dim=args.embed_dim, epochs=args.epochs, batch_size=args.batch_size,
                        teacher_batch=args.teacher_batch, window_cmn=args.window_cmn, n_mels=args.n_mels,
                        train_hop_s=args.train_hop, max_clips=args.max_clips, seed=args.seed, threads=args.threads,
                        workers=args.workers, command=command_line())
    try:
        info = distill(cfg)
    except (SpeechDataError, ValueError, FileNotFoundError, OSError) as exc:
        logging.getLogger(__name__).error("%s", exc)
        return 2
    m = info["metrics"]
    extra = (f"  val R2 {m['val_r2']:.3f}  val cosine to teacher {m['val_cosine_to_teacher']:.3f}"
             if "val_r2" in m else "")
    print(f"student: {info['embed_dim']}-d embedding of {info['teacher']['model_type']}{extra}; saved in {args.out}")
    return 0
