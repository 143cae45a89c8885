"""Secrets for the MQTT connection: read from a file or a systemd credential, never logged.

Where the password comes from, first match wins:

1. ``mqtt.password_file`` in the config (a file holding only the password);
2. ``$CREDENTIALS_DIRECTORY/<mqtt.credential>`` — what systemd's ``LoadCredential=`` provides
   (the shipped unit loads ``/etc/dsrter/mqtt_password`` as ``mqtt_password``);
3. none: connect with the user name only (or anonymously when no user name is set).

The password never appears on a command line, in the environment, in a log line or in a
``repr``: it is carried in a :class:`Secret` whose text form is masked. One trailing newline
(as ``echo`` leaves) is removed; an empty file means "no password", so an installer can ship an
empty credential file that ``LoadCredential=`` can always load.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from dsrter.edge.config import MqttConfig

log = logging.getLogger(__name__)

MAX_SECRET_BYTES = 4096


class CredentialError(RuntimeError):
    """A secret could not be read; the message names the file, never its content."""


class Secret:
    """A string that does not show itself in logs, reprs or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True)
class PasswordSource:
    """The password (if any) and a description of where it came from, safe to log."""

    secret: Optional[Secret]
    origin: str  # e.g. "password_file /etc/dsrter/mqtt_password" or "no password"


def read_secret_file(path: Path) -> Secret:
    """Read one secret from a file; raises CredentialError naming the path on any problem."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise CredentialError(f"{p}: secret file not found") from None
    except PermissionError:
        raise CredentialError(f"{p}: no permission to read the secret file (run as the service user?)") from None
    if not stat.S_ISREG(st.st_mode):
        raise CredentialError(f"{p}: not a regular file")
    if st.st_size > MAX_SECRET_BYTES:
        raise CredentialError(f"{p}: {st.st_size} bytes is too large for a password file (max {MAX_SECRET_BYTES})")
    if st.st_mode & stat.S_IROTH:
        log.warning("%s: password file is readable by every user; chmod 600 (or 640 with group dsrter)", p)
    try:
        raw = p.read_bytes()
    except PermissionError:
        raise CredentialError(f"{p}: no permission to read the secret file (run as the service user?)") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialError(f"{p}: the password file is not UTF-8 text") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if "\n" in text:
        raise CredentialError(f"{p}: the password file must hold one line")
    return Secret(text)


def mqtt_password(cfg: MqttConfig, env: Mapping[str, str] | None = None) -> PasswordSource:
    """The MQTT password from ``password_file`` or ``$CREDENTIALS_DIRECTORY`` (see module doc)."""
    env = os.environ if env is None else env
    if cfg.password_file is not None:
        secret = read_secret_file(Path(cfg.password_file))
        origin = f"password_file {cfg.password_file}"
        return PasswordSource(secret if secret else None, origin if secret else f"{origin} (empty: no password)")
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        path = Path(cred_dir) / cfg.credential
        if path.exists():
            secret = read_secret_file(path)
            origin = f"systemd credential {cfg.credential!r}"
            return PasswordSource(secret if secret else None, origin if secret else f"{origin} (empty: no password)")
    return PasswordSource(None, "no password")
