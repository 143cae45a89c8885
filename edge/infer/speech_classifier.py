"""Device-side speech emotion classifier: one 16 kHz window -> 7 probabilities, via LiteRT.

Usage in the speech stream (the daemon keeps a ring buffer and cuts windows every ``hop_s``)::

    clf = SpeechClassifier(Path("models/speech_emotion.tflite"))
    window = ring[-int(clf.window_s * clf.sample_rate):]      # float32 mono at clf.sample_rate
    if clf.is_speech(window):
        probs = clf.predict(window)                            # (7,) in LABELS order

Audio from a mic or a video file at another rate / channel count goes through
:func:`dsrter.edge.infer.speech_features.to_mono_16k` first.  Everything the classifier needs (feature
recipe, normalisation statistics, VAD threshold, labels) comes from the model card beside the file.
No Torch, TensorFlow or librosa is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dsrter.edge.infer import speech_features as sf_
from dsrter.edge.labels import LABELS, NUM_CLASSES
from dsrter.edge.infer.model_io import ModelError, TFLiteModel, load_card
from dsrter.edge.infer.smile_api import SmileUnavailable
from dsrter.edge.infer.voice_embedding import VoiceEmbedder, VoiceHead, fuse, partial_layout
from dsrter.edge.infer.voice_activity import EnergyVad, SileroVad, VoiceDetector

_REQUIRED = ("recipe", "normalisation")


def temperature_scale(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T) over the last axis: the calibration a speech card's temperature asks for."""
    if temperature == 1.0:
        return probs
    z = np.log(np.maximum(probs, 1e-6)) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


class SpeechClassifier:
    """The int8 (or float) speech emotion TFLite model with its card's feature pipeline.

    Attributes: ``sample_rate`` (Hz), ``window_s`` and ``hop_s`` (seconds), ``vad_threshold``
    (frame energy in dBFS above which a frame counts as voiced), ``card`` (the parsed JSON card).
    """

    def __init__(self, model_path: Path, threads: int = 1, vad_threshold: float | None = None,
                 vad_probability: float | None = None, voice: bool = True):
        """Load ``model_path`` and the card beside it (``.json``).

        ``vad_threshold`` (dBFS) overrides the card's energy gate threshold, e.g. for a noisy room;
        ``vad_probability`` the card's Silero VAD threshold (cards with a ``vad`` model).
        ``voice=False`` leaves the card's voice branch out: the emotion network answers alone, scaled by
        the card's temperature for it (``calibration.temperature_without_voice``; 1 if the card has none).
        Raises :class:`dsrter.edge.infer.model_io.ModelError` when the model or card is missing, corrupt or
        inconsistent (wrong labels, missing recipe keys, input shapes that do not match the recipe).
        """
        model_path = Path(model_path)
        card = load_card(model_path)
        for k in _REQUIRED:
            if k not in card:
                raise ModelError(f"{model_path.with_suffix('.json')}: card lacks {k!r}; not a speech emotion card")
        self.card: dict[str, Any] = card
        self.recipe: dict[str, Any] = card["recipe"]
        self.stats: dict[str, Any] = card["normalisation"]
        try:
            self.sample_rate = int(self.recipe["sample_rate"])
            self.window_s = float(self.recipe["window_s"])
            self.hop_s = float(self.recipe["hop_s"])
            frames = int(self.recipe["logmel"]["frames"])
            n_mels = int(self.recipe["logmel"]["n_mels"])
            n_eg = int(self.recipe["egemaps"]["n"])
            self.vad_threshold = float(self.recipe["vad"]["threshold_dbfs"] if vad_threshold is None else vad_threshold)
            for key, n in (("logmel_mean", n_mels), ("logmel_std", n_mels), ("egemaps_mean", n_eg), ("egemaps_std", n_eg)):
                if len(self.stats[key]) != n:
                    raise ModelError(f"card normalisation {key} has {len(self.stats[key])} values, expected {n}")
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{model_path.with_suffix('.json')}: malformed speech card ({exc!r})") from None
        self.vad_spec: dict[str, Any] | None = card.get("vad")
        if self.vad_spec is not None:
            vad_file = model_path.parent / str(self.vad_spec.get("model", ""))
            if not vad_file.is_file():
                raise ModelError(f"{vad_file}: voice-activity model named by {model_path.with_suffix('.json').name} not found")
            self.vad_spec = {**self.vad_spec, "path": vad_file}
            if vad_probability is not None:
                self.vad_spec["threshold"] = float(vad_probability)
        self.voice: VoiceEmbedder | None = None
        self.voice_head: VoiceHead | None = None
        self.voice_weight = 0.0
        calibration = card.get("calibration") or {}
        if not isinstance(calibration, dict):
            raise ModelError(f"{model_path.with_suffix('.json')}: 'calibration' must be a mapping, got {type(calibration).__name__}")
        has_voice = card.get("voice") is not None
        if has_voice and voice:
            self._load_voice(model_path, card["voice"], threads)
        key = "temperature_without_voice" if has_voice and not voice else "temperature"
        try:
            self.temperature = float(calibration.get(key, 1.0))
        except (TypeError, ValueError):
            self.temperature = float("nan")
        if not self.temperature > 0:
            raise ModelError(f"{model_path.with_suffix('.json')}: calibration {key} must be a number > 0")
        self.model = TFLiteModel(model_path, threads=threads)
        try:
            self._i_lm = self.model.input_index("logmel")
            self._i_eg = self.model.input_index("egemaps")
        except ModelError:
            if len(self.model.inputs) != 2:
                raise
            # fall back on shapes when the converter renamed the inputs
            ranks = [len(d["shape"]) for d in self.model.inputs]
            self._i_lm, self._i_eg = (0, 1) if ranks[0] == 3 else (1, 0)
        lm_shape = tuple(int(v) for v in self.model.inputs[self._i_lm]["shape"][1:])
        eg_shape = tuple(int(v) for v in self.model.inputs[self._i_eg]["shape"][1:])
        if lm_shape != (frames, n_mels) or eg_shape != (n_eg,):
            raise ModelError(f"{model_path}: input shapes {lm_shape}, {eg_shape} do not match the card's recipe "
                             f"({frames}, {n_mels}) and ({n_eg},)")
        out_shape = tuple(int(v) for v in self.model.outputs[0]["shape"][1:])
        if out_shape != (NUM_CLASSES,):
            raise ModelError(f"{model_path}: output shape {out_shape}, expected ({NUM_CLASSES},)")
        self.labels = LABELS
        try:
            self.egemaps = sf_.WindowEgemaps(self.recipe)  # keeps the stream's eGeMAPS blocks (recipes with block_s)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{model_path.with_suffix('.json')}: malformed speech card ({exc})") from None
        try:  # openSMILE's native library, set up now: a missing one is a one-line error at start, not a traceback later
            sf_.egemaps_names()
        except SmileUnavailable as exc:
            raise ModelError(f"speech stream: {exc}; or run without speech (speech.enabled: false)") from None

    def _load_voice(self, model_path: Path, spec: Any, threads: int) -> None:
        """The card's voice branch: encoder file beside the model, head and fusion weight from the card."""
        where = model_path.with_suffix(".json")
        if not isinstance(spec, dict) or not isinstance(spec.get("model"), str):
            raise ModelError(f"{where}: 'voice' must name its encoder file ('model')")
        voice_file = model_path.parent / spec["model"]
        if not voice_file.is_file():
            raise ModelError(f"{voice_file}: voice encoder named by {where.name} not found")
        try:
            self.voice_weight = float(spec["weight"])
            partial_s, grid_s = partial_layout(spec)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{where}: malformed voice section ({exc!r})") from None
        if not 0.0 <= self.voice_weight <= 1.0:
            raise ModelError(f"{where}: voice weight {self.voice_weight} outside 0..1")
        self.voice = VoiceEmbedder(voice_file, partial_s=partial_s, threads=threads, grid_s=grid_s)
        try:
            self.voice_head = VoiceHead(spec.get("head") or {}, self.voice.dim)
        except ModelError as exc:
            raise ModelError(f"{where}: {exc}") from None

    @property
    def window_samples(self) -> int:
        return int(self.recipe["window_samples"])

    def is_speech(self, audio: np.ndarray) -> bool:
        """Energy gate for one buffer of float32 mono audio at ``sample_rate`` (any length).

        True when at least ``recipe.vad.min_active_s`` seconds of 25 ms frames (10 ms hop, DC removed)
        are louder than ``vad_threshold`` dBFS.  Silence, digital zeros and near-silence give False,
        so they are never classified (zeros are not "neutral").  Raises ValueError for non-1-D or
        non-finite input.
        """
        x = np.asarray(audio)
        if x.ndim != 1:
            raise ValueError(f"audio must be 1-D mono at {self.sample_rate} Hz, got shape {x.shape}")
        if x.size and not np.all(np.isfinite(x)):
            raise ValueError("audio contains NaN or infinite samples")
        return sf_.is_speech(x.astype(np.float32, copy=False), self.recipe, self.vad_threshold)

    def make_vad(self) -> VoiceDetector:
        """A new voice-activity detector for one stream: the card's Silero model, else the energy gate."""
        if self.vad_spec is None:
            return EnergyVad(self.is_speech)
        return SileroVad(self.vad_spec["path"], threshold=float(self.vad_spec.get("threshold", 0.5)),
                         lookback_s=float(self.vad_spec.get("lookback_s", 0.125)))

    def clear(self) -> None:
        """Forget the blocks and partials kept for overlapping windows (a new stream)."""
        self.egemaps.clear()
        if self.voice is not None:
            self.voice.clear()

    def features(self, audio: np.ndarray, start_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Normalised model inputs ``(log-mel (frames, n_mels), eGeMAPS (88,))`` of one window starting at
        stream time ``start_s`` (which places the recipe's eGeMAPS blocks; None: at 0)."""
        start = int(round((start_s or 0.0) * self.sample_rate))
        lm, eg = sf_.raw_window_features(audio, self.recipe, start, self.egemaps)
        return sf_.normalise_features(lm, eg, self.recipe, self.stats)

    def raw_probs(self, audio: np.ndarray, start_s: float | None = None) -> np.ndarray:
        """Uncalibrated probabilities (7,): the emotion network's, fused with the voice branch's when
        the card has one (``start_s``: the window's stream time, which places the eGeMAPS blocks and
        the branch's partials)."""
        lm, eg = self.features(audio, start_s)
        arrays: list[np.ndarray] = [np.empty(0)] * 2
        arrays[self._i_lm] = lm[None]
        arrays[self._i_eg] = eg[None]
        p = np.clip(self.model.run(*arrays)[0].reshape(-1).astype(np.float32), 0.0, None)
        if self.voice is not None and self.voice_head is not None:
            start = int(round((start_s or 0.0) * self.sample_rate))
            v = self.voice_head(self.voice.window(np.asarray(audio, np.float32), start))
            if np.all(np.isfinite(v)):  # (never seen; a numeric fault must not poison the emotion network's answer)
                p = fuse(p / max(float(p.sum()), 1e-9), v, self.voice_weight)
        return p

    def predict(self, audio: np.ndarray, start_s: float | None = None) -> np.ndarray:
        """Probabilities (7,) in LABELS order for one window of exactly ``window_s * sample_rate`` samples
        starting at stream time ``start_s`` (seconds; windows of one stream share the voice branch's
        partials through it; None: the window stands alone).

        Does not apply the gate: call :meth:`is_speech` first (or use :meth:`classify`).  Raises
        ValueError for a wrong length, a non-1-D array or NaN/inf samples.
        """
        p = temperature_scale(self.raw_probs(audio, start_s), self.temperature)  # the card's calibration
        s = float(p.sum())
        return p / s if s > 0 else np.full(NUM_CLASSES, 1.0 / NUM_CLASSES, np.float32)

    def classify(self, audio: np.ndarray, start_s: float | None = None) -> np.ndarray | None:
        """:meth:`predict` for speech windows, ``None`` for silence (the gate said no)."""
        return self.predict(audio, start_s) if self.is_speech(audio) else None
