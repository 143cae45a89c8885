"""Fusion (confidence weights, staleness) and attribution of speech to a face."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dsrter.edge.streams.events import FaceEvent, SpeechEvent
from dsrter.edge.streams.fusion import Attributor, Fuser, LipMotion, decay
from dsrter.edge.labels import LABEL_INDEX
from dsrter.edge.streams.tracker import Track


def probs(name: str, p: float = 0.8) -> np.ndarray:
    v = np.full(7, (1 - p) / 6, np.float32)
    v[LABEL_INDEX[name]] = p
    return v


def face(name: str, p: float = 0.8, tid: int = 1) -> FaceEvent:
    s = probs(name, p)
    return FaceEvent(0.0, tid, (0.1, 0.1, 0.2, 0.2), s, name, float(s.max()))


def speech(name: str | None, end: float, p: float = 0.8) -> SpeechEvent:
    if name is None:
        return SpeechEvent(end, False, None, None, 0.0, (end - 2, end))
    s = probs(name, p)
    return SpeechEvent(end, True, s, name, float(s.max()), (end - 2, end))


def test_decay():
    assert decay(0, 1.5, 4) == 1.0
    assert decay(1.5, 1.5, 4) == pytest.approx(0.5)
    assert decay(4.01, 1.5, 4) == 0.0
    assert decay(-1, 1.5, 4) == 1.0  # clock skew never boosts


def test_face_only_speech_only_and_none():
    f = Fuser(0.6, 0.4, 1.5, 4.0)
    ev = f.fuse(10.0, face("happy"), 10.0, None, 1, "only_face")
    assert ev.label == "happy" and ev.face_weight == 1.0 and ev.speech_weight == 0.0 and ev.track_id == 1
    ev = f.fuse(10.0, None, None, speech("angry", 10.0), None, "none")
    assert ev.label == "angry" and ev.speech_weight == 1.0
    ev = f.fuse(10.0, None, None, speech(None, 10.0))  # silence is not evidence
    assert ev.label is None and ev.scores is None and ev.confidence == 0.0


def test_confidence_weighting_and_staleness():
    f = Fuser(0.5, 0.5, 1.0, 3.0)
    # equal base weights: the more confident stream wins
    ev = f.fuse(5.0, face("happy", 0.6), 5.0, speech("sad", 5.0, 0.95))
    assert ev.label == "sad" and ev.speech_weight > ev.face_weight
    # the same speech two half-lives old counts a quarter: the face wins
    ev = f.fuse(7.0, face("happy", 0.6), 7.0, speech("sad", 5.0, 0.95))
    assert ev.label == "happy"
    assert ev.speech_weight == pytest.approx((0.95 * 0.25) / (0.95 * 0.25 + 0.6), rel=1e-3)
    # stale speech is ignored entirely
    ev = f.fuse(8.5, face("happy", 0.6), 8.5, speech("sad", 5.0, 0.95))
    assert ev.speech_weight == 0.0 and ev.face_weight == 1.0
    assert abs(float(ev.scores.sum()) - 1.0) < 1e-4


def test_changed_flag_follows_fused_label():
    f = Fuser()
    assert f.fuse(0, face("happy"), 0, None).changed
    assert not f.fuse(0.1, face("happy"), 0.1, None).changed
    assert f.fuse(0.2, face("sad", 0.9), 0.2, None).changed


def test_fused_label_holds_through_a_near_tie():
    f = Fuser(hysteresis=0.05)
    near = probs("happy", 0.40)
    near[LABEL_INDEX["neutral"]] = 0.38
    assert f.fuse(0, face("happy", 0.41), 0, None, 1, "only_face").label == "happy"
    # neutral leads by 0.02 < 0.05: the shown label stays, its own score is reported
    tie = near.copy()
    tie[LABEL_INDEX["neutral"]], tie[LABEL_INDEX["happy"]] = 0.40, 0.38
    ev = f.fuse(0.1, FaceEvent(0.1, 1, (0.1, 0.1, 0.2, 0.2), tie, "happy", 0.38), 0.1, None, 1, "only_face")
    assert ev.label == "happy" and ev.confidence == pytest.approx(0.38) and not ev.changed
    # a clear lead switches
    assert f.fuse(0.2, face("neutral", 0.6), 0.2, None, 1, "only_face").label == "neutral"
    # another person: the new face's own best label at once, whatever was shown
    ev = f.fuse(0.3, FaceEvent(0.3, 2, (0.1, 0.1, 0.2, 0.2), near, "happy", 0.40), 0.3, None, 2, "only_face")
    assert ev.label == "happy" and ev.changed
    # nothing to fuse forgets the shown label
    assert f.fuse(5.0, None, None, None).label is None
    assert f.fuse(5.1, FaceEvent(5.1, 2, (0.1, 0.1, 0.2, 0.2), tie, "neutral", 0.40), 5.1, None, 2, "only_face").label == "neutral"


def _track(tid: int, x: float, y: float, s: float) -> Track:
    kps = ((x + 0.3 * s, y + 0.35 * s), (x + 0.7 * s, y + 0.35 * s), (x + 0.5 * s, y + 0.55 * s),
           (x + 0.5 * s, y + 0.75 * s), (x, y + 0.4 * s), (x + s, y + 0.4 * s))
    return Track(tid, (x, y, s, s), 0.9, kps)


def test_attribution_fallbacks():
    at = Attributor(None)
    assert at.choose([]) == (None, "none")
    assert at.choose([_track(3, 0, 0, 50)]) == (3, "only_face")
    big, small = _track(1, 0, 0, 200), _track(2, 300, 0, 120)
    assert at.choose([small, big]) == (1, "largest_face")
    # nearly the same size: the previous choice sticks instead of flickering
    almost = _track(2, 300, 0, 195)
    assert at.choose([almost, big]) == (1, "largest_face")


def _scene(rng, mouth_open: float) -> np.ndarray:
    img = np.full((360, 640), 90, np.uint8)
    for x, s in ((60, 200), (380, 150)):
        cv2.rectangle(img, (x, 60), (x + s, 60 + s), 170, -1)
        for ex in (0.3, 0.7):
            cv2.circle(img, (int(x + ex * s), int(60 + 0.35 * s)), int(0.06 * s), 40, -1)
        cv2.ellipse(img, (int(x + 0.5 * s), int(60 + 0.75 * s)), (int(0.15 * s), 2), 0, 0, 360, 60, -1)
    # speaker: the small face on the right opens and closes its mouth
    s = 150
    cv2.ellipse(img, (int(380 + 0.5 * s), int(60 + 0.75 * s)), (int(0.15 * s), max(1, int(mouth_open * 0.12 * s))),
                0, 0, 360, 20, -1)
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("talking", [True, False])
def test_lip_motion_finds_the_speaking_face_not_the_largest(talking):
    rng = np.random.default_rng(0)
    lip = LipMotion()
    at = Attributor(lip)
    tracks = [_track(1, 60, 60, 200), _track(2, 380, 60, 150)]
    result = None
    for i in range(30):
        t = i / 30
        opening = (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) if talking else 0.0
        lip.observe(_scene(rng, opening), tracks, t)
        result = at.choose(tracks)
    if talking:
        assert result == (2, "speaking_face")
        assert lip.activity(2) > lip.min_activity > (lip.activity(1) or 0.0)
    else:
        assert result == (1, "largest_face")
