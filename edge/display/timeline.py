"""Collect the events of a run into a per-time emotion timeline and write it out.

Subscribe :meth:`TimelineRecorder.on_event` to the EventBus; at the end
:meth:`TimelineRecorder.write` produces

* ``timeline.jsonl`` one row per event: ``t`` (the event's timestamp as the pipeline set it:
  the clip's time in ``analyze``), ``kind`` (``face`` | ``speech`` | ``emotion`` = fused),
  ``track_id``, ``label``, ``confidence``, ``scores`` (7, LABELS order by name),
  ``speaking`` (speech rows), ``attribution`` (speech/fused rows);
* ``timeline.csv`` the same rows flattened (one column per label score);
* ``timeline.png`` one lane per face track, one for speech and one for the fused emotion,
  coloured by emotion over time (the overlay's colours);
* ``summary.json`` dominant label, time per label and counts per lane (also returned).

A row's label is taken to hold until the lane's next row, but never longer than
``max_gap_s`` (a track that vanished, a pause in the events).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import numpy as np

from dsrter.edge.streams.events import FaceEvent, FrameStats, FusedEvent, SpeechEvent
from dsrter.edge.labels import LABELS
from dsrter.edge.display.overlay import emotion_rgb01

log = logging.getLogger(__name__)

CSV_COLUMNS = ["t", "kind", "track_id", "label", "confidence", *LABELS, "speaking", "attribution"]
MAX_PLOTTED_TRACKS = 12


def _r(x: Optional[float], nd: int = 4) -> Optional[float]:
    return None if x is None else round(float(x), nd)


class TimelineRecorder:
    """Thread-safe event collector; ``on_event`` is an EventBus subscriber."""

    def __init__(self, max_gap_s: float = 2.0) -> None:
        self.max_gap_s = float(max_gap_s)
        self.rows: list[dict[str, Any]] = []
        self.frames = 0
        self._t_min: Optional[float] = None
        self._t_max: Optional[float] = None
        self._lock = threading.Lock()

    # -- collecting ---------------------------------------------------------------------
    def on_event(self, event: Any) -> None:
        t = float(event.timestamp)
        with self._lock:
            self._t_min = t if self._t_min is None else min(self._t_min, t)
            self._t_max = t if self._t_max is None else max(self._t_max, t)
            if isinstance(event, FrameStats):
                self.frames += 1
                return
            if isinstance(event, FaceEvent):
                row = self._row(t, "face", event.track_id, event.label, event.confidence, event.scores)
            elif isinstance(event, SpeechEvent):
                row = self._row(t, "speech", event.track_id, event.label if event.speaking else None,
                                event.confidence if event.speaking else 0.0,
                                event.scores if event.speaking else None)
                row["speaking"] = bool(event.speaking)
                row["attribution"] = event.attribution
            elif isinstance(event, FusedEvent):
                row = self._row(t, "emotion", event.track_id, event.label, event.confidence, event.scores)
                row["attribution"] = event.attribution
            else:
                return
            self.rows.append(row)

    @staticmethod
    def _row(t: float, kind: str, track_id: Optional[int], label: Optional[str], conf: float,
             scores: Optional[np.ndarray]) -> dict[str, Any]:
        return {
            "t": round(t, 4), "kind": kind, "track_id": track_id, "label": label,
            "confidence": _r(conf),
            "scores": ({name: _r(v) for name, v in zip(LABELS, np.asarray(scores, dtype=float).reshape(-1))}
                       if scores is not None else None),
            "speaking": None, "attribution": None,
        }

    # -- lanes and summary ----------------------------------------------------------------
    def _lanes(self) -> dict[str, list[dict[str, Any]]]:
        lanes: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in sorted(self.rows, key=lambda r: r["t"]):
            if row["kind"] == "face":
                lanes[f"face {row['track_id']}"].append(row)
            elif row["kind"] == "speech":
                lanes["speech"].append(row)
            else:
                lanes["fused"].append(row)
        return lanes

    def _segments(self, rows: list[dict[str, Any]]) -> list[tuple[float, float, Optional[str], float]]:
        """(start, end, label, confidence) per row, each held until the next row (capped)."""
        if not rows:
            return []
        ts = [r["t"] for r in rows]
        steps = [b - a for a, b in zip(ts, ts[1:]) if b > a]
        last_hold = min(self.max_gap_s, float(np.median(steps))) if steps else min(self.max_gap_s, 0.1)
        out = []
        for i, r in enumerate(rows):
            end = min(ts[i + 1], r["t"] + self.max_gap_s) if i + 1 < len(rows) else r["t"] + last_hold
            out.append((r["t"], end, r["label"], r["confidence"] or 0.0))
        return out

    def _lane_summary(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        durations: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        conf_sum: dict[str, float] = defaultdict(float)
        silent = 0.0
        for start, end, label, conf in self._segments(rows):
            if label is None:
                silent += end - start
                continue
            durations[label] += end - start
            conf_sum[label] += conf
            counts[label] += 1
        total = sum(durations.values())
        dominant = max(durations, key=lambda k: (durations[k], conf_sum[k])) if durations else None
        out: dict[str, Any] = {
            "dominant": dominant,
            "dominant_fraction": round(durations[dominant] / total, 4) if dominant and total > 0 else None,
            "durations_s": {k: round(durations[k], 3) for k in LABELS if k in durations},
            "counts": {k: counts[k] for k in LABELS if k in counts},
            "mean_confidence": {k: round(conf_sum[k] / counts[k], 4) for k in LABELS if counts.get(k)},
            "events": len(rows),
            "first_t": rows[0]["t"] if rows else None,
            "last_t": rows[-1]["t"] if rows else None,
            "labelled_s": round(total, 3),
        }
        if rows and rows[0]["kind"] == "speech":
            out["speaking_s"] = round(total, 3)
            out["silent_s"] = round(silent, 3)
            attr: dict[str, int] = defaultdict(int)
            for r in rows:
                if r["speaking"]:
                    attr[r["attribution"] or "none"] += 1
            out["attribution_counts"] = dict(attr)
        return out

    def summary(self) -> dict[str, Any]:
        with self._lock:
            lanes = self._lanes()
            t_min, t_max, frames = self._t_min, self._t_max, self.frames
        faces = {name.split(" ", 1)[1]: self._lane_summary(rows) for name, rows in lanes.items() if name.startswith("face ")}
        return {
            "start_t": t_min, "end_t": t_max,
            "duration_s": round(t_max - t_min, 3) if t_min is not None and t_max is not None else 0.0,
            "frames": frames,
            "events": {"face": sum(len(r) for n, r in lanes.items() if n.startswith("face ")),
                       "speech": len(lanes.get("speech", [])), "emotion": len(lanes.get("fused", []))},
            "face_tracks": len(faces),
            "faces": dict(sorted(faces.items(), key=lambda kv: _track_key(kv[0]))),
            "speech": self._lane_summary(lanes.get("speech", [])),
            "fused": self._lane_summary(lanes.get("fused", [])),
        }

    # -- writing ----------------------------------------------------------------------------
    def write(self, out_dir: str | Path, title: str | None = None) -> dict:
        """Write timeline.jsonl/.csv/.png and summary.json into ``out_dir``; returns the summary."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with self._lock:
            rows = sorted(self.rows, key=lambda r: r["t"])
        with open(out / "timeline.jsonl", "w") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
        with open(out / "timeline.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_COLUMNS)
            for r in rows:
                scores = r["scores"] or {}
                w.writerow([r["t"], r["kind"], "" if r["track_id"] is None else r["track_id"], r["label"] or "",
                            "" if r["confidence"] is None else r["confidence"],
                            *["" if scores.get(k) is None else scores[k] for k in LABELS],
                            "" if r["speaking"] is None else int(r["speaking"]), r["attribution"] or ""])
        summary = self.summary()
        self._plot(out / "timeline.png", title)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def _plot(self, path: Path, title: Optional[str]) -> None:
        from matplotlib.figure import Figure  # no pyplot: renders with Agg, no GUI needed
        from matplotlib.patches import Patch

        with self._lock:
            lanes = self._lanes()
            t_min, t_max = self._t_min, self._t_max
        face_lanes = sorted((n for n in lanes if n.startswith("face ")), key=lambda n: _track_key(n.split(" ", 1)[1]))
        hidden = 0
        if len(face_lanes) > MAX_PLOTTED_TRACKS:  # keep the longest-lived tracks
            keep = sorted(face_lanes, key=lambda n: -sum(e - s for s, e, _, _ in self._segments(lanes[n])))
            keep_set = set(keep[:MAX_PLOTTED_TRACKS])
            hidden = len(face_lanes) - MAX_PLOTTED_TRACKS
            face_lanes = [n for n in face_lanes if n in keep_set]
        order = ["fused", "speech", *face_lanes]  # top to bottom
        names = {"fused": "fused (overall)", "speech": "speech"}
        n = len(order)
        fig = Figure(figsize=(12, 1.6 + 0.55 * n), dpi=110)
        ax = fig.add_subplot(1, 1, 1)
        for i, lane in enumerate(order):
            y = n - 1 - i
            for start, end, label, conf in _merge(self._segments(lanes.get(lane, []))):
                if label is None:
                    ax.broken_barh([(start, end - start)], (y - 0.32, 0.64), facecolors="none",
                                   edgecolors=(0.6, 0.6, 0.6), hatch="///", linewidth=0)
                else:
                    ax.broken_barh([(start, end - start)], (y - 0.38, 0.76), facecolors=emotion_rgb01(label),
                                   alpha=0.45 + 0.55 * conf, linewidth=0)
        ax.set_yticks(range(n))
        ax.set_yticklabels([names.get(lane, lane.replace("face ", "face #")) for lane in reversed(order)])
        ax.set_ylim(-0.6, n - 0.4)
        if t_min is not None and t_max is not None:
            span = max(t_max - t_min, 1e-3)
            ax.set_xlim(t_min - 0.01 * span, t_max + 0.03 * span)
        ax.set_xlabel("time (s)")
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
        handles = [Patch(facecolor=emotion_rgb01(k), label=k) for k in LABELS]
        handles.append(Patch(facecolor="white", edgecolor=(0.6, 0.6, 0.6), hatch="///", label="no speech"))
        heading = title or "emotion timeline"
        if hidden:
            heading += f"  ({hidden} short face tracks not shown)"
        ax.set_title(heading + "   (opacity = confidence)", fontsize=11)
        fig_h = fig.get_figheight()
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9,
                   handlelength=1.4, columnspacing=1.2)
        fig.tight_layout(rect=(0, 0.45 / fig_h, 1, 1))  # leave a strip for the legend
        fig.savefig(path)


def _merge(segments):
    """Join touching segments with the same label (confidence: time-weighted mean)."""
    out: list[list] = []
    for s, e, label, conf in segments:
        if out and out[-1][2] == label and math.isclose(out[-1][1], s, abs_tol=1e-6):
            ps, pe, _, pc = out[-1]
            total = (pe - ps) + (e - s)
            out[-1] = [ps, e, label, (pc * (pe - ps) + conf * (e - s)) / total if total > 0 else conf]
        else:
            out.append([s, e, label, conf])
    return [tuple(x) for x in out]


def _track_key(track: str):
    try:
        return (0, int(track))
    except ValueError:
        return (1, track)
