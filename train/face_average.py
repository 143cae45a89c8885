"""Average the weights of face checkpoints of one network: a run and a fine-tune started from it.

    python -m dsrter.train.face_average --checkpoint runs/face_l60/best.pt runs/face_c2/best.pt \
        --out runs/face_avg/best.pt

Networks that share a starting point lie in one basin of the loss, so their mean weights make one
network that answers about as well as the two averaged at run time, at the cost of one. Every
floating-point tensor is averaged (BatchNorm statistics included); counters come from the first.
Compare the result with its sources on PublicTest (``dsrter.train.face_select``), never PrivateTest.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def average_checkpoints(paths: list[Path]) -> dict:
    """One checkpoint (spec, equalisation and mean weights of ``paths``); ValueError if they differ in kind."""
    if len(paths) < 2:
        raise ValueError("give at least two checkpoints to average")
    states = [torch.load(p, weights_only=False) for p in paths]
    first = states[0]
    for p, s in zip(paths[1:], states[1:]):
        if s.get("spec") != first.get("spec"):
            raise ValueError(f"{p}: another network ({s.get('spec')}) than {paths[0]} ({first.get('spec')})")
        if bool(s.get("equalize", False)) != bool(first.get("equalize", False)):
            raise ValueError(f"{p}: equalised faces {bool(s.get('equalize'))}, {paths[0]}: {bool(first.get('equalize'))}")
    weights = {}
    for name, tensor in first["model"].items():
        if tensor.dtype.is_floating_point:
            weights[name] = torch.stack([s["model"][name] for s in states]).mean(dim=0)
        else:
            weights[name] = tensor.clone()
    return {"spec": first["spec"], "equalize": bool(first.get("equalize", False)), "model": weights, "best": {"averaged": [str(p) for p in paths]}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", nargs="+", type=Path, required=True, help="best.pt files of one network")
    ap.add_argument("--out", type=Path, required=True, help="the averaged checkpoint (a best.pt)")
    args = ap.parse_args(argv)
    missing = [p for p in args.checkpoint if not p.is_file()]
    if missing:
        print(f"error: {missing[0]}: checkpoint not found")
        return 2
    try:
        state = average_checkpoints(args.checkpoint)
    except (ValueError, KeyError, RuntimeError) as exc:
        print(f"error: {exc}")
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.out)
    print(f"wrote {args.out}: the mean of {len(args.checkpoint)} checkpoints' weights")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
