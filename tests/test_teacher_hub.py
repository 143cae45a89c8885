"""`dsrter train distill --teacher HUB_ID`: a hub id is fetched where the hub can be reached; where it
cannot, one clear line and exit 2 (no traceback); a local folder is used as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsrter.train.distill import TeacherUnavailable, resolve_teacher

pytest.importorskip("huggingface_hub")


def test_local_folder_is_used_as_it_is(tmp_path):
    assert resolve_teacher(tmp_path) == tmp_path
    assert resolve_teacher("./some/relative/folder").as_posix() == "some/relative/folder"


def test_unreachable_hub_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as on a machine without the hub, whatever this one has
    with pytest.raises(TeacherUnavailable, match="facebook/wav2vec2-base.*local folder"):
        resolve_teacher("facebook/wav2vec2-base")


def test_cli_says_so_and_exits_2(tmp_path, ravdess_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    dsrter = Path(sys.executable).parent / "dsrter"
    r = subprocess.run([str(dsrter), "train", "distill", "--teacher", "facebook/wav2vec2-base",
                        "--data", str(ravdess_dir), "--out", str(tmp_path / "student"), "--max-clips", "2"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "facebook/wav2vec2-base" in ln]
    assert len(lines) == 1 and "Hugging Face hub" in lines[0]
