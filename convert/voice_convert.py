"""``dsrter convert voice``: a pretrained GE2E speaker encoder as the speech model's voice branch.

1. The encoder's weights (from the ``resemblyzer`` wheel, or its ``.pt`` file) go into an identical
   Keras model over one partial (three LSTM layers, linear + ReLU, L2 norm; the top layer's mean
   state beside it), converted to TFLite with int8 weights (dynamic range), checked against PyTorch.
2. Every kept training and validation window gets its voice features from that file, exactly as
   the device computes them; a logistic-regression head is fitted on the training speakers.
3. The head's strength, the fusion weight and the calibration temperature are chosen on the
   validation speakers only (the selection score of speech training); the card gains a ``voice``
   section and every figure in it is recomputed with the branch.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dsrter.convert.speech_convert import latency_in_subprocess
from dsrter.edge.infer import speech_features as sf_
from dsrter.edge.infer.model_io import TFLiteModel, load_card, sha256_file
from dsrter.edge.infer.voice_embedding import HOP, N_MELS, SAMPLE_RATE, VoiceEmbedder, VoiceHead, at_level, fuse, mel_power, slaney_filterbank
from dsrter.edge.labels import NUM_CLASSES
from dsrter.train.speaker_teacher import load_encoder_state
from dsrter.train.speech_data import build_windows, load_dataset, read_audio
from dsrter.train.speech_prep import normalise_set, set_threads
from dsrter.train.speech_report import DEFAULT_LEVELS, fit_temperature, gain_sweep
from dsrter.train.speech_train import corpus_of, sample_weights, selection_score, tflite_window_probs
from dsrter.train.voice_features import voice_window_features

log = logging.getLogger(__name__)

WHEEL_WEIGHTS = "resemblyzer/pretrained.pt"
VOICE_FILE = "speech_voice.tflite"
C_GRID = (0.001, 0.003, 0.01, 0.03)
WEIGHT_GRID = (0.2, 0.3, 0.4, 0.5, 0.6)


class VoiceSourceError(ValueError):
    """The encoder source cannot be used (named in the message)."""


def read_source(source: str | Path, licence: str | Path | None, tmp: Path) -> tuple[Path, str, str]:
    """(weights .pt, licence text, provenance) from a resemblyzer wheel or a ``.pt`` plus ``licence``."""
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: speaker-encoder source not found")
    if source.suffix == ".whl":
        try:
            with zipfile.ZipFile(source) as z:
                names = z.namelist()
                lic = [n for n in names if n.endswith(".dist-info/LICENSE")]
                if WHEEL_WEIGHTS not in names:
                    raise VoiceSourceError(f"{source}: wheel has no {WHEEL_WEIGHTS}")
                pt = tmp / "pretrained.pt"
                pt.write_bytes(z.read(WHEEL_WEIGHTS))
                text = z.read(lic[0]).decode("utf-8") if lic else None
        except zipfile.BadZipFile:
            raise VoiceSourceError(f"{source}: not a wheel (bad zip file)") from None
        provenance = f"{source.name} ({WHEEL_WEIGHTS})"
    else:
        pt, text, provenance = source, None, source.name
    if licence is not None:
        text = Path(licence).read_text()
    if not text:
        raise VoiceSourceError(f"{source}: no licence text found; name it with --licence")
    return pt, text, provenance


def build_encoder(state: dict[str, Any], frames: int):
    """Keras model: (1, frames, 40) mel power -> (1, 512) [L2-normalised embedding, top layer's mean state]."""
    import keras

    hidden = int(state["lstm.weight_hh_l0"].shape[1])
    layers = sum(1 for k in state if k.startswith("lstm.weight_ih_l"))
    inp = keras.Input((frames, N_MELS), batch_size=1, name="mel")
    x = inp
    lstms = []
    for _ in range(layers):
        lstm = keras.layers.LSTM(hidden, return_sequences=True)
        x = lstm(x)
        lstms.append(lstm)
    linear = keras.layers.Dense(int(state["linear.weight"].shape[0]), activation="relu")
    emb = linear(x[:, -1, :])
    emb = emb / keras.ops.maximum(keras.ops.sqrt(keras.ops.sum(emb * emb, axis=1, keepdims=True)), 1e-9)
    out = keras.layers.Concatenate(name="voice")([emb, keras.ops.mean(x, axis=1)])
    model = keras.Model(inp, out)
    for k, lstm in enumerate(lstms):  # PyTorch's gate order (i, f, g, o) is Keras's (i, f, c, o)
        lstm.set_weights(
            [state[f"lstm.weight_ih_l{k}"].numpy().T, state[f"lstm.weight_hh_l{k}"].numpy().T, (state[f"lstm.bias_ih_l{k}"] + state[f"lstm.bias_hh_l{k}"]).numpy()]
        )
    linear.set_weights([state["linear.weight"].numpy().T, state["linear.bias"].numpy()])
    return model


def torch_features(state: dict[str, Any], mels: np.ndarray) -> np.ndarray:
    """The same 512 values computed by PyTorch from the original weights (the reference)."""
    import torch
    from torch import nn

    hidden = int(state["lstm.weight_hh_l0"].shape[1])
    layers = sum(1 for k in state if k.startswith("lstm.weight_ih_l"))
    lstm = nn.LSTM(N_MELS, hidden, layers, batch_first=True)
    lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
    with torch.inference_mode():
        seq, (h, _) = lstm(torch.from_numpy(mels))
        e = torch.relu(h[-1] @ state["linear.weight"].T + state["linear.bias"])
        e = e / torch.clamp(torch.norm(e, dim=1, keepdim=True), min=1e-9)
        return torch.cat([e, seq.mean(dim=1)], dim=1).numpy()


def check_encoder(state: dict[str, Any], path: Path, partials: Sequence[np.ndarray]) -> dict[str, float]:
    """Largest difference between the file (int8 weights) and PyTorch (float) on real partials."""
    emb = VoiceEmbedder(path)
    fb = slaney_filterbank()
    mels = np.stack([mel_power(at_level(p), fb)[: emb.frames] for p in partials]).astype(np.float32)
    ref = torch_features(state, mels)
    got = np.stack([emb.partial(p) for p in partials])
    cos = np.sum(ref * got, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    return {"partials": len(partials), "max_abs_diff": round(float(np.abs(ref - got).max()), 4), "min_cosine": round(float(cos.min()), 5)}


def fit_head(x: np.ndarray, y: np.ndarray, weights: np.ndarray, c: float) -> dict[str, list]:
    """Standardised multinomial logistic regression, returned with the standardisation folded in."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    lr = LogisticRegression(C=c, max_iter=5000).fit((x - mean) / scale, y, sample_weight=weights)
    if list(lr.classes_) != list(range(NUM_CLASSES)):
        raise ValueError(f"the training windows lack classes {sorted(set(range(NUM_CLASSES)) - set(lr.classes_))}")
    w = lr.coef_.T / scale[:, None]
    b = lr.intercept_ - (mean / scale) @ lr.coef_.T
    return {"weights": w.astype(np.float32).round(6).tolist(), "bias": b.astype(np.float32).round(6).tolist()}


def convert_voice(
    source: str | Path,
    model: str | Path,
    data: Sequence[str],
    licence: str | Path | None = None,
    partial_s: float = 1.0,
    grid_s: float | None = None,
    cache_dir: str | None = "runs/speech/cache",
    workers: int = 1,
    levels: Sequence[str] = DEFAULT_LEVELS,
    bench: bool = True,
    command: str = "",
) -> dict[str, Any]:
    """Add the voice branch to the speech model ``model`` (its card is rewritten); returns the card."""
    set_threads(1)
    if not Path(source).is_file():
        raise FileNotFoundError(f"{source}: speaker-encoder source not found")
    model = Path(model)
    card = load_card(model)
    recipe, stats = card["recipe"], card["normalisation"]
    sets = [load_dataset(p) for p in data]
    voice_path = model.parent / VOICE_FILE
    with tempfile.TemporaryDirectory() as tmp:
        pt, licence_text, provenance = read_source(source, licence, Path(tmp))
        state = load_encoder_state(pt)
        frames = int(round(partial_s * SAMPLE_RATE)) // HOP
        voice_path.write_bytes(to_tflite_dynamic(build_encoder(state, frames)))
        weights_sha = sha256_file(pt)
        some = [read_audio(it.path) for ds in sets for it in ds.split("val")[:6]]
        n = int(round(partial_s * SAMPLE_RATE))
        partials = [a[s : s + n] for a in some for s in range(0, len(a) - n + 1, n)][:40]
        agreement = check_encoder(state, voice_path, partials)
    model.with_name(Path(VOICE_FILE).stem + ".LICENSE").write_text(
        f"{VOICE_FILE} holds the GE2E speaker encoder of {provenance} (Resemblyzer, sha256 {weights_sha}),\n"
        "converted to TFLite with int8 weights by `dsrter convert voice`. Its licence follows.\n\n" + licence_text
    )
    print(
        f"{voice_path}: {voice_path.stat().st_size / 1e6:.2f} MB; against PyTorch on {agreement['partials']} partials: "
        f"max |diff| {agreement['max_abs_diff']}, min cosine {agreement['min_cosine']}"
    )

    grid_s = float(partial_s if grid_s is None else grid_s)
    embedder = VoiceEmbedder(voice_path, partial_s=partial_s, grid_s=grid_s)
    main = TFLiteModel(model, threads=1)

    def split_data(split: str):
        items = [it for ds in sets for it in ds.split(split)]
        ws = build_windows(items, recipe, recipe["hop_s"], cache_dir=cache_dir, workers=workers)
        t0 = time.time()
        x = voice_window_features(items, recipe, recipe["hop_s"], embedder, cache_dir=cache_dir)
        log.info("voice features of %d %s windows in %.0f s", len(x), split, time.time() - t0)
        if len(x) != len(ws):
            raise RuntimeError(f"voice windows ({len(x)}) and emotion windows ({len(ws)}) of {split} disagree")
        return items, ws, x, corpus_of(items, sets)

    tr_items, tr_ws, tr_x, tr_corpus = split_data("train")
    va_items, va_ws, va_x, va_corpus = split_data("val")
    va_main = tflite_window_probs(main, *normalise_set(va_ws, recipe, stats))
    base_score, _ = selection_score(va_main, va_ws, va_corpus)
    weights = sample_weights(tr_ws.labels, tr_corpus[tr_ws.clip])
    grid: list[dict[str, Any]] = []
    best: tuple[float, float, float, dict, np.ndarray] | None = None
    for c in C_GRID:
        head = fit_head(tr_x, tr_ws.labels, weights, c)
        pv = VoiceHead(head, va_x.shape[1])(va_x)
        alone, _ = selection_score(pv, va_ws, va_corpus)
        for w in WEIGHT_GRID:
            score, per = selection_score(fuse(va_main, pv, w), va_ws, va_corpus)
            grid.append({"C": c, "weight": w, "score": round(score, 4), "voice_alone": round(alone, 4), **{k: round(v, 4) for k, v in per.items()}})
            if best is None or score > best[0]:
                best = (score, c, w, head, pv)
    assert best is not None
    score, c, w, head, pv = best
    fused_val = fuse(va_main, pv, w)
    temperature = round(fit_temperature(fused_val, va_ws.labels), 4)
    alone_temperature = round(fit_temperature(va_main, va_ws.labels), 4)  # for a device that turns the branch off
    print(
        f"validation selection score: emotion network alone {base_score:.4f}; with the voice branch {score:.4f} "
        f"(C {c}, fusion weight {w}); temperature {temperature} (without the branch {alone_temperature})"
    )

    card["voice"] = {
        "model": VOICE_FILE,
        "partial_s": partial_s,
        "grid_s": grid_s,
        "weight": w,
        "head": head,
        "encoder": {
            "source": provenance,
            "weights_sha256": weights_sha,
            "licence": Path(VOICE_FILE).stem + ".LICENSE",
            "architecture": f"GE2E speaker encoder: 40-band Slaney mel power (25 ms / 10 ms), "
            f"{frames} frames per partial, 3 x LSTM 256, linear + ReLU, L2 norm; "
            "features = embedding (256) + top layer's mean state (256)",
            "quantisation": "int8 weights, float activations (TFLite dynamic range)",
            "against_pytorch": agreement,
            "file_sha256": sha256_file(voice_path),
        },
        "fusion": "p = softmax((1 - weight) log p_emotion + weight log p_voice), then the card's temperature",
        "partials": f"{partial_s:g} s partials starting every {grid_s:g} s of stream time; a window averages the partials wholly inside it",
        "selection": {
            "split": "validation speakers only",
            "score": "mean over corpora of (window UA + clip UA) / 2",
            "emotion_network_alone": round(base_score, 4),
            "chosen": round(score, 4),
            "grid": grid,
        },
        "command": command,
    }
    card["calibration"] = {
        "temperature": temperature,
        "temperature_without_voice": alone_temperature,
        "method": "temperature scaling of the fused probabilities (int8 emotion network + voice branch), fitted (NLL) on the validation windows of every corpus; "
        "temperature_without_voice: the same for the emotion network alone (speech.voice_branch: false)",
    }
    model.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    rescore_card(model, card, data, sets, cache_dir, workers, levels, bench)
    return card


def to_tflite_dynamic(keras_model) -> bytes:
    """TFLite with int8 weights and float activations (the LSTMs' dynamic-range kernels)."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    return conv.convert()


def rescore_card(model: Path, card: dict[str, Any], data: Sequence[str], sets, cache_dir: str | None, workers: int, levels: Sequence[str], bench: bool) -> None:
    """Every validation and test figure of the card again, with the voice branch (the emotion
    network's own int8 figures are kept as ``int8_without_voice``)."""
    from dsrter.train.speech_report import split_report, window_probs

    temperature = float(card["calibration"]["temperature"])
    latency_windows: list[tuple[np.ndarray, float]] = []
    for path, ds in zip(data, sets):
        tag = Path(path).name or str(path)
        for split in ("val", "test"):
            items = ds.split(split)
            key = f"{tag}:{split}"
            if not items or key not in card["metrics"]:
                continue
            ws, raw = window_probs(model, items, cache_dir, workers)
            rep = split_report(ws, raw, temperature)  # as `dsrter eval speech` reports it: calibrated
            m = card["metrics"][key]
            m.setdefault("int8_without_voice", m["int8"])
            m["int8"] = {"window": rep["window"].to_dict(), "clip": rep["clip"].to_dict(), "per_speaker_clip": rep["per_speaker_clip"]}
            m["ece_window_int8"] = {k: rep["ece_window"][k] for k in ("raw", "calibrated")}
            print(
                f"{key}: UA window {rep['window'].unweighted_accuracy:.4f} clip {rep['clip'].unweighted_accuracy:.4f} "
                f"(without the voice branch {m['int8_without_voice']['clip']['unweighted_accuracy']:.4f})"
            )
            if split == "test":
                if levels:
                    m["gain_sweep"] = gain_sweep(model, items, cache_dir, levels, workers)
                if not latency_windows:
                    for it in items[:: max(1, len(items) // 10)][:10]:
                        a = read_audio(it.path)
                        latency_windows += [
                            (w, s / SAMPLE_RATE) for s, w in sf_.split_windows(a, int(card["recipe"]["window_samples"]), int(card["recipe"]["hop_s"] * SAMPLE_RATE))
                        ]
    notes = card.get("metrics_notes", "").rstrip()
    if "voice branch" not in notes:
        card["metrics_notes"] = (
            notes + ("" if notes.endswith(".") or not notes else ".") + " int8 = the shipped model as the device runs it (emotion network fused with the voice "
            "branch); int8_without_voice = the emotion network alone; float = the emotion network's "
            "float twin alone."
        ).strip()
    card["usage"] = (
        "dsrter.edge.infer.speech_classifier.SpeechClassifier(path).predict(window, start_s) while make_vad() "
        "says speech (start_s: the window's stream time, so that windows share the voice branch's partials); "
        "the card's voice section names the encoder file beside the model"
    )
    model.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    if bench and latency_windows:
        card["latency"] = latency_in_subprocess(model, [w for w, _ in latency_windows[:40]], repeats=2, starts=[s for _, s in latency_windows[:40]])
        print(
            f"latency (1 thread, gate + features + inference, median over {card['latency'].get('windows')} windows): "
            f"{card['latency'].get('gate_features_inference_median_ms')} ms"
        )
        model.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
