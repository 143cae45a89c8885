"""``dsrter convert face|speech|vad|voice``."""

from __future__ import annotations

import argparse

from dsrter.edge.cli.groups import add_group, run_group

HELP = "convert a trained model to float and full-int8 TFLite and verify int8 against float"
TARGETS = {
    "face": "dsrter.edge.cli.convert_face",
    "speech": "dsrter.edge.cli.convert_speech",
    "vad": "dsrter.edge.cli.convert_vad",
    "voice": "dsrter.edge.cli.convert_voice",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_group(p, TARGETS, "target")


def main(args: argparse.Namespace) -> int:
    return run_group(args)
