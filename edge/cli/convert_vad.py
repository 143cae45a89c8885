"""``dsrter convert vad``: the vendored Silero VAD (ONNX) -> float TFLite for LiteRT."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

HELP = "rebuild the vendored Silero voice-activity model as TFLite and check it against the ONNX original"
DESCRIPTION = (
    "Reads the Silero VAD's weights from ONNX, rebuilds its graph in TensorFlow and writes a float TFLite file, "
    "so the device runs every network on LiteRT (no onnxruntime). Then runs the original (onnxruntime) and the "
    "port over the same audio as a stream and prints the largest probability difference and how many "
    "speech/no-speech decisions differ. With --card, points that speech card's voice-activity entry at the file."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--onnx", default="models/silero_vad.onnx", help="the Silero VAD ONNX file")
    p.add_argument("--out", default="models/silero_vad.tflite", help="TFLite file to write")
    p.add_argument("--card", default="models/speech_emotion.json",
                   help="speech card whose `vad` entry is pointed at OUT ('' to leave cards alone)")
    p.add_argument("--check", action="append", default=None, metavar="AUDIO",
                   help="audio files for the ONNX-vs-TFLite check (default: 5 s of noise and, where present, "
                        "a few RAVDESS and EmoDB clips)")


def _check_audio(args: argparse.Namespace) -> list[tuple[str, np.ndarray]]:
    from dsrter.edge.tools.checkout import shared_data_dir
    from dsrter.train.speech_data import read_audio

    if args.check:
        return [(f, read_audio(Path(f))) for f in args.check]
    clips: list[tuple[str, np.ndarray]] = [("noise", np.random.default_rng(0).normal(0, 0.1, 5 * 16000).astype(np.float32))]
    data = shared_data_dir()  # $DSRTER_SHARED_DATA, else ../shared/data beside the checkout
    if data is not None:
        for pattern in ("ravdess/Actor_2*/*.flac", "emodb/wav/*.wav"):
            clips += [(str(f), read_audio(f)) for f in sorted(data.glob(pattern))[::40][:6]]
    return clips


def main(args: argparse.Namespace) -> int:
    from dsrter.edge.cli.groups import require_train_extra

    require_train_extra()
    from dsrter.convert.vad_convert import SOURCE, VadConvertError, check_port, to_tflite
    from dsrter.edge.infer.model_io import ModelError

    log = logging.getLogger(__name__)
    onnx_path, out = Path(args.onnx), Path(args.out)
    if not onnx_path.is_file():
        log.error("%s: ONNX file not found", onnx_path)
        return 2
    try:
        data = to_tflite(onnx_path)
        out.write_bytes(data)
        chunks, worst, differ, t_onnx, t_tflite = 0, 0.0, 0, 0.0, 0.0
        for _name, audio in _check_audio(args):
            r = check_port(onnx_path, out, audio)
            chunks, worst, differ = chunks + r.chunks, max(worst, r.max_abs_diff), differ + r.decisions_differ
            t_onnx, t_tflite = t_onnx + r.onnx_s, t_tflite + r.tflite_s
    except (VadConvertError, ModelError) as exc:
        log.error("%s", exc)
        return 2
    print(f"wrote {out} ({len(data) / 1e6:.2f} MB); ONNX vs TFLite over {chunks} chunks of 32 ms: "
          f"largest probability difference {worst:.2e}, decisions (>= 0.5) that differ: {differ}; ms per second of "
          f"audio on one thread: onnxruntime {1000 * t_onnx / max(chunks * 0.032, 1e-9):.2f}, "
          f"LiteRT {1000 * t_tflite / max(chunks * 0.032, 1e-9):.2f}")
    if args.card:
        card_file = Path(args.card)
        card = json.loads(card_file.read_text())
        if "vad" in card:
            card["vad"].update({"model": out.name, "source": SOURCE})
            card_file.write_text(json.dumps(card, indent=1) + "\n")
            print(f"{card_file}: voice-activity model is now {out.name}")
    return 0 if differ == 0 else 1
