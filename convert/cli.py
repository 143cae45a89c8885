"""``dsrter convert face|speech``."""

from __future__ import annotations

import argparse

from dsrter.edge.subcommands import add_group, run_group

HELP = "convert a trained model to float and full-int8 TFLite and verify int8 against float"
TARGETS = {
    "face": "dsrter.convert.face_cli",
    "speech": "dsrter.convert.speech_cli",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_group(p, TARGETS, "target")


def main(args: argparse.Namespace) -> int:
    return run_group(args)
