"""Smoothing: one-frame flips never show; a real change shows after min_hold, flagged once."""

from __future__ import annotations

import numpy as np

from dsrter.edge.labels import LABEL_INDEX
from dsrter.edge.streams.smoothing import LabelSmoother, TrackSmoothers


def onehot(name: str, p: float = 0.9) -> np.ndarray:
    v = np.full(7, (1 - p) / 6, np.float32)
    v[LABEL_INDEX[name]] = p
    return v


def test_one_frame_flips_never_show():
    sm = LabelSmoother(alpha=0.35, hysteresis=0.1, min_hold=3)
    shown = []
    for i in range(60):
        p = onehot("surprise", 1.0) if i % 5 == 4 else onehot("happy")  # a flip every 5th frame
        r = sm.update(p)
        shown.append(r.index)
        assert r.changed == (i == 0)
    assert set(shown) == {LABEL_INDEX["happy"]}


def test_even_two_frame_flips_do_not_show_with_default_hold():
    sm = LabelSmoother(alpha=0.35, hysteresis=0.1, min_hold=3)
    for i in range(40):
        r = sm.update(onehot("angry", 1.0) if i % 10 in (5, 6) else onehot("neutral"))
        assert r.index == LABEL_INDEX["neutral"]


def test_sustained_change_shows_once_after_min_hold():
    sm = LabelSmoother(alpha=0.5, hysteresis=0.1, min_hold=3)
    for _ in range(10):
        sm.update(onehot("sad"))
    changes = []
    for i in range(10):
        r = sm.update(onehot("happy"))
        changes.append(r.changed)
    assert r.index == LABEL_INDEX["happy"]
    assert changes.count(True) == 1
    first = changes.index(True)
    assert first >= 2  # needed min_hold leading updates


def test_hysteresis_keeps_a_near_tie_stable():
    sm = LabelSmoother(alpha=1.0, hysteresis=0.1, min_hold=1)
    a = np.array([0.46, 0, 0, 0.44, 0, 0, 0.10], np.float32)
    b = np.array([0.44, 0, 0, 0.46, 0, 0, 0.10], np.float32)
    sm.update(a)
    for i in range(10):
        assert sm.update(b if i % 2 == 0 else a).index == 0


def test_scores_stay_probabilities_and_tracks_are_independent():
    ts = TrackSmoothers(alpha=0.3, hysteresis=0.1, min_hold=2)
    rng = np.random.default_rng(0)
    for _ in range(20):
        for tid in (1, 2):
            p = rng.dirichlet(np.ones(7)).astype(np.float32)
            r = ts.update(tid, p)
            assert abs(float(r.scores.sum()) - 1.0) < 1e-4
    ts.update(3, onehot("fear"))
    ts.keep_only([3])
    assert ts.current(1) is None and ts.current(3).index == LABEL_INDEX["fear"]
