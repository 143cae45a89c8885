"""Distil a pretrained speech model into a small log-mel student.

The teacher is a local Hugging Face checkpoint folder (Wav2Vec2 / HuBERT / WavLM: ``config.json`` +
weights; a hub id is fetched where the hub can be reached) or a GE2E speaker encoder's ``.pt`` file
(:mod:`dsrter.train.speaker_teacher`, e.g. the one in the ``resemblyzer`` wheel). For every clean
speech window of the training split it gives one utterance embedding: for a Hugging Face encoder the
time-average of its hidden states, averaged over all transformer layers (``layer="mean"``, the
usual choice for paralinguistics) or taken from one layer.  The embeddings are reduced with PCA
(fitted on the training windows, whitened) to ``embed_dim`` dimensions, and a small Keras 1D-CNN on
the device's normalised log-mel window learns to reproduce them (mean squared error).  The student
then sits inside the speech classifier (speech_model.build_speech_model) and is exported to TFLite
with it, so the device never runs the teacher.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dsrter.edge.infer import speech_features as sf_
from dsrter.train.speaker_teacher import SpeakerTeacher
from dsrter.train.speech_data import (SpeechItem, WindowSettings, build_windows, cached_array, clip_cache_file,
                                      read_audio, recipe_key, speech_windows_of)
from dsrter.train.speech_prep import load_corpora, normalise_set, set_threads, spec_augment, split_items

log = logging.getLogger(__name__)

STUDENT_FILE = "student.keras"
STUDENT_INFO = "student.json"


@dataclass
class DistillConfig(WindowSettings):
    teacher: str
    data: list[str]
    out_dir: str = "runs/speech/student"
    cache_dir: str | None = "runs/speech/cache"
    layer: str = "mean"  # "mean" over transformer layers, "last", or a hidden-state index
    embed_dim: int = 64
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    teacher_batch: int = 8
    threads: int = 1
    workers: int = 1
    max_clips: int | None = None
    seed: int = 0
    command: str = ""


# --------------------------------------------------------------------------------------------
# teacher


class TeacherUnavailable(OSError):
    """A hub teacher that cannot be fetched (no network, unknown id); the message says what to do."""


def resolve_teacher(name: str | Path) -> Path:
    """A local checkpoint folder as it is; a hub id such as ``facebook/wav2vec2-base`` downloaded (or taken
    from the local hub cache) with huggingface_hub. Raises TeacherUnavailable with the reason otherwise."""
    p = Path(name)
    if p.exists() or str(name).startswith((".", "/", "~")) or str(name).count("/") != 1:
        return p
    from huggingface_hub import snapshot_download  # comes with transformers (train extra)

    try:
        return Path(snapshot_download(repo_id=str(name), allow_patterns=["*.json", "*.safetensors", "*.bin", "*.txt"]))
    except Exception as exc:  # offline, blocked, or no such repository: one clear line, no traceback
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise TeacherUnavailable(
            f"teacher {name!r}: cannot fetch it from the Hugging Face hub ({type(exc).__name__}: {reason}); "
            "on a machine without the hub, download the checkpoint elsewhere and pass its local folder") from None


class Teacher:
    """A HF speech encoder (local folder or hub id) giving one embedding per 16 kHz window."""

    def __init__(self, folder: str | Path, layer: str = "mean", threads: int = 1):
        import torch
        from transformers import AutoConfig, AutoModel

        self.folder = resolve_teacher(folder)
        if not (self.folder / "config.json").is_file():
            raise FileNotFoundError(f"{self.folder}: not a Hugging Face checkpoint folder (no config.json)")
        torch.set_num_threads(threads)
        self.config = AutoConfig.from_pretrained(str(self.folder), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(self.folder), local_files_only=True).eval()
        self.layer = str(layer)
        pre = self.folder / "preprocessor_config.json"
        self.do_normalize = bool(json.loads(pre.read_text()).get("do_normalize", True)) if pre.is_file() else True
        self.hidden_size = int(self.config.hidden_size)

    def key(self) -> str:
        """Identifies the teacher's weights + layer choice for the embedding cache."""
        h = hashlib.sha1()
        h.update((self.folder / "config.json").read_bytes())
        for f in sorted(self.folder.iterdir()):
            if f.suffix in (".safetensors", ".bin"):
                st = f.stat()
                h.update(f"{f.name}|{st.st_size}|{st.st_mtime_ns}".encode())
        h.update(f"{self.layer}|{self.do_normalize}".encode())
        return h.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "folder_name": self.folder.name,
            "model_type": getattr(c, "model_type", "?"),
            "hidden_size": self.hidden_size,
            "num_hidden_layers": int(getattr(c, "num_hidden_layers", 0)),
            "layer": self.layer,
            "do_normalize": self.do_normalize,
        }

    def embed(self, windows: np.ndarray, batch: int = 8) -> np.ndarray:
        """(N, samples) float32 windows -> (N, hidden_size) float32 embeddings."""
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(windows), batch):
                x = np.asarray(windows[i : i + batch], dtype=np.float32)
                if self.do_normalize:
                    x = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + 1e-7)
                hs = self.model(torch.from_numpy(x), output_hidden_states=True).hidden_states
                if self.layer == "mean":
                    e = torch.stack([h.mean(dim=1) for h in hs[1:]]).mean(dim=0)
                elif self.layer == "last":
                    e = hs[-1].mean(dim=1)
                else:
                    e = hs[int(self.layer)].mean(dim=1)
                out.append(e.float().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.hidden_size), np.float32)


def make_teacher(name: str | Path, layer: str = "mean", threads: int = 1) -> "Teacher | SpeakerTeacher":
    """A speaker encoder for a ``.pt`` file, else a Hugging Face speech encoder (folder or hub id)."""
    if str(name).endswith(".pt"):
        return SpeakerTeacher(name, threads)
    return Teacher(name, layer, threads)


def speech_windows(item: SpeechItem, recipe: dict[str, Any], hop_s: float) -> np.ndarray:
    """The raw audio of the windows that build_windows keeps for this clip (speech windows, else the loudest)."""
    audio = read_audio(item.path)
    wins = sf_.split_windows(audio, recipe["window_samples"], int(round(hop_s * recipe["sample_rate"])))
    speech, fallback = speech_windows_of(audio, recipe, hop_s)
    return np.stack([w for i, (_, w) in enumerate(wins) if speech[i] or i == fallback])


def teacher_targets(teacher: "Teacher | SpeakerTeacher", items: Sequence[SpeechItem], recipe: dict[str, Any], hop_s: float,
                    cache_dir: str | None, batch: int) -> np.ndarray:
    """Teacher embeddings of every kept window of ``items`` (cached per clip), in build_windows order."""
    tkey = teacher.key()
    out = []
    t0 = time.time()
    for n, it in enumerate(items):
        # v2: the windows kept are chosen after the level stage, as build_windows chooses them
        cf = clip_cache_file(cache_dir, f"teacher/{tkey}", it, f"{recipe_key(recipe)}|{hop_s}|{tkey}|v2")
        out.append(cached_array(cf, lambda it=it: teacher.embed(speech_windows(it, recipe, hop_s), batch)))
        if (n + 1) % 100 == 0:
            log.info("teacher embeddings: %d/%d clips (%.0f s)", n + 1, len(items), time.time() - t0)
    return np.concatenate(out)


# --------------------------------------------------------------------------------------------
# distillation


def _pca(x: np.ndarray, k: int) -> dict[str, np.ndarray]:
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = max(1, min(k, len(s)))
    var = (s**2) / max(1, len(x) - 1)
    return {"mean": mean, "components": vt[:k], "scale": np.sqrt(np.maximum(var[:k], 1e-8)),
            "explained": float(var[:k].sum() / max(var.sum(), 1e-12))}


def _project(x: np.ndarray, pca: dict[str, np.ndarray]) -> np.ndarray:
    return ((x - pca["mean"]) @ pca["components"].T / pca["scale"]).astype(np.float32)


def distill(cfg: DistillConfig) -> dict[str, Any]:
    """Extract teacher embeddings, train the student, write ``student.keras`` + ``student.json``."""
    set_threads(cfg.threads)
    import keras  # TensorFlow: after set_threads, which must come before TensorFlow does any work

    from dsrter.train.speech_model import StudentSpec, build_student

    keras.utils.set_random_seed(cfg.seed)
    t0 = time.time()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    teacher = make_teacher(cfg.teacher, cfg.layer, cfg.threads)
    log.info("teacher %s: %s", cfg.teacher, teacher.describe())
    recipe = cfg.feature_recipe()
    sets = load_corpora(cfg.data)
    train_items = split_items(sets, "train", cfg.max_clips)
    val_items = split_items(sets, "val", cfg.max_clips)
    if not train_items:
        raise ValueError("the data has no training split to distil on")

    train_ws = build_windows(train_items, recipe, cfg.train_hop_s, cache_dir=cfg.cache_dir, workers=cfg.workers)
    stats = sf_.fit_stats(train_ws.logmel, train_ws.egemaps, recipe)  # the same fit as speech training
    t_train = teacher_targets(teacher, train_items, recipe, cfg.train_hop_s, cfg.cache_dir, cfg.teacher_batch)
    if len(t_train) != len(train_ws):
        raise RuntimeError(f"teacher windows ({len(t_train)}) and feature windows ({len(train_ws)}) disagree")
    pca = _pca(t_train.astype(np.float64), min(cfg.embed_dim, teacher.hidden_size, max(1, len(t_train) - 1)))
    k = len(pca["scale"])
    y_train = _project(t_train, pca)
    x_train, _ = normalise_set(train_ws, recipe, stats)
    val = None
    if val_items:
        val_ws = build_windows(val_items, recipe, cfg.hop_s, cache_dir=cfg.cache_dir, workers=cfg.workers)
        t_val = teacher_targets(teacher, val_items, recipe, cfg.hop_s, cfg.cache_dir, cfg.teacher_batch)
        x_val, _ = normalise_set(val_ws, recipe, stats)
        val = (x_val, _project(t_val, pca), t_val)
    log.info("distilling %d-d teacher -> %d PCA dims (%.0f%% variance) on %d windows", teacher.hidden_size, k,
             100 * pca["explained"], len(x_train))

    spec = StudentSpec(embed_dim=k)
    student = build_student(recipe["logmel"]["frames"], recipe["logmel"]["n_mels"], spec)
    steps = int(np.ceil(len(x_train) / cfg.batch_size)) * cfg.epochs
    student.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(cfg.lr, max(1, steps), 0.01)),
                    loss="mse")
    rng = np.random.default_rng(cfg.seed)
    history = []
    best = (np.inf, None, 0)
    for epoch in range(1, cfg.epochs + 1):
        order = rng.permutation(len(x_train))
        losses = []
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            losses.append(float(student.train_on_batch(spec_augment(x_train[idx], rng), y_train[idx])))
        row = {"epoch": epoch, "loss": float(np.mean(losses))}
        if val is not None:
            pred = student.predict(val[0], batch_size=256, verbose=0)
            mse = float(np.mean((pred - val[1]) ** 2))
            row["val_mse"] = mse
            row["val_r2"] = float(1.0 - mse / max(float(np.var(val[1])), 1e-12))
            if mse < best[0]:
                best = (mse, student.get_weights(), epoch)
        history.append(row)
        log.info("student epoch %d/%d %s", epoch, cfg.epochs,
                 " ".join(f"{a}={b:.4f}" for a, b in row.items() if a != "epoch"))
    if best[1] is not None:
        student.set_weights(best[1])
    student.save(out / STUDENT_FILE)
    metrics: dict[str, Any] = {"train_mse": history[-1]["loss"] if history else None}
    if val is not None:
        pred = student.predict(val[0], batch_size=256, verbose=0)
        recon = pred * pca["scale"] @ pca["components"] + pca["mean"]
        t = val[2]
        cos = np.sum(recon * t, 1) / (np.linalg.norm(recon, axis=1) * np.linalg.norm(t, axis=1) + 1e-12)
        mse = float(np.mean((pred - val[1]) ** 2))
        metrics.update(val_mse=mse, val_r2=float(1.0 - mse / max(float(np.var(val[1])), 1e-12)),
                       val_cosine_to_teacher=float(np.mean(cos)), selected_epoch=best[2])
    info = {
        "teacher": teacher.describe(),
        "embed_dim": k,
        "pca_explained_variance": pca["explained"],
        "spec": spec.to_dict(),
        "windows": {"train": int(len(x_train)), "val": int(len(val[0])) if val is not None else 0},
        "metrics": metrics,
        "history": history,
        "config": asdict(cfg),
        "command": cfg.command,
        "recipe": recipe,
        "stats": stats,
        "seconds": round(time.time() - t0, 1),
    }
    (out / STUDENT_INFO).write_text(json.dumps(info, indent=1))
    log.info("student saved to %s (%s)", out, metrics)
    return info


def load_student(folder: str | Path):
    """(Keras student model, its info dict) from a ``dsrter train distill`` output folder."""
    import keras

    folder = Path(folder)
    f, j = folder / STUDENT_FILE, folder / STUDENT_INFO
    if not f.is_file() or not j.is_file():
        raise FileNotFoundError(f"{folder}: no distilled student ({STUDENT_FILE} + {STUDENT_INFO}); "
                                "run dsrter train distill")
    return keras.models.load_model(f), json.loads(j.read_text())
