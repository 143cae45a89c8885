"""The hybrid face network rebuilt in Keras with weights copied from the PyTorch model.

Layers are named after the PyTorch modules ('trunk.3.body.1.0' -> 'trunk_3_body_1_0'), and every
3x3 convolution uses explicit symmetric zero padding, so both frameworks compute the same maps
(TensorFlow's 'same' padding is asymmetric for stride 2)."""

from __future__ import annotations

import numpy as np

from dsrter.edge.labels import NUM_CLASSES
from dsrter.train.face_model import FaceNetSpec, make_divisible

BN_EPS = 1e-5  # PyTorch's default


def _name(prefix: str) -> str:
    return prefix.replace(".", "_")


def build_keras_face_net(spec: FaceNetSpec, with_softmax: bool = True):
    """Keras functional model: input 'face' (S, S, 1) in [-1, 1] -> 7 probabilities (or logits)."""
    import keras
    from keras import layers

    def conv_bn(x, prefix: str, cout: int, k: int = 3, stride: int = 1, depthwise: bool = False, act: str | None = "relu6"):
        if k > 1:
            x = layers.ZeroPadding2D((k - 1) // 2, name=_name(prefix) + "_pad")(x)
        if depthwise:
            x = layers.DepthwiseConv2D(k, stride, padding="valid", use_bias=False, name=_name(prefix + ".0"))(x)
        else:
            x = layers.Conv2D(cout, k, stride, padding="valid", use_bias=False, name=_name(prefix + ".0"))(x)
        x = layers.BatchNormalization(epsilon=BN_EPS, name=_name(prefix + ".1"))(x)
        if act == "relu6":
            x = layers.ReLU(max_value=6.0, name=_name(prefix + ".2"))(x)
        elif act == "relu":
            x = layers.ReLU(name=_name(prefix + ".2"))(x)
        return x

    s = spec
    inp = keras.Input((s.input_size, s.input_size, 1), name="face")
    stem_c = make_divisible(s.stem_channels * s.width)
    stem = conv_bn(inp, "stem", stem_c)
    x = stem
    for i, (cin, cout, stride, t) in enumerate(s.blocks()):
        y, j = x, 0
        if t != 1:
            y = conv_bn(y, f"trunk.{i}.body.{j}", cin * t, k=1)
            j += 1
        y = conv_bn(y, f"trunk.{i}.body.{j}", cin * t, k=3, stride=stride, depthwise=True)
        y = conv_bn(y, f"trunk.{i}.body.{j + 1}", cout, k=1, act=None)
        x = layers.Add(name=f"trunk_{i}_add")([x, y]) if stride == 1 and cin == cout else y
    a = conv_bn(x, "trunk_head", s.last_channels, k=1)
    a = layers.GlobalAveragePooling2D(name="trunk_pool")(a)
    b = layers.MaxPooling2D(2, name="cnn_0")(stem)
    idx = 1
    for c in s.cnn_channels:
        b = conv_bn(b, f"cnn.{idx}", c, act="relu")
        b = conv_bn(b, f"cnn.{idx + 1}", c, act="relu")
        b = layers.MaxPooling2D(2, name=f"cnn_{idx + 2}")(b)
        idx += 3
    b = layers.GlobalAveragePooling2D(name="cnn_pool")(b)
    z = layers.Concatenate(name="fuse")([a, b])
    out = layers.Dense(NUM_CLASSES, name="head")(z)
    if with_softmax:
        out = layers.Softmax(name="probabilities")(out)
    return keras.Model(inp, out, name="face_emotion")


def copy_torch_weights(torch_model, keras_model) -> int:
    """Copy every Conv/BN/Linear tensor from the PyTorch model; returns the number of layers set."""
    import torch

    by_name = {layer.name: layer for layer in keras_model.layers}
    done = 0
    for name, module in torch_model.named_modules():
        layer = by_name.get(_name(name))
        if layer is None:
            continue
        if isinstance(module, torch.nn.Conv2d):
            w = module.weight.detach().numpy()
            if module.groups > 1:  # depthwise: (C, 1, kh, kw) -> (kh, kw, C, 1)
                layer.set_weights([w.transpose(2, 3, 0, 1)])
            else:  # (out, in, kh, kw) -> (kh, kw, in, out)
                layer.set_weights([w.transpose(2, 3, 1, 0)])
        elif isinstance(module, torch.nn.BatchNorm2d):
            layer.set_weights([t.detach().numpy() for t in (module.weight, module.bias, module.running_mean, module.running_var)])
        elif isinstance(module, torch.nn.Linear):
            layer.set_weights([module.weight.detach().numpy().T, module.bias.detach().numpy()])
        else:
            continue
        done += 1
    expected = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Linear)) for m in torch_model.modules())
    if done != expected:
        raise RuntimeError(f"copied {done} of {expected} layers: Keras and PyTorch architectures differ")
    return done


def torch_to_keras(torch_model, with_softmax: bool = True):
    """Keras twin of a trained HybridFaceNet (eval mode)."""
    keras_model = build_keras_face_net(torch_model.spec, with_softmax=with_softmax)
    copy_torch_weights(torch_model.eval(), keras_model)
    return keras_model


def max_abs_difference(torch_model, keras_model, x_nhwc: np.ndarray) -> float:
    """Largest logit difference between the two on the same input (Keras model without softmax)."""
    import torch

    with torch.no_grad():
        t = torch_model.eval()(torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy())).numpy()
    k = np.asarray(keras_model(x_nhwc, training=False))
    return float(np.abs(t - k).max())
