"""Loading shipped .tflite models and their JSON cards, and running them with LiteRT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dsrter.edge.labels import LABELS


class ModelError(RuntimeError):
    """A model or card that is missing, corrupt or does not match what the runtime expects."""


def card_path(model_path: str | Path) -> Path:
    """The card lives beside the model: face_emotion.tflite -> face_emotion.json.

    A float twin (face_emotion_float.tflite) shares its int8 model's card when it has none."""
    p = Path(model_path).with_suffix(".json")
    if not p.exists() and p.stem.endswith("_float"):
        shared = p.with_name(p.stem[: -len("_float")] + ".json")
        if shared.exists():
            return shared
    return p


def load_card(model_path: str | Path) -> dict[str, Any]:
    p = card_path(model_path)
    if not p.is_file():
        raise ModelError(f"{p}: model card not found (expected beside {Path(model_path).name})")
    try:
        card = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{p}: model card is not valid JSON ({exc})") from None
    labels = card.get("labels")
    if labels is not None and list(labels) != list(LABELS):
        raise ModelError(f"{p}: labels {labels} differ from the canonical order {list(LABELS)}")
    return card


def make_interpreter(data: bytes, threads: int = 1, delegates: bool = True):
    """A LiteRT interpreter on a flatbuffer in memory (TensorFlow's where LiteRT is absent)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # pragma: no cover - only where TensorFlow replaces LiteRT
        from tensorflow.lite import Interpreter  # type: ignore
        from tensorflow.lite.experimental import OpResolverType  # type: ignore
    kw = {} if delegates else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    return Interpreter(model_content=data, num_threads=threads, **kw)


class TFLiteModel:
    """One interpreter; float inputs are quantised and int8 outputs dequantised as the file says.

    ``delegates=False`` leaves out XNNPACK, which repacks weights so they can no longer be read
    (for code that reads the graph's constant tensors, such as the face importer)."""

    def __init__(self, model_path: str | Path, threads: int = 1, delegates: bool = True):
        p = Path(model_path)
        if not p.is_file():
            raise ModelError(f"{p}: model file not found")
        data = p.read_bytes()
        if len(data) < 16 or data[4:8] != b"TFL3":
            raise ModelError(f"{p}: not a TFLite flatbuffer (missing TFL3 identifier; file corrupt or truncated?)")
        try:
            self._interp = make_interpreter(data, threads, delegates)
            self._interp.allocate_tensors()
        except Exception as exc:
            raise ModelError(f"{p}: LiteRT cannot load this model ({exc})") from None
        self.path = p
        self.inputs = self._interp.get_input_details()
        self.outputs = self._interp.get_output_details()
        self._shapes: dict[int, tuple[int, ...]] = {}

    def input_index(self, name: str) -> int:
        """Position of the input whose tensor name contains ``name``."""
        for i, d in enumerate(self.inputs):
            if name in d["name"]:
                return i
        raise ModelError(f"{self.path}: no input named like {name!r} (has {[d['name'] for d in self.inputs]})")

    @staticmethod
    def quantise(x: np.ndarray, detail: dict) -> np.ndarray:
        dtype = detail["dtype"]
        if dtype == np.float32:
            return x.astype(np.float32)
        scale, zero = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)

    @staticmethod
    def dequantise(y: np.ndarray, detail: dict) -> np.ndarray:
        if detail["dtype"] == np.float32:
            return y.astype(np.float32)
        scale, zero = detail["quantization"]
        return (y.astype(np.float32) - zero) * scale

    def ops(self) -> list[dict[str, Any]]:
        """The graph's operators in execution order (name, input and output tensor indices)."""
        return self._interp._get_ops_details()  # noqa: SLF001 - LiteRT's only graph listing

    def tensors(self) -> dict[int, dict[str, Any]]:
        """Every tensor's details (name, shape, dtype, quantisation) by index."""
        return {t["index"]: t for t in self._interp.get_tensor_details()}

    def tensor(self, index: int) -> np.ndarray:
        """A copy of one tensor's current value (constant tensors need ``delegates=False``)."""
        return self._interp.get_tensor(index).copy()

    def invoke(self) -> None:
        """Run once on the inputs already set (by :meth:`run`); for timing the bare invoke."""
        self._interp.invoke()

    def run(self, *arrays: np.ndarray, raw: bool = False) -> list[np.ndarray]:
        """Run on float arrays (one per input, in the interpreter's input order); returns float outputs.

        With ``raw=True`` the arrays are passed as they are (already in the input dtype)."""
        if len(arrays) != len(self.inputs):
            raise ModelError(f"{self.path}: expected {len(self.inputs)} input(s), got {len(arrays)}")
        for arr, d in zip(arrays, self.inputs):
            a = np.asarray(arr)
            # compare with the tensor's current shape (self.inputs keeps the shapes at load time)
            current = self._shapes.get(d["index"], tuple(d["shape"]))
            if tuple(a.shape) != current:
                self._interp.resize_tensor_input(d["index"], a.shape)
                self._interp.allocate_tensors()
                self._shapes[d["index"]] = tuple(a.shape)
            self._interp.set_tensor(d["index"], a if raw else self.quantise(a, d))
        self._interp.invoke()
        return [self.dequantise(self._interp.get_tensor(d["index"]), d) for d in self.outputs]


def sha256_file(path: str | Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


