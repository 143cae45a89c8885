"""Rebuild a PyTorch checkpoint of the hybrid face network from its float TFLite file.

A shipped model whose training checkpoint is gone can still be fine-tuned or made a member of an
ensemble: the float .tflite holds every weight, with each BatchNorm folded into the convolution
before it. The folded kernel goes back into the convolution and the folded bias into a BatchNorm
set to the identity (mean 0, variance 1, scale sqrt(1 + eps)), which computes the same function.

    python -m dsrter.train.face_import --tflite models/face_emotion_float.tflite --out runs/face_a/best.pt

The architecture comes from the card beside the file; the result is checked against the TFLite
model on random inputs and refused if it differs. A file that averages several networks (its card
lists ``architecture.members``) gives one member per call (``--member K``); the members' weights
are told apart by their tensor names (``.../memberK_N/...``), and all of them, averaged, are
checked against the file.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import numpy as np

from dsrter.edge.infer.model_io import ModelError, TFLiteModel, load_card, sha256_file

log = logging.getLogger(__name__)

_WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _weighted_ops(tflite_path: Path, member: int | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(op name, weight, bias) of every convolution and dense op, in execution order (file checked to
    exist); with ``member``, only those of that member of an averaging file."""
    model = TFLiteModel(tflite_path, delegates=False)
    names = {i: t["name"] for i, t in model.tensors().items()}
    out = []
    for op in model.ops():
        if op["op_name"] not in _WEIGHTED_OPS:
            continue
        _, w_idx, b_idx = op["inputs"][:3]
        if member is not None and not re.search(rf"(^|/)member{member}(_\d+)?/", names[w_idx]):
            continue
        weight = model.tensor(w_idx)
        if weight.dtype != np.float32:
            raise ModelError(f"{tflite_path}: {op['op_name']} weights are {weight.dtype}; import needs the float model")
        out.append((op["op_name"], weight, model.tensor(b_idx)))
    return out


def _torch_layout(op: str, weight: np.ndarray) -> np.ndarray:
    if op == "CONV_2D":  # (out, kh, kw, in) -> (out, in, kh, kw)
        return weight.transpose(0, 3, 1, 2)
    if op == "DEPTHWISE_CONV_2D":  # (1, kh, kw, C) -> (C, 1, kh, kw)
        return weight.transpose(3, 0, 1, 2)
    return weight  # FULLY_CONNECTED: (out, in) in both


def member_count(tflite_path: str | Path) -> int:
    """How many networks the file averages (1 for a single network), as its card says."""
    return max(1, len(load_card(Path(tflite_path)).get("architecture", {}).get("members") or []))


def import_tflite(tflite_path: str | Path, spec=None, member: int | None = None):
    """A HybridFaceNet (eval mode) carrying the weights of a float face TFLite file (of its
    ``member``-th network, for a file averaging several).

    Ops are matched to the network's layers by order and weight shape: TFLite keeps the order of
    each branch, and the branches' layers have different shapes."""
    import torch  # the train extra; reading a .tflite's card and tensors does not need it

    from dsrter.train.face_model import FaceNetSpec, HybridFaceNet

    path = Path(tflite_path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    # the card names the architecture (and the members); with ``spec`` given and no member it is not needed
    architecture = load_card(path).get("architecture", {}) if spec is None or member is not None else {}
    members = architecture.get("members") or []
    if len(members) > 1:
        if member is None:
            raise ModelError(f"{path} averages {len(members)} networks: name one (member 0 to {len(members) - 1})")
        if not 0 <= member < len(members):
            raise ModelError(f"{path}: no member {member} (its card lists {len(members)})")
    elif member not in (None, 0):
        raise ModelError(f"{path}: no member {member} (it is a single network)")
    else:
        member = None
    if spec is None:
        card_spec = members[member].get("spec") if member is not None else architecture.get("spec")
        if not card_spec:
            raise ModelError(f"{path}: its card has no architecture spec to rebuild")
        spec = FaceNetSpec.from_dict(card_spec)
    net = HybridFaceNet(spec).eval()
    ops = [(name, _torch_layout(name, w), b) for name, w, b in _weighted_ops(path, member)]
    used = [False] * len(ops)
    modules = list(net.named_modules())
    with torch.no_grad():
        for i, (name, module) in enumerate(modules):
            if not isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                continue
            want = tuple(module.weight.shape)
            j = next((k for k, (_, w, _) in enumerate(ops) if not used[k] and w.shape == want), None)
            if j is None:
                raise ModelError(f"{path}: no unused op with weights shaped {want} for layer {name!r}; the file is not this architecture")
            used[j] = True
            _, w, b = ops[j]
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            if isinstance(module, torch.nn.Linear):
                module.bias.copy_(torch.from_numpy(b))
                continue
            bn = modules[i + 1][1]
            if not isinstance(bn, torch.nn.BatchNorm2d):
                raise ModelError(f"layer {name!r} is not followed by a BatchNorm to carry its folded bias")
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
            bn.weight.fill_(float(np.sqrt(1.0 + bn.eps)))
            bn.bias.copy_(torch.from_numpy(b))
    if not all(used):
        raise ModelError(f"{path}: {used.count(False)} weighted ops left over; the file is not this architecture")
    return net


def unfold_batchnorm(net, images) -> None:
    """Give an imported net's BatchNorms real statistics so it can be trained further.

    An imported BatchNorm is an identity carrying the folded bias; in training mode it would
    normalise by batch statistics and change the function. Here each one gets the mean and
    variance of its input over ``images`` (N, 1, S, S in [-1, 1]) as running statistics, and the
    scale and shift that undo them: the eval-mode output is unchanged (up to rounding) and the
    training-mode output starts close to it."""
    import torch

    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    got: dict[int, torch.Tensor] = {}
    hooks = [bn.register_forward_pre_hook(lambda m, inp, i=i: got.setdefault(i, inp[0])) for i, bn in enumerate(bns)]
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            net(images)  # one pass is enough: each change below keeps every layer's eval output
            for i, bn in enumerate(bns):
                mean = got[i].mean(dim=(0, 2, 3))
                var = got[i].var(dim=(0, 2, 3), unbiased=False)
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                shift = bn.bias - bn.running_mean * scale
                # eval: (x - rm) / sqrt(rv + eps) * w + b  ==  scale * x + shift  for the values below
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
                bn.weight.copy_(scale * torch.sqrt(var + bn.eps))
                bn.bias.copy_(shift + scale * mean)
    finally:
        for h in hooks:
            h.remove()
    net.train(was_training)


def max_difference(nets, tflite_path: str | Path, n: int = 32, seed: int = 0) -> float:
    """Largest probability difference between the rebuilt net (or the mean of several members'
    probabilities, as an averaging file computes it) and the TFLite file on random faces."""
    import torch

    nets = nets if isinstance(nets, (list, tuple)) else [nets]
    model = TFLiteModel(tflite_path)
    size = nets[0].spec.input_size
    x = np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 1)).astype(np.float32)
    ref = np.concatenate([model.run(x[i : i + 1])[0] for i in range(n)])
    batch = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        ours = np.mean([torch.softmax(net(batch), 1).numpy() for net in nets], axis=0)
    return float(np.abs(ours - ref).max())


def save_checkpoint(net, out: str | Path, best: dict | None = None, source: str = "", equalize: bool = False) -> Path:
    """Write a best.pt-style checkpoint that `dsrter convert face` and face_select accept (``equalize``:
    the model expects histogram-equalised faces, as its card's input.equalize says)."""
    import torch

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"spec": net.spec.to_dict(), "model": net.state_dict(), "best": best or {}, "imported_from": source, "batchnorm_folded": True, "equalize": equalize}, out
    )  # `train face --init` re-measures the BatchNorms of such a file
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tflite", required=True, type=Path, help="float face model (its card must sit beside it)")
    ap.add_argument("--out", required=True, type=Path, help="checkpoint to write, e.g. runs/face_a/best.pt")
    ap.add_argument("--member", type=int, default=None, help="for a file averaging several networks: which one to write (0, 1, ...)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        net = import_tflite(args.tflite, member=args.member)  # refuses a missing or out-of-range member
        count = member_count(args.tflite)
        nets = [net if k == args.member else import_tflite(args.tflite, member=k) for k in range(count)] if count > 1 else [net]
        diff = max_difference(nets, args.tflite)
        if diff > 1e-4:
            raise ModelError(f"rebuilt network differs from {args.tflite} by {diff:.3g} in probability")
    except ModelError as exc:
        log.error("%s", exc)
        return 2
    card = load_card(args.tflite)
    if args.member is not None:
        member = card["architecture"]["members"][args.member]
        best = {"epoch": member.get("best_epoch"), "val_acc": member.get("publictest_accuracy_at_selection")}
    else:
        training = card.get("training", {})
        best = {"epoch": training.get("best_epoch"), "val_acc": training.get("publictest_accuracy_at_selection")}
    source = " ".join(
        filter(None, (args.tflite.name, f"member {args.member}" if args.member is not None else "", card.get("version"), "sha256", sha256_file(args.tflite)))
    )
    save_checkpoint(net, args.out, best, source=source, equalize=card.get("input", {}).get("equalize") == "histogram")
    log.info("wrote %s (max probability difference to the TFLite file %.2e)", args.out, diff)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
