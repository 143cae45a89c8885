"""The folder this package was installed from (``pip install [-e] DIR``), found in the package's
own metadata (PEP 610 ``direct_url.json``), not from where a source file happens to sit.

The runtime never needs it, nor do the shipped files (:mod:`dsrter.edge.resources` finds those in
the package). Only development tools look beside the code of a checkout: ``dsrter bench`` for
stand-in models made by ``tests/model_factory.py``; ``dsrter bench``, ``speech_cost`` and
``dsrter convert vad`` for the shared datasets next to the repository (``$DSRTER_SHARED_DATA``
names them too).
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlparse

DISTRIBUTION = "dsrter-edge"


def checkout_dir() -> Optional[Path]:
    """The local folder the installed distribution came from, or None (installed from an index or
    a wheel, or the folder is gone)."""
    # every installation of that name on sys.path: a build's stray .egg-info (no direct_url.json) may come first
    text = next((t for d in metadata.distributions(name=DISTRIBUTION) if (t := d.read_text("direct_url.json"))), None)
    if not text:
        return None
    try:
        url = urlparse(json.loads(text).get("url", ""))
    except (ValueError, AttributeError):
        return None
    if url.scheme != "file":
        return None
    path = Path(unquote(url.path))
    return path if path.is_dir() else None


def shared_data_dir(*parts: str) -> Optional[Path]:
    """A folder of the shared datasets: ``$DSRTER_SHARED_DATA/PARTS``, else ``../shared/data/PARTS``
    beside the checkout; None when neither is there."""
    repo = checkout_dir()
    base = os.environ.get("DSRTER_SHARED_DATA") or (repo.parent / "shared" / "data" if repo else None)
    if base is None:
        return None
    p = Path(base).joinpath(*parts)
    return p if p.is_dir() else None


def shared_av_samples() -> Optional[Path]:
    """The shared labelled clips (``av-samples`` with its ``manifest.csv``); None if absent."""
    p = shared_data_dir("av-samples")
    return p if p is not None and (p / "manifest.csv").is_file() else None
