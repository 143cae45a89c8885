"""Pretrained speech embedding of a window: Google's keyword-spotting embedding, pooled.

Two vendored LiteRT files (``models/speech_embedding*.tflite``, from the pyopen-wakeword wheel, see
their LICENSE) turn 0.79 s of 16 kHz audio into one 96-value embedding: a 32-band log-mel model, then
the embedding network on its 76 frames. A window is covered by chunks every ``hop / chunks_per_hop``
samples; each chunk is level-normalised on its own (the recipe's level stage), so its embedding
depends on its samples alone. That lets overlapping windows share work: an embedding is looked up by
the chunk's content before it is computed, and a window one hop later recomputes only the newest
``chunks_per_hop`` chunks. The window's vector is the mean and the standard deviation of its chunks'
embeddings.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from dsrter.edge.infer import speech_features as sf_
from dsrter.edge.infer.model_io import ModelError, TFLiteModel


def default_spec() -> dict[str, Any]:
    """The recipe's ``embedding`` entry: files, chunking and pooling."""
    return {
        "model": "speech_embedding.tflite",
        "melspec_model": "speech_embedding_melspec.tflite",
        "chunk_samples": 12640,  # 76 mel frames of 512 samples every 160
        "chunks_per_hop": 3,
        "dims": 96,
        "pool": ["mean", "std"],
    }


def chunk_starts(window_samples: int, hop_samples: int, spec: dict[str, Any]) -> list[int]:
    """Chunk offsets in a window: ``hop / chunks_per_hop`` apart (rounded), the same pattern every hop."""
    step = hop_samples / int(spec["chunks_per_hop"])
    last = window_samples - int(spec["chunk_samples"])
    return [int(round(k * step)) for k in range(int(last // step) + 1)]


class SpeechEmbedder:
    """The embedding vector of one raw window (before the level stage), with a small content cache."""

    def __init__(self, folder: str | Path, recipe: dict[str, Any], threads: int = 1, cache_size: int = 32):
        self.recipe = recipe
        self.spec: dict[str, Any] = recipe["embedding"]
        folder = Path(folder)
        n = int(self.spec["chunk_samples"])
        self._mel = TFLiteModel(folder / self.spec["melspec_model"], threads=threads, input_shapes=[(1, n)])
        frames = int(self._mel.outputs[0]["shape"][2])
        self._emb = TFLiteModel(folder / self.spec["model"], threads=threads)
        want = (1, frames, 32, 1)
        if tuple(int(v) for v in self._emb.inputs[0]["shape"]) != want:
            raise ModelError(f"{self._emb.path}: input shape {tuple(self._emb.inputs[0]['shape'])}, expected {want}")
        if int(np.prod(self._emb.outputs[0]["shape"])) != int(self.spec["dims"]):
            raise ModelError(f"{self._emb.path}: output has {int(np.prod(self._emb.outputs[0]['shape']))} values, the card says {self.spec['dims']}")
        self._starts = chunk_starts(int(recipe["window_samples"]), int(round(recipe["hop_s"] * recipe["sample_rate"])), self.spec)
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self.computed = 0  # chunks embedded (not found in the cache), for tests and the cost tool

    def chunk(self, samples: np.ndarray) -> np.ndarray:
        """The 96-value embedding of one raw chunk of ``chunk_samples`` samples."""
        key = hashlib.blake2b(np.ascontiguousarray(samples, np.float32).tobytes(), digest_size=16).digest()
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        x = sf_.normalise_level(np.asarray(samples, np.float32), self.recipe)
        pcm = np.clip(x, -1.0, 1.0) * np.float32(32767.0)  # the mel model takes 16-bit sample values
        mel = self._mel.run(pcm[None].astype(np.float32))[0]  # (1, 1, frames, 32), dB
        emb = self._emb.run((mel[0, 0] / 10.0 + 2.0)[None, :, :, None])[0].reshape(-1)
        self.computed += 1
        self._cache[key] = emb
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return emb

    def __call__(self, window: np.ndarray) -> np.ndarray:
        """Pooled embedding (``dims * len(pool)`` values) of one raw window of ``window_samples``."""
        n = int(self.spec["chunk_samples"])
        e = np.stack([self.chunk(window[s : s + n]) for s in self._starts])
        parts = {"mean": e.mean(axis=0), "std": e.std(axis=0)}
        return np.concatenate([parts[p] for p in self.spec["pool"]]).astype(np.float32)
