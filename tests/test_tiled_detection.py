"""Small faces: the full-range detector on the whole frame and on tiles in turn, on real faces and frames."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from dsrter.edge.config import ConfigError, parse_config
from dsrter.edge.infer.face_detector import FaceDetector
from dsrter.edge.infer.tiled_detection import Region, TiledDetector, tile_grid
from dsrter.edge.streams.tracker import iou
from dsrter.train.face_footage_check import ANNOTATION, annotated_frames, match

REPO = Path(__file__).resolve().parents[1]
FULL = REPO / "models" / "face_detection_full_range_sparse.tflite"


@pytest.fixture(scope="module")
def full():
    d = FaceDetector(FULL)
    yield d
    d.close()


def first_frame(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return next(iter(c.decode(video=0))).to_ndarray(format="bgr24")


def all_passes(tiled: TiledDetector, image: np.ndarray) -> list:
    """Detections of one whole cycle of passes (whole frame and every tile); one per face (the best
    scored of those overlapping by IoU > 0.3), as the tracker would keep them."""
    n = 2 * len(tile_grid(image.shape[1], image.shape[0], tiled.columns, tiled.rows, tiled.overlap)) if tiled.tiled else 1
    found = sorted((d for _ in range(n) for d in tiled.detect(image)), key=lambda d: -d.score)
    kept: list = []
    for d in found:
        if all(iou(d.box, k.box) <= 0.3 for k in kept):
            kept.append(d)
    return kept


def test_tile_grid_overlaps_and_covers_the_frame():
    tiles = tile_grid(640, 480, 2, 1, 0.25)
    assert [(r.x, r.y, r.h) for r in tiles] == [(0, 0, 480), (tiles[1].x, 0, 480)]
    assert tiles[1].x + tiles[1].w == 640 and tiles[0].w == tiles[1].w
    assert tiles[0].w - tiles[1].x >= 0.25 * tiles[0].w  # a face narrower than this lies whole in one tile
    assert len(tile_grid(640, 480, 3, 2, 0.25)) == 6 and tile_grid(640, 480, 1, 1, 0.25) == [Region(0, 0, 640, 480)]


def test_passes_alternate_and_cover_only_what_they_could_see(full):
    tiled = TiledDetector(full, 2, 1)
    frame = np.zeros((480, 640, 3), np.uint8)
    regions = []
    for _ in range(4):
        regions.append(tiled.next_region(640, 480))
        tiled.detect(frame)
    assert regions[0].whole and regions[2].whole and not regions[1].whole and not regions[3].whole
    assert regions[1].x == 0 and regions[3].x > 0
    small_left, small_right, big = (20, 200, 40, 40), (580, 200, 40, 40), (250, 100, 200, 200)
    assert tiled.covers(small_right) and not tiled.covers(small_left)  # last pass: the right tile
    tiled.detect(frame)  # whole frame: too coarse for a 40 px face that a tile will look at
    assert tiled.covers(big) and not tiled.covers(small_left) and not tiled.covers(small_right)
    assert TiledDetector(full, 1, 1).covers(small_left)  # no tiles: the whole frame covers everything
    before = full.invokes
    tiled.detect(frame)
    assert full.invokes == before + 1  # one interpreter run per pass


@pytest.fixture(scope="module")
def footage(av_samples) -> Path:
    p = av_samples / "real-footage-hamilton.mp4"
    if not p.is_file():
        pytest.skip("real-footage-hamilton.mp4 not present")
    return p


def _shrunk_footage(clip: Path, target_px: float) -> tuple[list[np.ndarray], list[list[tuple[float, float, float, float]]]]:
    """The annotated real-footage frames shrunk so their faces are about ``target_px`` high, each
    pasted into the middle of a face-free 640x480 frame; with the annotated boxes moved along."""
    av = clip.parent
    ann = json.loads(ANNOTATION.read_text())
    decoded = annotated_frames(clip, [fr["t"] for fr in ann["frames"]])
    background = cv2.resize(first_frame(av / "clip19_face-none_speech-angry.mp4"), (640, 480))
    images, boxes = [], []
    for fr, (_, image) in zip(ann["frames"], decoded):
        s = target_px / float(np.mean([f["box"][3] for f in fr["faces"]]))
        small = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        h, w = small.shape[:2]
        ox, oy = (640 - w) // 2, (480 - h) // 2
        canvas = background.copy()
        canvas[oy:oy + h, ox:ox + w] = small
        images.append(canvas)
        boxes.append([(f["box"][0] * s + ox, f["box"][1] * s + oy, f["box"][2] * s, f["box"][3] * s) for f in fr["faces"]])
    return images, boxes


def test_real_faces_40px_high_are_found_with_tiles(full, footage):
    images, boxes = _shrunk_footage(footage, 40.0)
    heights = [b[3] for bs in boxes for b in bs]
    assert len(heights) == 20 and 30 < min(heights) and max(heights) < 50
    found = {"whole": 0, "tiled": 0}
    extra = {"whole": 0, "tiled": 0}
    for image, bs in zip(images, boxes):
        for name, det in (("whole", TiledDetector(full, 1, 1)), ("tiled", TiledDetector(full, 2, 1))):
            dets = all_passes(det, image)
            hit = match(bs, dets)
            found[name] += sum(i is not None for i in hit)
            extra[name] += len(dets) - sum(i is not None for i in hit)
    print(f"\n40 px real faces (20 annotated): found whole frame {found['whole']}, whole + tiles {found['tiled']}; "
          f"other detections {extra}")
    # measured when written: whole frame 7 of 20, with the two tiles 14 of 20; one other detection with tiles
    assert found["tiled"] >= 13 and found["tiled"] >= found["whole"] + 5
    assert extra["tiled"] <= extra["whole"] + 1


def test_fer_faces_40px_high_in_a_composed_frame(full, av_samples):
    """Heads of the FER-2013 clips (tight crops on a textured background) pasted 40 px high at five places."""
    heads, places, background = _fer_heads(av_samples)
    assert len(heads) >= 8
    found = {"whole": 0, "tiled": 0}
    for head in heads:
        canvas = _pasted(background, head, places)
        for name, det in (("whole", TiledDetector(full, 1, 1)), ("tiled", TiledDetector(full, 2, 1))):
            hits, off = _on_heads(all_passes(det, canvas), places, head.shape)
            found[name] += hits
            assert off == 0, "a detection away from every pasted head"
    n = len(heads) * len(places)
    print(f"\n40 px FER heads: found whole frame {found['whole']} of {n}, whole + tiles {found['tiled']} of {n}")
    assert found["tiled"] >= 0.4 * n and found["tiled"] >= 4 * max(1, found["whole"])


def test_no_false_faces_on_the_real_footage_at_its_own_size(full, footage):
    """The annotated frames as decoded: tiles find more of the annotated faces and add no other detection.

    The whole frame already finds three faces off the annotation, all in the dim, out-of-focus audience of
    the 2.4 s and 3.3 s frames that the annotation leaves out on purpose."""
    ann = json.loads(ANNOTATION.read_text())
    found = {"whole": 0, "tiled": 0}
    extra: dict[str, list] = {"whole": [], "tiled": []}
    for fr, (t, image) in zip(ann["frames"], annotated_frames(footage, [f["t"] for f in ann["frames"]])):
        for name, cols in (("whole", 1), ("tiled", 2)):
            dets = all_passes(TiledDetector(full, cols, 1), image)
            hit = match([f["box"] for f in fr["faces"]], dets)
            found[name] += sum(i is not None for i in hit)
            extra[name] += [(fr["t"], d.box) for i, d in enumerate(dets) if i not in hit]
    print(f"\nreal footage, 20 annotated faces: found whole frame {found['whole']}, whole + tiles {found['tiled']}; "
          f"off the annotation: {len(extra['whole'])} and {len(extra['tiled'])}")
    # measured when written: 15 and 18 found; 3 off the annotation both ways (the unmarked audience)
    assert found["tiled"] >= found["whole"] + 2
    assert all(t in (2.4, 3.3) for t, _ in extra["whole"])
    for t, box in extra["tiled"]:
        assert any(t == u and iou(box, b) > 0.5 for u, b in extra["whole"]), (t, box)


def test_detect_tiles_is_validated_and_defaults_to_the_detectors_own():
    from dsrter.edge.infer.models import make_detector

    assert parse_config({"face": {"detect_tiles": [2, 1]}}, env={}).face.detect_tiles == (2, 1)
    face = parse_config({}, env={}).face
    assert face.detect_tiles is None
    short = make_detector(face, REPO / "models" / "face_detection_short_range.tflite")
    full = make_detector(face, FULL)
    assert (short.columns, short.rows, full.columns, full.rows) == (1, 1, 3, 2)  # short range: no tiles
    assert make_detector(face.model_copy(update={"detect_tiles": (2, 1)}), FULL).columns == 2
    for bad in ([0, 1], [2, 9], [2], "two"):
        with pytest.raises(ConfigError, match="face.detect_tiles"):
            parse_config({"face": {"detect_tiles": bad}}, env={})
    with pytest.raises(ConfigError, match="face.classify_every_n_frames"):
        parse_config({"face": {"classify_every_n_frames": 0}}, env={})
    with pytest.raises(ConfigError, match="candidate_confidence .0.7. must not exceed"):
        parse_config({"face": {"candidate_confidence": 0.7}}, env={})
    assert parse_config({"face": {"verify_model": None}}, env={}).face.verify_model is None


def test_second_look_finds_more_small_faces_and_no_more_false_ones(footage, av_samples):
    """The detector as shipped (threshold 0.6; candidates from 0.3 confirmed by the short-range model on a
    zoomed crop) against the earlier one (threshold 0.5, no second look) on the three sets above."""
    from dsrter.edge.infer.models import make_detector

    face = parse_config({}, env={}).face
    assert (face.min_detection_confidence, face.candidate_confidence, face.verify_model.name) == (
        0.6, 0.3, "face_detection_short_range.tflite")

    def make(name: str) -> TiledDetector:
        return make_detector(face, FULL) if name == "now" else TiledDetector(FaceDetector(FULL, 0.5), 2, 1)

    found = {"before": [0, 0, 0], "now": [0, 0, 0]}
    off = {"before": [0, 0, 0], "now": [0, 0, 0]}
    sets = [list(zip(*_shrunk_footage(footage, 40.0)))]
    ann = json.loads(ANNOTATION.read_text())
    decoded = annotated_frames(footage, [fr["t"] for fr in ann["frames"]])
    sets.append([(image, [f["box"] for f in fr["faces"]]) for fr, (_, image) in zip(ann["frames"], decoded)])
    for k, pairs in enumerate(sets):
        for image, boxes in pairs:
            for name in found:
                dets = all_passes(make(name), image)
                hit = match(boxes, dets)
                found[name][k] += sum(i is not None for i in hit)
                off[name][k] += len(dets) - sum(i is not None for i in hit)
    heads, places, background = _fer_heads(av_samples)
    for head in heads:
        canvas = _pasted(background, head, places)
        for name in found:
            hits, away = _on_heads(all_passes(make(name), canvas), places, head.shape)
            found[name][2] += hits
            off[name][2] += away
    n = len(heads) * len(places)
    print(f"\nfound (real 40 px of 20, real as decoded of 20, FER heads 40 px of {n}): before {found['before']}, "
          f"now {found['now']}; detections off the faces: before {off['before']}, now {off['now']}")
    # measured when written (3 x 2 tiles): found before [14, 16, 29], now [18, 17, 49]; off the faces before [1, 3, 0],
    # now [1, 3, 0] (with 2 x 1 tiles now was [16, 17, 43] and [1, 2, 0]; the third off the real frames is a candle flame)
    assert found["now"][0] >= 17 and found["now"][2] >= 0.85 * n
    assert all(a >= b for a, b in zip(found["now"], found["before"]))
    assert sum(off["now"]) <= sum(off["before"]) and off["now"][2] == 0


def test_tile_grid_shipped_finds_40px_faces_the_two_tiles_miss(av_samples):
    """A check kept apart from the fixtures the detector settings were tuned on: heads of the FER-2013
    clips with two faces (and clip18), 40 px high at seven other places on the mirrored background,
    as shot and dimmed with sensor noise. The shipped grid (3 x 2 tiles: a 40 px face is about 28 px
    at the model's input, its smallest anchor) against the earlier 2 x 1 (about 16 px)."""
    from dsrter.edge.infer.models import make_detector

    face = parse_config({}, env={}).face
    shipped = make_detector(face, FULL)
    assert face.detect_tiles is None and shipped.columns * shipped.rows == 6
    full = FaceDetector(FULL)
    heads = []
    for clip in sorted(av_samples.glob("clip1[4-8]_*.mp4")):
        frame = first_frame(clip)
        heads += [_head_crop(frame, d.box) for d in full.detect(frame)]
    assert len(heads) >= 8
    background = cv2.flip(cv2.resize(first_frame(av_samples / "clip19_face-none_speech-angry.mp4"), (640, 480)), 1)
    places = [(30, 30), (250, 60), (500, 40), (100, 250), (380, 220), (530, 300), (250, 380)]
    rng = np.random.default_rng(5)
    found = {"3x2": 0, "2x1": 0}
    off = {"3x2": 0, "2x1": 0}
    for head in heads:
        canvas = _pasted(background, head, places)
        dim = np.clip(canvas * 0.55 + rng.normal(0, 4, canvas.shape), 0, 255).astype(np.uint8)
        for image in (canvas, dim):
            for name in found:
                det = make_detector(face, FULL) if name == "3x2" else make_detector(face.model_copy(update={"detect_tiles": (2, 1)}), FULL)
                hits, away = _on_heads(all_passes(det, image), places, head.shape)
                found[name] += hits
                off[name] += away
    n = 2 * len(heads) * len(places)
    print(f"\nheld-out 40 px heads (plain and dim, {n}): found 3x2 tiles {found['3x2']}, 2x1 tiles {found['2x1']}; "
          f"detections off the heads {off}")
    # measured when written: 3x2 112 of 112, 2x1 59 of 112; none off the heads
    assert found["3x2"] >= 0.95 * n and found["3x2"] >= found["2x1"] + 0.3 * n
    assert off["3x2"] == 0


def _head_crop(frame: np.ndarray, box, height: int = 40) -> np.ndarray:
    """The head around a detection box (hair and chin included), scaled so the box is ``height`` px high."""
    x, y, w, h = map(int, box)
    m = int(0.6 * w)
    return cv2.resize(frame[max(0, y - m): y + h + m // 2, max(0, x - m): x + w + m], None,
                      fx=height / h, fy=height / h, interpolation=cv2.INTER_AREA)


def _pasted(background: np.ndarray, head: np.ndarray, places: list[tuple[int, int]]) -> np.ndarray:
    """A copy of ``background`` with ``head`` pasted with its top-left corner at each of ``places``."""
    canvas = background.copy()
    hh, hw = head.shape[:2]
    for px, py in places:
        canvas[py:py + hh, px:px + hw] = head
    return canvas


def _on_heads(dets: list, places: list[tuple[int, int]], head_shape: tuple[int, ...]) -> tuple[int, int]:
    """(pasted heads found, detections away from every head): a detection finds the head its centre lies in."""
    hh, hw = head_shape[:2]
    inside = [[px < d.box[0] + d.box[2] / 2 < px + hw and py < d.box[1] + d.box[3] / 2 < py + hh for px, py in places]
              for d in dets]
    return sum(any(row[j] for row in inside) for j in range(len(places))), sum(not any(row) for row in inside)


def _fer_heads(av_samples: Path) -> tuple[list[np.ndarray], list[tuple[int, int]], np.ndarray]:
    """Heads of the one-face FER-2013 clips, 40 px high; five places; a face-free 640x480 background."""
    full = FaceDetector(FULL)
    heads = []
    for clip in sorted(av_samples.glob("clip0[0-9]_*.mp4")) + sorted(av_samples.glob("clip1[0-3]_*.mp4")):
        frame = first_frame(clip)
        (d,) = full.detect(frame)[:1] or (None,)
        if d is not None:
            heads.append(_head_crop(frame, d.box))
    background = cv2.resize(first_frame(av_samples / "clip19_face-none_speech-angry.mp4"), (640, 480))
    return heads, [(60, 80), (300, 200), (500, 330), (150, 370), (420, 60)], background


def test_second_look_confirms_a_real_face_rejects_the_rest_and_is_bounded(footage):
    from dsrter.edge.infer.face_detector import Detection
    from dsrter.edge.infer.face_verifier import CropVerifier

    ann = json.loads(ANNOTATION.read_text())
    fr = next(f for f in ann["frames"] if len(f["faces"]) >= 3)
    ((_, image),) = annotated_frames(footage, [fr["t"]])
    verifier = CropVerifier(FaceDetector(REPO / "models" / "face_detection_short_range.tflite"), max_per_pass=2)
    real = [Detection(tuple(f["box"]), 0.4) for f in fr["faces"]]
    confirmed = [verifier.confirms(image, d) for d in real]
    assert sum(confirmed) >= len(real) - 1, confirmed
    w = h = fr["faces"][0]["box"][3]
    H, W = image.shape[:2]
    # the same size, where no face is (the first free place along the bottom of the frame: stage and suits)
    beside = next(Detection((float(x), H - h - 4.0, w, h), 0.4) for x in range(0, int(W - w), 8)
                  if not any(iou((x, H - h - 4.0, w, h), f["box"]) > 0 for f in fr["faces"]))
    flat = Detection((5.0, 5.0, 40.0, 40.0), 0.4)  # the frame's corner
    assert not verifier.confirms(image, beside) and not verifier.confirms(image, flat), (fr["t"], beside.box)
    before = verifier.invokes
    kept = verifier.filter(image, [Detection((1, 1, 9, 9), 0.9)] + real, accept=0.6)
    assert verifier.invokes - before == 2  # two second looks at most; the sure detection needs none
    assert kept[0].score == 0.9 and len(kept) <= 3
