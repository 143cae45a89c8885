"""``dsrter eval face|speech``."""

from __future__ import annotations

import argparse

from dsrter.edge.cli.groups import add_group, run_group

HELP = "evaluate a shipped or trained model on a dataset, with a peer/baseline row"
TARGETS = {
    "face": "dsrter.edge.cli.eval_face",
    "speech": "dsrter.edge.cli.eval_speech",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_group(p, TARGETS, "target")


def main(args: argparse.Namespace) -> int:
    return run_group(args)
