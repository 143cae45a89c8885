"""Silero VAD (ONNX) -> float TFLite, so the device runs every network on LiteRT.

The Silero team's 16 kHz model is small: a fixed STFT (a strided convolution), four 1-D
convolutions, one LSTM cell and a 1x1 convolution with a sigmoid. This module reads its weights
from the vendored ONNX file, rebuilds that graph in TensorFlow (same layout, same padding) and
converts it. ``check_port`` runs both files over the same audio as a stream and reports how far
the speech probabilities differ.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsrter.edge.infer.voice_activity import SileroVad

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CHUNK = 512  # new samples per call at 16 kHz
CONTEXT = 64  # samples of the previous chunk prepended to each call
HIDDEN = 128
SOURCE = (  # what speech cards say of the file
    "Silero VAD v6 (silero_vad_16k_op15.onnx from the silero-vad 6.2.3 wheel, vendored as silero_vad.onnx), "
    "MIT licence: silero_vad.LICENSE; rebuilt as TFLite by `dsrter convert vad`, run by LiteRT on 32 ms "
    "chunks of the newest audio"
)

# ONNX initialiser name -> expected shape (PyTorch layouts: conv (out, in, k), LSTM gates i, f, g, o)
WEIGHTS = {
    "model.stft.forward_basis_buffer": (258, 1, 256),
    "model.encoder.0.reparam_conv.weight": (128, 129, 3),
    "model.encoder.0.reparam_conv.bias": (128,),
    "model.encoder.1.reparam_conv.weight": (64, 128, 3),
    "model.encoder.1.reparam_conv.bias": (64,),
    "model.encoder.2.reparam_conv.weight": (64, 64, 3),
    "model.encoder.2.reparam_conv.bias": (64,),
    "model.encoder.3.reparam_conv.weight": (128, 64, 3),
    "model.encoder.3.reparam_conv.bias": (128,),
    "model.decoder.rnn.weight_ih": (4 * HIDDEN, HIDDEN),
    "model.decoder.rnn.weight_hh": (4 * HIDDEN, HIDDEN),
    "model.decoder.rnn.bias_ih": (4 * HIDDEN,),
    "model.decoder.rnn.bias_hh": (4 * HIDDEN,),
    "model.decoder.decoder.2.weight": (1, HIDDEN, 1),
    "model.decoder.decoder.2.bias": (1,),
}
ENCODER_STRIDES = (1, 2, 2, 1)


class VadConvertError(RuntimeError):
    """The ONNX file is not the Silero VAD this port was written for."""


def read_weights(onnx_path: str | Path) -> dict[str, np.ndarray]:
    """The initialisers of a Silero VAD v5/v6 16 kHz ONNX file, checked by name and shape."""
    import onnx
    from onnx import numpy_helper

    path = Path(onnx_path)
    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # onnx raises protobuf decode errors of several kinds
        raise VadConvertError(f"{path}: not a readable ONNX file ({str(exc).splitlines()[0][:120]})") from None
    found = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in graph.initializer}
    weights = {}
    for name, shape in WEIGHTS.items():
        if name not in found or found[name].shape != shape:
            got = found[name].shape if name in found else "missing"
            raise VadConvertError(f"{path}: not the 16 kHz Silero VAD this port expects ({name}: {got}, want {shape})")
        weights[name] = found[name]
    return weights


def build_module(weights: dict[str, np.ndarray]):
    """A ``tf.Module`` whose ``step(audio[1, 576], state[2, 1, 128])`` returns (probability[1, 1], state)."""
    import tensorflow as tf

    basis = tf.constant(weights["model.stft.forward_basis_buffer"].transpose(2, 1, 0))  # (k, in, out)
    convs = [(tf.constant(weights[f"model.encoder.{i}.reparam_conv.weight"].transpose(2, 1, 0)),
              tf.constant(weights[f"model.encoder.{i}.reparam_conv.bias"]), s)
             for i, s in enumerate(ENCODER_STRIDES)]
    w_x = tf.constant(weights["model.decoder.rnn.weight_ih"].T)
    w_h = tf.constant(weights["model.decoder.rnn.weight_hh"].T)
    b = tf.constant(weights["model.decoder.rnn.bias_ih"] + weights["model.decoder.rnn.bias_hh"])
    w_out = tf.constant(weights["model.decoder.decoder.2.weight"][:, :, 0].T)  # (128, 1)
    b_out = tf.constant(weights["model.decoder.decoder.2.bias"])
    bins = basis.shape[-1] // 2

    class SileroStep(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, CONTEXT + CHUNK], tf.float32, name="audio"),
                                      tf.TensorSpec([2, 1, HIDDEN], tf.float32, name="state")])
        def step(self, audio, state):
            x = tf.pad(audio, [[0, 0], [0, CONTEXT]], mode="REFLECT")  # as the original: reflect on the right
            spec = tf.nn.conv1d(x[:, :, None], basis, stride=basis.shape[0] // 2, padding="VALID")
            real, imag = spec[:, :, :bins], spec[:, :, bins:]
            h = tf.sqrt(real * real + imag * imag)  # (1, 4 frames, 129 bins)
            for kernel, bias, stride in convs:  # PyTorch pads one sample on each side before striding
                h = tf.pad(h, [[0, 0], [1, 1], [0, 0]])
                h = tf.nn.relu(tf.nn.conv1d(h, kernel, stride=stride, padding="VALID") + bias)
            feat = tf.reshape(h, [1, HIDDEN])  # one frame left
            gates = tf.matmul(feat, w_x) + tf.matmul(state[0], w_h) + b
            i, f, g, o = tf.split(gates, 4, axis=1)
            c = tf.sigmoid(f) * state[1] + tf.sigmoid(i) * tf.tanh(g)
            h_new = tf.sigmoid(o) * tf.tanh(c)
            prob = tf.sigmoid(tf.matmul(tf.nn.relu(h_new), w_out) + b_out)
            return {"probability": prob, "state_out": tf.stack([h_new, c])}

    return SileroStep()


def to_tflite(onnx_path: str | Path) -> bytes:
    """The float TFLite flatbuffer of the Silero VAD in ``onnx_path``."""
    import tensorflow as tf

    module = build_module(read_weights(onnx_path))
    conv = tf.lite.TFLiteConverter.from_concrete_functions([module.step.get_concrete_function()], module)
    return conv.convert()


@dataclass
class PortCheck:
    chunks: int
    max_abs_diff: float
    decisions_differ: int  # chunks where prob >= threshold differs between the two runtimes
    onnx_s: float  # wall time of the onnxruntime run (one thread)
    tflite_s: float  # wall time of the LiteRT run (one thread)


def check_port(onnx_path: str | Path, tflite_path: str | Path, audio: np.ndarray,
               threshold: float = 0.5) -> PortCheck:
    """Run the ONNX original (onnxruntime) and the TFLite port over ``audio`` as one stream."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    port = SileroVad(tflite_path)
    state = np.zeros((2, 1, HIDDEN), np.float32)
    context = np.zeros((1, CONTEXT), np.float32)
    x = np.asarray(audio, np.float32).reshape(-1)
    n = len(x) // CHUNK
    ref = np.empty(n, np.float32)
    t0 = time.perf_counter()
    for k in range(n):
        inp = np.concatenate([context, x[None, k * CHUNK:(k + 1) * CHUNK]], axis=1)
        p, state = sess.run(None, {"input": inp, "state": state, "sr": np.array(16000, np.int64)})
        context = inp[:, -CONTEXT:]
        ref[k] = p.reshape(-1)[0]
    t1 = time.perf_counter()
    got = port.chunk_probs(x[: n * CHUNK])
    t2 = time.perf_counter()
    return PortCheck(chunks=n, max_abs_diff=float(np.max(np.abs(got - ref))) if n else 0.0,
                     decisions_differ=int(np.sum((got >= threshold) != (ref >= threshold))),
                     onnx_s=t1 - t0, tflite_s=t2 - t1)
