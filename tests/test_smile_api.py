"""openSMILE driven through its C API (edge/infer/smile_api.py): the same eGeMAPSv02 values as the
``opensmile`` Python package on real speech, no pandas/pyarrow/scipy at run time, and a missing native
library named in one line."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from dsrter.edge.infer import smile_api
from dsrter.edge.infer import speech_features as sf_

REPO = Path(__file__).resolve().parents[1]
RECIPE = sf_.default_recipe()
WINDOW = RECIPE["window_samples"]


def _speech_windows(folder: Path, pattern: str, n_files: int, rng: np.random.Generator) -> list[np.ndarray]:
    files = sorted(folder.glob(pattern))
    assert files, f"no {pattern} under {folder}"
    picked = [files[i] for i in rng.choice(len(files), size=min(n_files, len(files)), replace=False)]
    out = []
    for f in picked:
        data, sr = soundfile.read(f, dtype="float32", always_2d=True)
        x = sf_.to_mono_16k(data, sr)
        start = int(rng.integers(0, max(1, len(x) - WINDOW)))
        w = np.zeros(WINDOW, np.float32)
        seg = x[start : start + WINDOW]
        w[: len(seg)] = seg
        out.append(w)
    return out


@pytest.fixture(scope="module")
def windows(ravdess_dir, emodb_dir) -> list[np.ndarray]:
    """Real speech: 2 s windows of RAVDESS (48 kHz, resampled here) and EmoDB (16 kHz) clips, as read
    and as the device feeds them to openSMILE (level-normalised), plus silence."""
    rng = np.random.default_rng(15)
    raw = _speech_windows(ravdess_dir, "Actor_*/*.*", 10, rng) + _speech_windows(emodb_dir, "wav/*.*", 10, rng)
    levelled = [sf_.normalise_level(w, RECIPE) for w in raw[::2]]
    return raw + levelled + [np.zeros(WINDOW, np.float32)]


def _opensmile_reference():
    opensmile = pytest.importorskip("opensmile", reason="the opensmile Python package is the reference (test extra)")
    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)


def test_same_values_as_the_opensmile_package(windows):
    ref = _opensmile_reference()
    drv = smile_api.SmileFunctionals(16000)
    assert drv.names == list(ref.feature_names) and len(drv.names) == 88
    for i, w in enumerate(windows):  # one instance, reset between windows
        want = ref.process_signal(w, 16000).to_numpy(dtype=np.float32).reshape(-1)
        np.testing.assert_array_equal(drv(w), want, err_msg=f"window {i}")
    # a second instance fed the windows backwards: no state carries over from one window to the next
    back = smile_api.SmileFunctionals(16000)
    first = [drv(w) for w in windows]
    for i, w in reversed(list(enumerate(windows))):
        np.testing.assert_array_equal(back(w), first[i], err_msg=f"window {i} after later windows")
    drv.close()
    back.close()


def test_samples_beyond_full_scale_are_clipped_not_wrapped(windows):
    """A window pushed past +-1.0 (clipped speech after level normalisation) gives the features of the
    same window clipped at full scale; the plain int16 cast would wrap it to the opposite sign."""
    drv = smile_api.SmileFunctionals(16000)
    loud = windows[0] * np.float32(1.0 / max(1e-6, float(np.abs(windows[0]).max()))) * np.float32(3.0)
    assert np.abs(loud).max() > 2.9
    clipped = np.clip(loud, -1.0, 32767 / 32768)
    np.testing.assert_array_equal(drv(loud), drv(clipped))
    assert smile_api.pcm16(np.array([1.5, -1.5, 1.0, 0.5], np.float32)).tolist() == [32767, -32768, 32767, 16384]
    drv.close()


def test_threads_each_get_their_own_instance(windows):
    """The extractor resets one openSMILE instance per thread between windows: two threads at once
    give what one thread gives."""
    from concurrent.futures import ThreadPoolExecutor

    ex = sf_.EgemapsExtractor()
    alone = [ex(w) for w in windows]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(ex, windows * 2))
    for i, v in enumerate(together):
        np.testing.assert_array_equal(v, alone[i % len(windows)], err_msg=f"window {i % len(windows)}")


def test_a_window_too_short_for_one_frame_is_all_undefined():
    ref = _opensmile_reference()
    short = np.full(100, 0.01, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # opensmile: "Segment too short, filling with NaN."
        want = ref.process_signal(short, 16000).to_numpy(dtype=np.float32).reshape(-1)
    got = smile_api.SmileFunctionals(16000)(short)
    assert np.all(np.isnan(want)) and np.all(np.isnan(got)) and got.shape == (88,)
    assert np.all(sf_.egemaps(short) == 0.0)  # the extractor's value for undefined functionals


def test_the_speech_path_loads_no_pandas_pyarrow_or_scipy():
    """Importing the speech features and computing one window in a fresh process loads openSMILE's
    native library but none of the opensmile package's Python dependencies, nor scipy."""
    code = (
        "import sys, numpy as np\n"
        "from dsrter.edge.infer import smile_api, speech_features as sf\n"
        "assert smile_api.loaded(), 'libSMILEapi not loaded at import'\n"
        "x = sf.to_mono_16k(np.random.default_rng(0).normal(0, 0.1, 96000).astype(np.float32), 48000)\n"
        "v = sf.egemaps(x)\n"
        "assert v.shape == (88,)\n"
        "heavy = {'pandas', 'pyarrow', 'scipy', 'audinterface', 'audformat', 'audobject', 'audresample', 'opensmile'}\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [], f"the speech path loaded: {r.stdout.strip()}"


def _shadow_opensmile(tmp_path: Path) -> dict[str, str]:
    """An environment whose first `opensmile` on the path is a package without the native library."""
    shadow = tmp_path / "shadow"
    (shadow / "opensmile").mkdir(parents=True)
    (shadow / "opensmile" / "__init__.py").write_text("")
    env = {k: v for k, v in os.environ.items() if k != "DSRTER_CONFIG"}
    env["PYTHONPATH"] = os.pathsep.join([str(shadow), *filter(None, [env.get("PYTHONPATH")])])
    return env


def test_a_missing_native_library_is_one_line(tmp_path):
    with pytest.raises(smile_api.SmileUnavailable, match="pip install --no-deps opensmile"):
        smile_api.SmileFunctionals(16000, files=smile_api.SmileFiles(REPO / "README.md", tmp_path))
    r = subprocess.run(
        [sys.executable, "-c", "from dsrter.edge.infer import smile_api; smile_api.locate()"],
        env=_shadow_opensmile(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and "has no native library" in r.stderr and "pip install --no-deps opensmile" in r.stderr


@pytest.mark.skipif(not (REPO / "models" / "speech_emotion.tflite").is_file(), reason="shipped speech model absent")
def test_analyze_without_the_native_library_says_what_to_install(tmp_path):
    from mediagen import make_clip

    clip = make_clip(tmp_path / "clip.mp4", seconds=1.0)
    r = subprocess.run(
        [sys.executable, "-m", "dsrter.edge.cli.main", "analyze", str(clip), "--out", str(tmp_path / "o"), "--no-progress"],
        env=_shadow_opensmile(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "opensmile" in ln]
    assert len(lines) == 1, r.stderr
    assert "pip install --no-deps opensmile==" in lines[0] and "speech.enabled: false" in lines[0], r.stderr
