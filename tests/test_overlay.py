"""draw_overlay: layout, colours, odd inputs, and example renders to look at."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dsrter.edge.streams.events import FaceEvent, FusedEvent, SpeechEvent
from dsrter.edge.labels import LABELS
from dsrter.edge.display.image import to_bgr
from dsrter.edge.display.overlay import DIM_BG, EMOTION_BGR, draw_overlay, emotion_color


def scores(label, conf):
    v = np.full(7, (1 - conf) / 6)
    v[LABELS.index(label)] = conf
    return v


def face(track, box, label="happy", conf=0.8):
    return FaceEvent(timestamp=1.0, track_id=track, box=box, scores=scores(label, conf), label=label, confidence=conf)


def speech(label="sad", conf=0.6, track=None, speaking=True):
    return SpeechEvent(timestamp=1.0, speaking=speaking, scores=scores(label, conf) if speaking else None,
                       label=label if speaking else None, confidence=conf if speaking else 0.0, track_id=track)


def fused(label="angry", conf=0.7):
    return FusedEvent(timestamp=1.0, label=label, scores=scores(label, conf), confidence=conf,
                      face_weight=0.6, speech_weight=0.4)


def has_color(region: np.ndarray, bgr, tol=2) -> bool:
    return bool(np.any(np.all(np.abs(region.astype(int) - np.array(bgr)) <= tol, axis=-1)))


def background(h, w, c=3, level=90):
    shape = (h, w) if c == 0 else (h, w, c)
    return np.full(shape, level, np.uint8)


@pytest.mark.parametrize("shape", [(480, 800), (480, 800, 1), (480, 800, 3), (480, 800, 4), (37, 51, 3), (1, 1, 3),
                                   (721, 1279, 4)])
def test_any_size_and_channel_count_gives_bgr_and_input_is_untouched(shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    before = img.copy()
    out = draw_overlay(img, [face(1, (0.2, 0.2, 0.4, 0.5)), face(2, (0.9, 0.9, 0.3, 0.3), "fear")], speech(track=2),
                       fused(), 12.5, ["camera: reopening"])
    assert np.array_equal(img, before)
    assert out.shape == shape[:2] + (3,) and out.dtype == np.uint8
    assert out is not img and not np.shares_memory(out, img)


def test_nothing_to_draw_returns_a_bgr_copy():
    img = background(60, 80, 4)
    img[..., 3] = 7
    out = draw_overlay(img, [], None, None, None)
    assert np.array_equal(out, background(60, 80, 3))
    gray = background(60, 80, 0)
    assert np.array_equal(draw_overlay(gray, [], None, None, None), background(60, 80, 3))
    assert to_bgr(np.full((4, 4), 0.5, np.float32))[0, 0].tolist() == [127, 127, 127]


def test_box_label_above_and_speech_below_the_attributed_face():
    H, W = 720, 1280
    img = background(H, W)
    f1 = face(1, (0.10, 0.30, 0.20, 0.30), "happy")
    f2 = face(2, (0.55, 0.30, 0.30, 0.40), "fear")  # larger
    out = draw_overlay(img, [f1, f2], speech("sad", track=1), None, None)
    x0, y0, x1, y1 = int(0.10 * (W - 1)), int(0.30 * (H - 1)), int(0.30 * (W - 1)), int(0.60 * (H - 1))
    # the box edge is in the face colour
    assert has_color(out[y0 - 1:y0 + 2, x0 + 20:x1 - 20], EMOTION_BGR["happy"])
    # the face label chip sits just above the box, the speech chip just below it
    assert has_color(out[y0 - 30:y0 - 3, x0:x0 + 60], EMOTION_BGR["happy"])
    assert has_color(out[y1 + 4:y1 + 30, x0:x0 + 60], EMOTION_BGR["sad"])
    X0, Y1 = int(0.55 * (W - 1)), int(0.70 * (H - 1))
    assert not has_color(out[Y1 + 4:Y1 + 40, X0:X0 + 120], EMOTION_BGR["sad"])  # not below face 2


def test_speech_without_track_goes_below_the_largest_face():
    H, W = 480, 800
    small = face(1, (0.05, 0.2, 0.15, 0.2), "happy")
    large = face(2, (0.5, 0.2, 0.4, 0.5), "neutral")
    out = draw_overlay(background(H, W), [small, large], speech("angry", track=None), None, None)
    Y1, X0 = int(0.7 * (H - 1)), int(0.5 * (W - 1))
    assert has_color(out[Y1 + 3:Y1 + 30, X0:X0 + 80], EMOTION_BGR["angry"])
    y1s = int(0.4 * (H - 1))
    assert not has_color(out[y1s + 3:y1s + 30, 40:160], EMOTION_BGR["angry"])
    # a track id that is not on screen also falls back to the largest face
    out = draw_overlay(background(H, W), [small, large], speech("angry", track=9), None, None)
    assert has_color(out[Y1 + 3:Y1 + 30, X0:X0 + 80], EMOTION_BGR["angry"])


def test_no_speech_is_dimmed_and_fused_fps_status_in_a_corner():
    H, W = 480, 800
    f = face(1, (0.4, 0.3, 0.3, 0.4), "surprise")
    out = draw_overlay(background(H, W), [f], speech(speaking=False), fused("disgust"), 29.9, ["microphone: missing"])
    y1, x0 = int(0.7 * (H - 1)), int(0.4 * (W - 1))
    assert has_color(out[y1 + 3:y1 + 30, x0:x0 + 80], DIM_BG)
    corner = out[: H // 4, : W // 3]
    assert has_color(corner, EMOTION_BGR["disgust"])  # overall emotion chip
    assert corner.mean() < 90  # the panel darkens what is behind it


def test_corner_panel_moves_off_a_face_in_the_top_left():
    H, W = 480, 800
    f = face(1, (0.0, 0.0, 0.35, 0.4), "happy")
    out = draw_overlay(background(H, W), [f], None, fused("sad"), 10.0)
    assert not has_color(out[: H // 2, : W // 2], EMOTION_BGR["sad"])
    assert has_color(out, EMOTION_BGR["sad"])


def test_speech_without_faces_goes_to_the_panel():
    out = draw_overlay(background(480, 800), [], speech("fear"), None, None)
    assert has_color(out[:80, :300], EMOTION_BGR["fear"])


def test_boxes_outside_the_frame_and_missing_labels_do_not_crash():
    faces = [face(1, (-0.5, -0.5, 0.3, 0.3)), face(2, (0.9, 0.95, 0.5, 0.5)), face(3, (0.2, 0.2, 0.0, 0.0))]
    faces[2].label = None
    out = draw_overlay(background(100, 100), faces, speech(track=2), FusedEvent(1.0, None, None, 0.0, 0, 0), 0.0)
    assert out.shape == (100, 100, 3)
    assert emotion_color(None) == emotion_color("unknown")


def test_text_scales_with_the_frame_height():
    def chip_height(H, W):
        out = draw_overlay(background(H, W), [face(1, (0.3, 0.4, 0.3, 0.3), "happy")], None, None, None)
        mask = np.all(out == EMOTION_BGR["happy"], axis=-1)
        rows = np.where(mask[: int(0.4 * H)].any(axis=1))[0]
        return rows.max() - rows.min() + 1

    h480, h1080 = chip_height(480, 800), chip_height(1080, 1920)
    assert 18 <= h480 <= 40 and 36 <= h1080 <= 80 and h1080 > 1.5 * h480


def test_render_examples(tmp_path):
    """Writes the look-at-me renders (1920x1080, 1280x720, 800x480) next to the test's tmp dir."""
    rng = np.random.default_rng(1)
    base = cv2.GaussianBlur(rng.integers(40, 200, (270, 480, 3), dtype=np.uint8), (0, 0), 8)
    faces = [face(1, (0.08, 0.22, 0.33, 0.45), "fear", 0.81), face(2, (0.55, 0.05, 0.30, 0.42), "surprise", 0.64),
             face(3, (0.70, 0.62, 0.22, 0.36), "happy", 0.9)]
    for W, H in [(1920, 1080), (1280, 720), (800, 480)]:
        out = draw_overlay(cv2.resize(base, (W, H)), faces, speech("sad", 0.58, track=1), fused("fear", 0.66), 24.6,
                           ["microphone: missing"])
        assert cv2.imwrite(str(tmp_path / f"overlay_{W}x{H}.png"), out)
    assert len(list(tmp_path.glob("overlay_*.png"))) == 3
