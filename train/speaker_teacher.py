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

SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS = 400, 160, 40
PARTIAL_FRAMES = 160
LEVEL_DBFS = -30.0


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / log_step, f * 3.0 / 200.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(log_step * (m - 15.0)), m * 200.0 / 3.0)


def slaney_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangles on Slaney's mel scale, each scaled to unit area (2 / bandwidth)."""
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sample_rate / 2.0)), n_mels + 2))
    lower = (bins[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    upper = (edges[2:, None] - bins[None, :]) / np.diff(edges)[1:, None]
    tri = np.maximum(0.0, np.minimum(lower, upper))
    return tri * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def mel_power(x: np.ndarray, fbank: np.ndarray) -> np.ndarray:
    """(frames, n_mels) mel power of a centred STFT (zero padding, periodic Hann window)."""
    x = np.pad(np.asarray(x, np.float64), N_FFT // 2)
    n = 1 + (len(x) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][:n]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)
    return (np.abs(np.fft.rfft(frames * window, N_FFT)) ** 2) @ fbank.T


class SpeakerTeacher:
    """The distillation teacher interface (``key``, ``describe``, ``embed``, ``hidden_size``) for a
    GE2E encoder's ``.pt`` file (a dict with ``model_state``, as resemblyzer saves it)."""

    def __init__(self, weights: str | Path, threads: int = 1):
        import torch
        from torch import nn

        self.path = Path(weights)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: speaker-encoder weights not found")
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)["model_state"]
        except Exception as exc:
            raise ValueError(f"{self.path}: not a speaker-encoder checkpoint ({type(exc).__name__}: {exc})") from None
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
        x = np.asarray(window, np.float64)
        rms = float(np.sqrt(np.mean(x**2)))
        if rms > 1e-9:
            x = x * (10.0 ** (LEVEL_DBFS / 20.0) / rms)
        mel = mel_power(x, self.fbank).astype(np.float32)
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
