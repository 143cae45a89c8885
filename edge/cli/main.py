"""The ``dsrter`` command: one sub-command per job, each defined in its own small module.

A command module provides ``HELP`` (one line), ``add_arguments(parser)`` and ``main(args) -> int``;
it must import heavy libraries (TensorFlow, Torch, MediaPipe) only inside ``main``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dsrter.edge.logsetup import setup_logging
from dsrter.edge.native_log import quiet_env

# name -> module; order is the order shown in --help.
COMMANDS: dict[str, str] = {
    "run": "dsrter.edge.cli.run",
    "analyze": "dsrter.edge.cli.analyze",
    "check-config": "dsrter.edge.cli.check_config",
    "train": "dsrter.edge.cli.train",
    "convert": "dsrter.edge.cli.convert",
    "eval": "dsrter.edge.cli.eval",
    "bench": "dsrter.edge.cli.bench",
    "install-service": "dsrter.edge.cli.install_service",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dsrter",
        description="DSRTER edge: real-time face + speech emotion recognition with MQTT output.",
    )
    parser.add_argument("--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="log verbosity (default: the config's logging.level, else INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    quiet_env()  # before any native library loads: their own log levels
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level or "INFO")
    try:
        return int(args._module.main(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
