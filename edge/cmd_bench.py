"""Placeholder: this command is not built yet."""

from __future__ import annotations

import argparse
import sys

HELP = "(not built yet)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)


def main(args: argparse.Namespace) -> int:
    print("dsrter: this command is not built yet", file=sys.stderr)
    return 2
