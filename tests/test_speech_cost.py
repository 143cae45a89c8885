"""`python -m dsrter.edge.tools.speech_cost`: the per-window speech cost benchmark runs on real clips and
prints a figure for every stage; without the clips it says so in one line (exit 2)."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dsrter.edge.tools.speech_cost", *args], env=env, capture_output=True, text=True, timeout=300)


def test_prints_every_stage(av_samples):
    r = _run("--clips", "1", "--repeat", "1", env={**os.environ, "DSRTER_SHARED_DATA": str(av_samples.parent)})
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if re.search(r"(\s+\d+\.\d\d){5}$", ln)]
    names = " | ".join(rows)
    for stage in ("log-mel", "eGeMAPS, one instance reset per window", "eGeMAPS, fresh instance", "voice branch", "SpeechClassifier.predict"):
        assert stage in names, r.stdout
    for ln in rows:
        cpu_med, cpu_mean, cpu_best, wall_med, wall_mean = map(float, ln.split()[-5:])
        assert 0 <= cpu_best <= min(cpu_med, cpu_mean) and wall_med >= 0 and wall_mean >= 0, ln


def test_without_clips_says_so(tmp_path):
    r = _run(env={**os.environ, "DSRTER_SHARED_DATA": str(tmp_path)})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "av-samples not found" in r.stderr
