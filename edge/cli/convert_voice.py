"""``dsrter convert voice``: a pretrained speaker encoder as the speech model's voice branch."""

from __future__ import annotations

import argparse
import logging

HELP = "add a pretrained GE2E speaker encoder (resemblyzer wheel) to the speech model as its voice branch"
DESCRIPTION = (
    "Converts the encoder to TFLite (int8 weights) beside MODEL, checks it against PyTorch, fits the emotion head "
    "on the training speakers' windows, chooses the head's strength, the fusion weight and the calibration "
    "temperature on the validation speakers, and rewrites MODEL's card with every figure recomputed. "
    "The encoder: `pip download --no-deps resemblyzer==0.1.4` gives the wheel (Apache-2.0)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoder", required=True, metavar="FILE", help="Resemblyzer-0.1.4-py3-none-any.whl (weights and licence read from it), or a GE2E .pt file")
    p.add_argument("--licence", default=None, metavar="FILE", help="the licence to ship beside the encoder (a .pt needs it)")
    p.add_argument("--model", default="models/speech_emotion.tflite", help="the speech model whose card gains the branch")
    p.add_argument(
        "--data", action="append", required=True, metavar="PATH", help="the corpora the speech model was trained on (repeat), split by speaker as in training"
    )
    p.add_argument(
        "--grid",
        type=float,
        default=None,
        metavar="S",
        help="start a 1 s partial every S seconds of stream time (default 1: each window holds one or two; "
        "0.5 at a 0.5 s hop: three, one of them new in every window)",
    )
    p.add_argument("--cache", default="runs/speech/cache", help="feature cache folder ('' to disable)")
    p.add_argument("--no-bench", action="store_true", help="skip the latency measurement")
    p.add_argument("--workers", type=int, default=1)


def main(args: argparse.Namespace) -> int:
    import dsrter.edge.infer.speech_features  # noqa: F401  (loads openSMILE before TensorFlow)
    from dsrter.edge.cli.groups import require_train_extra

    require_train_extra()
    from dsrter.convert.voice_convert import convert_voice
    from dsrter.edge.infer.model_io import ModelError
    from dsrter.train.speech_data import SpeechDataError
    from dsrter.train.speech_train import command_line

    try:
        convert_voice(
            args.encoder,
            args.model,
            args.data,
            licence=args.licence,
            grid_s=args.grid,
            cache_dir=args.cache or None,
            workers=args.workers,
            bench=not args.no_bench,
            command=command_line(),
        )
    except (SpeechDataError, ModelError, FileNotFoundError, ValueError) as exc:
        logging.getLogger(__name__).error("%s", exc)
        return 2
    print(f"wrote the voice branch beside {args.model} and rewrote its card")
    return 0
