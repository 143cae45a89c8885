"""Keep native libraries' start-up chatter (LiteRT, XNNPACK, absl/glog) out of the daemon's log.

Those lines are written by C++ straight to file descriptor 2, bypassing Python logging. While a
model loads, fd 2 goes to a temporary file; afterwards every captured line is written back: lines
in a native logger's format are logged at DEBUG (``--log-level DEBUG`` shows them), anything
else (a Python warning, a message we did not expect) is written to stderr unchanged, so nothing
is lost.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("dsrter.native")

# "INFO: Created TensorFlow Lite XNNPACK delegate", "INFO: [environment.cc:36] ...",
# "WARNING: Logging before InitGoogle() ...", "W0000 00:00:17.. 123 file.cc:12] ...".
_NATIVE = re.compile(r"^(?:(?:INFO|WARNING|VERBOSE|DEBUG): |[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] )")

# Environment switches honoured by TensorFlow/absl/glog builds, set before they are loaded.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "GLOG_minloglevel": "2"}


def quiet_env(env: dict[str, str] | None = None) -> None:
    """Set the native libraries' log-level variables unless the user set them."""
    target = os.environ if env is None else env
    for key, value in QUIET_ENV.items():
        target.setdefault(key, value)


def is_native_line(line: str) -> bool:
    """True for a line in one of the native loggers' formats."""
    return bool(_NATIVE.match(line))


@contextmanager
def native_stderr_to_debug() -> Iterator[None]:
    """Capture fd 2 for the duration; replay it afterwards (native lines at DEBUG, the rest as is)."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to tidy
        yield
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for raw in tmp.read().decode("utf-8", "replace").splitlines():
                if is_native_line(raw):
                    log.debug("%s", raw)
                elif raw.strip():
                    sys.stderr.write(raw + "\n")
            sys.stderr.flush()
