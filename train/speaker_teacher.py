"""A pretrained GE2E speaker encoder as a distillation teacher (training only; PyTorch).

The ``resemblyzer`` wheel (Apache-2.0) ships one (``resemblyzer/pretrained.pt``): 40-band mel power
frames (25 ms every 10 ms at 16 kHz, Slaney mel scale and area normalisation), three LSTM layers of
256 and a linear + ReLU layer giving a 256-value embedding of 1.6 s of audio, L2-normalised. A voice
that carries an emotion moves that embedding, and it was trained on speakers, not words. For one
2 s window the teacher gives 512 values: the mean of the embeddings of the window's first and last
1.6 s, and the mean over those two partials of the top LSTM layer's time-averaged state. The window
is first scaled to -30 dBFS RMS (the encoder's own input level), so the targets do not follow the gain.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from dsrter.edge.infer.voice_embedding import LEVEL_DBFS, N_MELS, at_level, mel_power, slaney_filterbank

PARTIAL_FRAMES = 160
_REQUIRED = ("lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0", "linear.weight", "linear.bias")


def load_encoder_state(weights: str | Path) -> dict[str, Any]:
    """The encoder's tensors from a GE2E ``.pt`` file (a dict with ``model_state``, as resemblyzer
    saves it); FileNotFoundError / ValueError with a one-line reason otherwise."""
    import torch

    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: speaker-encoder weights not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
    except Exception as exc:
        raise ValueError(f"{path}: not a speaker-encoder checkpoint ({type(exc).__name__}: {exc})") from None
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise ValueError(f"{path}: not a GE2E speaker encoder (no {', '.join(missing)})")
    return state


class SpeakerTeacher:
    """The distillation teacher interface (``key``, ``describe``, ``embed``, ``hidden_size``) for a
    GE2E encoder's ``.pt`` file (a dict with ``model_state``, as resemblyzer saves it)."""

    def __init__(self, weights: str | Path, threads: int = 1):
        import torch
        from torch import nn

        self.path = Path(weights)
        state = load_encoder_state(self.path)
        torch.set_num_threads(threads)
        hidden = int(state["lstm.weight_hh_l0"].shape[1])
        layers = sum(1 for k in state if k.startswith("lstm.weight_ih_l"))
        self.lstm = nn.LSTM(N_MELS, hidden, layers, batch_first=True)
        self.linear = nn.Linear(hidden, int(state["linear.weight"].shape[0]))
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        self.lstm.eval()
        self.linear.eval()
        self.layers = layers
        self.hidden_size = hidden + int(state["linear.weight"].shape[0])
        self.fbank = slaney_filterbank()

    def key(self) -> str:
        """Identifies the weights for the embedding cache."""
        st = self.path.stat()
        return hashlib.sha1(f"ge2e|{self.path.name}|{st.st_size}|{st.st_mtime_ns}|{LEVEL_DBFS}".encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        return {
            "file_name": self.path.name,
            "model_type": "ge2e-speaker-encoder",
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.layers,
            "layer": "embedding + top LSTM state",
            "level_dbfs": LEVEL_DBFS,
        }

    def _partials(self, window: np.ndarray) -> np.ndarray:
        mel = mel_power(at_level(window), self.fbank).astype(np.float32)
        if len(mel) < PARTIAL_FRAMES:
            mel = np.pad(mel, ((0, PARTIAL_FRAMES - len(mel)), (0, 0)))
        return np.stack([mel[:PARTIAL_FRAMES], mel[len(mel) - PARTIAL_FRAMES :]])

    def embed(self, windows: np.ndarray, batch: int = 8) -> np.ndarray:
        """(N, samples) float32 windows -> (N, hidden_size) float32 targets."""
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(windows), batch):
                parts = np.stack([self._partials(w) for w in windows[i : i + batch]])  # (B, 2, T, mels)
                b = parts.shape[0]
                seq, (h, _) = self.lstm(torch.from_numpy(parts.reshape(b * 2, PARTIAL_FRAMES, N_MELS)))
                e = torch.relu(self.linear(h[-1]))
                e = e / torch.clamp(torch.norm(e, dim=1, keepdim=True), min=1e-9)
                both = torch.cat([e.reshape(b, 2, -1).mean(dim=1), seq.mean(dim=1).reshape(b, 2, -1).mean(dim=1)], dim=1)
                out.append(both.float().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.hidden_size), np.float32)
