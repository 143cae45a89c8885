"""`dsrter eval face` on odd inputs: float pixels, no test split, no FER+ votes; one line and exit 2 on bad data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from face_fixtures import synthetic_faces

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "face_emotion.tflite"

pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason="models/face_emotion.tflite not shipped yet")


def eval_face(npz: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dsrter.edge.cli.main", "eval", "face", "--data", str(npz), "--model", str(MODEL),
                           "--no-peer", "--corruptions", "none", "--json", str(out / "eval.json")],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


def test_float_images_in_unit_range_are_converted_and_said(tmp_path):
    images, labels, usage = synthetic_faces()
    np.savez(tmp_path / "u8.npz", images=images, labels=labels, usage=usage)
    np.savez(tmp_path / "f.npz", images=images.astype(np.float32) / 255.0, labels=labels, usage=usage)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    plain, floats = eval_face(tmp_path / "u8.npz", tmp_path / "a"), eval_face(tmp_path / "f.npz", tmp_path / "b")
    assert plain.returncode == 0 and floats.returncode == 0, floats.stderr
    assert "float images in [0, 1] converted to grey levels 0-255" in floats.stdout
    a, b = (json.loads((tmp_path / d / "eval.json").read_text()) for d in "ab")
    assert a["accuracy"] == b["accuracy"]  # same pixels after conversion, same figures
    assert a["n"] == 14 and "ferplus" not in a["sets"]  # no vote files beside a user's npz
    assert any("FER+ votes not used" in n for n in a["notes"])
    assert a["sets"]["fer2013_dedup"]["n"] == 14  # synthetic test images are noise: none repeats a Training image


@pytest.mark.parametrize("pixels, says", [
    (lambda im: im.astype(np.float32) * 2.0, "must be grey levels 0-255 (or floats 0-1)"),
    (lambda im: np.where(im > 100, np.nan, im / 255.0).astype(np.float32), "NaN or infinite"),
])
def test_bad_float_images_give_one_line(tmp_path, pixels, says):
    images, labels, usage = synthetic_faces()
    np.savez(tmp_path / "bad.npz", images=pixels(images), labels=labels, usage=usage)
    r = eval_face(tmp_path / "bad.npz", tmp_path)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr


def test_without_a_test_split_it_says_which_images_were_scored(tmp_path):
    images, labels, usage = synthetic_faces()
    np.savez(tmp_path / "nousage.npz", images=images, labels=labels)
    r = eval_face(tmp_path / "nousage.npz", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "has no 'usage' array: all 84 images are treated as test images" in r.stdout
    assert "no Training images apart from the scored ones: de-duplicated figures left out" in r.stdout
    np.savez(tmp_path / "trainonly.npz", images=images, labels=labels, usage=np.zeros_like(usage))
    r = eval_face(tmp_path / "trainonly.npz", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no PrivateTest images (84 Training): all 84 images scored" in r.stdout
    assert json.loads((tmp_path / "eval.json").read_text())["split"] == "all images"
