"""``dsrter analyze CLIP --out DIR``: both streams over a recorded clip on the clip's own timeline.

The video is decoded as fast as the machine allows (no real-time pacing); the speech stream
analyses ``window_s`` windows of the clip's audio every ``hop_s`` of clip time (the same
SpeechWorker step the daemon runs, so the same VAD, smoothing and attribution), never short
per-frame chunks. Every event's timestamp is clip time in seconds. Outputs in DIR:
``annotated.mp4`` (overlay, original audio kept), ``timeline.jsonl``/``.csv``/``.png`` and
``summary.json`` (the timeline summary plus per-track boxes, attribution and timings).

A file with audio and no video stream is analysed as ``dsrter run`` does with no camera: the
speech stream alone, each speech event fused on its own; there is no ``annotated.mp4`` (a
warning in the summary says so).
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm import tqdm

from dsrter.edge.app.wiring import Streams
from dsrter.edge.config import Config
from dsrter.edge.display.overlay import draw_overlay
from dsrter.edge.display.timeline import TimelineRecorder
from dsrter.edge.display.video_writer import AnnotatedVideoWriter
from dsrter.edge.infer.models import Models
from dsrter.edge.sources.media_file import AudioFileSource, MediaError, MediaFileSource, probe_tracks
from dsrter.edge.streams.events import Event, EventBus, FaceEvent, FrameStats, SpeechEvent
from dsrter.edge.streams.speech_stream import SpeechWorker

log = logging.getLogger("dsrter.analyze")


class _TrackBook:
    """Per-track frame counts and mean boxes, and who speech went to (for the summary)."""

    def __init__(self) -> None:
        self.boxes: dict[int, list[tuple[float, float, float, float]]] = defaultdict(list)
        self.speech_to: dict[str, int] = defaultdict(int)
        self.stage_ms: dict[str, list[float]] = defaultdict(list)

    def on_event(self, ev: Event) -> None:
        if isinstance(ev, FaceEvent):
            self.boxes[ev.track_id].append(ev.box)
        elif isinstance(ev, SpeechEvent) and ev.speaking:
            self.speech_to[f"{ev.track_id}:{ev.attribution}"] += 1
        elif isinstance(ev, FrameStats):
            for k, v in ev.stage_ms.items():
                self.stage_ms[k].append(v)

    def tracks(self) -> dict[str, dict]:
        out = {}
        for tid, boxes in sorted(self.boxes.items()):
            b = np.asarray(boxes, np.float64)
            out[str(tid)] = {"frames": len(boxes), "mean_box": [round(float(v), 4) for v in b.mean(axis=0)],
                             "mean_area": round(float((b[:, 2] * b[:, 3]).mean()), 5)}
        return out

    def speech_attribution(self) -> list[dict]:
        rows = []
        for key, n in sorted(self.speech_to.items(), key=lambda kv: -kv[1]):
            tid, how = key.split(":", 1)
            rows.append({"track_id": None if tid == "None" else int(tid), "attribution": how, "windows": n})
        return rows

    def timings(self) -> dict[str, dict[str, float]]:
        return {k: {"p50": round(float(np.percentile(v, 50)), 3), "p95": round(float(np.percentile(v, 95)), 3)}
                for k, v in sorted(self.stage_ms.items()) if v}


def analyze_clip(clip: Path, out_dir: Path, cfg: Config, models: Models, video: bool = True,
                 progress: Optional[bool] = None) -> dict:
    """Run both streams over ``clip`` and write the outputs to ``out_dir``; returns the summary.

    ``models`` are loaded once by the caller (so a batch of clips shares them). Raises
    :class:`~dsrter.edge.sources.media_file.MediaError` for a missing or unreadable clip, and for
    one with nothing to analyse (neither video nor audio; audio only with speech analysis off)."""
    clip, out_dir = Path(clip), Path(out_dir)
    has_video, has_audio = probe_tracks(clip)
    if not has_video:
        if not has_audio:
            raise MediaError(f"{clip}: no video stream and no audio track: nothing to analyse")
        if models.speech is None:
            raise MediaError(f"{clip}: no video stream, and speech analysis is off (speech.enabled: false)")
        return _analyze_audio_only(clip, out_dir, cfg, models, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    src = MediaFileSource(clip, realtime=False, loop=False)
    src.open()
    bus, recorder, book = _recording_bus()

    worker: Optional[SpeechWorker] = None
    streams = Streams.from_models(cfg, bus, models)  # timestamps: clip time
    pipeline = streams.face
    audio = src.audio
    if models.speech is not None and audio.has_audio:
        worker = streams.add_speech(audio, models.speech)  # stepped below, on the clip's timeline
    elif models.speech is not None:
        log.warning("%s has no audio track: face stream only", clip.name)

    writer = None
    if video:
        writer = AnnotatedVideoWriter(out_dir / "annotated.mp4", src.fps, (src.width, src.height), audio_from=clip)
    total = int(round((src.duration or 0.0) * src.fps)) or None
    hop = worker.hop_s if worker else 0.0
    next_hop = hop
    t_wall = time.monotonic()
    frames = 0
    try:
        disable = None if progress is None else not progress  # None: only on a terminal
        with tqdm(total=total, unit="frame", desc=clip.name, disable=disable, leave=False) as bar:
            while (frame := src.read()) is not None:
                while worker is not None and frame.t >= next_hop:  # speech windows due by now, in clip order
                    worker.step()
                    next_hop += hop
                res = pipeline.process(frame)
                if writer is not None:  # no fps in the corner: the clip plays at its own rate
                    writer.write(draw_overlay(frame.image, res.faces, res.speech, res.fused, None), frame.t)
                frames += 1
                bar.update(1)
        if worker is not None and src.clip_time() - (next_hop - hop) >= hop / 2:
            worker.step()  # the tail after the last full hop
    finally:
        if writer is not None:
            writer.close()
        src.close()
    wall = time.monotonic() - t_wall
    summary = recorder.write(out_dir, title=clip.name)
    warnings = [f"{clip.name}: {p}" for p in src.problems + audio.problems]
    warnings += _short_clip_warning(clip, worker, summary, src.clip_time())
    summary["analysis"] = {
        "clip": clip.name, "duration_s": round(src.duration or 0.0, 3), "has_video": True,
        "video_fps": round(src.fps, 3), "frames": frames, "dropped_frames": pipeline.dropped,
        "processing_fps": round(frames / wall, 2) if wall > 0 else None,
        **_common(wall, src.duration, book, models, worker, bool(audio.has_audio), warnings),
    }
    return _finish(out_dir, summary)


def _recording_bus() -> tuple[EventBus, TimelineRecorder, _TrackBook]:
    """An event bus whose events the timeline recorder and the track book both receive."""
    bus, recorder, book = EventBus(), TimelineRecorder(), _TrackBook()
    bus.subscribe(recorder.on_event)
    bus.subscribe(book.on_event)
    return bus, recorder, book


def _analyze_audio_only(clip: Path, out_dir: Path, cfg: Config, models: Models, progress: Optional[bool]) -> dict:
    """The speech stream alone over an audio-only file, one hop of clip time per step; every speech
    event is also fused on its own (as the daemon does with no camera). No annotated video."""
    assert models.speech is not None
    out_dir.mkdir(parents=True, exist_ok=True)
    src = AudioFileSource(clip)
    src.open()
    bus, recorder, book = _recording_bus()
    streams = Streams.from_models(cfg, bus, models)  # no frames come: the face stream stays idle
    worker = streams.add_speech(src.audio, models.speech)
    hop = worker.hop_s
    total = int(np.ceil(src.duration / hop)) if src.duration else None
    t_wall = time.monotonic()
    steps = 0
    try:
        disable = None if progress is None else not progress
        with tqdm(total=total, unit="hop", desc=clip.name, disable=disable, leave=False) as bar:
            while not src.ended:
                steps += 1
                src.advance_to(steps * hop)
                ev = worker.step()
                if ev is not None:
                    streams.fuse_speech_alone(ev.timestamp)
                bar.update(1)
    finally:
        src.close()
    wall = time.monotonic() - t_wall
    summary = recorder.write(out_dir, title=clip.name)
    warnings = [f"{clip.name}: no video stream: speech analysed alone (each speech event fused on its own); "
                "no annotated.mp4 written"]
    warnings += [f"{clip.name}: {p}" for p in src.problems()]
    warnings += _short_clip_warning(clip, worker, summary, src.audio.end_t)
    summary["analysis"] = {
        "clip": clip.name, "duration_s": round(src.duration or src.audio.end_t, 3), "has_video": False,
        "video_fps": None, "frames": 0, "dropped_frames": 0, "processing_fps": None,
        **_common(wall, src.duration or src.audio.end_t, book, models, worker, True, warnings),
    }
    return _finish(out_dir, summary)


def _short_clip_warning(clip: Path, worker: Optional[SpeechWorker], summary: dict, length_s: float) -> list[str]:
    if worker is None or summary["events"]["speech"] > 0:
        return []
    return [f"{clip.name}: speech not analysed: the clip ({length_s:.2f} s) is shorter than the speech "
            f"stream's first decision needs ({worker.analyser.vad.lookback_s:g} s of audio)"]


def _common(wall: float, duration: Optional[float], book: _TrackBook, models: Models,
            worker: Optional[SpeechWorker], has_audio: bool, warnings: list[str]) -> dict:
    """The summary's analysis fields shared by clips with and without video."""
    return {
        "wall_s": round(wall, 3), "speed_x_realtime": round((duration or 0.0) / wall, 2) if wall > 0 else None,
        "stage_ms": book.timings(), "has_audio": has_audio,
        "speech_windows": worker.windows if worker else 0,
        "speech_window_s": models.speech.window_s if models.speech else None,
        "speech_hop_s": worker.analyser.hop_s if worker else None, "speech_tick_s": worker.hop_s if worker else None,
        "tracks": book.tracks(), "speech_attribution": book.speech_attribution(),
        "models": models.versions, "warnings": warnings,
    }


def _finish(out_dir: Path, summary: dict) -> dict:
    """List the outputs in the summary and write summary.json (over the timeline's own)."""
    summary["analysis"]["outputs"] = sorted(p.name for p in out_dir.iterdir()
                                            if p.is_file() and not p.name.startswith("."))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
