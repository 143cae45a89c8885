"""FER-2013 training loop for the hybrid face network: resumable, time-budgeted, logged."""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dsrter.edge.infer.face_classifier import equalise
from dsrter.edge.labels import NUM_CLASSES
from dsrter.train.face_augment import augment_faces, turn_faces
from dsrter.train.face_corruptions import corrupt_batch
from dsrter.train.face_import import unfold_batchnorm
from dsrter.train.face_model import FaceNetSpec, HybridFaceNet, count_params
from dsrter.train.fer_data import PUBLIC_TEST, TRAIN, load_fer
from dsrter.train.ferplus import load_ferplus
from dsrter.train.metrics import classification_report

log = logging.getLogger(__name__)


@dataclass
class FaceTrainConfig:
    data: str
    out_dir: str = "runs/face"
    epochs: int = 45
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    augment_strength: float = 0.6  # scales augment_faces' ranges (1.0: full); 0.6 fitted the shipped nets best
    ema_decay: float = 0.999
    seed: int = 0
    threads: int = 2
    time_budget_min: float | None = None
    resume: bool = False
    epochs_override: bool = False  # on resume, replace the run's planned epochs with ``epochs``
    max_train: int | None = None  # subsample (tests, smoke runs)
    init: str | None = None  # start from these weights (a best.pt, e.g. from face_import); new optimizer and schedule
    ferplus: bool = False  # train on FER+ vote distributions, select on PublicTest FER+ majority labels
    corrupt_p: float = 0.0  # share of faces given living-room camera corruptions (face_corruptions)
    equalize: bool = False  # histogram-equalise every face after the corruptions, as the device does (card input.equalize)
    turn_p: float = 0.0  # share of faces warped as if turned sideways (face_augment.turn_faces)
    spec: FaceNetSpec = field(default_factory=FaceNetSpec)


def to_input(images_u8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) -> float (N, 1, H, W) in [0, 1]."""
    t = torch.as_tensor(images_u8).float().div_(255.0)
    return t.unsqueeze(1)


def normalise(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]: the model's input scaling (pixel / 127.5 - 1)."""
    return x01 * 2.0 - 1.0


def class_weights(labels: np.ndarray) -> torch.Tensor:
    """Square root of median-frequency balancing (disgust ~3x, happy ~0.75x)."""
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(float)
    counts = np.maximum(counts, 1)
    return torch.tensor(np.sqrt(np.median(counts) / counts), dtype=torch.float32)


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def predict(model: torch.nn.Module, images_u8: np.ndarray, batch: int = 512, equalize: bool = False) -> np.ndarray:
    """Logits for uint8 faces (N, 48, 48), histogram-equalised first when ``equalize``."""
    model.eval()
    if equalize:
        images_u8 = equalise(images_u8)
    outs = []
    for i in range(0, len(images_u8), batch):
        x = normalise(to_input(images_u8[i : i + batch])).contiguous(memory_format=torch.channels_last)
        outs.append(model(x).float().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, NUM_CLASSES), np.float32)


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor,
               weights: torch.Tensor | None, label_smoothing: float) -> tuple[float, int]:
    """One optimisation step on a normalised batch; returns (loss, correct)."""
    logits = model(xb)
    if yb.ndim == 2:  # soft targets (FER+ vote distributions); class weights apply per target class
        target = yb * (1 - label_smoothing) + label_smoothing / yb.shape[1]
        per_class = -target * F.log_softmax(logits, dim=1)
        loss = (per_class * weights if weights is not None else per_class).sum(1).mean()
        hard = yb.argmax(1)
    else:
        loss = F.cross_entropy(logits, yb, weight=weights, label_smoothing=label_smoothing)
        hard = yb
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item(), int((logits.argmax(1) == hard).sum())


def _update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(decay).add_(p.detach(), alpha=1 - decay)
            else:
                e.copy_(p)


def _load_init(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: --init checkpoint not found")
    state = torch.load(p, weights_only=False)
    if not isinstance(state, dict) or "spec" not in state or "model" not in state:
        raise ValueError(f"{p}: not a face checkpoint (needs 'spec' and 'model'; a best.pt or last.pt)")
    return state


def _ferplus_splits(data_path: str, data) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training faces with FER+ soft targets; PublicTest faces with a FER+ majority label."""
    fp = load_ferplus(data_path, len(data))
    tr = (data.usage == TRAIN) & fp.usable
    x_va, y_va = fp.majority_split(data, PUBLIC_TEST)
    log.info("FER+: %d Training faces with vote targets, %d PublicTest faces with a majority label", tr.sum(), len(y_va))
    return data.images[tr], fp.soft[tr], x_va, y_va


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_face(cfg: FaceTrainConfig) -> dict:
    """Train (or resume) and return a summary; checkpoints in ``cfg.out_dir``."""
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last_path, best_path, hist_path = out / "last.pt", out / "best.pt", out / "history.jsonl"

    state = torch.load(last_path, weights_only=False) if cfg.resume and last_path.exists() else None
    # the training targets, corruptions and seed follow the run on resume, as its augmentation strength does
    # (checkpoints written before these were stored take them from the command line)
    ferplus = bool(state.get("ferplus", cfg.ferplus)) if state else cfg.ferplus
    corrupt_p = float(state.get("corrupt_p", cfg.corrupt_p)) if state else cfg.corrupt_p
    turn_p = float(state.get("turn_p", cfg.turn_p)) if state else cfg.turn_p
    seed = int(state.get("seed", cfg.seed)) if state else cfg.seed
    if state and (ferplus, corrupt_p, turn_p, seed) != (cfg.ferplus, cfg.corrupt_p, cfg.turn_p, cfg.seed):
        log.info("resuming with the run's own targets, corruptions and seed: ferplus %s, corrupt %.2f, turn %.2f, seed %d",
                 ferplus, corrupt_p, turn_p, seed)

    data = load_fer(cfg.data)
    if ferplus:
        x_tr, y_tr, x_va, y_va = _ferplus_splits(cfg.data, data)
    else:
        x_tr, y_tr = data.split(TRAIN)
        x_va, y_va = data.split(PUBLIC_TEST)
    if len(x_tr) == 0:
        raise ValueError(f"{cfg.data}: no Training images (usage code 0) to train on")
    if len(x_va) == 0:  # e.g. a folder with only train/: hold out 10% for selection
        rng = np.random.default_rng(seed)
        idx = rng.permutation(len(x_tr))
        cut = max(1, len(idx) // 10)
        x_va, y_va, x_tr, y_tr = x_tr[idx[:cut]], y_tr[idx[:cut]], x_tr[idx[cut:]], y_tr[idx[cut:]]
    if cfg.max_train and cfg.max_train < len(x_tr):  # random subset: the npz is sorted by label
        keep = np.random.default_rng(seed).permutation(len(x_tr))[: cfg.max_train]
        x_tr, y_tr = x_tr[keep], y_tr[keep]

    init = _load_init(cfg.init) if cfg.init and not state else None
    # the input preprocessing follows the run (on resume) or the weights it starts from, like the architecture
    equalize = bool(state.get("equalize", False)) if state else cfg.equalize or bool(init and init.get("equalize"))
    spec = FaceNetSpec.from_dict(state["spec"]) if state else FaceNetSpec.from_dict(init["spec"]) if init else cfg.spec
    epochs = cfg.epochs if (cfg.epochs_override or not state) else state["epochs"]
    aug = state.get("augment_strength", 1.0) if state else cfg.augment_strength
    _seed_all(seed)
    model = HybridFaceNet(spec).to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    start_epoch, best, history = 0, {"val_acc": -1.0}, []
    gen = torch.Generator().manual_seed(seed)
    if state:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, best, history = state["epoch"], state["best"], state["history"]
        gen.set_state(state["generator"])
        log.info("resumed from %s at epoch %d/%d (best PublicTest acc %.4f)", last_path, start_epoch, epochs, best["val_acc"])
    elif cfg.resume and not init:
        log.warning("--resume given but %s does not exist; starting fresh", last_path)
    if init:
        model.load_state_dict(init["model"])
        if init.get("batchnorm_folded"):
            sample = np.random.default_rng(seed).permutation(len(x_tr))[:1024]
            unfold_batchnorm(model, normalise(to_input(equalise(x_tr[sample]) if equalize else x_tr[sample])))
            log.info("imported weights: BatchNorm statistics re-measured on %d Training faces", len(sample))
        ema.load_state_dict(model.state_dict())
        # the start as this run sees it: for an imported model, BatchNorm unfolded exactly as trained from
        # here, so that face_average can average the run's result with its own start
        torch.save({"spec": spec.to_dict(), "model": model.state_dict(), "best": {"init": str(cfg.init)}, "equalize": equalize,
                    "seed": seed}, out / "init.pt")
        log.info("starting from the weights in %s (saved as the run sees them: %s)", cfg.init, out / "init.pt")

    weights = class_weights(y_tr if y_tr.ndim == 1 else y_tr.argmax(1))
    steps_per_epoch = math.ceil(len(x_tr) / cfg.batch_size)
    total_steps = steps_per_epoch * epochs
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    log.info("model: %d parameters, spec %s", count_params(model), spec.to_dict())
    log.info("train %d images, select on %d; %d epochs x %d steps; augmentation strength %.2f%s%s; seed %d",
             len(x_tr), len(x_va), epochs, steps_per_epoch, aug, "; faces histogram-equalised" if equalize else "",
             f"; {turn_p:.0%} turned sideways" if turn_p else "", seed)

    t_start = time.monotonic()
    epoch_times: list[float] = []
    x_tr_t = torch.as_tensor(x_tr)
    y_tr_t = torch.as_tensor(y_tr)
    corrupt_rng = np.random.default_rng([seed, start_epoch])
    for epoch in range(start_epoch, epochs):
        if cfg.time_budget_min is not None and epoch_times:
            elapsed = time.monotonic() - t_start
            # the next epoch is predicted from the recent ones: early epochs slowed by other work
            # (or sped up by an idle machine) no longer tell how long the next one takes
            if elapsed + float(np.median(epoch_times[-3:])) > cfg.time_budget_min * 60:
                log.info("time budget of %.1f min reached after epoch %d; resume with --resume", cfg.time_budget_min, epoch)
                break
        t0 = time.monotonic()
        model.train()
        perm = torch.randperm(len(x_tr_t), generator=gen)
        run_loss, run_correct, seen = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=False)
        for i in bar:
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            faces = x_tr_t[idx]
            if corrupt_p > 0:
                faces = torch.from_numpy(corrupt_batch(faces.numpy(), corrupt_rng, corrupt_p))
            if equalize:
                faces = torch.from_numpy(equalise(faces.numpy()))
            xb = to_input(faces)
            if turn_p > 0:
                xb = turn_faces(xb, gen, turn_p)
            xb = normalise(augment_faces(xb, gen, aug)).contiguous(memory_format=torch.channels_last)
            yb = y_tr_t[idx]
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch * steps_per_epoch + i, total_steps, warmup, cfg.lr)
            loss, correct = train_step(model, opt, xb, yb, weights, cfg.label_smoothing)
            _update_ema(ema, model, cfg.ema_decay if epoch > 0 else 0.0)
            run_loss += loss * len(yb)
            run_correct += correct
            seen += len(yb)
            bar.set_postfix(loss=f"{run_loss / seen:.3f}", acc=f"{run_correct / seen:.3f}")
        bar.close()
        rows = {}
        for tag, net in (("raw", model), ("ema", ema)):
            rep = classification_report(y_va, predict(net, x_va, equalize=equalize).argmax(1))
            rows[tag] = (rep.accuracy, rep.macro_f1)
        pick = max(rows, key=lambda k: rows[k][0])
        epoch_times.append(time.monotonic() - t0)
        rec = {
            "epoch": epoch + 1,
            "train_loss": run_loss / seen,
            "train_acc_augmented": run_correct / seen,
            "val_acc": rows["raw"][0],
            "val_f1": rows["raw"][1],
            "val_acc_ema": rows["ema"][0],
            "val_f1_ema": rows["ema"][1],
            "lr": opt.param_groups[0]["lr"],
            "seconds": epoch_times[-1],
        }
        history.append(rec)
        with hist_path.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        log.info(
            "epoch %d/%d  loss %.4f  train acc(aug) %.4f  PublicTest acc %.4f (EMA %.4f) F1 %.4f  %.0fs",
            epoch + 1, epochs, rec["train_loss"], rec["train_acc_augmented"], rec["val_acc"], rec["val_acc_ema"],
            rec["val_f1"], rec["seconds"],
        )
        if rows[pick][0] > best["val_acc"]:
            best = {"val_acc": rows[pick][0], "val_f1": rows[pick][1], "epoch": epoch + 1, "weights": pick}
            torch.save({"spec": spec.to_dict(), "model": (ema if pick == "ema" else model).state_dict(), "best": best,
                        "equalize": equalize, "seed": seed}, best_path)
        torch.save(
            {
                "spec": spec.to_dict(), "epochs": epochs, "epoch": epoch + 1, "model": model.state_dict(),
                "ema": ema.state_dict(), "optimizer": opt.state_dict(), "best": best, "history": history,
                "generator": gen.get_state(), "augment_strength": aug, "equalize": equalize,
                "ferplus": ferplus, "corrupt_p": corrupt_p, "turn_p": turn_p, "seed": seed,
            },
            last_path,
        )
    done = bool(history) and history[-1]["epoch"] >= epochs
    return {"best": best, "epochs_done": len(history), "epochs": epochs, "finished": done, "out_dir": str(out)}


def load_checkpoint(path: str | Path) -> tuple[HybridFaceNet, dict]:
    """The model of a best.pt / last.pt checkpoint, in eval mode, and the checkpoint's other entries
    (``equalize``, ``best``, ...)."""
    state = torch.load(path, weights_only=False)
    model = HybridFaceNet(FaceNetSpec.from_dict(state["spec"]))
    model.load_state_dict(state.pop("model"))
    return model.eval(), state


def load_trained(path: str | Path) -> HybridFaceNet:
    """A model from a best.pt / last.pt checkpoint, in eval mode."""
    return load_checkpoint(path)[0]
