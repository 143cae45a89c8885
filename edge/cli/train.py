"""``dsrter train face|speech|distill``."""

from __future__ import annotations

import argparse

from dsrter.edge.cli.groups import add_group, run_group

HELP = "train a model: face (FER-2013), speech (RAVDESS/CREMA-D) or distill (Wav2Vec2 teacher -> student)"
TARGETS = {
    "face": "dsrter.edge.cli.train_face",
    "speech": "dsrter.edge.cli.train_speech",
    "distill": "dsrter.edge.cli.train_distill",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_group(p, TARGETS, "target")


def main(args: argparse.Namespace) -> int:
    return run_group(args)
