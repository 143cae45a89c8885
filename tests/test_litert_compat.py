"""Every shipped model gives the same answers under the oldest LiteRT a Raspberry Pi may run.

pyproject.toml accepts ai-edge-litert 1.4.0 and later (requirements/runtime.txt locks the newest,
which this environment runs; 1.4.0 is the last release with manylinux2014 aarch64 wheels, 2.x need
glibc 2.27). A second virtual environment with ``ai-edge-litert==1.4.0``
(and the locked numpy) runs every ``models/*.tflite`` on the same fixed, seeded inputs as this
environment; classifiers (a card with labels, or one output of 7 scores) must give the identical
top-1 label on every input, other models (the face detector) the same outputs within a small
tolerance and the same best-scoring anchor wherever the best score clearly leads.

``$DSRTER_COMPAT_MODELS`` checks the .tflite files of another folder instead of models/.
The second environment is made once and reused: ``$DSRTER_LITERT14_VENV`` names its folder
(default: a folder in the system's temporary directory). It needs the package index the first time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).with_name("litert_compat_runner.py")
LOCK = REPO / "requirements" / "runtime.txt"
PI_LITERT = "1.4.0"
N_LABELS = 7
# $DSRTER_COMPAT_MODELS: another folder of .tflite files to check instead (a candidate model before it ships)
MODELS_DIR = Path(os.environ.get("DSRTER_COMPAT_MODELS") or REPO / "models")
SHIPPED = sorted(MODELS_DIR.glob("*.tflite"))
# Float outputs (the detector) may differ in the last bits between LiteRT releases (kernel
# changes); this bounds the difference relative to each output's own spread.
FLOAT_RTOL = 1e-4


def _venv_dir() -> Path:
    env = os.environ.get("DSRTER_LITERT14_VENV")
    if env:
        return Path(env)
    tag = f"py{sys.version_info.major}.{sys.version_info.minor}"
    return Path(tempfile.gettempdir()) / f"dsrter-litert-{PI_LITERT}-{tag}"


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _has_litert(python: Path) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run([str(python), "-I", "-c",
                            "from importlib.metadata import version; import ai_edge_litert.interpreter, numpy; "
                            "print(version('ai-edge-litert'))"],
                           capture_output=True, text=True, timeout=120)
    return probe.returncode == 0 and probe.stdout.strip() == PI_LITERT


def _constraints(path: Path) -> Path:
    """The lock's unconditional pins (numpy, flatbuffers, ...): what a Pi installs beside LiteRT."""
    lines = []
    for raw in LOCK.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and ";" not in line and not line.startswith("ai-edge-litert"):
            lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    return path


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # two test sessions on one machine must not build it at once
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def litert14_python(tmp_path_factory) -> Path:
    venv = _venv_dir()
    python = _venv_python(venv)
    marker = venv / "dsrter-litert-compat.txt"  # only a folder this test made is ever cleared
    with _locked(venv.parent / f".{venv.name}.lock"):
        if _has_litert(python):
            return python
        if venv.exists() and any(venv.iterdir()) and not marker.exists():
            pytest.fail(f"{venv} exists but is not an ai-edge-litert {PI_LITERT} environment made by this test: "
                        "remove it or point DSRTER_LITERT14_VENV elsewhere")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
        marker.write_text(f"made by tests/test_litert_compat.py for ai-edge-litert=={PI_LITERT}\n")
        cons = _constraints(tmp_path_factory.mktemp("litert14") / "constraints.txt")
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              "--only-binary=:all:", f"ai-edge-litert=={PI_LITERT}", "numpy", "-c", str(cons)],
                             capture_output=True, text=True, timeout=900)
        if pip.returncode != 0:
            pytest.fail(f"could not install ai-edge-litert=={PI_LITERT} into {venv} (needs the package index "
                        f"once; set DSRTER_LITERT14_VENV to reuse a prepared one):\n{pip.stderr[-2000:]}")
        if not _has_litert(python):
            pytest.fail(f"{venv}: ai-edge-litert {PI_LITERT} installed but does not import")
    return python


def _run(python: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run([str(python), "-I", str(RUNNER), *args], capture_output=True, text=True,
                          timeout=600, env=env)
    if proc.returncode != 0:
        pytest.fail(f"{python} {RUNNER.name} {args[0]} failed:\n{proc.stderr[-3000:]}")


@pytest.fixture(scope="module")
def both_results(tmp_path_factory, litert14_python) -> dict[str, dict]:
    """Outputs of every shipped model under this environment's LiteRT ('main') and 1.4.0 ('pi')."""
    if not SHIPPED:
        pytest.fail(f"no *.tflite found in {MODELS_DIR}")
    work = tmp_path_factory.mktemp("litert-compat")
    models = [str(m) for m in SHIPPED]
    _run(Path(sys.executable), "inputs", str(work / "inputs"), *models)
    out: dict[str, dict] = {}
    for key, python in (("main", Path(sys.executable)), ("pi", litert14_python)):
        _run(python, "run", str(work / "inputs"), str(work / f"{key}.npz"), *models)
        with np.load(work / f"{key}.npz") as z:
            out[key] = {k: z[k] for k in z.files}
        out[key]["meta"] = json.loads(str(out[key]["meta"]))
    return out


def _is_classifier(model: Path, meta: dict) -> bool:
    card = model.with_suffix(".json")
    if card.is_file():
        try:
            if json.loads(card.read_text()).get("labels"):
                return True
        except json.JSONDecodeError:
            pass
    return False


def _class_output(outs: list) -> tuple:
    for item in outs:
        if item[2].shape[-1] == N_LABELS:
            return item
    return outs[0]


def _dequantise(y: np.ndarray, out_meta: dict) -> np.ndarray:
    scale, zero = out_meta["quantization"]
    if np.issubdtype(y.dtype, np.floating) or scale == 0:
        return y.astype(np.float64)
    return (y.astype(np.float64) - zero) * scale


def test_second_environment_runs_litert_1_4_0(both_results):
    assert str(both_results["pi"]["litert_version"]) == PI_LITERT
    print(f"main environment: ai-edge-litert {both_results['main']['litert_version']}; Pi-equivalent: {PI_LITERT}")


@pytest.mark.parametrize("model", SHIPPED, ids=[m.name for m in SHIPPED])
def test_same_results_under_litert_1_4_0(model, both_results):
    stem = model.stem
    main, pi = both_results["main"], both_results["pi"]
    assert "error" not in main["meta"][stem], f"{model.name} fails in this environment: {main['meta'][stem]['error']}"
    assert "error" not in pi["meta"][stem], (
        f"{model.name} does not run under ai-edge-litert {PI_LITERT} (what a Raspberry Pi installs): "
        f"{pi['meta'][stem]['error']}\n{pi['meta'][stem].get('traceback', '')}")
    meta = main["meta"][stem]
    assert pi["meta"][stem]["outputs"] == meta["outputs"], "output tensors differ between the two LiteRT releases"
    outs = [(k, o, main[f"{stem}/out{k}"], pi[f"{stem}/out{k}"]) for k, o in enumerate(meta["outputs"])]

    if _is_classifier(model, meta) or (len(outs) == 1 and outs[0][2].shape[-1] == N_LABELS):
        _, o, a, b = _class_output(outs)
        top_a, top_b = a.reshape(len(a), -1).argmax(1), b.reshape(len(b), -1).argmax(1)
        diff = np.abs(a.astype(np.int64) - b.astype(np.int64)) if not np.issubdtype(a.dtype, np.floating) \
            else np.abs(a - b)
        print(f"{model.name}: {len(a)} inputs, top-1 equal {int((top_a == top_b).sum())}/{len(a)}, "
              f"outputs bit-identical {int((diff.reshape(len(a), -1).max(1) == 0).sum())}/{len(a)}, "
              f"max |diff| {diff.max()} (raw {a.dtype})")
        if not np.issubdtype(a.dtype, np.floating):
            # an ensemble file (the speech model averages three networks) rounds once per member and again
            # after the mean, so two steps are still rounding; more would be a kernel that computes differently
            card = model.with_suffix(".json")
            members = (json.loads(card.read_text()).get("model", {}).get("ensemble") or []) if card.is_file() else []
            steps = 2 if len(members) > 1 else 1
            assert diff.max() <= steps, f"{model.name}: int8 outputs differ by {diff.max()} steps (more than rounding)"
        # top-1 must agree, except on a tie within one quantisation step (int8 rounding may break it
        # either way): there the runner-up is at most one step below the winner in both runs
        flat_a, flat_b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
        gap_a = np.sort(flat_a, 1)[:, -1] - np.sort(flat_a, 1)[:, -2]
        gap_b = np.sort(flat_b, 1)[:, -1] - np.sort(flat_b, 1)[:, -2]
        tie = (gap_a <= 1) & (gap_b <= 1) & (not np.issubdtype(a.dtype, np.floating))
        bad = np.flatnonzero((top_a != top_b) & ~tie)
        assert bad.size == 0, (f"{model.name}: top-1 differs under ai-edge-litert {PI_LITERT} on inputs "
                               f"{bad.tolist()}: {top_a[bad].tolist()} vs {top_b[bad].tolist()}")
        assert int((top_a != top_b).sum()) <= max(1, len(a) // 10), f"{model.name}: too many ties broken differently"
        return

    for k, o, a, b in outs:
        fa, fb = _dequantise(a, o), _dequantise(b, o)
        spread = max(float(np.ptp(fa)), 1e-6)
        err = float(np.abs(fa - fb).max())
        print(f"{model.name}: output {o['name']} {fa.shape[1:]}: max |diff| {err:.3g} "
              f"(spread {spread:.3g}, bit-identical: {bool(np.array_equal(a, b))})")
        assert err <= FLOAT_RTOL * spread, (f"{model.name}: output {o['name']} differs under ai-edge-litert "
                                            f"{PI_LITERT} by {err:.3g} (> {FLOAT_RTOL:g} x spread {spread:.3g})")
        flat_a, flat_b = fa.reshape(len(fa), -1), fb.reshape(len(fb), -1)
        if fa.shape[-1] == 1 and flat_a.shape[1] > 1:  # a score per anchor: the best one must agree
            order = np.sort(flat_a, axis=1)
            clear = (order[:, -1] - order[:, -2]) > 2 * err  # a lead no difference seen here can overturn
            same = flat_a.argmax(1) == flat_b.argmax(1)
            print(f"{model.name}: best anchor of {o['name']} equal on {int(same[clear].sum())}/{int(clear.sum())} "
                  f"inputs with a clear best ({int(same.sum())}/{len(same)} overall)")
            assert same[clear].all(), f"{model.name}: best-scoring anchor differs under ai-edge-litert {PI_LITERT}"
