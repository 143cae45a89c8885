"""Run .tflite models on fixed inputs with whatever ``ai-edge-litert`` the running Python has.

Stand-alone on purpose (numpy + ai_edge_litert only, no dsrter import): tests/test_litert_compat.py
runs it with the project's interpreter AND with a second environment that holds the oldest LiteRT
a Raspberry Pi can install (1.4.0), then compares the two result files.

    python litert_compat_runner.py inputs OUT_DIR MODEL.tflite ... [--n 24] [--seed 20240901]
        writes OUT_DIR/<model stem>.npz: the input tensors, in each input's own dtype
    python litert_compat_runner.py run IN_DIR OUT.npz MODEL.tflite ... [--threads 1]
        runs every model on its inputs from IN_DIR; OUT.npz holds the raw outputs, the LiteRT
        version, and for a model that fails to load or run, the error text

Inputs are generated once (by the first environment) and read by both, so both interpreters see
the very same bytes. Four kinds alternate: full-range noise, smooth (low-frequency) noise, a bright
blob on a dark ground (face-like for image inputs) and small noise around the zero point.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
import zlib
from pathlib import Path

import numpy as np


def litert_version() -> str:
    try:
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:  # pragma: no cover - metadata missing
        import ai_edge_litert

        return str(getattr(ai_edge_litert, "__version__", "unknown"))


def _interpreter(model: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model), num_threads=threads)
    it.allocate_tensors()
    return it


def _value_range(detail: dict) -> tuple[float, float]:
    dt = np.dtype(detail["dtype"])
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        return float(info.min), float(info.max)
    if dt == np.float32:
        return -1.0, 1.0  # float models here take normalised [-1, 1] data (BlazeFace does)
    raise ValueError(f"input {detail['name']!r}: unsupported dtype {dt}")


def _smooth(rng: np.random.Generator, shape: tuple[int, ...], factor: int = 8) -> np.ndarray:
    """Noise in [0, 1] that changes slowly along every non-batch axis (blocky upsampled noise)."""
    small = tuple(max(1, -(-s // factor)) if i > 0 else s for i, s in enumerate(shape))
    x = rng.random(small)
    for axis, size in enumerate(shape):
        if axis == 0 or small[axis] == size:
            continue
        x = np.repeat(x, -(-size // small[axis]), axis=axis)
        x = np.take(x, np.arange(size), axis=axis)
    return x


def _blob(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A bright ellipse on a dark ground for (N, H, W, C) inputs; smooth noise for any other rank."""
    if len(shape) != 4:
        return _smooth(rng, shape, factor=4)
    n, h, w, c = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    ry, rx = rng.uniform(0.2, 0.4) * h, rng.uniform(0.15, 0.3) * w
    d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    img = np.exp(-d)[None, :, :, None] * rng.uniform(0.6, 1.0, (1, 1, 1, c))
    return np.clip(img + 0.05 * rng.standard_normal(shape), 0.0, 1.0)


def make_inputs(detail: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples for one input tensor, stacked on a new first axis, in the tensor's dtype."""
    shape = tuple(int(s) for s in detail["shape"])
    lo, hi = _value_range(detail)
    dt = np.dtype(detail["dtype"])
    samples = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            unit = rng.random(shape)
        elif kind == 1:
            unit = _smooth(rng, shape)
        elif kind == 2:
            unit = _blob(rng, shape)
        else:
            zero = 0.5 if not np.issubdtype(dt, np.integer) else (detail["quantization"][1] - lo) / (hi - lo)
            unit = np.clip(zero + 0.08 * rng.standard_normal(shape), 0.0, 1.0)
        x = lo + unit * (hi - lo)
        samples.append(np.round(x).astype(dt) if np.issubdtype(dt, np.integer) else x.astype(dt))
    return np.stack(samples)


def cmd_inputs(args: argparse.Namespace) -> int:
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    for model in args.models:
        model = Path(model)
        rng = np.random.default_rng([args.seed, zlib.crc32(model.stem.encode())])
        it = _interpreter(model, 1)
        arrays = {f"in{k}": make_inputs(d, args.n, rng) for k, d in enumerate(it.get_input_details())}
        np.savez(out / f"{model.stem}.npz", **arrays)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    results: dict[str, np.ndarray] = {"litert_version": np.array(litert_version())}
    meta: dict[str, dict] = {}
    for model in args.models:
        model = Path(model)
        stem = model.stem
        try:
            inputs = np.load(Path(args.dir) / f"{stem}.npz")
            it = _interpreter(model, args.threads)
            in_details, out_details = it.get_input_details(), it.get_output_details()
            n = int(inputs["in0"].shape[0])
            outs: list[list[np.ndarray]] = [[] for _ in out_details]
            for s in range(n):
                for k, d in enumerate(in_details):
                    it.set_tensor(d["index"], inputs[f"in{k}"][s])
                it.invoke()
                for k, d in enumerate(out_details):
                    outs[k].append(it.get_tensor(d["index"]).copy())
            for k, d in enumerate(out_details):
                results[f"{stem}/out{k}"] = np.stack(outs[k])
            meta[stem] = {"outputs": [{"name": d["name"], "dtype": np.dtype(d["dtype"]).name,
                                       "quantization": [float(d["quantization"][0]), int(d["quantization"][1])]}
                                      for d in out_details],
                          "inputs": [{"name": d["name"], "dtype": np.dtype(d["dtype"]).name} for d in in_details]}
        except Exception as exc:  # recorded, so the comparison can name the model and the reason
            meta[stem] = {"error": f"{type(exc).__name__}: {exc}",
                          "traceback": traceback.format_exc(limit=3)}
    results["meta"] = np.array(json.dumps(meta))
    np.savez(args.out, **results)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pi = sub.add_parser("inputs", help="write the fixed input set for each model")
    pi.add_argument("dir")
    pi.add_argument("models", nargs="+")
    pi.add_argument("--n", type=int, default=24)
    pi.add_argument("--seed", type=int, default=20240901)
    pr = sub.add_parser("run", help="run each model on its inputs and save the outputs")
    pr.add_argument("dir")
    pr.add_argument("out")
    pr.add_argument("models", nargs="+")
    pr.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    return cmd_inputs(args) if args.cmd == "inputs" else cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
