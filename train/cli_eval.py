"""``dsrter eval face|speech``."""

from __future__ import annotations

import argparse

from dsrter.edge.subcommands import add_group, run_group

HELP = "evaluate a shipped or trained model on a dataset, with a peer/baseline row"
TARGETS = {
    "face": "dsrter.train.face_eval_cli",
    "speech": "dsrter.train.speech_eval_cli",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_group(p, TARGETS, "target")


def main(args: argparse.Namespace) -> int:
    return run_group(args)
