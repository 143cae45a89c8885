"""Late fusion of face and speech probabilities, and attribution of speech to a face.

Fusion: each stream contributes ``weight x confidence x 0.5 ** (age / half_life_s)`` (nothing
once older than ``stale_after_s``); the fused scores are the weighted mean of the probabilities.
The fused label changes only when another class leads it by ``hysteresis`` (or when the attributed
face changes), so a near-tie between the streams' smoothed scores does not flicker on MQTT.

Attribution, in order: the face whose mouth region moves clearly more than the rest of it and
than every other face (``speaking_face``), the only face (``only_face``), the largest face
(``largest_face``), no face (``none``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from dsrter.edge.streams.events import FaceEvent, FusedEvent, SpeechEvent
from dsrter.edge.labels import LABELS
from dsrter.edge.streams.tracker import Track


def decay(age_s: float, half_life_s: float, stale_after_s: float) -> float:
    """Weight factor of a result ``age_s`` old: halves every half-life, 0 once stale."""
    age = max(0.0, float(age_s))
    if age > stale_after_s:
        return 0.0
    return float(0.5 ** (age / half_life_s))


def _region(gray: np.ndarray, cx: float, cy: float, w: float, h: float, size: tuple[int, int]) -> Optional[np.ndarray]:
    """The (w x h) region centred at (cx, cy), resampled to ``size``; None when it leaves the frame."""
    H, W = gray.shape
    x0, x1 = int(round(cx - w / 2)), int(round(cx + w / 2))
    y0, y1 = int(round(cy - h / 2)), int(round(cy + h / 2))
    if x0 < 0 or y0 < 0 or x1 > W or y1 > H or x1 - x0 < 8 or y1 - y0 < 4:
        return None
    return cv2.resize(gray[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA).astype(np.float32)


def _residual(prev: np.ndarray, search: np.ndarray, margin: int) -> float:
    """1 - best normalised correlation of ``prev``'s centre inside ``search`` (shifts up to ``margin``):
    how much the region changed beyond moving rigidly. ~0 for a still or merely moving face."""
    tmpl = prev[margin:-margin, margin:-margin]
    if tmpl.std() < 1e-3:
        return 0.0
    r = cv2.matchTemplate(search, tmpl, cv2.TM_CCOEFF_NORMED)
    return float(max(0.0, 1.0 - r.max()))


class LipMotion:
    """Per-track mouth activity: how much the mouth region changes beyond rigid motion, minus the same
    for the eye region (blur, compression and lighting change both), over the last ``window_s``.

    Regions are resampled so the face is ``FACE_PX`` wide; each is compared with the same track's
    region ``lag_s`` earlier after the best small shift, so head motion and detector jitter cancel.
    """

    FACE_PX = 64
    MARGIN = 6  # pixels of shift searched (at FACE_PX scale)

    def __init__(self, window_s: float = 1.0, lag_s: float = 0.1, min_activity: float = 0.08,
                 dominance: float = 2.0, min_samples: int = 4):
        self.window_s = window_s
        self.lag_s = lag_s
        self.min_activity = min_activity  # mouth residual above the eyes' that counts as moving lips
        self.dominance = dominance  # how many times the runner-up's activity the speaker needs
        self.min_samples = min_samples
        self._hist: dict[int, deque] = {}
        self._samples: dict[int, deque] = {}

    def _regions(self, gray: np.ndarray, tr: Track) -> Optional[tuple[np.ndarray, np.ndarray]]:
        fw = max(tr.box[2], 1.0)
        pad = 2 * self.MARGIN * fw / self.FACE_PX
        size = (self.FACE_PX // 2 + 2 * self.MARGIN, self.FACE_PX // 4 + 2 * self.MARGIN)
        (rex, rey), (lex, ley), _, (mx, my) = tr.keypoints[:4]
        mouth = _region(gray, mx, my, 0.5 * fw + pad, 0.25 * fw + pad, size)
        eyes = _region(gray, (rex + lex) / 2, (rey + ley) / 2, 0.5 * fw + pad, 0.25 * fw + pad, size)
        if mouth is None or eyes is None:
            return None
        return mouth, eyes

    def observe(self, gray: np.ndarray, tracks: Sequence[Track], t: float) -> None:
        alive = {tr.id for tr in tracks}
        for tid in [k for k in self._hist if k not in alive]:
            self._hist.pop(tid, None)
            self._samples.pop(tid, None)
        for tr in tracks:
            if not tr.fresh or len(tr.keypoints) < 4:
                continue
            regs = self._regions(gray, tr)
            if regs is None:
                continue
            hist = self._hist.setdefault(tr.id, deque())
            while hist and (hist[0][0] < t - 3 * self.lag_s or hist[0][0] >= t):
                hist.popleft()
            ref = next((h for h in reversed(hist) if t - h[0] >= self.lag_s), None)
            hist.append((t, *regs))
            if ref is None:
                continue
            sample = _residual(ref[1], regs[0], self.MARGIN) - _residual(ref[2], regs[1], self.MARGIN)
            q = self._samples.setdefault(tr.id, deque())
            q.append((t, max(0.0, sample)))
            while q and q[0][0] < t - self.window_s:
                q.popleft()

    def activity(self, track_id: int) -> Optional[float]:
        q = self._samples.get(track_id)
        if not q or len(q) < self.min_samples:
            return None
        return float(np.median([s for _, s in q]))  # robust to a bad detection now and then

    def speaker(self, track_ids: Sequence[int]) -> Optional[int]:
        """The track whose mouth clearly moves most, or None when that cannot be told."""
        acts = sorted(((a, tid) for tid in track_ids if (a := self.activity(tid)) is not None), reverse=True)
        if not acts or acts[0][0] < self.min_activity:
            return None
        # A face without enough samples counts as unknown: with one, we cannot tell it apart.
        if len(acts) < len(track_ids):
            return None
        runner_up = acts[1][0] if len(acts) > 1 else 0.0
        return acts[0][1] if acts[0][0] >= self.dominance * runner_up else None


class Attributor:
    """Chooses the face speech belongs to; sticky for the largest-face rule so near-equal sizes don't flip."""

    def __init__(self, lip: Optional[LipMotion] = None, stickiness: float = 0.85):
        self.lip = lip
        self.stickiness = stickiness
        self._last: Optional[int] = None

    def choose(self, tracks: Sequence[Track]) -> tuple[Optional[int], str]:
        if not tracks:
            self._last = None
            return None, "none"
        if self.lip is not None:
            sid = self.lip.speaker([t.id for t in tracks])
            if sid is not None:
                self._last = sid
                return sid, "speaking_face"
        if len(tracks) == 1:
            self._last = tracks[0].id
            return tracks[0].id, "only_face"
        largest = max(tracks, key=lambda t: t.area)
        prev = next((t for t in tracks if t.id == self._last), None)
        if prev is not None and prev.area >= self.stickiness * largest.area:
            largest = prev
        self._last = largest.id
        return largest.id, "largest_face"


@dataclass
class _Contribution:
    scores: np.ndarray
    weight: float


class Fuser:
    """Confidence-weighted late fusion with exponential staleness decay (config.FusionConfig)."""

    def __init__(self, face_weight: float = 0.6, speech_weight: float = 0.4, half_life_s: float = 1.5,
                 stale_after_s: float = 4.0, hysteresis: float = 0.05):
        self.face_weight = face_weight
        self.speech_weight = speech_weight
        self.half_life_s = half_life_s
        self.stale_after_s = stale_after_s
        self.hysteresis = hysteresis
        self._shown: Optional[int] = None  # index of the shown fused label (None: nothing to fuse)
        self._track: Optional[int] = None  # the attributed track it belongs to

    @classmethod
    def from_config(cls, cfg) -> "Fuser":
        return cls(cfg.face_weight, cfg.speech_weight, cfg.half_life_s, cfg.stale_after_s, cfg.hysteresis)

    def _choose(self, scores: np.ndarray, track_id: Optional[int]) -> int:
        """The shown label's index: kept until another class leads it by the hysteresis margin."""
        best = int(np.argmax(scores))
        shown = self._shown
        if shown is None or track_id != self._track or scores[best] >= scores[shown] + self.hysteresis:
            shown = best
        self._shown, self._track = shown, track_id
        return shown

    def _contribution(self, scores: Optional[np.ndarray], conf: float, base: float, age: float) -> Optional[_Contribution]:
        if scores is None:
            return None
        w = base * float(conf) * decay(age, self.half_life_s, self.stale_after_s)
        return _Contribution(np.asarray(scores, np.float32), w) if w > 0 else None

    def fuse(self, t: float, face: Optional[FaceEvent], face_t: Optional[float], speech: Optional[SpeechEvent],
             track_id: Optional[int] = None, attribution: str = "none") -> FusedEvent:
        """Fuse the attributed face's smoothed scores (classified at ``face_t``) with the latest speech state.

        ``t`` and ``face_t`` are on the stream clock that ``speech.window`` uses."""
        candidates: dict[str, Optional[_Contribution]] = {}
        if face is not None and face_t is not None:
            candidates["face"] = self._contribution(face.scores, face.confidence, self.face_weight, t - face_t)
        if speech is not None and speech.speaking:
            candidates["speech"] = self._contribution(speech.scores, speech.confidence, self.speech_weight,
                                                      t - speech.window[1])
        parts = {k: v for k, v in candidates.items() if v is not None}
        total = sum(c.weight for c in parts.values())
        label: Optional[str] = None
        scores: Optional[np.ndarray] = None
        conf = 0.0
        before = self._shown
        if total > 0:
            scores = np.sum([c.weight * c.scores for c in parts.values()], axis=0) / total
            idx = self._choose(scores, track_id)
            label, conf = LABELS[idx], float(scores[idx])
        else:
            self._shown = None
        changed = self._shown != before
        share = {k: (c.weight / total if total > 0 else 0.0) for k, c in parts.items()}
        return FusedEvent(timestamp=t, label=label, scores=scores, confidence=conf,
                          face_weight=share.get("face", 0.0), speech_weight=share.get("speech", 0.0),
                          track_id=track_id, attribution=attribution, changed=changed)
