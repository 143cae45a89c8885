"""Voice-activity figures: non-speech rejection, speech detection in noise, end-of-speech lag, av-samples.

Every detector is run as the speech stream runs it: a tick every ``TICK_S``, each fed the newest
2 s of audio. A tick is *speech* when at least 40% of its last 0.25 s is voiced in the clean speech
(frames within 30 dB of the clip's loudest and above -60 dBFS), *silence* when nothing in its last
0.5 s is voiced, and left out in between.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dsrter.edge.infer.speech_features import default_recipe, frame_dbfs, is_speech
from dsrter.edge.infer.voice_activity import SileroVad, VoiceDetector
from dsrter.train.nonspeech import FREEDESKTOP_DIR, Sound, mix_at_snr, nonspeech_set  # noqa: F401
from dsrter.train.speech_data import read_audio

SR = 16000
TICK_S = 0.25
CONTEXT_S = 2.0
SNRS_DB = (20.0, 10.0, 0.0)
_RECIPE = default_recipe()
_FRAME_HOP_S = _RECIPE["logmel"]["hop_length"] / SR


class WebRtcVad:
    """webrtcvad (aggressiveness 3) on 30 ms frames: speaking when half the frames of the lookback are voiced."""

    def __init__(self, lookback_s: float = 0.25, mode: int = 3):
        import webrtcvad  # evaluation only: the comparison detector

        self._vad = webrtcvad.Vad(mode)
        self.lookback_s = lookback_s

    def reset(self) -> None:
        pass

    def update(self, audio: np.ndarray, end_t: float) -> bool:
        x = np.asarray(audio[-int(self.lookback_s * SR):], np.float32)
        pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16)
        frames = [pcm[i : i + 480] for i in range(0, len(pcm) - 479, 480)]
        if not frames:
            return False
        voiced = sum(self._vad.is_speech(f.tobytes(), SR) for f in frames)
        return voiced * 2 >= len(frames)


class EnergyGate:
    """The gate the daemon used before: -50 dBFS frames for 0.25 s within the newest 0.5 s."""

    lookback_s = 0.5

    def reset(self) -> None:
        pass

    def update(self, audio: np.ndarray, end_t: float) -> bool:
        return is_speech(np.asarray(audio[-int(self.lookback_s * SR):], np.float32), _RECIPE)


def detectors(silero_model: Path) -> dict[str, Callable[[], VoiceDetector]]:
    return {"silero": lambda: SileroVad(silero_model), "webrtcvad": WebRtcVad, "energy_gate": EnergyGate}


def voiced_frames(clean: np.ndarray) -> np.ndarray:
    """Per 10 ms frame: voiced in the clean speech."""
    db = frame_dbfs(clean, _RECIPE)
    return (db >= db.max() - 30.0) & (db >= -60.0) if db.size else np.zeros(0, bool)


def tick_truth(voiced: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    """+1 speech, 0 silence, -1 left out, for each tick time."""
    out = np.full(len(ticks), -1, np.int8)
    centres = (np.arange(len(voiced)) * _FRAME_HOP_S) + 0.0125
    for i, t in enumerate(ticks):
        last = voiced[(centres > t - 0.25) & (centres <= t)]
        wider = voiced[(centres > t - 0.5) & (centres <= t)]
        if last.size and last.mean() >= 0.4:
            out[i] = 1
        elif not wider.any():
            out[i] = 0
    return out


def run_ticks(det: VoiceDetector, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tick times, speaking state) of a detector over a clip, as the stream feeds it."""
    det.reset()
    ticks = np.arange(TICK_S, len(audio) / SR + 1e-9, TICK_S)
    states = np.zeros(len(ticks), bool)
    for i, t in enumerate(ticks):
        end = int(round(t * SR))
        states[i] = det.update(audio[max(0, end - int(CONTEXT_S * SR)) : end], float(t))
    return ticks, states


@dataclass
class VadReport:
    detector: str
    nonspeech_ticks: int = 0
    nonspeech_speaking: int = 0
    by_kind: dict[str, list[int]] = field(default_factory=dict)  # kind -> [speaking, ticks]
    speech: dict[str, list[int]] = field(default_factory=dict)  # condition -> [detected, speech ticks]
    silence_in_speech: dict[str, list[int]] = field(default_factory=dict)  # condition -> [speaking, silent ticks]
    end_lag_s: list[float] = field(default_factory=list)
    seconds_audio: float = 0.0
    seconds_cpu: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        rate = lambda a: round(a[0] / a[1], 4) if a[1] else None  # noqa: E731
        lag = np.array(self.end_lag_s) if self.end_lag_s else np.zeros(1)
        return {
            "detector": self.detector,
            "nonspeech_speaking_rate": rate([self.nonspeech_speaking, self.nonspeech_ticks]),
            "nonspeech_ticks": self.nonspeech_ticks,
            "nonspeech_by_kind": {k: rate(v) for k, v in self.by_kind.items()},
            "speech_detected": {k: rate(v) for k, v in self.speech.items()},
            "speech_ticks": {k: v[1] for k, v in self.speech.items()},
            "silence_marked_speaking": {k: rate(v) for k, v in self.silence_in_speech.items()},
            "end_of_speech_lag_s": {"median": round(float(np.median(lag)), 3), "p95": round(float(np.percentile(lag, 95)), 3),
                                    "max": round(float(lag.max()), 3)},
            "ms_per_second_of_audio": round(1000 * self.seconds_cpu / max(self.seconds_audio, 1e-9), 2),
        }


def _end_lag(ticks: np.ndarray, states: np.ndarray, voiced: np.ndarray) -> float | None:
    idx = np.flatnonzero(voiced)
    if not idx.size:
        return None
    end = (idx[-1] + 1) * _FRAME_HOP_S + 0.015
    after = np.flatnonzero((ticks >= end) & ~states)
    return float(ticks[after[0]] - end) if after.size else None


def evaluate_vad(silero_model: Path, speech_clips: list[np.ndarray], sounds: list[Sound] | None = None,
                 seed: int = 0, progress: bool = False) -> list[VadReport]:
    """Reports for every detector on the non-speech set and on ``speech_clips`` (clean, 16 kHz) padded
    with 1 s of silence on each side and mixed with the non-speech sounds at ``SNRS_DB``."""
    sounds = sounds if sounds is not None else nonspeech_set()
    rng = np.random.default_rng(seed)
    pad = np.zeros(SR, np.float32)
    cases = []
    for k, clip in enumerate(speech_clips):
        clean = np.concatenate([pad, clip.astype(np.float32), pad])
        voiced = voiced_frames(clean)
        sound = sounds[int(rng.integers(len(sounds)))]
        cases.append(("clean", clean, voiced))
        active = np.repeat(voiced, int(_FRAME_HOP_S * SR))[: len(clean)]
        active = np.pad(active, (0, len(clean) - len(active)))
        for snr in SNRS_DB:
            cases.append((f"snr{snr:.0f}dB", mix_at_snr(clean, sound.audio, snr, active), voiced))
    reports = []
    items = list(detectors(silero_model).items())
    if progress:
        items = tqdm(items, desc="voice activity", unit="detector")
    for name, make in items:
        det = make()
        rep = VadReport(name)
        for s in sounds:
            t0 = time.process_time()
            _, states = run_ticks(det, s.audio)
            rep.seconds_cpu += time.process_time() - t0
            rep.seconds_audio += len(s.audio) / SR
            rep.nonspeech_ticks += len(states)
            rep.nonspeech_speaking += int(states.sum())
            kind = rep.by_kind.setdefault(s.kind, [0, 0])
            kind[0] += int(states.sum())
            kind[1] += len(states)
        for cond, audio, voiced in cases:
            t0 = time.process_time()
            ticks, states = run_ticks(det, audio)
            rep.seconds_cpu += time.process_time() - t0
            rep.seconds_audio += len(audio) / SR
            truth = tick_truth(voiced, ticks)
            sp = rep.speech.setdefault(cond, [0, 0])
            sp[0] += int(states[truth == 1].sum())
            sp[1] += int((truth == 1).sum())
            si = rep.silence_in_speech.setdefault(cond, [0, 0])
            si[0] += int(states[truth == 0].sum())
            si[1] += int((truth == 0).sum())
            if cond == "clean":
                lag = _end_lag(ticks, states, voiced)
                if lag is not None:
                    rep.end_lag_s.append(lag)
        reports.append(rep)
    return reports


def av_samples_vad(folder: Path, ravdess_root: Path, det: VoiceDetector) -> dict[str, Any]:
    """Share of the silent time of the av-samples clips shown as "no speech" and of the voiced time
    shown as speaking, with the clips' speech placed from their RAVDESS sources."""
    rows = list(csv.DictReader((folder / "manifest.csv").open()))
    silent = [0, 0]
    spoken = [0, 0]
    for row in rows:
        audio = read_audio(folder / row["file"])
        clean = np.zeros_like(audio)
        if row["speech_source"]:
            src = read_audio(ravdess_root / Path(row["speech_source"]).relative_to("ravdess"))
            s0 = int(round(float(row["speech_start_s"]) * SR))
            clean[s0 : s0 + len(src)] = src[: max(0, len(clean) - s0)]
        voiced = voiced_frames(clean) if row["speech_source"] else np.zeros(len(frame_dbfs(clean, _RECIPE)), bool)
        ticks, states = run_ticks(det, audio)
        truth = tick_truth(voiced, ticks)
        silent[0] += int((~states[truth == 0]).sum())
        silent[1] += int((truth == 0).sum())
        spoken[0] += int(states[truth == 1].sum())
        spoken[1] += int((truth == 1).sum())
    return {"clips": len(rows), "silent_shown_no_speech": round(silent[0] / max(1, silent[1]), 4), "silent_ticks": silent[1],
            "spoken_shown_speaking": round(spoken[0] / max(1, spoken[1]), 4), "spoken_ticks": spoken[1],
            "tick_s": TICK_S}
