"""Tracker: stable ids, short occlusions bridged, prediction between detector runs."""

from __future__ import annotations

from dsrter.edge.infer.face_detector import Detection
from dsrter.edge.streams.tracker import Tracker, iou


def det(x: float, y: float, s: float = 100.0) -> Detection:
    return Detection((x, y, s, s), 0.9, ())


def test_iou_basics():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 10, 10)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 10, 10)) - 50 / 150) < 1e-9


def test_ids_stable_while_moving_and_never_reused():
    tr = Tracker(iou_threshold=0.3, max_missed_frames=5)
    ids = None
    for i in range(30):
        tracks = tr.update([det(50 + 4 * i, 100), det(400 - 3 * i, 120, 80)])
        now = sorted(t.id for t in tracks)
        ids = ids or now
        assert now == ids
    tr.update([])  # both missed once: still alive
    assert len(tr.tracks) == 2
    for _ in range(6):
        tr.update([])
    assert tr.tracks == []
    (t,) = tr.update([det(10, 10)])
    assert t.id not in ids  # a new face never takes an old id


def test_short_occlusion_is_bridged_and_long_one_is_not():
    tr = Tracker(iou_threshold=0.3, max_missed_frames=4)
    for i in range(10):
        a, b = tr.update([det(100 + 5 * i, 100), det(400, 100)])
    ida = next(t.id for t in tr.tracks if t.box[0] < 300)
    idb = next(t.id for t in tr.tracks if t.box[0] >= 300)
    # face A hidden for 4 frames while it keeps moving; the track coasts on its velocity
    for i in range(10, 14):
        tracks = tr.update([det(400, 100)])
        coasting = next(t for t in tracks if t.id == ida)
        assert coasting.missed == i - 9 and not coasting.fresh
        assert abs(coasting.box[0] - (100 + 5 * i)) < 6  # predicted, not frozen
    tracks = tr.update([det(100 + 5 * 14, 100), det(400, 100)])
    assert {t.id for t in tracks} == {ida, idb}
    # now hide it longer than max_missed_frames: it gets a new id when it comes back
    for _ in range(6):
        tr.update([det(400, 100)])
    tracks = tr.update([det(100 + 5 * 21, 100), det(400, 100)])
    assert idb in {t.id for t in tracks} and ida not in {t.id for t in tracks}


def test_prediction_between_detections_and_fast_motion_by_centroid():
    tr = Tracker(iou_threshold=0.5, max_missed_frames=3)
    for i in range(5):
        tr.update([det(100 + 30 * i, 100)])
    (t,) = tr.predict()
    assert not t.fresh and abs(t.box[0] - 250) < 1  # 100 + 30 * 5
    (t,) = tr.predict()
    # a detection two frames later, far in IoU terms from the old box, still matches
    (t2,) = tr.update([det(100 + 30 * 7 + 20, 100)])
    assert t2.id == t.id and t2.fresh


def test_no_match_between_far_apart_faces():
    tr = Tracker()
    (a,) = tr.update([det(0, 0, 50)])
    tracks = tr.update([det(500, 300, 50)])
    assert len(tracks) == 2 and {t.id for t in tracks} == {a.id, a.id + 1}


def test_a_face_searched_by_part_of_the_passes_is_dropped_soon_after_it_leaves():
    """A small face that only one tile's pass (every 12th detector run) can see: runs that did not look
    there count no miss, so a flaky detection is bridged; once two looks missed it and more than
    max_missed_frames runs passed since its last detection, it is gone (not after 11 of its tile's visits)."""
    tr = Tracker(iou_threshold=0.3, max_missed_frames=10)
    small = det(100, 100, 40)
    present = set(range(1, 36)) | set(range(37, 49))  # detector runs 1..72; its tile looks on every 12th
    alive = []
    for run in range(1, 73):
        looked = run % 12 == 0
        tr.update([small] if looked and run in present else [], covered=lambda box, looked=looked: looked)
        alive.append([t.id for t in tr.tracks])
    first = alive[11]
    assert len(first) == 1 and all(a == first for a in alive[11:71])  # one id from run 12, through the miss at 36
    assert tr.tracks == [] and alive[70] == first  # gone at run 72: 24 runs after its last detection (run 48)
