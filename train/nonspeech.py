"""A non-speech sound set for testing voice-activity detection, built from what Debian ships.

* music: short pieces written here as MIDI (chords, melody, bass, drums on General MIDI programs)
  and rendered by fluidsynth with Debian's FluidR3 General MIDI soundfont (``fluid-soundfont-gm``);
* household sounds: the non-spoken sounds of ``sound-theme-freedesktop`` (bells, alarms, phone
  rings, camera shutter, clicks; the spoken ``audio-channel-*`` files are left out);
* textures made here: fan and air-conditioning noise, mains hum with harmonics, a dishwasher-like
  slosh, clicks, door-like knocks and slams.

Everything is 16 kHz mono float32. ``nonspeech_set`` returns named clips; ``mix_at_snr`` puts
speech over them at a given speech-to-noise ratio.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import butter, lfilter

from dsrter.edge.infer.speech_features import to_mono_16k

SR = 16000
SOUNDFONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/soundfonts"))
FREEDESKTOP_DIR = Path("/usr/share/sounds/freedesktop/stereo")
DEBIAN_PACKAGES = "fluidsynth fluid-soundfont-gm sound-theme-freedesktop"


class NonSpeechError(RuntimeError):
    """A tool or sound file the set needs is missing."""


@dataclass(frozen=True)
class Sound:
    name: str
    kind: str  # "music", "household", "texture"
    audio: np.ndarray  # float32 mono 16 kHz


def _soundfont() -> Path:
    for d in SOUNDFONT_DIRS:
        for name in ("FluidR3_GM.sf2", "default-GM.sf2"):
            if (d / name).is_file():
                return d / name
    raise NonSpeechError(f"no General MIDI soundfont found; install the Debian packages: {DEBIAN_PACKAGES}")


def _midi_piece(seed: int, seconds: float, path: Path) -> None:
    import mido  # training/test extra only: writes the MIDI file fluidsynth renders

    rng = np.random.default_rng(seed)
    tpb, bpm = 480, int(rng.integers(70, 150))
    beat = tpb
    mid = mido.MidiFile(ticks_per_beat=tpb)
    n_beats = int(seconds * bpm / 60)
    root = int(rng.integers(48, 60))
    progression = [root + int(d) for d in rng.choice([0, 5, 7, 9, 2, 4], size=max(1, n_beats // 4 + 1))]
    programs = rng.choice([0, 4, 19, 24, 32, 40, 48, 56, 61, 73, 80], size=3, replace=False)  # GM instruments

    def track(channel: int, program: int, notes: list[tuple[int, int, int]]) -> mido.MidiTrack:
        tr = mido.MidiTrack()
        tr.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
        tr.append(mido.Message("program_change", channel=channel, program=int(program), time=0))
        events = [(s, 1, p) for s, d, p in notes] + [(s + d, 0, p) for s, d, p in notes]
        events.sort(key=lambda e: (e[0], e[1]))  # at the same tick, note-offs first
        now = 0
        for t, on, pitch in events:
            tr.append(mido.Message("note_on" if on else "note_off", channel=channel, note=int(pitch),
                                   velocity=90 if on else 0, time=int(t - now)))
            now = t
        return tr

    chords, melody, bass = [], [], []
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    for bar, r in enumerate(progression):
        start = bar * 4 * beat
        chords += [(start, 4 * beat, r + 12 + off) for off in (0, 4, 7)]
        bass += [(start + k * beat, beat, r - 12) for k in range(4)]
        for k in range(8):
            melody.append((start + k * beat // 2, beat // 2, r + 24 + scale[int(rng.integers(len(scale)))]))
    mid.tracks += [track(0, programs[0], chords), track(1, programs[1], melody), track(2, programs[2], bass)]
    if rng.random() < 0.6:  # a drum kit on GM channel 10 (index 9)
        drums = [(k * beat // 2, beat // 4, 42) for k in range(n_beats * 2)]
        drums += [(k * beat, beat // 4, 36 if k % 2 == 0 else 38) for k in range(n_beats)]
        mid.tracks.append(track(9, 0, drums))
    mid.save(str(path))


def render_music(seed: int, seconds: float = 10.0) -> np.ndarray:
    """One generated piece rendered by fluidsynth at 16 kHz."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise NonSpeechError(f"fluidsynth not found; install the Debian packages: {DEBIAN_PACKAGES}")
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "piece.mid", Path(tmp) / "piece.wav"
        _midi_piece(seed, seconds, mid)
        subprocess.run([exe, "-ni", "-g", "0.6", "-r", str(SR), "-F", str(wav), str(_soundfont()), str(mid)],
                       check=True, capture_output=True, timeout=120)
        audio, sr = soundfile.read(str(wav), dtype="float32", always_2d=True)
    return to_mono_16k(audio, sr)[: int(seconds * SR)]


def household_sounds() -> list[Sound]:
    """The freedesktop theme's non-spoken sounds (its ``audio-channel-*`` files say words)."""
    if not FREEDESKTOP_DIR.is_dir():
        raise NonSpeechError(f"{FREEDESKTOP_DIR} not found; install the Debian packages: {DEBIAN_PACKAGES}")
    out = []
    for f in sorted(FREEDESKTOP_DIR.glob("*.oga")):
        if f.name.startswith("audio-channel-") or f.name == "audio-test-signal.oga":
            continue
        audio, sr = soundfile.read(str(f), dtype="float32", always_2d=True)
        out.append(Sound(f.stem, "household", to_mono_16k(audio, sr)))
    return out


def _band(x: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    if lo and hi:
        b, a = butter(2, [lo / (SR / 2), hi / (SR / 2)], btype="band")
    elif hi:
        b, a = butter(2, hi / (SR / 2), btype="low")
    else:
        b, a = butter(2, lo / (SR / 2), btype="high")
    return lfilter(b, a, x)


def textures(seconds: float = 8.0, seed: int = 0) -> list[Sound]:
    """Synthesised household textures: fan, hum, dishwasher, clicks, knocks and a door slam."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    white = rng.standard_normal(n)
    fan = _band(white, None, 900.0) + 0.3 * np.sin(2 * np.pi * 23.0 * t)  # broadband whoosh + blade tone
    hum = sum(np.sin(2 * np.pi * 50.0 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 8))
    slosh = _band(white, 200.0, 3000.0) * (0.55 + 0.45 * np.sin(2 * np.pi * 0.7 * t) ** 2)
    clicks = np.zeros(n)
    for s in rng.integers(0, n - 200, size=int(seconds * 3)):
        clicks[s : s + 200] += rng.standard_normal(200) * np.exp(-np.arange(200) / 20.0)
    knocks = np.zeros(n)
    for s in np.sort(rng.integers(0, n - 4000, size=int(seconds))):
        k = np.arange(4000) / SR
        knocks[s : s + 4000] += np.sin(2 * np.pi * rng.uniform(80, 200) * k) * np.exp(-k * 40) + \
            0.3 * _band(rng.standard_normal(4000), 500.0, 4000.0) * np.exp(-k * 80)
    slam = np.zeros(n)
    s0 = n // 3
    k = np.arange(SR) / SR
    slam[s0 : s0 + SR] = np.sin(2 * np.pi * 60 * k) * np.exp(-k * 12) + 0.5 * _band(rng.standard_normal(SR), 300.0, 6000.0) * np.exp(-k * 25)
    out = []
    for name, x in (("fan", fan), ("mains_hum", hum), ("dishwasher", slosh), ("clicks", clicks),
                    ("knocks", knocks), ("door_slam", slam)):
        x = np.asarray(x, np.float64)
        out.append(Sound(name, "texture", (0.3 * x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32)))
    return out


def nonspeech_set(n_music: int = 6, music_s: float = 10.0) -> list[Sound]:
    """The whole set: generated music, household sounds and textures."""
    music = [Sound(f"music_{i}", "music", render_music(1000 + i, music_s)) for i in range(n_music)]
    return music + household_sounds() + textures()


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float, active: np.ndarray | None = None) -> np.ndarray:
    """``speech`` plus ``noise`` (looped or cut to its length) at ``snr_db``; the speech power is taken
    over ``active`` samples (its voiced part) when given."""
    reps = int(np.ceil(len(speech) / max(1, len(noise))))
    nz = np.tile(noise, reps)[: len(speech)].astype(np.float64)
    sp = speech.astype(np.float64)
    p_s = np.mean(sp[active] ** 2) if active is not None and active.any() else np.mean(sp**2)
    p_n = np.mean(nz**2) + 1e-12
    mix = sp + nz * np.sqrt(p_s / (p_n * 10 ** (snr_db / 10)))
    peak = np.max(np.abs(mix))
    return (mix / peak * 0.9 if peak > 0.99 else mix).astype(np.float32)
