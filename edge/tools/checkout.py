"""The folder this package was installed from (``pip install [-e] DIR``), found in the package's
own metadata (PEP 610 ``direct_url.json``), not from where a source file happens to sit.

The runtime never needs it. Tools that work with the files beside the code in a checkout do:
``dsrter install-service`` (``systemd/dsrter.service``, ``config.yaml``, ``models/``) and
``dsrter bench`` (shipped ``models/``, stand-in models from ``tests/``, the shared sample videos
next to the repository). Each also takes the folder, or the files, as options.
"""

from __future__ import annotations

import json
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
