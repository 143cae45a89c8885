"""Compare two `dsrter analyze` timelines (reference and candidate): same events, same labels.

Rows are matched one for one by (t, kind, track_id); the candidate must have exactly the
reference's events and speaking flags, and every class score within the tolerance of its kind.
Labels must be identical except at a near-tie: another CPU's int8 kernels put the scores a few
thousandths away, so where two classes are within that distance the top one can differ. A
differing label is accepted only when each run scores the other's label within ``--tie`` of its
own (the count is printed). Run both timelines with smoothing
off (.ci/pi_emulate.sh does): a smoothed label depends on its whole history, so one early tie
can keep two runs apart for seconds. Prints one summary line; exits 1 on any failure.
    python .ci/compare_timelines.py REF/timeline.jsonl CAND/timeline.jsonl [--face-tol 0.05]
        [--speech-tol 0.1] [--tie 0.05]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

Key = tuple[float, str, str]


def key(row: dict) -> Key:
    return (round(float(row["t"]), 3), str(row["kind"]), str(row.get("track_id")))


def read(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(rows, key=key)


def max_score_diff(r: dict, c: dict) -> float:
    a, b = r.get("scores") or {}, c.get("scores") or {}
    if set(a) != set(b):
        return float("inf")
    return max((abs(float(a[n]) - float(b[n])) for n in a), default=0.0)


def tie_gap(r: dict, c: dict) -> float:
    """How far apart the two labels are in the run that scores them furthest apart (inf: no scores)."""
    lr, lc = r.get("label"), c.get("label")
    a, b = r.get("scores") or {}, c.get("scores") or {}
    if lr is None or lc is None or not {lr, lc} <= set(a) or not {lr, lc} <= set(b):
        return float("inf")
    return max(abs(float(a[lr]) - float(a[lc])), abs(float(b[lr]) - float(b[lc])))


def compare(ref: list[dict], cand: list[dict], face_tol: float, speech_tol: float,
            tie: float) -> tuple[list[str], str]:
    """(problems, summary): no problems means the candidate gives the reference's results."""
    if [key(r) for r in ref] != [key(c) for c in cand]:
        only_c = sorted({key(c) for c in cand} - {key(r) for r in ref})
        only_r = sorted({key(r) for r in ref} - {key(c) for c in cand})
        return ([f"only in the candidate {only_c[:3]}, only in the reference {only_r[:3]}"],
                f"{len(cand)} events vs {len(ref)}")
    problems: list[str] = []
    worst = {"face": 0.0, "speech": 0.0}
    ties: list[str] = []
    widest = 0.0
    for r, c in zip(ref, cand):
        k = key(r)
        kind = "face" if k[1] == "face" else "speech"
        worst[kind] = max(worst[kind], max_score_diff(r, c))
        if r.get("speaking") != c.get("speaking"):
            problems.append(f"{k}: speaking {c.get('speaking')!r}, reference {r.get('speaking')!r}")
        if r.get("label") == c.get("label"):
            continue
        gap = tie_gap(r, c)
        if gap <= tie:
            ties.append(f"{k} {c.get('label')!r}/{r.get('label')!r} {gap:.3f}")
            widest = max(widest, gap)
        else:
            problems.append(f"{k}: label {c.get('label')!r}, reference {r.get('label')!r}, "
                            f"{gap:.3f} apart (not a tie within {tie})")
    if worst["face"] > face_tol:
        problems.append(f"face scores differ by {worst['face']:.4f} > {face_tol}")
    if worst["speech"] > speech_tol:
        problems.append(f"speech/fused scores differ by {worst['speech']:.4f} > {speech_tol}")
    summary = (f"{len(cand)} events vs {len(ref)}; {len(ties)} labels differ at a tie (widest {widest:.3f}, "
               f"tol {tie}){' (' + '; '.join(ties[:3]) + ')' if ties else ''}; max |score diff| face "
               f"{worst['face']:.4f} (tol {face_tol}), speech/fused {worst['speech']:.4f} (tol {speech_tol})")
    return problems, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ref", type=Path)
    ap.add_argument("cand", type=Path)
    ap.add_argument("--face-tol", type=float, default=0.05,
                    help="max |class score difference| for face rows (int8 kernels differ between CPUs, and "
                         "so do the detector's boxes by a fraction of a pixel)")
    ap.add_argument("--speech-tol", type=float, default=0.10,
                    help="max |class score difference| for speech and fused rows (openSMILE's aarch64 build "
                         "computes some formant functionals differently)")
    ap.add_argument("--tie", type=float, default=0.05, help="largest score gap at which the top label may differ")
    a = ap.parse_args(argv)
    try:
        ref, cand = read(a.ref), read(a.cand)
    except (OSError, ValueError, KeyError) as exc:
        print(f"compare: cannot read the timelines ({exc})", file=sys.stderr)
        return 1
    problems, summary = compare(ref, cand, a.face_tol, a.speech_tol, a.tie)
    if problems:
        print(f"compare: DIFFERENT: {summary}; " + "; ".join(problems[:5]))
        return 1
    print(f"compare: same labels: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
