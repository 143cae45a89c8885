"""Speech model conversion: Keras run folder -> float and full-int8 TFLite, verification, model card.

``convert_speech`` reads ``model.keras`` + ``train_info.json`` from a `dsrter train speech` run,
converts the model twice with the TensorFlow Lite converter (float32, and full int8 with a
representative set of clean training windows, int8 input and output tensors), evaluates both files
window by window on every validation and test split of the training data, prints the int8-vs-float
top-1 agreement, times features + inference of one window on one thread and writes the card.

Full-int8 conversion of a two-input model: the converted model does not necessarily keep the Keras
input order, so the representative samples follow the input order of the converted float model
(read from its input details by name), see docs/dependencies.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dsrter.convert.tflite_export import to_tflite
from dsrter.convert.vad_convert import SOURCE as VAD_SOURCE
from dsrter.edge.infer import speech_features as sf_
from dsrter.edge.labels import LABELS
from dsrter.edge.infer.model_io import TFLiteModel, make_interpreter, sha256_file
from dsrter.edge.infer.speech_classifier import SpeechClassifier
from dsrter.train.speech_data import build_windows, load_dataset, read_audio
from dsrter.train.speech_report import DEFAULT_LEVELS, expected_calibration_error, fit_temperature, gain_sweep, temperature_scale
from dsrter.train.speech_prep import normalise_set, set_threads
from dsrter.train.speech_train import (
    BaselineModel,
    per_speaker,
    tflite_window_probs,
    window_and_clip_reports,
)

log = logging.getLogger(__name__)

# The voice-activity model every new card names (vendored beside the emotion models, MIT licence;
# `dsrter convert vad` makes the TFLite file from the Silero team's ONNX file).
VAD_SPEC = {"model": "silero_vad.tflite", "threshold": 0.5, "lookback_s": 0.125, "source": VAD_SOURCE}

SPLIT_TEXT = {
    "ravdess": {"train": "actors 1-18", "val": "actors 19-20", "test": "actors 21-24"},
    "cremad": {"train": "actors 1001-1060", "val": "actors 1061-1066", "test": "actors 1067-1076"},
}


def _convert(model, rep: list[dict[str, np.ndarray]] | None) -> bytes:
    """Float (rep None) or full-int8 TFLite; representative samples follow the converted input order."""
    if rep is None:
        return to_tflite(model)

    def gen():
        for sample in rep:
            yield [sample[name] for name in sample["__order__"]]

    return to_tflite(model, gen)


def _input_order(model_bytes: bytes) -> list[str]:
    it = make_interpreter(model_bytes)
    names = []
    for d in it.get_input_details():
        names.append("logmel" if "logmel" in d["name"] else "egemaps" if "egemaps" in d["name"] else d["name"])
    if sorted(names) != ["egemaps", "logmel"]:
        raise RuntimeError(f"converted model inputs {[d['name'] for d in it.get_input_details()]} are not logmel/egemaps")
    return names


def _ops(path: Path) -> list[str]:
    model = TFLiteModel(path)  # a file that does not load is an error, as before; only the listing is optional
    try:
        return sorted({d["op_name"] for d in model.ops()} - {"DELEGATE"})
    except Exception:  # private API; informative only
        return []


def _tensor_specs(m: TFLiteModel) -> tuple[list[dict], list[dict]]:
    def spec(d):
        name = d["name"]
        short = "logmel" if "logmel" in name else "egemaps" if "egemaps" in name else "probs"
        scale, zero = d["quantization"]
        return {"name": short, "tensor_name": name, "shape": [int(v) for v in d["shape"]],
                "dtype": np.dtype(d["dtype"]).name, "quantization": {"scale": float(scale), "zero_point": int(zero)}}

    return [spec(d) for d in m.inputs], [spec(d) for d in m.outputs]


def latency(model_path: Path, audio_windows: Sequence[np.ndarray], repeats: int = 1,
            starts: Sequence[float] | None = None) -> dict[str, float]:
    """Median / p90 milliseconds on one thread: the voice-activity model on one hop of new audio, and
    features + inference of one window (at stream time ``starts[k]``: consecutive windows of a clip
    share the voice branch's partials as on the device)."""
    clf = SpeechClassifier(model_path, threads=1)
    clf.predict(audio_windows[0])  # warm up (openSMILE start, XNNPACK set-up)
    vad = clf.make_vad()
    hop = int(clf.hop_s * clf.sample_rate)
    feat, total, gate, cpu = [], [], [], []
    at = [None if starts is None else float(starts[k]) for k in range(len(audio_windows))]
    for _ in range(repeats):
        clf.clear()  # each pass computes its own blocks and partials, windows in stream order
        for k, w in enumerate(audio_windows):
            t0 = time.perf_counter()
            clf.features(w, at[k])
            feat.append(time.perf_counter() - t0)
        clf.clear()
        for k, w in enumerate(audio_windows):
            vad.reset()
            vad.update(w[:-hop], 100.0 * k)  # the stream so far; then time one hop of new audio
            t0 = time.perf_counter()
            vad.update(w, 100.0 * k + hop / clf.sample_rate)
            t1 = time.perf_counter()
            c0 = time.process_time()
            clf.predict(w, at[k])
            t2 = time.perf_counter()
            cpu.append(time.process_time() - c0)
            gate.append(t1 - t0)
            total.append(t2 - t0)
    ms = lambda v, q: round(1000 * float(np.percentile(v, q)), 2)  # noqa: E731
    try:
        load = [round(v, 2) for v in __import__("os").getloadavg()]
    except OSError:
        load = None
    return {"windows": len(total), "vad_per_hop_median_ms": ms(gate, 50), "features_median_ms": ms(feat, 50),
            "gate_features_inference_median_ms": ms(total, 50), "gate_features_inference_p90_ms": ms(total, 90),
            "features_inference_cpu_median_ms": ms(cpu, 50), "threads": 1, "load_average": load,
            "note": "wall-clock on the training machine (x86, shared with other jobs at the time: see load_average); "
                    "cpu = process CPU time of features + inference, less sensitive to the other jobs"}


def latency_in_subprocess(model_path: Path, audio_windows: Sequence[np.ndarray], repeats: int = 2,
                          starts: Sequence[float] | None = None) -> dict[str, Any]:
    """:func:`latency` in a fresh Python process without TensorFlow, as on the device (TensorFlow's
    thread pools in this process would otherwise be counted in the CPU time)."""
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "windows.npy"
        np.save(wav, np.stack(audio_windows).astype(np.float32))
        at = Path(tmp) / "starts.json"
        at.write_text(json.dumps(None if starts is None else [float(s) for s in starts]))
        code = ("import json, sys, numpy as np; from pathlib import Path; "
                "from dsrter.convert.speech_convert import latency; "
                "print(json.dumps(latency(Path(sys.argv[1]), list(np.load(sys.argv[2])), int(sys.argv[3]), "
                "json.loads(Path(sys.argv[4]).read_text()))))")
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        r = subprocess.run([sys.executable, "-c", code, str(model_path), str(wav), str(repeats), str(at)],
                           capture_output=True, text=True, timeout=600, env=env)
    if r.returncode != 0:
        log.warning("latency measurement failed: %s", r.stderr[-2000:])
        return {"error": r.stderr[-500:]}
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["process"] = ("fresh Python process with LiteRT + openSMILE only (no TensorFlow), as on the device; "
                      "OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=1 (a multi-threaded BLAS makes the log-mel matmul slower)")
    return out


def _report_dict(rep) -> dict[str, Any]:
    return rep.to_dict()


def load_members(runs: Sequence[Path]):
    """One trained run, or several averaged into one Keras model (an ensemble in a single file).

    Members must share the feature recipe and the normalisation statistics (same data and recipe)."""
    import keras

    infos = [json.loads((r / "train_info.json").read_text()) for r in runs]
    models = [keras.models.load_model(r / "model.keras") for r in runs]
    if len(runs) == 1:
        return models[0], infos[0]
    for r, inf in zip(runs[1:], infos[1:]):
        if inf["recipe"] != infos[0]["recipe"] or inf["stats"] != infos[0]["stats"]:
            raise ValueError(f"{r}: its feature recipe or normalisation differs from {runs[0]}; "
                             "ensemble members must be trained on the same data with the same recipe")
    recipe = infos[0]["recipe"]
    lm = keras.Input((recipe["logmel"]["frames"], recipe["logmel"]["n_mels"]), name="logmel")
    eg = keras.Input((recipe["egemaps"]["n"],), name="egemaps")
    outs = []
    for i, m in enumerate(models):
        m.name = f"member{i}"
        outs.append(m([lm, eg]))
    ens = keras.Model([lm, eg], keras.layers.Average(name="probs_mean")(outs), name="speech_emotion_ensemble")
    info = dict(infos[0])
    info["params"] = int(ens.count_params())
    info["command"] = " && ".join(inf["command"] for inf in infos)
    info["selected_epoch"] = [inf["selected_epoch"] for inf in infos]
    info["val"] = None
    info["ensemble"] = [{"run": str(r), "seed": inf["config"]["seed"], "selected_epoch": inf["selected_epoch"],
                         "command": inf["command"], "params": inf["params"],
                         "val_window_ua": (inf.get("val") or {}).get("window", {}).get("unweighted_accuracy"),
                         "val_clip_ua": (inf.get("val") or {}).get("clip", {}).get("unweighted_accuracy")}
                        for r, inf in zip(runs, infos)]
    return ens, info


def convert_speech(
    run_dir: str | Path | Sequence[str | Path],
    out: str | Path,
    float_out: str | Path | None = None,
    data: Sequence[str] | None = None,
    cache_dir: str | None = "runs/speech/cache",
    workers: int = 1,
    rep_samples: int = 300,
    seed: int = 0,
    command: str = "",
    bench: bool = True,
    baseline: bool = True,
    levels: Sequence[str] = DEFAULT_LEVELS,
    vad_model: str | Path = Path("models") / VAD_SPEC["model"],
) -> dict[str, Any]:
    """Convert, verify and write ``out`` (int8) + its card; returns the card."""
    set_threads(1)
    import tensorflow as tf

    runs = [Path(r) for r in ([run_dir] if isinstance(run_dir, (str, Path)) else run_dir)]
    out = Path(out)
    voice_command = _replaced_voice_command(out)
    model, info = load_members(runs)
    run_dir = runs[0]
    recipe, stats = info["recipe"], info["stats"]
    data = list(data) if data else [d["data"] for d in info["data"]]
    sets = [load_dataset(p) for p in data]

    # representative set: clean training windows, normalised exactly as on the device
    train_items = [it for ds in sets for it in ds.split("train")]
    tr = build_windows(train_items, recipe, recipe["hop_s"], cache_dir=cache_dir, workers=workers)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(tr), min(rep_samples, len(tr)), replace=False))
    rep_lm, rep_eg = normalise_set(tr.subset(pick), recipe, stats)

    t0 = time.time()
    float_bytes = _convert(model, None)
    order = _input_order(float_bytes)
    rep = [{"logmel": rep_lm[i : i + 1], "egemaps": rep_eg[i : i + 1], "__order__": order} for i in range(len(rep_lm))]
    int8_bytes = _convert(model, rep)
    log.info("converted in %.0f s: float %d bytes, int8 %d bytes (input order %s)", time.time() - t0,
             len(float_bytes), len(int8_bytes), order)
    out.parent.mkdir(parents=True, exist_ok=True)
    float_out = Path(float_out) if float_out else run_dir / "speech_emotion_float.tflite"
    float_out.parent.mkdir(parents=True, exist_ok=True)
    float_out.write_bytes(float_bytes)
    out.write_bytes(int8_bytes)
    m_float = TFLiteModel(float_out, threads=1)
    m_int8 = TFLiteModel(out, threads=1)
    if any(np.dtype(d["dtype"]) != np.int8 for d in m_int8.inputs + m_int8.outputs):
        raise RuntimeError("int8 conversion left float input/output tensors")

    if not (out.parent / VAD_SPEC["model"]).is_file():  # the card names it, so it travels with the model
        import shutil

        shutil.copy2(vad_model, out.parent / VAD_SPEC["model"])
    metrics: dict[str, Any] = {}
    baseline_rows: dict[str, Any] = {}
    agreement_test = None
    latency_windows: list[np.ndarray] = []
    base = BaselineModel.fit(train_items, recipe, cache_dir, workers, seed) if baseline else None
    # calibration: one temperature fitted on the validation windows of every corpus (never on test)
    val_probs, val_labels = [], []
    for ds in sets:
        if ds.split("val"):
            ws = build_windows(ds.split("val"), recipe, recipe["hop_s"], cache_dir=cache_dir, workers=workers)
            val_probs.append(tflite_window_probs(m_int8, *normalise_set(ws, recipe, stats)))
            val_labels.append(ws.labels)
    # rounded as the card stores it, so every figure below is what the device computes from the card
    temperature = round(fit_temperature(np.concatenate(val_probs), np.concatenate(val_labels)), 4) if val_probs else 1.0
    print(f"calibration: temperature {temperature:.3f} fitted on {sum(len(v) for v in val_labels)} validation windows")
    for path, ds in zip(data, sets):
        corpus = ds.items[0].corpus if ds.items else "custom"
        tag = Path(path).name or str(path)
        for split in ("val", "test"):
            items = ds.split(split)
            if not items:
                continue
            ws = build_windows(items, recipe, recipe["hop_s"], cache_dir=cache_dir, workers=workers)
            lm, eg = normalise_set(ws, recipe, stats)
            pf = tflite_window_probs(m_float, lm, eg)
            pq = tflite_window_probs(m_int8, lm, eg)
            agree = float(np.mean(pf.argmax(1) == pq.argmax(1)))
            rf, rq = window_and_clip_reports(pf, ws), window_and_clip_reports(pq, ws)
            key = f"{tag}:{split}"
            metrics[key] = {
                "split": f"{split} ({SPLIT_TEXT.get(corpus, {}).get(split, 'split column')})",
                "clips": len(items),
                "windows": len(ws),
                "classes_present": rq["window"].present,
                "float": {"window": _report_dict(rf["window"]), "clip": _report_dict(rf["clip"])},
                "int8": {"window": _report_dict(rq["window"]), "clip": _report_dict(rq["clip"]),
                         "per_speaker_clip": per_speaker(rq["clip_probs"], rq["clip_has"], ws.items)},
                "int8_float_top1_agreement_windows": agree,
                "ece_window_int8": {"raw": round(expected_calibration_error(pq, ws.labels), 4),
                                    "calibrated": round(expected_calibration_error(temperature_scale(pq, temperature),
                                                                                   ws.labels), 4)},
            }
            print(f"{key}: windows {len(ws)}  int8/float top-1 agreement {100 * agree:.2f}%  "
                  f"UA window float {rf['window'].unweighted_accuracy:.4f} int8 {rq['window'].unweighted_accuracy:.4f}  "
                  f"UA clip float {rf['clip'].unweighted_accuracy:.4f} int8 {rq['clip'].unweighted_accuracy:.4f}")
            if split == "test":
                agreement_test = agree if agreement_test is None else min(agreement_test, agree)
                if base is not None:
                    b = base.reports(ws)
                    baseline_rows[key] = {k: _report_dict(b[k]) for k in ("window", "clip")}
                if not latency_windows:
                    for it in items[:: max(1, len(items) // 10)][:10]:
                        a = read_audio(it.path)
                        latency_windows += [(w, st / recipe["sample_rate"]) for st, w in sf_.split_windows(
                            a, recipe["window_samples"], int(recipe["hop_s"] * recipe["sample_rate"]))]

    card = build_card(info, recipe, stats, m_int8, out, float_out, metrics, baseline_rows, command)
    card["vad"] = dict(VAD_SPEC)
    card["calibration"] = {"temperature": temperature, "method": "temperature scaling of the int8 model's "
                           "probabilities, fitted (NLL) on the validation windows of every corpus"}
    out.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")  # the sweep reads the card
    if levels:
        for path, ds in zip(data, sets):
            if ds.split("test"):
                tag = Path(path).name or str(path)
                card["metrics"][f"{tag}:test"]["gain_sweep"] = gain_sweep(out, ds.split("test"), cache_dir, levels, workers)
                print(f"{tag}:test gain sweep clip UA: " + ", ".join(
                    f"{k}: {v['clip_ua']:.4f}" for k, v in card["metrics"][f"{tag}:test"]["gain_sweep"].items()))
    card["conversion"]["int8_float_top1_agreement_test_windows"] = agreement_test
    card["conversion"]["ops"] = _ops(out)
    card["conversion"]["tensorflow"] = tf.__version__
    out.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    if bench and latency_windows:
        card["latency"] = latency_in_subprocess(out, [w for w, _ in latency_windows[:40]], repeats=2,
                                                starts=[st for _, st in latency_windows[:40]])
        print(f"latency (1 thread, gate + features + int8 inference, median over {card['latency']['windows']} windows): "
              f"{card['latency']['gate_features_inference_median_ms']} ms")
    out.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    if float_out.resolve().parent != out.resolve().parent:  # the float twin gets the same card
        float_out.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    if agreement_test is not None:
        print(f"int8 vs float top-1 agreement on test windows: {100 * agreement_test:.2f}%")
    if voice_command:
        print(f"the card this replaces had a voice branch; the new one has none until the branch is refitted on "
              f"this network: {voice_command}")
    return card


def _replaced_voice_command(out: Path) -> str | None:
    """The ``dsrter convert voice`` command of the card at ``out`` (about to be replaced), if it has a voice branch."""
    try:
        voice = json.loads(out.with_suffix(".json").read_text()).get("voice")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(voice, dict):
        return None
    return str(voice.get("command") or f"dsrter convert voice --model {out.as_posix()} --encoder WHEEL --data ...")


def _teacher_commands(info: dict[str, Any], data_args: str, out: Path) -> dict[str, Any]:
    """The commands that retrain the shipped recipe with a real teacher checkpoint."""
    cfg = info["config"]
    flags = f"--aug-copies {cfg['aug_copies']}" + (" --window-cmn" if cfg.get("window_cmn") else "")
    one = (f"dsrter train speech {data_args} {flags} --epochs {cfg['epochs']} --teacher PATH/TO/wav2vec2-base "
           f"--out runs/speech/teacher && dsrter convert speech --run runs/speech/teacher --out {out.as_posix()}")
    seeds = [m["seed"] for m in info["ensemble"]] if info.get("ensemble") else [cfg["seed"]]
    cmds = [f"dsrter train distill --teacher PATH/TO/wav2vec2-base {data_args}"
            f"{' --window-cmn' if cfg.get('window_cmn') else ''} --out runs/speech/student"]
    for sd in seeds:
        cmds.append(f"dsrter train speech {data_args} {flags} --epochs {cfg['epochs']} --seed {sd} "
                    f"--student runs/speech/student --out runs/speech/teacher_s{sd}")
    cmds.append("dsrter convert speech " + " ".join(f"--run runs/speech/teacher_s{sd}" for sd in seeds)
                + f" --out {out.as_posix()}")
    return {
        "one_command": one,
        "note": "PATH/TO/wav2vec2-base is a local Hugging Face checkpoint folder (Wav2Vec2, HuBERT or WavLM); "
                "train speech --teacher distils it (OUT/student) and trains one model with the student branch",
        "same_ensemble_as_shipped": cmds if len(seeds) > 1 else None,
    }


def build_card(info, recipe, stats, m_int8: TFLiteModel, out: Path, float_out: Path, metrics, baseline_rows,
               command: str) -> dict[str, Any]:
    inputs, outputs = _tensor_specs(m_int8)
    student = info.get("student")
    if student:
        t = student["teacher"]
        embedding = {
            "used": True,
            "teacher": f"{t['model_type']} ({t['hidden_size']}-d, {t['num_hidden_layers']} layers, layer={t['layer']}), "
                       f"checkpoint {t.get('folder_name') or t.get('file_name')!r}",
            "distill_command": student.get("command") or None,
            "student_dim": student["embed_dim"],
            "distillation_metrics": student["metrics"],
        }
    else:
        embedding = {
            "used": False,
            "note": "Shipped without a contextual embedding: no Wav2Vec2/HuBERT/WavLM checkpoint can be downloaded "
                    "on the machine that trained it, so no teacher was distilled. The network is the log-mel 1D-CNN "
                    "+ eGeMAPS head only. The retrain_with_teacher commands add the distilled student branch.",
        }
    cfg = info["config"]
    data_args = " ".join(f"--data {d['data']}" for d in info["data"])
    return {
        "name": out.stem,
        "task": "speech emotion recognition, one window of 16 kHz mono audio -> 7 probabilities",
        "labels": list(LABELS),
        "label_notes": "RAVDESS calm is mapped to neutral; CREMA-D has no surprise (the output still has 7 classes).",
        "sample_rate": recipe["sample_rate"],
        "window_s": recipe["window_s"],
        "hop_s": recipe["hop_s"],
        "vad_threshold_dbfs": recipe["vad"]["threshold_dbfs"],
        "recipe": recipe,
        "recipe_text": sf_.RECIPE_TEXT,
        "egemaps_names": info["egemaps_names"],
        "normalisation": {**stats, "fitted_on": "clean training-split windows only", "window_cmn": recipe["window_cmn"],
                          "clip": recipe["clip"]},
        "inputs": inputs,
        "outputs": outputs,
        "clip_level": "mean of the window probabilities over the clip's speech windows (hop_s apart); a clip with "
                      "no speech window is represented by its loudest window",
        "model": {
            "file": out.name,
            "sha256": sha256_file(out),
            "bytes": out.stat().st_size,
            "quantisation": "full int8 (weights and activations; int8 input and output tensors), representative set "
                            "= 300 clean training windows",
            "float_reference": {"file": str(float_out), "sha256": sha256_file(float_out)},
            "architecture": ("" if not info.get("ensemble") else
                             f"mean of the probabilities of {len(info['ensemble'])} members, each: ")
                            + "log-mel (frames x mels) -> 3 x [Conv1D + BN + ReLU + MaxPool] -> [global mean ; global "
                            "max]; eGeMAPS -> Dense; [student embedding -> Dense]; concatenated -> Dense -> softmax(7)",
            "ensemble": info.get("ensemble"),
            "spec": info["spec"],
            "params": info["params"],
            "embedding": embedding,
        },
        "training": {
            "command": info["command"],
            "config": cfg,
            "data": info["data"],
            "splits": info["splits"],
            "protocol": "speaker-independent: RAVDESS actors 1-18 train, 19-20 validation (epoch selection), "
                        "21-24 test; EmoDB speakers 03 08 09 10 12 13 / 14 15 / 11 16 (its manifest's split column); "
                        "CREMA-D 1001-1060 / 1061-1066 / 1067-1076. Epochs selected on the mean over the corpora of "
                        "(window UA + clip UA) / 2 on validation; corpora weighted by the square root of their size",
            "augmentation": f"{cfg['aug_copies']} corrupted copy/copies of every training clip (speed/pitch 0.9-1.1, "
                            "synthetic reverberation RT60 0.15-0.6 s, white/pink/brown noise 0-25 dB SNR, gain -35..+6 "
                            "dB or peak normalisation, 16-bit rounding) + SpecAugment time/frequency masks" if cfg["aug_copies"] else "SpecAugment masks only",
            "selected_epoch": info["selected_epoch"],
            "epochs": cfg["epochs"],
            "validation": info.get("val"),
            "train_seconds": info["train_seconds"],
            "versions": info.get("versions"),
        },
        "conversion": {"command": command},
        "metrics": metrics,
        "metrics_notes": "UA = unweighted accuracy (macro recall over the classes present), WA = accuracy; window = "
                         "every speech window at hop_s, clip = windows averaged; gain_sweep = clip UA with the test "
                         "audio re-recorded at that gain (dB) or peak-normalised, 16-bit. Reproduce the int8 test rows "
                         f"with: dsrter eval speech {data_args} --model {out.as_posix()}",
        "baseline": {"method": "eGeMAPS functionals + standardised logistic regression (C=0.1, balanced) fitted on "
                               "the same training split (every corpus's training speakers); 'window' on the device "
                               "windows, 'clip' their mean per clip",
                     "rows": baseline_rows},
        "retrain_with_teacher": _teacher_commands(info, data_args, out),
        "usage": "dsrter.edge.infer.speech_classifier.SpeechClassifier(path).predict(window) while make_vad() says speech; or "
                 "compute the inputs from recipe + normalisation and run the .tflite with any LiteRT interpreter",
    }
