"""``dsrter convert speech``: Keras run -> float + full-int8 TFLite with the model card."""

from __future__ import annotations

import argparse
import logging

HELP = "convert a trained speech model to float and full-int8 TFLite, verify int8 vs float, write the card"
DESCRIPTION = (
    "Reads RUN/model.keras + RUN/train_info.json (several RUNs: their average), writes OUT (full int8) and the card "
    "OUT.json, plus the float "
    "reference (RUN/speech_emotion_float.tflite unless --float-out). Evaluates both on the validation and test "
    "splits of the training data, prints the int8-vs-float top-1 agreement, the baseline row and the latency."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", action="append", default=None, metavar="DIR",
                   help="a `dsrter train speech` output folder (default runs/speech/train); repeat to average several "
                        "runs (same data and recipe, e.g. other --seed) into one ensemble model")
    p.add_argument("--out", default="models/speech_emotion.tflite", help="int8 model path (card written beside it)")
    p.add_argument("--float-out", default=None, help="float model path (default RUN/speech_emotion_float.tflite)")
    p.add_argument("--data", action="append", default=None, metavar="PATH",
                   help="datasets to evaluate on (default: the training data recorded in the run)")
    p.add_argument("--cache", default="runs/speech/cache", help="feature cache folder ('' to disable)")
    p.add_argument("--rep-samples", type=int, default=300, help="representative windows for int8 calibration")
    p.add_argument("--no-bench", action="store_true", help="skip the latency measurement")
    p.add_argument("--no-baseline", action="store_true", help="skip the eGeMAPS + logistic regression baseline")
    p.add_argument("--workers", type=int, default=1)


def main(args: argparse.Namespace) -> int:
    import dsrter.edge.infer.speech_features  # noqa: F401  (loads openSMILE before TensorFlow; see that module)
    from dsrter.edge.cli.groups import require_train_extra

    require_train_extra()
    from dsrter.convert.speech_convert import convert_speech
    from dsrter.train.speech_data import SpeechDataError
    from dsrter.train.speech_train import command_line

    try:
        convert_speech(args.run or ["runs/speech/train"], args.out, float_out=args.float_out, data=args.data,
                       cache_dir=args.cache or None,
                       workers=args.workers, rep_samples=args.rep_samples, command=command_line(),
                       bench=not args.no_bench, baseline=not args.no_baseline)
    except (SpeechDataError, FileNotFoundError, ValueError) as exc:
        logging.getLogger(__name__).error("%s", exc)
        return 2
    print(f"wrote {args.out} and {args.out.rsplit('.', 1)[0]}.json")
    return 0
