"""Config discovery (-c, $DSRTER_CONFIG, ./config.yaml, /etc/dsrter, packaged default), shipped
models found from any folder, and native start-up chatter kept out of the log."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from dsrter.edge.config import load_config
from dsrter.edge.native_log import is_native_line, native_stderr_to_debug
from dsrter.edge.resources import find_config, shipped_model, shipped_root

REPO = Path(__file__).resolve().parents[1]


def test_search_order(tmp_path: Path):
    (tmp_path / "config.yaml").write_text("device_id: here\n")
    assert find_config("given.yaml", env={"DSRTER_CONFIG": "env.yaml"}, cwd=tmp_path) == (Path("given.yaml"), "-c")
    assert find_config(None, env={"DSRTER_CONFIG": "env.yaml"}, cwd=tmp_path) == (Path("env.yaml"), "$DSRTER_CONFIG")
    assert find_config(None, env={}, cwd=tmp_path) == (tmp_path / "config.yaml", "./config.yaml")
    path, how = find_config(None, env={}, cwd=tmp_path / "empty")
    if not Path("/etc/dsrter/config.yaml").is_file():
        assert how == "packaged default" and path == shipped_root() / "config.yaml"


def test_relative_model_paths_fall_back_to_the_shipped_models(tmp_path: Path):
    cfg_file = tmp_path / "elsewhere" / "config.yaml"
    cfg_file.parent.mkdir()
    cfg_file.write_text("face:\n  model: models/face_emotion.tflite\nspeech:\n  model: speech_emotion.tflite\n")
    cfg = load_config(cfg_file, env={})
    assert cfg.face.model == shipped_model(Path("models/face_emotion.tflite"))
    assert cfg.face.model is not None and cfg.face.model.is_file()
    assert cfg.speech.model.is_file() and cfg.speech.model.name == "speech_emotion.tflite"
    (cfg_file.parent / "models").mkdir()
    own = cfg_file.parent / "models" / "face_emotion.tflite"
    own.write_bytes(b"x")
    assert load_config(cfg_file, env={}).face.model == own  # the config's own folder comes first


def test_check_config_from_another_folder_uses_the_packaged_default(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "DSRTER_CONFIG"}
    r = subprocess.run([sys.executable, "-m", "dsrter.edge.cli", "check-config"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    if not Path("/etc/dsrter/config.yaml").is_file():
        assert "(found as packaged default)" in r.stdout
    assert "does not exist" not in r.stderr  # the shipped models were found


def test_native_lines_go_to_debug_and_the_rest_is_kept(capfd, caplog):
    caplog.set_level(logging.DEBUG, logger="dsrter.native")
    with native_stderr_to_debug():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"W0000 00:00:1796302267.187412   32124 inference_runner_litert.cc:1433] Input tensor\n")
        os.write(2, b"a Python warning that must not vanish\n")
    err = capfd.readouterr().err
    assert "a Python warning that must not vanish" in err
    assert "XNNPACK" not in err and "inference_runner" not in err
    assert sum("XNNPACK" in r.message or "inference_runner" in r.message for r in caplog.records) == 2
    assert not is_native_line("2026-12-03 12:51:02,512 INFO dsrter.daemon: config")
