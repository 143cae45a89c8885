"""Speech training pieces: a few optimiser steps lower the loss; augmentation helpers; class weights."""

from __future__ import annotations

import numpy as np
import pytest

import dsrter.edge.infer.speech_features  # noqa: F401  (openSMILE before TensorFlow)
from dsrter.edge.labels import NUM_CLASSES
from dsrter.train.speech_prep import spec_augment
from dsrter.train.speech_train import class_weights


def test_class_weights_balance_and_absent_classes():
    y = np.array([0] * 10 + [1] * 30 + [6] * 20)
    w = class_weights(y)
    assert w[2] == 0.0 and w[5] == 0.0
    counts = np.bincount(y, minlength=NUM_CLASSES)
    assert np.allclose((w * counts)[[0, 1, 6]], len(y) / 3)


def test_spec_augment_masks_bands():
    x = np.ones((8, 198, 64), np.float32)
    y = spec_augment(x, np.random.default_rng(0))
    assert y.shape == x.shape and np.all(x == 1.0)
    assert (y == 0).any() and set(np.unique(y)) <= {0.0, 1.0}


@pytest.mark.slow
def test_a_few_training_steps_lower_the_loss():
    from dsrter.train.speech_prep import set_threads

    set_threads(1)
    import keras

    from dsrter.train.speech_model import SpeechNetSpec, build_speech_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n, t, m = 64, 198, 64
    y = np.arange(n) % NUM_CLASSES
    lm = rng.normal(0, 1, (n, t, m)).astype(np.float32)
    lm[np.arange(n), :, y * 8] += 2.0  # a class-specific band
    eg = rng.normal(0, 1, (n, 88)).astype(np.float32)
    eg[np.arange(n), y] += 2.0
    model = build_speech_model(t, m, 88, SpeechNetSpec(channels=(16, 16, 16)))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="categorical_crossentropy")
    onehot = np.eye(NUM_CLASSES, dtype=np.float32)[y]
    first = float(model.evaluate([lm, eg], onehot, verbose=0))
    for _ in range(15):
        model.train_on_batch([lm, eg], onehot)
    last = float(model.evaluate([lm, eg], onehot, verbose=0))
    assert last < 0.7 * first, (first, last)
