"""Compare two `dsrter analyze` timelines (reference and candidate): same events, same labels.

Rows are matched in order by (t, kind, track_id); every label must be identical and every
confidence within the tolerance of its kind. Prints one summary line; exits 1 on any difference.
    python .ci/compare_timelines.py REF/timeline.jsonl CAND/timeline.jsonl [--face-tol 0.05] [--speech-tol 0.1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: (round(float(r["t"]), 3), r["kind"], str(r.get("track_id"))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ref", type=Path)
    ap.add_argument("cand", type=Path)
    ap.add_argument("--face-tol", type=float, default=0.05, help="max |confidence difference| for face rows")
    ap.add_argument("--speech-tol", type=float, default=0.10,
                    help="max |confidence difference| for speech and fused rows (openSMILE's aarch64 build "
                         "computes some formant functionals differently)")
    a = ap.parse_args(argv)
    try:
        ref, cand = read(a.ref), read(a.cand)
    except (OSError, ValueError, KeyError) as exc:
        print(f"compare: cannot read the timelines ({exc})", file=sys.stderr)
        return 1
    problems: list[str] = []
    if len(ref) != len(cand):
        problems.append(f"{len(cand)} events, reference {len(ref)}")
    worst = {"face": 0.0, "speech": 0.0}
    for i, (r, c) in enumerate(zip(ref, cand)):
        key_r = (round(float(r["t"]), 3), r["kind"], r.get("track_id"))
        key_c = (round(float(c["t"]), 3), c["kind"], c.get("track_id"))
        if key_r != key_c:
            problems.append(f"event {i}: {key_c} where the reference has {key_r}")
            break
        if r.get("label") != c.get("label"):
            problems.append(f"event {i} {key_r}: label {c.get('label')!r}, reference {r.get('label')!r}")
        if r.get("confidence") is not None and c.get("confidence") is not None:
            kind = "face" if r["kind"] == "face" else "speech"
            d = abs(float(r["confidence"]) - float(c["confidence"]))
            worst[kind] = max(worst[kind], d)
    if worst["face"] > a.face_tol:
        problems.append(f"face confidence differs by {worst['face']:.4f} > {a.face_tol}")
    if worst["speech"] > a.speech_tol:
        problems.append(f"speech/fused confidence differs by {worst['speech']:.4f} > {a.speech_tol}")
    summary = (f"{len(cand)} events vs {len(ref)}; max |confidence diff| face {worst['face']:.4f} "
               f"(tol {a.face_tol}), speech/fused {worst['speech']:.4f} (tol {a.speech_tol})")
    if problems:
        print(f"compare: DIFFERENT: {summary}; " + "; ".join(problems[:5]))
        return 1
    print(f"compare: identical labels: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
