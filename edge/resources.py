"""Where the shipped config and models are, and which config file a command uses.

In a wheel the repository's ``config.yaml``, ``models/`` and ``systemd/dsrter.service`` travel as
``dsrter/shipped/``; in a clone or an editable install they are the repository's own. The config
is looked up the way services do: ``-c FILE``, then ``$DSRTER_CONFIG``, then ``./config.yaml``, then
``/etc/dsrter/config.yaml``, then the packaged default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

CONFIG_ENV = "DSRTER_CONFIG"
SYSTEM_CONFIG = Path("/etc/dsrter/config.yaml")


def shipped_root() -> Optional[Path]:
    """The folder holding the shipped ``config.yaml`` and ``models/``; None if neither is there."""
    pkg = Path(__file__).resolve().parent.parent  # dsrter/ in a wheel; the checkout in a clone
    for root in (pkg / "shipped", pkg):  # a wheel; a clone or an editable install
        if (root / "config.yaml").is_file() or (root / "models").is_dir():
            return root
    return None


def shipped_model(relative: Path) -> Optional[Path]:
    """A shipped model named by a config's relative path (``models/x.tflite`` or ``x.tflite``)."""
    root = shipped_root()
    if root is None or relative.is_absolute():
        return None
    for candidate in (root / relative, root / "models" / relative.name):
        if candidate.is_file():
            return candidate
    return None


def find_config(given: Optional[str | Path], env: Optional[Mapping[str, str]] = None, cwd: Optional[Path] = None) -> tuple[Path, str]:
    """The config file to load and how it was chosen (``-c``, ``$DSRTER_CONFIG``, ``./config.yaml``,
    ``/etc/dsrter/config.yaml`` or ``packaged default``). A file named by ``-c`` or the environment
    is returned even if missing, so the loader reports it; the search only picks existing files."""
    env = os.environ if env is None else env
    if given is not None:
        return Path(given), "-c"
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]), f"${CONFIG_ENV}"
    local = (cwd or Path.cwd()) / "config.yaml"
    if local.is_file():
        return Path("config.yaml") if cwd is None else local, "./config.yaml"
    if SYSTEM_CONFIG.is_file():
        return SYSTEM_CONFIG, str(SYSTEM_CONFIG)
    root = shipped_root()
    if root is not None and (root / "config.yaml").is_file():
        return root / "config.yaml", "packaged default"
    return local, "./config.yaml"
