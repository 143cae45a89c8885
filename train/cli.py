"""``dsrter train face|speech|distill``."""

from __future__ import annotations

import argparse

from dsrter.edge.subcommands import add_group, run_group

HELP = "train a model: face (FER-2013), speech (RAVDESS/CREMA-D) or distill (Wav2Vec2 teacher -> student)"
TARGETS = {
    "face": "dsrter.train.face_cli",
    "speech": "dsrter.train.speech_cli",
    "distill": "dsrter.train.distill_cli",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_group(p, TARGETS, "target")


def main(args: argparse.Namespace) -> int:
    return run_group(args)
