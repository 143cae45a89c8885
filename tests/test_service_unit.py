"""systemd/dsrter.service (required keys, systemd-analyze verify) and `dsrter install-service`."""

from __future__ import annotations

import argparse
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dsrter.edge.cli import install_service as install_cli
from dsrter.edge.tools import install_service as inst
from dsrter.edge.config import parse_config

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "dsrter.service"
VENV = Path(sys.prefix)


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (keys may repeat), as systemd reads them (no continuation lines used)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = out.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"key outside a section: {line}"
        assert "=" in line, f"not a key=value line: {line}"
        key, value = line.split("=", 1)
        section.setdefault(key.strip(), []).append(value.strip())
    return out


def one(unit, section: str, key: str) -> str:
    values = unit[section].get(key)
    assert values, f"[{section}] {key}= is missing"
    return values[-1]


def test_unit_has_the_required_keys():
    u = parse_unit(UNIT.read_text())
    assert set(u) == {"Unit", "Service", "Install"}
    s = "Service"
    assert one(u, s, "Type") == "notify"
    assert one(u, s, "NotifyAccess") == "main"
    assert one(u, s, "Restart") == "on-failure"
    assert int(one(u, s, "WatchdogSec").rstrip("s")) >= 10
    assert int(one(u, s, "TimeoutStopSec").rstrip("s")) > 5  # > the sink's 5 s stop budget
    assert one(u, s, "User") == "dsrter"
    assert set(one(u, s, "SupplementaryGroups").split()) >= {"video", "audio"}
    exec_start = one(u, s, "ExecStart")
    assert exec_start.startswith(inst.TEMPLATE_VENV + "/bin/dsrter run") and "--config /etc/dsrter/config.yaml" in exec_start
    assert one(u, s, "LoadCredential") == "mqtt_password:/etc/dsrter/mqtt_password"
    for key, want in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                      "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
                      "RestrictNamespaces": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes"}.items():
        assert one(u, s, key) == want, key
    fams = set(one(u, s, "RestrictAddressFamilies").split())
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= fams and "AF_PACKET" not in fams
    assert one(u, s, "CapabilityBoundingSet") == ""
    assert one(u, s, "StateDirectory") == "dsrter" and one(u, s, "LogsDirectory") == "dsrter"
    assert "PrivateDevices" not in u[s] and "DynamicUser" not in u[s]  # camera/mic need /dev and the groups
    assert one(u, "Install", "WantedBy") == "multi-user.target"
    assert "network-online.target" in one(u, "Unit", "After")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    unit = tmp_path / "dsrter.service"
    unit.write_text(inst.render_unit(UNIT.read_text(), VENV))  # ExecStart must exist for verify
    res = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (res.stdout + res.stderr).splitlines() if "dsrter.service" in line]
    assert res.returncode == 0 and not problems, res.stdout + res.stderr


def args_for(root: Path, *extra: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    install_cli.add_arguments(p)
    return p.parse_args(["--root", str(root), "--venv", str(VENV), *extra])


def run_installer(root: Path, *extra: str) -> list[str]:
    lines: list[str] = []
    inst.Installer(args_for(root, *extra), out=lines.append).all()
    return lines


def test_dry_run_prints_every_step_and_changes_nothing(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    out = run_installer(root, "--dry-run")
    text = "\n".join(out)
    for needle in ("system user 'dsrter'", "sysusers.d/dsrter.conf", "configuration in /etc/dsrter",
                   "etc/dsrter/config.yaml", "mqtt_password", "etc/systemd/system/dsrter.service",
                   "systemctl", "enable dsrter.service", "dry run: nothing was changed"):
        assert needle in text, needle
    assert [line.split("]")[0] for line in out if line.startswith("[")] == ["[1", "[2", "[3", "[4", "[5"]
    assert list(root.rglob("*")) == []


def test_dry_run_through_the_cli(tmp_path):
    exe = VENV / "bin" / "dsrter"
    if not exe.exists():
        pytest.skip("the dsrter console script is not installed in this environment")
    res = subprocess.run([str(exe), "install-service", "--dry-run", "--root", str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "[5] (dry run) enable the service" in res.stdout and not any(tmp_path.iterdir())


def test_install_into_a_root_directory(tmp_path):
    root = tmp_path / "root"
    pw = tmp_path / "secret"
    pw.write_text("edge-password-99\n")
    out = run_installer(root, "--password-file", str(pw))
    text = "\n".join(out)
    assert "edge-password-99" not in text

    unit = root / "etc/systemd/system/dsrter.service"
    u = parse_unit(unit.read_text())
    assert one(u, "Service", "ExecStart") == f"{VENV}/bin/dsrter run --config /etc/dsrter/config.yaml"

    cfg_path = root / "etc/dsrter/config.yaml"
    cfg = parse_config(yaml.safe_load(cfg_path.read_text()), base_dir=cfg_path.parent, env={})
    assert cfg.face.model.is_absolute() and cfg.face.model.name == "face_emotion.tflite"
    assert str(cfg.mqtt.buffer.spool_dir) == "/var/lib/dsrter/spool"
    assert str(cfg.events_file.path) == "/var/log/dsrter/events.jsonl"
    assert "# V4L2 index" in cfg_path.read_text()  # the documented comments are kept
    assert stat.S_IMODE(cfg_path.stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "etc/dsrter").stat().st_mode) == 0o750

    cred = root / "etc/dsrter/mqtt_password"
    assert cred.read_text() == "edge-password-99\n" and stat.S_IMODE(cred.stat().st_mode) == 0o600
    assert "u dsrter" in (root / "etc/sysusers.d/dsrter.conf").read_text()
    if shutil.which("systemd-sysusers"):
        passwd = (root / "etc/passwd").read_text()
        assert any(line.startswith("dsrter:") and line.endswith(":/usr/sbin/nologin") for line in passwd.splitlines())
        groups = {line.split(":")[0]: line.split(":")[3].split(",") for line in (root / "etc/group").read_text().splitlines()}
        assert "dsrter" in groups["video"] and "dsrter" in groups["audio"]
    if shutil.which("systemctl"):
        link = root / "etc/systemd/system/multi-user.target.wants/dsrter.service"
        assert link.is_symlink()

    # again: the edited config is kept, the new default goes beside it; --force replaces (with .bak)
    cfg_path.write_text(cfg_path.read_text().replace("device_id: dsrter ", "device_id: kitchen "))
    out2 = run_installer(root)
    assert "kitchen" in cfg_path.read_text() and (root / "etc/dsrter/config.yaml.dist").exists()
    assert cred.read_text() == "edge-password-99\n"  # an existing credential is kept
    run_installer(root, "--force")
    assert "kitchen" not in cfg_path.read_text() and "kitchen" in (root / "etc/dsrter/config.yaml.bak").read_text()
    assert any("exists: kept" in line for line in out2)


def test_home_checkouts_get_protecthome_read_only():
    text = inst.render_unit(UNIT.read_text(), Path("/home/pi/dsrter/.venv"), "read-only")
    u = parse_unit(text)
    assert one(u, "Service", "ProtectHome") == "read-only"
    assert one(u, "Service", "ExecStart").startswith("/home/pi/dsrter/.venv/bin/dsrter run")


def test_set_yaml_values_keeps_layout_and_rejects_unknown_keys():
    text = "a:\n  b: 1          # note\n  c:\n    d: x\ne: 2\n"
    out = inst.set_yaml_values(text, {("a", "b"): "/p q", ("a", "c", "d"): "y", ("e",): "3"})
    assert out == 'a:\n  b: "/p q"     # note\n  c:\n    d: y\ne: 3\n'
    assert yaml.safe_load(out) == {"a": {"b": "/p q", "c": {"d": "y"}}, "e": 3}
    with pytest.raises(ValueError, match="a.x"):
        inst.set_yaml_values(text, {("a", "x"): "1"})


def test_the_unit_config_and_models_come_from_source_or_the_package(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    default = "\n".join(run_installer(root, "--dry-run"))
    assert f"from {REPO / 'config.yaml'}" in default  # the package's shipped files (here: the checkout)
    src = tmp_path / "release"
    (src / "systemd").mkdir(parents=True)
    (src / "systemd" / "dsrter.service").write_text(UNIT.read_text())
    (src / "config.yaml").write_text((REPO / "config.yaml").read_text())
    out = "\n".join(run_installer(root, "--dry-run", "--source", str(src)))
    assert f"from {src / 'config.yaml'}" in out
    with pytest.raises(SystemExit, match="--source"):
        run_installer(root, "--dry-run", "--source", str(tmp_path / "empty"))
