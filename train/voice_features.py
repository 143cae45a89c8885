"""The voice branch's features for the windows training and evaluation keep (see ``build_windows``).

Each clip is read (and re-recorded at ``level`` when asked), its windows chosen exactly as
``build_windows`` chooses them, and every kept window given the mean of its grid partials
(clip time is stream time: the grid starts at the clip's first sample), computed by the device's
own :class:`~dsrter.edge.infer.voice_embedding.VoiceEmbedder`. Cached per clip on disk.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dsrter.edge.infer import speech_features as sf_
from dsrter.edge.infer.model_io import load_card, sha256_file
from dsrter.edge.infer.voice_embedding import VoiceEmbedder, VoiceHead, fuse, partial_layout
from dsrter.train.speech_data import SpeechItem, apply_level, cached_array, clip_cache_file, read_audio, recipe_key, speech_windows_of


def clip_voice_features(audio: np.ndarray, recipe: dict[str, Any], hop_s: float, embedder: VoiceEmbedder) -> np.ndarray:
    """(kept windows, dim) voice features of one clip, in window order."""
    hop = int(round(hop_s * recipe["sample_rate"]))
    speech, fallback = speech_windows_of(audio, recipe, hop_s)
    wins = sf_.split_windows(audio, recipe["window_samples"], hop)
    rows = [embedder.window(w, s) for i, (s, w) in enumerate(wins) if speech[i] or i == fallback]
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, embedder.dim), np.float32)


def voice_window_features(
    items: Sequence[SpeechItem], recipe: dict[str, Any], hop_s: float, embedder: VoiceEmbedder, level: str = "", cache_dir: str | Path | None = None
) -> np.ndarray:
    """Voice features of every kept window of ``items``, in ``build_windows`` order."""
    grid = "" if embedder.grid_samples == embedder.partial_samples else f"|{embedder.grid_samples}"
    key = hashlib.sha1(f"{sha256_file(embedder.model.path)}|{embedder.partial_samples}{grid}".encode()).hexdigest()[:16]
    out = []
    for it in items:
        cf = clip_cache_file(cache_dir, f"voice/{key}", it, f"{recipe_key(recipe)}|{hop_s}|{level}")
        out.append(cached_array(cf, lambda it=it: clip_voice_features(apply_level(read_audio(it.path), level), recipe, hop_s, embedder)))
    return np.concatenate(out) if out else np.zeros((0, embedder.dim), np.float32)


def fused_window_probs(
    model_path: str | Path, main_probs: np.ndarray, items: Sequence[SpeechItem], level: str = "", cache_dir: str | Path | None = None
) -> np.ndarray:
    """``main_probs`` fused with the card's voice branch as the device fuses them (unchanged without one)."""
    card = load_card(model_path)
    spec = card.get("voice")
    if not spec:
        return main_probs
    partial_s, grid_s = partial_layout(spec)
    emb = VoiceEmbedder(Path(model_path).parent / spec["model"], partial_s=partial_s, grid_s=grid_s)
    feats = voice_window_features(items, card["recipe"], card["recipe"]["hop_s"], emb, level, cache_dir)
    if len(feats) != len(main_probs):
        raise RuntimeError(f"voice windows ({len(feats)}) and emotion windows ({len(main_probs)}) disagree")
    return fuse(main_probs, VoiceHead(spec["head"], emb.dim)(feats), float(spec["weight"]))
