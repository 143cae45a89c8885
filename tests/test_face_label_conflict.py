"""The bound on meeting the FER+ and the original FER-2013 targets together (train/face_label_conflict.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from dsrter.train.face_label_conflict import FER_TARGET, FERPLUS_TARGET, LabelSets, label_sets, main, model_shares
from face_fixtures import write_npz

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_counts_and_shares_on_a_hand_made_split():
    fer = np.array([0, 1, 2, 3, 4, 5, 6, 0, 1, 2])
    plus = np.array([0, 1, 2, 3, 6, 6, -1, -1, 3, 2])  # agree: 0,1,2,3,9; differ: 4,5,8; left out: 6,7
    sets = label_sets(fer, plus)
    assert (sets.images, sets.kept, sets.agree, sets.differ, sets.left_out) == (10, 8, 5, 3, 2)
    pred = np.array([0, 1, 5, 3, 6, 5, 6, 1, 1, 2])
    m = model_shares("m", pred, fer, plus)
    assert m.agree == pytest.approx(4 / 5)  # wrong on image 2
    assert m.differ_ferplus == pytest.approx(1 / 3)  # image 4 answered 6 (FER+)
    assert m.differ_fer == pytest.approx(2 / 3)  # images 5 and 8 answered with the original label
    assert m.left_out == pytest.approx(1 / 2)  # image 6 right, image 7 wrong
    assert m.ferplus == pytest.approx(5 / 8) and m.fer == pytest.approx(7 / 10)


def test_the_bound_is_reached_by_the_best_split_of_the_differing_images_and_no_further():
    sets = LabelSets(images=100, kept=90, agree=60, differ=30)
    # a = 0.9: 54 agreeing images right; FER+ 0.7 needs 63, so 9 differing images go to FER+, 21 to FER-2013
    assert sets.best_fer(0.7, 0.9, 0.5) == pytest.approx((54 + 21 + 5) / 100)
    assert np.isnan(sets.best_fer(0.99, 0.9, 0.5))  # 89.1 FER+ answers needed, 54 + 30 available
    # the agreement share it names is exactly the one at which both targets are met, and only just
    a = sets.needed_agreement(0.5, t=0.7, target=0.75)
    assert sets.best_fer(0.7, a, 0.5) == pytest.approx(0.75)
    assert sets.best_fer(0.7, a - 0.01, 0.5) < 0.75


def test_the_shipped_model_on_publictest_matches_its_card_and_falls_short_of_both_targets(fer_npz, tmp_path, capsys):
    png = tmp_path / "bound.png"
    assert main(["--data", str(fer_npz), "--model", str(MODELS / "face_emotion.tflite"), "--split", "PublicTest", "--no-peer", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    # the split's own facts (the FER+ data README: PublicTest agreement 67.0%)
    assert "FER+ keeps 3186: the labels agree on 2136 (0.670) and differ on 1050; 403 only the original labels score" in out
    card = json.loads((MODELS / "face_emotion.json").read_text())["inference"]["publictest_int8_accuracy"]
    rows = {m.group(1): [float(v) for v in m.group(2).split()] for m in re.finditer(r"^(dsrter int8(?: \+flip)?)\s+([\d. ]+)$", out, re.M)}
    assert set(rows) == {"dsrter int8", "dsrter int8 +flip"}
    assert rows["dsrter int8"][0] == pytest.approx(card["plain"], abs=5e-4)
    assert rows["dsrter int8 +flip"][0] == pytest.approx(card["hflip_average"], abs=5e-4)
    for ferplus, fer, agree, _, _, _, best, needed in rows.values():
        assert ferplus >= FERPLUS_TARGET - 0.01 and fer < FER_TARGET  # where the model stands
        assert best < FER_TARGET and needed > agree  # no split of the differing images closes the gap
    assert png.is_file() and png.stat().st_size > 10_000


def test_without_the_ferplus_votes_it_is_one_line_and_exit_2(tmp_path, capsys):
    npz = write_npz(tmp_path / "fer2013.npz")
    assert main(["--data", str(npz), "--no-peer"]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("error:") and "FER+ file not found" in out[0]


def test_the_readme_states_the_bound_the_command_prints(fer_npz, capsys):
    assert main(["--data", str(fer_npz), "--model", str(MODELS / "face_emotion.tflite"), "--split", "PublicTest", "--no-peer"]) == 0
    out = capsys.readouterr().out
    flip = next(line for line in out.splitlines() if line.startswith("dsrter int8 +flip")).split()
    agree, best, needed = flip[5], flip[9], flip[10]
    limit = re.search(r"need a >= ([\d.]+)", out).group(1)
    counts = re.search(r"FER\+ keeps (\d+): the labels agree on (\d+)", out)
    readme = " ".join((MODELS.parent / "README.md").read_text().split())
    for fragment in (
        f"agree on {int(counts.group(2)):,} of the {int(counts.group(1)):,} images FER+ keeps",
        f"right on {agree} of those (mirror-averaged), which allows at most {best} on the original labels",
        f"need {needed} of them right ({limit} even if every image",
    ):
        assert fragment in readme


def test_a_missing_or_damaged_model_is_one_line_and_exit_2(tmp_path, capsys):
    npz = write_npz(tmp_path / "fer2013.npz")
    n = len(np.load(npz)["labels"])
    votes = np.zeros((n, 10), np.uint8)
    votes[:, 0] = 10  # every face: ten neutral votes
    np.save(tmp_path / "ferplus_votes.npy", votes)
    np.save(tmp_path / "ferplus_valid.npy", np.ones(n, bool))
    damaged = tmp_path / "face_emotion.tflite"
    damaged.write_bytes((MODELS / "face_emotion.tflite").read_bytes()[:5000])
    (tmp_path / "face_emotion.json").write_text((MODELS / "face_emotion.json").read_text())
    for model in (tmp_path / "missing.tflite", damaged):
        assert main(["--data", str(npz), "--model", str(model), "--no-peer"]) == 2
        out = capsys.readouterr().out.strip().splitlines()
        assert len(out) == 1 and out[0].startswith("error:") and model.name in out[0]
