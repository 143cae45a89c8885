"""Emotional-speech datasets: shared manifests and the public RAVDESS / CREMA-D folder layouts.

Every loader returns :class:`SpeechDataset` items with a label index in LABELS order, a speaker id
and the speaker-independent split that design.md fixes per corpus:

* RAVDESS (``Actor_XX/03-01-EE-II-SS-RR-AA.wav|flac``): actors 1-18 train, 19-20 val, 21-24 test;
  emotion 02 (calm) is mapped to ``neutral``; song files (vocal channel 02) are ignored.
* CREMA-D (``AudioWAV/ACTOR_SENT_EMO_LVL.wav``): actors 1001-1060 train, 1061-1066 val, 1067-1076 test
  (actors 1077-1091 are in no split of that protocol); there is no ``surprise``.
* ``manifest.csv`` with at least ``path,label,speaker`` (paths relative to the manifest). A ``split``
  column (train/val/test) is used when present; otherwise a ``dataset`` column naming ravdess or
  crema-d selects that corpus's rule; otherwise rows have no split (evaluation uses all of them).

Audio of any rate and channel count is read as float32 mono 16 kHz; unreadable, empty or
NaN-containing files raise :class:`SpeechDataError` naming the file.  The module also holds the
training augmentation and the cached per-window feature extraction shared by training and evaluation.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from dsrter.edge.infer import speech_features as sf_
from dsrter.edge.labels import LABELS, label_index

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
AUDIO_EXTS = {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aiff", ".aif"}

RAVDESS_EMOTIONS = {
    "01": "neutral",
    "02": "neutral",  # calm -> neutral (design.md); the original code is kept in SpeechItem.code
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}
CREMAD_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
RAVDESS_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
CREMAD_RE = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


@dataclass(kw_only=True)
class WindowSettings:
    """Window, feature and voice-gate settings shared by speech training and distillation."""

    window_s: float = 2.0
    hop_s: float = 0.5
    train_hop_s: float = 0.5  # step between training windows (the recipe's hop_s is the device's)
    n_mels: int = 64
    window_cmn: bool = False
    vad_threshold_dbfs: float = -50.0
    egemaps_block_s: float | None = None  # eGeMAPS as the mean over blocks of this length (None: whole window)

    def window_settings(self) -> dict[str, Any]:
        """These fields alone, to hand to another config."""
        return {f.name: getattr(self, f.name) for f in fields(WindowSettings)}

    def feature_recipe(self) -> dict[str, Any]:
        """The feature recipe these settings define (stored in the model card)."""
        return sf_.default_recipe(window_s=self.window_s, hop_s=self.hop_s, n_mels=self.n_mels,
                                  window_cmn=self.window_cmn, vad_threshold_dbfs=self.vad_threshold_dbfs,
                                  egemaps_block_s=self.egemaps_block_s)


class SpeechDataError(ValueError):
    """A dataset, manifest row or audio file that cannot be used; the message names it."""


@dataclass(frozen=True)
class SpeechItem:
    path: Path  # absolute
    rel: str  # relative to the dataset root (reports, checksums)
    label: int  # index into LABELS
    speaker: str
    corpus: str  # "ravdess", "cremad" or "custom"
    split: str  # "train" | "val" | "test" | "" (in no split)
    code: str = ""  # original emotion code where the corpus has one


@dataclass
class SpeechDataset:
    root: Path
    layout: str  # "manifest", "ravdess", "cremad"
    items: list[SpeechItem]
    manifest: Path | None = None
    notes: list[str] = field(default_factory=list)

    def split(self, name: str) -> list[SpeechItem]:
        """Items of one split; ``all`` gives every item."""
        if name == "all":
            return list(self.items)
        return [it for it in self.items if it.split == name]

    @property
    def has_splits(self) -> bool:
        return any(it.split for it in self.items)

    def __len__(self) -> int:
        return len(self.items)


# --------------------------------------------------------------------------------------------
# splits


def ravdess_split(actor: int) -> str:
    if 1 <= actor <= 18:
        return "train"
    if actor in (19, 20):
        return "val"
    if 21 <= actor <= 24:
        return "test"
    return ""


def cremad_split(actor: int) -> str:
    if 1001 <= actor <= 1060:
        return "train"
    if 1061 <= actor <= 1066:
        return "val"
    if 1067 <= actor <= 1076:
        return "test"
    return ""


def _corpus_name(s: str) -> str:
    k = re.sub(r"[^a-z]", "", s.lower())
    if k == "ravdess":
        return "ravdess"
    if k in ("cremad", "crema"):
        return "cremad"
    return "custom"


def _split_for(corpus: str, speaker: str) -> str:
    try:
        n = int(re.sub(r"\D", "", speaker) or "x")
    except ValueError:
        return ""
    if corpus == "ravdess":
        return ravdess_split(n)
    if corpus == "cremad":
        return cremad_split(n)
    return ""


# --------------------------------------------------------------------------------------------
# loaders


def load_dataset(path: str | Path) -> SpeechDataset:
    """A manifest.csv (file, or a folder holding one), a RAVDESS folder or a CREMA-D folder."""
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() != ".csv":
            raise SpeechDataError(f"{p}: expected a manifest .csv file or a dataset folder")
        return load_manifest(p)
    if not p.is_dir():
        raise SpeechDataError(f"{p}: no such dataset file or folder")
    if (p / "manifest.csv").is_file():
        return load_manifest(p / "manifest.csv")
    if any(d.is_dir() and re.fullmatch(r"Actor_\d{2}", d.name) for d in p.iterdir()):
        return load_ravdess_folder(p)
    if (p / "AudioWAV").is_dir() or any(CREMAD_RE.match(f.stem) for f in p.iterdir() if f.is_file()):
        return load_cremad_folder(p)
    raise SpeechDataError(
        f"{p}: not a speech dataset (no manifest.csv, no RAVDESS Actor_XX/ folders, no CREMA-D AudioWAV/ files)"
    )


def load_ravdess_folder(root: str | Path) -> SpeechDataset:
    """RAVDESS as published: ``Actor_XX/03-01-EE-II-SS-RR-AA.wav`` (speech; .flac also accepted)."""
    root = Path(root)
    items, skipped = [], 0
    for actor_dir in sorted(d for d in root.iterdir() if d.is_dir() and re.fullmatch(r"Actor_\d{2}", d.name)):
        for f in sorted(actor_dir.iterdir()):
            m = RAVDESS_RE.match(f.stem)
            if f.suffix.lower() not in AUDIO_EXTS or not m:
                skipped += 1
                continue
            modality, channel, emo, _inten, _stmt, _rep, actor = m.groups()
            if channel != "01":  # 02 = song
                skipped += 1
                continue
            if emo not in RAVDESS_EMOTIONS:
                raise SpeechDataError(f"{f}: unknown RAVDESS emotion code {emo} (expected 01-08)")
            a = int(actor)
            items.append(
                SpeechItem(f.resolve(), f"{actor_dir.name}/{f.name}", label_index(RAVDESS_EMOTIONS[emo]), str(a),
                           "ravdess", ravdess_split(a), emo)
            )
    if not items:
        raise SpeechDataError(f"{root}: no RAVDESS speech files (Actor_XX/03-01-EE-II-SS-RR-AA.wav) found")
    notes = [f"{skipped} files in Actor_XX/ ignored (not RAVDESS speech audio)"] if skipped else []
    return SpeechDataset(root, "ravdess", items, notes=notes)


def load_cremad_folder(root: str | Path) -> SpeechDataset:
    """CREMA-D as published: ``AudioWAV/1001_DFA_ANG_XX.wav`` (or the wav files directly in ``root``)."""
    root = Path(root)
    folder = root / "AudioWAV" if (root / "AudioWAV").is_dir() else root
    items, skipped = [], 0
    for f in sorted(folder.iterdir()):
        m = CREMAD_RE.match(f.stem)
        if not f.is_file() or f.suffix.lower() not in AUDIO_EXTS or not m:
            skipped += 1
            continue
        actor, _sent, emo, _lvl = m.groups()
        if emo not in CREMAD_EMOTIONS:
            raise SpeechDataError(f"{f}: unknown CREMA-D emotion code {emo} (expected {', '.join(CREMAD_EMOTIONS)})")
        items.append(
            SpeechItem(f.resolve(), str(f.relative_to(root)), label_index(CREMAD_EMOTIONS[emo]), actor, "cremad",
                       cremad_split(int(actor)), emo)
        )
    if not items:
        raise SpeechDataError(f"{root}: no CREMA-D files (AudioWAV/ACTOR_SENT_EMO_LVL.wav) found")
    notes = [f"{skipped} entries ignored (not CREMA-D audio files)"] if skipped else []
    unsplit = sum(1 for it in items if not it.split)
    if unsplit:
        notes.append(f"{unsplit} clips of actors outside 1001-1076 are in no split of the CREMA-D protocol")
    return SpeechDataset(root, "cremad", items, notes=notes)


def load_manifest(manifest: str | Path) -> SpeechDataset:
    """``path,label,speaker[,split][,dataset]`` rows; paths relative to the manifest's folder."""
    manifest = Path(manifest)
    root = manifest.parent
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpeechDataError(f"{manifest}: cannot read manifest ({exc})") from None
    reader = csv.DictReader(text.splitlines())
    cols = [c.strip().lower() for c in (reader.fieldnames or [])]
    missing = [c for c in ("path", "label", "speaker") if c not in cols]
    if missing:
        raise SpeechDataError(f"{manifest}: manifest lacks column(s) {', '.join(missing)} (has {', '.join(cols) or 'none'})")
    items = []
    for lineno, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if not row.get("path"):
            raise SpeechDataError(f"{manifest} line {lineno}: empty path")
        try:
            lab = label_index(row["label"])
        except ValueError as exc:
            raise SpeechDataError(f"{manifest} line {lineno}: {exc}") from None
        f = Path(row["path"])
        f = f if f.is_absolute() else root / f
        if not f.is_file():
            raise SpeechDataError(f"{manifest} line {lineno}: audio file {row['path']!r} not found ({f})")
        speaker = row["speaker"]
        if not speaker:
            raise SpeechDataError(f"{manifest} line {lineno}: empty speaker")
        corpus = _corpus_name(row.get("dataset", ""))
        split = row.get("split", "").lower()
        if split == "validation":
            split = "val"
        if split and split not in SPLITS:
            raise SpeechDataError(f"{manifest} line {lineno}: split {split!r} is not one of train, val, test")
        if not split and "split" not in cols:
            split = _split_for(corpus, speaker)
        items.append(SpeechItem(f.resolve(), row["path"], lab, speaker, corpus, split, row.get("emotion_code", "")))
    if not items:
        raise SpeechDataError(f"{manifest}: manifest has no rows")
    return SpeechDataset(root, "manifest", items, manifest=manifest)


# --------------------------------------------------------------------------------------------
# audio


def read_audio(path: str | Path) -> np.ndarray:
    """Float32 mono 16 kHz samples of an audio file; SpeechDataError naming the file otherwise."""
    p = Path(path)
    if not p.is_file():
        raise SpeechDataError(f"{p}: audio file not found")
    if p.stat().st_size == 0:
        raise SpeechDataError(f"{p}: audio file is empty (0 bytes)")
    import soundfile

    try:
        data, sr = soundfile.read(str(p), dtype="float32", always_2d=True)
    except Exception as sf_exc:  # libsndfile cannot read it: try FFmpeg (mp3, m4a, odd WAVs)
        try:
            data, sr = _read_with_av(p)
        except Exception:
            raise SpeechDataError(f"{p}: cannot read audio ({sf_exc})") from None
    if data.size == 0:
        raise SpeechDataError(f"{p}: audio file has no samples")
    if not np.all(np.isfinite(data)):
        raise SpeechDataError(f"{p}: audio contains NaN or infinite samples")
    try:
        return sf_.to_mono_16k(data, int(sr), channel_axis=1)
    except ValueError as exc:
        raise SpeechDataError(f"{p}: {exc}") from None


def _read_with_av(p: Path) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(p)) as c:
        stream = next(s for s in c.streams if s.type == "audio")
        chunks, sr = [], stream.rate
        for frame in c.decode(stream):
            a = frame.to_ndarray()
            if frame.format.is_planar:
                a = a.T
            else:
                a = a.reshape(-1, len(frame.layout.channels))
            if np.issubdtype(a.dtype, np.integer):
                a = a.astype(np.float32) / float(np.iinfo(a.dtype).max + 1)
            chunks.append(a.astype(np.float32))
    if not chunks:
        return np.zeros((0, 1), np.float32), sr
    return np.concatenate(chunks), sr


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dataset_checksums(ds: SpeechDataset, items: Sequence[SpeechItem] | None = None) -> dict[str, Any]:
    """sha256 of the manifest (if any) and of the sorted ``rel<TAB>sha256(file)`` list of the audio."""
    items = ds.items if items is None else items
    lines = sorted(f"{it.rel}\t{_sha256(it.path)}" for it in items)
    out = {
        "layout": ds.layout,
        "files": len(lines),
        "audio_sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
    }
    if ds.manifest is not None:
        out["manifest_sha256"] = _sha256(ds.manifest)
    return out


# --------------------------------------------------------------------------------------------
# augmentation (training only)


def _speech_power(x: np.ndarray) -> float:
    if len(x) < 400:
        return float(np.mean(x * x) + 1e-10)
    fr = np.lib.stride_tricks.sliding_window_view(x, 400)[::160]
    e = np.sort(np.mean(fr * fr, axis=1))
    return float(np.mean(e[len(e) // 2 :]) + 1e-10)  # the louder half of the frames ~ the speech


def _coloured_noise(n: int, rng: np.random.Generator, colour: str) -> np.ndarray:
    w = rng.standard_normal(n)
    if colour == "white":
        return w
    spec = np.fft.rfft(w)
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    spec = spec / (np.sqrt(f) if colour == "pink" else f)
    out = np.fft.irfft(spec, n)
    return out / (out.std() + 1e-12)


def augment_clip(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One random corruption of a 16 kHz clip: speed/pitch, reverberation-like filtering, noise, gain.

    * speed/pitch (p=0.6): resampled by a factor in [0.9, 1.1] and played at 16 kHz (tempo and pitch
      move together, as in Kaldi-style speed perturbation);
    * reverberation (p=0.4): convolution with a synthetic exponentially decaying noise impulse
      response, RT60 0.15-0.6 s, mixed with the dry signal;
    * noise (p=0.7): white, pink or brown noise at an SNR of 0-25 dB relative to the speech frames;
    * level: a gain of -35 to +6 dB (a far or quiet microphone), or (p=0.25) peak normalisation to
      0 dBFS as some recordings have, then clipped to [-1, 1] and rounded to 16-bit PCM, so the
      quantisation noise of a quiet input is there too.
    Returns the signal and a short description of what was applied.
    """
    from scipy.signal import fftconvolve, resample_poly

    y = np.asarray(x, dtype=np.float64)
    parts = []
    if rng.random() < 0.6:
        factor = float(rng.uniform(0.9, 1.1))
        r = Fraction(factor).limit_denominator(20)
        y = resample_poly(y, r.denominator, r.numerator)
        parts.append(f"speed{float(r):.2f}")
    if rng.random() < 0.4:
        rt60 = float(rng.uniform(0.15, 0.6))
        n = int(rt60 * sf_.TARGET_SR)
        t = np.arange(n) / sf_.TARGET_SR
        ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
        ir[0] = 1.0
        ir /= np.sqrt(np.sum(ir * ir))
        wet = fftconvolve(y, ir)[: len(y)]
        mix = float(rng.uniform(0.3, 0.8))
        y = (1 - mix) * y + mix * wet * (np.std(y) / (np.std(wet) + 1e-12))
        parts.append(f"reverb{rt60:.2f}")
    if rng.random() < 0.7:
        snr = float(rng.uniform(0.0, 25.0))
        colour = ("white", "pink", "brown")[int(rng.integers(3))]
        noise = _coloured_noise(len(y), rng, colour)
        y = y + noise * np.sqrt(_speech_power(y) / 10 ** (snr / 10))
        parts.append(f"{colour}{snr:.0f}dB")
    if rng.random() < 0.25:
        y = y / (np.max(np.abs(y)) + 1e-12)
        parts.append("peak0dB")
    else:
        gain_db = float(rng.uniform(-35.0, 6.0))
        y = y * 10 ** (gain_db / 20)
        parts.append(f"gain{gain_db:+.0f}dB")
    y = np.round(np.clip(y, -1.0, 1.0) * 32767.0) / 32767.0
    return y.astype(np.float32), "+".join(parts)


# --------------------------------------------------------------------------------------------
# per-clip window features, cached


def recipe_key(recipe: dict[str, Any]) -> str:
    """Hash of the recipe parts that change the raw (un-normalised) features."""
    keep = {k: recipe[k] for k in ("sample_rate", "window_s", "window_samples", "logmel", "egemaps", "vad", "level")
            if k in recipe}
    return hashlib.sha1(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class ClipFeatures:
    """Raw features of every window of one clip (one version: clean or one augmentation)."""

    starts: np.ndarray  # (W,) int64 start samples
    speech: np.ndarray  # (W,) bool, passed the energy gate
    logmel: np.ndarray  # (W, T, M) float32
    egemaps: np.ndarray  # (W, 88) float32 (zeros for non-speech windows, except the fallback)
    fallback: int  # index of the loudest window when no window is speech, else -1


def speech_windows_of(audio: np.ndarray, recipe: dict[str, Any], hop_s: float) -> tuple[np.ndarray, int]:
    """Which windows of a clip at ``hop_s`` count as speech, and the fallback (the loudest window after
    the level stage, when none does; else -1): the windows training keeps."""
    win = recipe["window_samples"]
    hop = int(round(hop_s * recipe["sample_rate"]))
    # The energy gate sees the clip at the recipe's speech level (when it has one), so which windows
    # count as speech does not depend on the recording's gain.
    gated = sf_.split_windows(sf_.normalise_level(np.asarray(audio, np.float32), recipe), win, hop)
    speech = np.array([sf_.is_speech(w, recipe) for _, w in gated], dtype=bool)
    fallback = -1
    if not speech.any():
        levelled = [sf_.normalise_level(w, recipe) for _, w in sf_.split_windows(audio, win, hop)]
        fallback = int(np.argmax([np.mean(np.square(w, dtype=np.float64)) for w in levelled]))
    return speech, fallback


def clip_features(audio: np.ndarray, recipe: dict[str, Any], hop_s: float) -> ClipFeatures:
    """Windows of a clip at ``hop_s``; eGeMAPS only for speech windows (or the loudest if none)."""
    speech, fallback = speech_windows_of(audio, recipe, hop_s)
    # each window's features see the window normalised on its own, as on the device; eGeMAPS blocks
    # (recipes with egemaps.block_s) lie on a grid of clip time, as on the device's stream time
    raw = sf_.split_windows(audio, recipe["window_samples"], int(round(hop_s * recipe["sample_rate"])))
    wins = [(s, w, sf_.normalise_level(w, recipe)) for s, w in raw]
    lm = np.stack([sf_.log_mel(x, recipe) for _, _, x in wins])
    eg = np.zeros((len(wins), recipe["egemaps"]["n"]), np.float32)
    eg_of = sf_.WindowEgemaps(recipe)
    for i, (s, w, x) in enumerate(wins):
        if speech[i] or i == fallback:
            eg[i] = eg_of(w, s, levelled=x, valid=min(len(w), len(audio) - s))
    return ClipFeatures(np.array([s for s, _, _ in wins], np.int64), speech, lm, eg, fallback)


def apply_level(audio: np.ndarray, level: str) -> np.ndarray:
    """The clip as another microphone gain would give it: ``"-20"`` dB (or any number) relative to the
    recording, or ``"peak"`` (peak-normalised to 0 dBFS); clipped and rounded to 16-bit PCM."""
    if not level:
        return audio
    x = np.asarray(audio, np.float64)
    if level == "peak":
        x = x / (np.max(np.abs(x)) + 1e-12)
    else:
        try:
            x = x * 10 ** (float(level) / 20.0)
        except ValueError:
            raise SpeechDataError(f"level {level!r}: expected a gain in dB (e.g. -20) or 'peak'") from None
    return (np.round(np.clip(x, -1.0, 1.0) * 32767.0) / 32767.0).astype(np.float32)


def _cache_file(cache_dir: Path, item: SpeechItem, recipe: dict[str, Any], hop_s: float, aug: int, seed: int,
                level: str = "") -> Path:
    st = item.path.stat()
    key = f"{item.path}|{st.st_size}|{st.st_mtime_ns}|{recipe_key(recipe)}|{hop_s}|{aug}|{seed if aug else 0}"
    key += f"|level{level}" if level else ""
    h = hashlib.sha1(key.encode()).hexdigest()
    return cache_dir / recipe_key(recipe) / h[:2] / f"{h}.npz"


def item_features(
    item: SpeechItem,
    recipe: dict[str, Any],
    hop_s: float,
    aug: int = 0,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    level: str = "",
) -> ClipFeatures:
    """Features of one clip version (``aug=0`` clean, ``k>0`` the k-th augmented copy), cached on disk;
    ``level`` re-records it at another gain first (see :func:`apply_level`)."""
    cf = _cache_file(Path(cache_dir), item, recipe, hop_s, aug, seed, level) if cache_dir else None
    if cf is not None and cf.is_file():
        try:
            with np.load(cf) as z:
                return ClipFeatures(z["starts"], z["speech"], z["logmel"], z["egemaps"], int(z["fallback"]))
        except Exception:  # a truncated cache file: recompute
            pass
    audio = read_audio(item.path)
    if aug:
        rng = np.random.default_rng([seed, aug, int(hashlib.sha1(item.rel.encode()).hexdigest()[:8], 16)])
        audio, _ = augment_clip(audio, rng)
    feats = clip_features(apply_level(audio, level), recipe, hop_s)
    if cf is not None:
        cf.parent.mkdir(parents=True, exist_ok=True)
        tmp = cf.with_name(cf.name + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, starts=feats.starts, speech=feats.speech, logmel=feats.logmel, egemaps=feats.egemaps,
                 fallback=np.int64(feats.fallback))
        os.replace(tmp, cf)
    return feats


def clip_cache_file(cache_dir: str | Path | None, folder: str, item: SpeechItem, key: str) -> Path | None:
    """``cache_dir/folder/<hash>.npy`` for one clip (its path, size and mtime) and ``key``; None without a cache."""
    if not cache_dir:
        return None
    st = item.path.stat()
    h = hashlib.sha1(f"{item.path}|{st.st_size}|{st.st_mtime_ns}|{key}".encode()).hexdigest()
    return Path(cache_dir) / folder / f"{h}.npy"


def cached_array(cache_file: Path | None, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``, kept in ``cache_file`` (.npy, written atomically) and read from it when present."""
    if cache_file is not None and cache_file.is_file():
        return np.load(cache_file)
    value = compute()
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f"{cache_file.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, value)
        os.replace(tmp, cache_file)
    return value


def clip_egemaps(item: SpeechItem, cache_dir: str | Path | None = None) -> np.ndarray:
    """eGeMAPS functionals of the whole clip (the classic clip-level baseline), cached."""
    cf = None
    if cache_dir:
        st = item.path.stat()
        h = hashlib.sha1(f"clip-egemaps|{item.path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
        cf = Path(cache_dir) / "clip_egemaps" / h[:2] / f"{h}.npy"
        if cf.is_file():
            try:
                return np.load(cf)
            except Exception:
                pass
    v = sf_.egemaps(read_audio(item.path))
    if cf is not None:
        cf.parent.mkdir(parents=True, exist_ok=True)
        tmp = cf.with_name(cf.name + f".{os.getpid()}.tmp.npy")
        np.save(tmp, v)
        os.replace(tmp, cf)
    return v


@dataclass
class WindowSet:
    """Stacked raw window features of many clips, with the clip each window came from."""

    logmel: np.ndarray  # (N, T, M)
    egemaps: np.ndarray  # (N, 88)
    labels: np.ndarray  # (N,) int64
    clip: np.ndarray  # (N,) index into ``items``
    aug: np.ndarray  # (N,) 0 clean, k augmented copy
    items: list[SpeechItem]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def clip_labels(self) -> np.ndarray:
        return np.array([it.label for it in self.items], np.int64)

    @property
    def speakers(self) -> np.ndarray:
        return np.array([self.items[c].speaker for c in self.clip])

    def subset(self, mask: np.ndarray) -> "WindowSet":
        return WindowSet(self.logmel[mask], self.egemaps[mask], self.labels[mask], self.clip[mask], self.aug[mask],
                         self.items)


def _job(args: tuple) -> tuple[int, int, ClipFeatures]:
    idx, item, recipe, hop_s, aug, seed, cache_dir, level = args
    return idx, aug, item_features(item, recipe, hop_s, aug, seed, cache_dir, level)


def build_windows(
    items: Sequence[SpeechItem],
    recipe: dict[str, Any],
    hop_s: float,
    aug_copies: int = 0,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    workers: int = 1,
    progress: bool = False,
    include_fallback: bool = True,
    level: str = "",
) -> WindowSet:
    """Speech windows (plus each silent clip's loudest window if ``include_fallback``) of all items,
    each clip re-recorded at ``level`` first when given (see :func:`apply_level`)."""
    jobs = [(i, it, recipe, hop_s, a, seed, str(cache_dir) if cache_dir else None, level)
            for i, it in enumerate(items) for a in range(aug_copies + 1)]
    results: list[tuple[int, int, ClipFeatures]] = []
    it_results: Iterable
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        pool = ctx.Pool(workers)
        it_results = pool.imap_unordered(_job, jobs, chunksize=4)
    else:
        pool = None
        it_results = map(_job, jobs)
    if progress:
        from tqdm import tqdm

        it_results = tqdm(it_results, total=len(jobs), desc="features", mininterval=5)
    try:
        for r in it_results:
            results.append(r)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    results.sort(key=lambda r: (r[0], r[1]))
    lms, egs, labs, clips, augs = [], [], [], [], []
    for idx, a, f in results:
        keep = f.speech.copy()
        if include_fallback and f.fallback >= 0:
            keep[f.fallback] = True
        if not keep.any():
            continue
        lms.append(f.logmel[keep])
        egs.append(f.egemaps[keep])
        k = int(keep.sum())
        labs.append(np.full(k, items[idx].label, np.int64))
        clips.append(np.full(k, idx, np.int64))
        augs.append(np.full(k, a, np.int64))
    if not lms:
        t, m = recipe["logmel"]["frames"], recipe["logmel"]["n_mels"]
        return WindowSet(np.zeros((0, t, m), np.float32), np.zeros((0, recipe["egemaps"]["n"]), np.float32),
                         np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), list(items))
    return WindowSet(np.concatenate(lms), np.concatenate(egs), np.concatenate(labs), np.concatenate(clips),
                     np.concatenate(augs), list(items))


def clip_probabilities(window_probs: np.ndarray, clip: np.ndarray, n_clips: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the window probabilities per clip; returns (probs (n_clips, 7), has_windows mask)."""
    out = np.zeros((n_clips, window_probs.shape[1] if window_probs.ndim == 2 else len(LABELS)), np.float64)
    counts = np.bincount(clip, minlength=n_clips)
    np.add.at(out, clip, window_probs)
    has = counts > 0
    out[has] /= counts[has, None]
    return out.astype(np.float32), has
