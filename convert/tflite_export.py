"""Keras -> TFLite: float and full-integer int8 (int8 input and output) with a representative set."""

from __future__ import annotations

import os
from typing import Callable, Iterable, Sequence

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def to_tflite(keras_model, representative: Callable[[], Iterable[Sequence[np.ndarray]]] | None = None) -> bytes:
    """Float model when ``representative`` is None, else full int8 (ops, input and output).

    ``representative`` yields, per sample, float32 arrays with batch size 1: a list in the
    converted model's input order, or a dict keyed by input name."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    if representative is not None:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def representative_from(arrays: np.ndarray, n: int = 500, seed: int = 0) -> Callable[[], Iterable[list[np.ndarray]]]:
    """A representative-dataset callable drawing ``n`` random samples of one input array."""
    idx = np.random.default_rng(seed).permutation(len(arrays))[:n]

    def gen():
        for i in idx:
            yield [arrays[i : i + 1].astype(np.float32)]

    return gen
