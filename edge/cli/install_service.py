"""``dsrter install-service``: the systemd service on a Debian-based edge box (the steps:
:mod:`dsrter.edge.tools.install_service`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "install the systemd service: unit, system user (video+audio), /etc/dsrter/config.yaml"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="print every step and change nothing")
    p.add_argument("--root", type=Path, default=Path("/"),
                   help="install into this directory instead of / (files only; user and unit enabling act on it, "
                        "nothing is started)")
    p.add_argument("--venv", type=Path, default=Path(sys.prefix),
                   help="virtual environment whose bin/dsrter the service runs")
    p.add_argument("--config", type=Path, default=None,
                   help="a config file to install as-is (validated); default: SOURCE/config.yaml "
                        "adapted for the service")
    p.add_argument("--source", type=Path, default=None, metavar="DIR",
                   help="the folder holding systemd/dsrter.service, config.yaml and models/ (default: the ones "
                        "shipped with the package: the repository of an editable install, or the wheel's)")
    p.add_argument("--models", type=Path, default=None, help="folder with the .tflite models (default: SOURCE/models)")
    p.add_argument("--password-file", type=Path, default=None,
                   help="file holding the MQTT password, copied to /etc/dsrter/mqtt_password (never printed)")
    p.add_argument("--force", action="store_true", help="replace an existing /etc/dsrter/config.yaml (kept as .bak)")
    p.add_argument("--start", action="store_true", help="(re)start the service after installing")


def main(args: argparse.Namespace) -> int:
    from dsrter.edge.tools.install_service import Installer

    Installer(args).all()
    return 0
