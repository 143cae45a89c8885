"""Keras models of the speech stream: the window classifier and the distilled embedding student.

Both use only ops that convert to plain TFLite builtins (Conv1D -> CONV_2D, BatchNorm folded,
ReLU, max pooling, mean / max reductions, fully connected, concatenation, softmax), so the full
int8 file stays loadable by ai-edge-litert 1.4 on a Raspberry Pi.

Classifier (inputs named ``logmel`` (frames, n_mels) and ``egemaps`` (88,)):
    log-mel -> 3 x [Conv1D(k) + BN + ReLU + MaxPool(2)] -> [global mean ; global max]
    eGeMAPS -> Dropout -> Dense + ReLU
    [optional] log-mel -> frozen distilled student -> embedding -> Dense + ReLU
    concatenate -> Dropout -> Dense + ReLU -> Dropout -> Dense(7) softmax
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
from keras import layers

from dsrter.edge.labels import NUM_CLASSES


@dataclass
class SpeechNetSpec:
    channels: tuple[int, ...] = (48, 64, 96)
    kernels: tuple[int, ...] = (5, 5, 3)
    egemaps_units: int = 64
    embed_units: int = 32
    head_units: int = 64
    dropout: float = 0.3
    input_dropout: float = 0.1

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "SpeechNetSpec":
        d = dict(d)
        for k in ("channels", "kernels"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass
class StudentSpec:
    channels: tuple[int, ...] = (32, 48, 64)
    kernels: tuple[int, ...] = (5, 3, 3)
    embed_dim: int = 64

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "StudentSpec":
        d = dict(d)
        for k in ("channels", "kernels"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


def _conv_trunk(x, channels, kernels, prefix: str):
    for i, (c, k) in enumerate(zip(channels, kernels)):
        x = layers.Conv1D(c, k, padding="same", use_bias=False, name=f"{prefix}_conv{i}")(x)
        x = layers.BatchNormalization(name=f"{prefix}_bn{i}")(x)
        x = layers.ReLU(name=f"{prefix}_relu{i}")(x)
        x = layers.MaxPooling1D(2, name=f"{prefix}_pool{i}")(x)
    return x


def build_student(n_frames: int, n_mels: int, spec: StudentSpec | None = None) -> keras.Model:
    """Normalised log-mel window -> embedding that imitates the teacher's (PCA-reduced) embedding."""
    spec = spec or StudentSpec()
    inp = keras.Input((n_frames, n_mels), name="student_logmel")
    x = _conv_trunk(inp, spec.channels, spec.kernels, "student")
    x = layers.GlobalAveragePooling1D(name="student_gap")(x)
    x = layers.Dense(spec.embed_dim * 2, activation="relu", name="student_fc")(x)
    out = layers.Dense(spec.embed_dim, name="student_embedding")(x)
    return keras.Model(inp, out, name="student")


def build_speech_model(
    n_frames: int,
    n_mels: int,
    n_egemaps: int = 88,
    spec: SpeechNetSpec | None = None,
    student: keras.Model | None = None,
    train_student: bool = False,
) -> keras.Model:
    """The window classifier; ``student`` (if given) is embedded as a sub-model, frozen by default."""
    spec = spec or SpeechNetSpec()
    lm = keras.Input((n_frames, n_mels), name="logmel")
    eg = keras.Input((n_egemaps,), name="egemaps")
    x = _conv_trunk(lm, spec.channels, spec.kernels, "cnn")
    x = layers.Concatenate(name="cnn_pool")(
        [layers.GlobalAveragePooling1D(name="cnn_gap")(x), layers.GlobalMaxPooling1D(name="cnn_gmp")(x)]
    )
    e = layers.Dropout(spec.input_dropout, name="egemaps_drop")(eg)
    e = layers.Dense(spec.egemaps_units, activation="relu", name="egemaps_fc")(e)
    parts = [x, e]
    if student is not None:
        student.trainable = train_student
        s = student(lm)
        s = layers.Dense(spec.embed_units, activation="relu", name="embed_fc")(s)
        parts.append(s)
    h = layers.Concatenate(name="fuse")(parts)
    h = layers.Dropout(spec.dropout, name="fuse_drop")(h)
    h = layers.Dense(spec.head_units, activation="relu", name="head_fc")(h)
    h = layers.Dropout(spec.dropout, name="head_drop")(h)
    out = layers.Dense(NUM_CLASSES, activation="softmax", name="probs")(h)
    return keras.Model([lm, eg], out, name="speech_emotion")


def count_params(model: keras.Model) -> int:
    return int(model.count_params())


__all__ = ["SpeechNetSpec", "StudentSpec", "build_speech_model", "build_student", "count_params"]
