"""``dsrter install-service``: put the systemd service in place on a Debian-based edge box.

Steps (each printed; ``--dry-run`` prints them and changes nothing):

1. the system user ``dsrter`` in the groups ``video`` and ``audio``: a sysusers.d file applied
   with ``systemd-sysusers`` (``useradd``/``usermod`` where that is missing);
2. ``/etc/dsrter/`` (root:dsrter, 0750) with ``config.yaml`` — the repository's documented
   default with absolute model paths and the service's writable folders (spool in
   ``/var/lib/dsrter``, events file in ``/var/log/dsrter``), validated before it is written; an
   existing config is never overwritten without ``--force`` (the new default goes beside it as
   ``config.yaml.dist``);
3. ``/etc/dsrter/mqtt_password`` (0600, root): copied from ``--password-file``, else created
   empty (= no password) so that the unit's ``LoadCredential=`` always finds it;
4. ``/etc/systemd/system/dsrter.service`` from ``systemd/dsrter.service`` with the path of the
   virtual environment this command runs from (``--venv``);
5. ``systemctl daemon-reload`` and ``systemctl enable`` (``--start``: also restart it now).

``--root DIR`` installs into DIR instead of ``/`` (tests, building an SD-card image): files go
under DIR, ``systemd-sysusers --root`` and ``systemctl --root`` act on DIR only, and nothing is
reloaded or started.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Optional

import yaml

from dsrter.edge.config import ConfigError, parse_config
from dsrter.edge.resources import shipped_root

UNIT_TEMPLATE = Path("systemd") / "dsrter.service"  # in the source folder, as are config.yaml and models/
DEFAULT_CONFIG = Path("config.yaml")
TEMPLATE_VENV = "/opt/dsrter/venv"
SERVICE = "dsrter.service"
USER = "dsrter"
STATE_DIR = "/var/lib/dsrter"
LOG_DIR = "/var/log/dsrter"
ETC_DIR = "/etc/dsrter"

SYSUSERS = f"""# DSRTER edge daemon (written by dsrter install-service)
u {USER} - "DSRTER edge daemon" {STATE_DIR} /usr/sbin/nologin
m {USER} video
m {USER} audio
"""


# -- config rendering ---------------------------------------------------------------------------------
_KEY = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")


def _scalar(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z0-9_./+-]+", value) else json.dumps(value)


def set_yaml_values(text: str, values: dict[tuple[str, ...], str]) -> str:
    """Replace the values of nested keys in block-style YAML text, keeping comments and layout."""
    lines = text.splitlines(keepends=True)
    stack: list[tuple[int, str]] = []
    done: set[tuple[str, ...]] = set()
    for i, line in enumerate(lines):
        body = line.rstrip("\n")
        stripped = body.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(body) - len(stripped)
        m = _KEY.match(stripped)
        if not m:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key, rest = m.group("key"), m.group("rest")
        path = tuple(k for _, k in stack) + (key,)
        value_part, hash_at = rest, rest.find(" #")
        comment = ""
        if hash_at >= 0:
            value_part, comment = rest[:hash_at], rest[hash_at:].lstrip(" ")
        if path in values:
            new = f"{' ' * indent}{key}: {_scalar(values[path])}"
            if comment:
                col = body.index(comment, indent + len(key) + 1)  # keep comments aligned where they fit
                new = new.ljust(col - 1) + " " + comment
            lines[i] = new + "\n"
            done.add(path)
        if not value_part.strip():
            stack.append((indent, key))
    missing = set(values) - done
    if missing:
        raise ValueError("keys not found in the config text: " + ", ".join(".".join(k) for k in sorted(missing)))
    return "".join(lines)


def service_config(text: str, models: Path) -> str:
    """The repository config with absolute model paths and the service's writable folders."""
    return set_yaml_values(text, {
        ("face", "model"): str(models / "face_emotion.tflite"),
        ("face", "detector_model"): str(models / "face_detection_full_range_sparse.tflite"),
        ("speech", "model"): str(models / "speech_emotion.tflite"),
        ("overlay", "video_path"): f"{STATE_DIR}/dsrter-overlay.mp4",
        ("mqtt", "buffer", "spool_dir"): f"{STATE_DIR}/spool",
        ("events_file", "path"): f"{LOG_DIR}/events.jsonl",
    })


def render_unit(template: str, venv: Path, protect_home: Optional[str] = None) -> str:
    out = template.replace(TEMPLATE_VENV, str(venv))
    if protect_home:
        out = re.sub(r"^ProtectHome=.*$", f"ProtectHome={protect_home}", out, flags=re.M)
    return out


# -- the installer -------------------------------------------------------------------------------------
class Installer:
    def __init__(self, args: argparse.Namespace, out: Callable[[str], None] = print) -> None:
        self.a = args
        self.root = Path(args.root).resolve()
        self.chroot = self.root != Path("/")
        self.dry = bool(args.dry_run)
        self.out = out
        self.n = 0
        # systemd/dsrter.service, config.yaml and models/ come from --source, else from the package: the
        # checkout of an editable install (pip install -e /opt/dsrter), dsrter/shipped/ in a wheel
        self.source: Optional[Path] = Path(args.source) if args.source is not None else shipped_root()
        models = args.models if args.models is not None else (self.source / "models" if self.source else Path("models"))
        self.models = Path(models)

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def step(self, text: str) -> None:
        self.n += 1
        self.out(f"[{self.n}] {'(dry run) ' if self.dry else ''}{text}")

    def run(self, cmd: list[str]) -> None:
        self.out(f"    $ {' '.join(cmd)}")
        if self.dry:
            return
        res = subprocess.run(cmd, capture_output=True, text=True)
        for line in (res.stdout + res.stderr).splitlines():
            self.out(f"      {line}")
        if res.returncode != 0:
            raise SystemExit(f"dsrter install-service: '{' '.join(cmd)}' failed with exit code {res.returncode}")

    def write(self, dest: Path, data: str, mode: int, group: Optional[str] = None) -> None:
        self.out(f"    write {dest} (mode {mode:o}{', group ' + group if group else ''})")
        if self.dry:
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(data)
        os.chmod(tmp, mode)
        self._chgrp(tmp, group)
        os.replace(tmp, dest)

    def mkdir(self, dest: Path, mode: int, group: Optional[str] = None) -> None:
        self.out(f"    mkdir {dest} (mode {mode:o}{', group ' + group if group else ''})")
        if self.dry:
            return
        dest.mkdir(parents=True, exist_ok=True)
        os.chmod(dest, mode)
        self._chgrp(dest, group)

    def _chgrp(self, p: Path, group: Optional[str]) -> None:
        if group is None or self.chroot:
            return  # under --root the group exists in DIR/etc/group, not for this system
        try:
            shutil.chown(p, user=0, group=group)
        except (LookupError, PermissionError, OSError) as exc:
            self.out(f"    warning: cannot give {p} to group {group}: {exc}")

    # the steps ------------------------------------------------------------------------------------
    def preflight(self) -> None:
        if not self.dry and not self.chroot and os.geteuid() != 0:
            raise SystemExit("dsrter install-service: run as root (sudo), or try --dry-run")
        if self.source is None or not (self.source / UNIT_TEMPLATE).is_file():
            where = f"{self.source / UNIT_TEMPLATE} not found" if self.source else \
                "this installation has no shipped config.yaml and models/"
            raise SystemExit(f"dsrter install-service: {where}; pass --source with the folder that holds "
                             f"{UNIT_TEMPLATE}, {DEFAULT_CONFIG} and models/ (the repository)")
        exe = Path(self.a.venv) / "bin" / "dsrter"
        if not exe.exists():
            msg = f"{exe} does not exist; pass --venv with the virtual environment dsrter is installed in"
            if not self.dry:
                raise SystemExit(f"dsrter install-service: {msg}")
            self.out(f"warning: {msg}")

    def user(self) -> None:
        self.step(f"system user '{USER}' in the groups video and audio")
        conf = self.path("/etc/sysusers.d/dsrter.conf")
        self.write(conf, SYSUSERS, 0o644)
        if shutil.which("systemd-sysusers"):
            cmd = ["systemd-sysusers"] + ([f"--root={self.root}"] if self.chroot else []) + [str(conf)]
            self.run(cmd)
        elif self.chroot:
            self.out("    systemd-sysusers is not installed: under --root the user is left to the image's first boot")
        else:
            exists = subprocess.run(["getent", "passwd", USER], capture_output=True).returncode == 0
            if not exists:
                self.run(["useradd", "--system", "--user-group", "--home-dir", STATE_DIR, "--no-create-home",
                          "--shell", "/usr/sbin/nologin", USER])
            self.run(["usermod", "--append", "--groups", "video,audio", USER])

    def config(self) -> None:
        self.step(f"configuration in {ETC_DIR}")
        etc = self.path(ETC_DIR)
        self.mkdir(etc, 0o750, group=USER)
        if self.a.config is not None:
            text = Path(self.a.config).read_text()
            origin = str(self.a.config)
        else:
            assert self.source is not None  # preflight
            default = self.source / DEFAULT_CONFIG
            text = service_config(default.read_text(), self.models.resolve())
            origin = f"{default} (absolute model paths, spool in {STATE_DIR}, events file in {LOG_DIR})"
        try:
            cfg = parse_config(yaml.safe_load(text), source=f"{ETC_DIR}/config.yaml", base_dir=Path(ETC_DIR), env={})
        except (ConfigError, yaml.YAMLError) as exc:
            raise SystemExit(f"dsrter install-service: the config to install is not valid: {exc}")
        for m in (cfg.face.model, cfg.face.detector_model, cfg.speech.model):
            if not Path(m).exists():
                self.out(f"    warning: model {m} does not exist (yet)")
        dest = etc / "config.yaml"
        self.out(f"    from {origin}")
        if dest.exists() and not self.a.force:
            self.out(f"    {dest} exists: kept (the new default goes to config.yaml.dist; --force replaces it)")
            self.write(etc / "config.yaml.dist", text, 0o640, group=USER)
            return
        if dest.exists():
            self.out(f"    previous config kept as {dest}.bak")
            if not self.dry:
                shutil.copy2(dest, dest.with_name("config.yaml.bak"))
        self.write(dest, text, 0o640, group=USER)

    def password(self) -> None:
        self.step("MQTT password credential (loaded by systemd as 'mqtt_password')")
        dest = self.path(f"{ETC_DIR}/mqtt_password")
        if self.a.password_file is not None:
            src = Path(self.a.password_file)
            if not src.is_file():
                raise SystemExit(f"dsrter install-service: --password-file {src} not found")
            self.out(f"    copy {src} -> {dest} (content not shown)")
            if not self.dry:
                data = src.read_bytes()
                fd = os.open(dest.with_name(dest.name + ".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.chmod(dest.with_name(dest.name + ".tmp"), 0o600)
                os.replace(dest.with_name(dest.name + ".tmp"), dest)
        elif dest.exists():
            self.out(f"    {dest} exists: kept")
        else:
            self.write(dest, "", 0o600)
            self.out("    (empty = no password; put the password in this file, then restart the service)")

    def unit(self) -> None:
        self.step(f"unit /etc/systemd/system/{SERVICE}")
        venv = Path(self.a.venv).absolute()
        protect = None
        for p in (venv, self.models.resolve()):
            if str(p).startswith(("/home/", "/root/", "/run/user/")):
                protect = "read-only"
                self.out(f"    note: {p} is under a home folder: ProtectHome=read-only instead of yes "
                         "(install to /opt/dsrter to keep homes hidden from the service)")
                break
        assert self.source is not None  # preflight
        text = render_unit((self.source / UNIT_TEMPLATE).read_text(), venv, protect)
        self.out(f"    ExecStart={venv}/bin/dsrter run --config {ETC_DIR}/config.yaml")
        self.write(self.path(f"/etc/systemd/system/{SERVICE}"), text, 0o644)

    def enable(self) -> None:
        self.step("enable the service")
        if self.chroot:
            self.run(["systemctl", f"--root={self.root}", "enable", SERVICE])
            return
        self.run(["systemctl", "daemon-reload"])
        self.run(["systemctl", "enable", SERVICE])
        if self.a.start:
            self.run(["systemctl", "restart", SERVICE])

    def all(self) -> None:
        self.preflight()
        self.user()
        self.config()
        self.password()
        self.unit()
        self.enable()
        self.out("")
        self.out("done." if not self.dry else "dry run: nothing was changed.")
        self.out(f"  edit {ETC_DIR}/config.yaml (mqtt.host, device_id), check it: dsrter check-config {ETC_DIR}/config.yaml")
        self.out(f"  MQTT password: {ETC_DIR}/mqtt_password (mode 600), then: systemctl restart dsrter")
        if not self.a.start:
            self.out("  start: systemctl start dsrter     logs: journalctl -u dsrter -f     state: systemctl status dsrter")
