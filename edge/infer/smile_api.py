"""openSMILE's eGeMAPSv02 functionals through its C interface (libSMILEapi), called with ctypes.

The native library and the configuration files come from the ``opensmile`` wheel, found on the
import path *without* importing the ``opensmile`` Python package (its import pulls audinterface,
audformat, pandas and pyarrow, none of which the runtime needs). The run is set up as
``opensmile.Smile(FeatureSet.eGeMAPSv02, FeatureLevel.Functionals).process_signal`` sets it up: the
same configuration file and options, the window handed over as 16-bit PCM converted the same way,
one functionals vector read from the external sink. So the 88 values are the same
(tests/test_smile_api.py compares them with the ``opensmile`` package on real speech).

The configuration is parsed once per extractor; between windows the instance is reset
(``smile_reset``), which openSMILE allows after a finished run, instead of parsed again.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The install line named when the native library is missing (the runtime lock's version).
INSTALL_HINT = "pip install --no-deps opensmile==2.6.0 (./setup.sh deps installs it)"
#: eGeMAPSv02 functionals, as opensmile.FeatureSet.eGeMAPSv02 names the file under the config root.
EGEMAPS_V02 = "egemaps/v02/eGeMAPSv02.conf"
_LIBRARY_NAMES = ("libSMILEapi.so", "libSMILEapi.dylib", "SMILEapi.dll")
_SOURCE, _SINK = b"extsource", b"extsink"  # the component names of opensmile's shared includes
_SUCCESS = 0
_LOGLEVEL = 2  # opensmile.Smile's default

# void (*)(const float *data, long nT, long N, const FrameMetaData *meta, void *param) -> int
_c_long, _c_void_p = ctypes.c_long, ctypes.c_void_p
_SinkCallbackEx = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_float), _c_long, _c_long, _c_void_p, _c_void_p)


class SmileUnavailable(RuntimeError):
    """openSMILE's native library or its configuration files are not installed or cannot be used."""


@dataclass(frozen=True)
class SmileFiles:
    """Where the opensmile wheel put the native library and the feature-set configurations."""

    library: Path
    config_root: Path


def locate() -> SmileFiles:
    """The library and config folder of the installed ``opensmile`` wheel; SmileUnavailable if absent."""
    try:
        spec = importlib.util.find_spec("opensmile")  # finds the package folder, runs none of its code
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        core = Path(folder) / "core"
        libs = sorted(p for name in _LIBRARY_NAMES for p in (core / "bin").glob(f"*/{name}"))
        if libs and (core / "config" / EGEMAPS_V02).is_file():
            return SmileFiles(libs[0], core / "config")
    where = f" (the opensmile package at {folders[0]} has no native library or eGeMAPS config)" if folders else ""
    raise SmileUnavailable(f"openSMILE's native library is not installed{where}: {INSTALL_HINT}")


def is_loaded(library: Path) -> bool:
    """True when ``library`` is already loaded in this process (dlopen with RTLD_NOLOAD)."""
    noload = getattr(os, "RTLD_NOLOAD", None)
    if noload is None:  # pragma: no cover - Windows
        return False
    try:
        ctypes.CDLL(str(library), mode=noload)
    except OSError:
        return False
    return True


def load_library(library: Path) -> ctypes.CDLL:
    """Load libSMILEapi and declare the functions used here (the library stays loaded for the process)."""
    try:
        lib = ctypes.CDLL(str(library))
    except OSError as exc:
        why = f"openSMILE's native library {library.name} cannot be loaded ({exc})"
        raise SmileUnavailable(f"{why}: {INSTALL_HINT}") from None
    vp, cp, ci = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    signatures = {
        "smile_new": ([], vp),
        "smile_initialize": ([vp, cp, ci, ctypes.POINTER(cp), ci, ci, ci, cp], ci),
        "smile_run": ([vp], ci),
        "smile_reset": ([vp], ci),
        "smile_free": ([vp], None),
        "smile_error_msg": ([vp], cp),
        "smile_extaudiosource_write_data": ([vp, cp, vp, ci], ci),
        "smile_extaudiosource_set_external_eoi": ([vp, cp], ci),
        "smile_extsink_set_data_callback_ex": ([vp, cp, _SinkCallbackEx, vp], ci),
        "smile_extsink_get_num_elements": ([vp, cp, ctypes.POINTER(ctypes.c_long)], ci),
        "smile_extsink_get_element_name": ([vp, cp, ctypes.c_long, ctypes.POINTER(cp)], ci),
    }
    for name, (args, res) in signatures.items():
        fn = getattr(lib, name, None)
        if fn is None:
            raise SmileUnavailable(f"{library}: not openSMILE's C API (no {name}): {INSTALL_HINT}")
        fn.argtypes, fn.restype = args, res
    return lib


def loaded() -> bool:
    """True when the installed opensmile wheel's native library is already in this process."""
    try:
        return is_loaded(locate().library)
    except SmileUnavailable:
        return False


def preload() -> bool:
    """Load the native library now if it is installed (it must be in memory before TensorFlow's); no error."""
    try:
        load_library(locate().library)
    except SmileUnavailable:
        return False
    return True


def pcm16(audio: np.ndarray) -> np.ndarray:
    """float32 samples -> int16 as opensmile.Smile converts them (x 32768, cast) within [-1, 1).

    Samples beyond full scale (a clipped recording after level normalisation) are clipped: the plain
    cast wraps them to the opposite sign (and differs between CPU architectures)."""
    x = np.array(audio, dtype=np.float32)
    x *= 32768
    np.clip(x, -32768, 32767, out=x)
    return x.astype(np.int16)


class SmileFunctionals:
    """One openSMILE instance computing a functionals configuration of mono windows at one rate.

    ``extractor(audio)`` gives the functionals of one window as float32, NaN where openSMILE leaves a
    value undefined, all NaN when the window is too short for a single frame (as opensmile.Smile
    gives them). Not thread-safe: one instance per thread.
    """

    def __init__(self, sample_rate: int = 16000, config: str = EGEMAPS_V02, files: SmileFiles | None = None):
        self._handle: int | None = None
        files = files or locate()
        self._lib = load_library(files.library)
        self.sample_rate = int(sample_rate)
        root = files.config_root
        shared = root / "shared"
        options = {  # what opensmile.Smile passes for a functionals run on an external signal
            "sink": shared / "standard_external_data_output_single.conf.inc",
            "sinkLevel": "func",
            "bufferModeRbConf": shared / "BufferModeRb.conf.inc",
            "frameModeFunctionalsConf": shared / "FrameModeFunctionals.conf.inc",
            "source": shared / "standard_external_wave_input.conf.inc",
            "sampleRate": self.sample_rate,
            "nBits": 16,
        }
        flat = [str(v).encode() for kv in options.items() for v in kv]
        argv = (ctypes.c_char_p * (len(flat) + 1))(*flat, None)
        self._handle = self._lib.smile_new()
        if not self._handle:
            raise SmileUnavailable("openSMILE could not create an instance (smile_new failed)")
        config_file = str(root / config).encode()
        rc = self._lib.smile_initialize(self._handle, config_file, len(options), argv, _LOGLEVEL, 0, 0, None)
        self._check(rc, "initialize")
        n = ctypes.c_long()
        self._check(self._lib.smile_extsink_get_num_elements(self._handle, _SINK, ctypes.byref(n)), "read the sink size")
        self.names: list[str] = []
        for i in range(n.value):
            name = ctypes.c_char_p()
            self._check(self._lib.smile_extsink_get_element_name(self._handle, _SINK, i, ctypes.byref(name)), "read a name")
            self.names.append((name.value or b"").decode("ascii"))
        self._rows: list[np.ndarray] = []
        self._callback = _SinkCallbackEx(self._on_data)  # kept referenced: openSMILE holds a raw pointer
        self._fresh = True

    def _on_data(self, data, n_t: int, n: int, _meta, _param) -> int:
        self._rows.append(np.ctypeslib.as_array(data, shape=(n_t, n)).copy())
        return 1

    def _check(self, rc: int, what: str) -> None:
        if rc != _SUCCESS:
            msg = self._lib.smile_error_msg(self._handle) if self._handle else None
            detail = msg.decode("ascii", "replace") if msg else f"code {rc}"
            raise SmileUnavailable(f"openSMILE could not {what}: {detail}")

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        if self._handle is None:
            raise ValueError("this openSMILE instance is closed")
        if not self._fresh:
            self._check(self._lib.smile_reset(self._handle), "reset")
        self._fresh = False
        self._check(self._lib.smile_extsink_set_data_callback_ex(self._handle, _SINK, self._callback, None), "set the sink")
        pcm = pcm16(audio)
        self._rows = []
        rc = self._lib.smile_extaudiosource_write_data(self._handle, _SOURCE, pcm.ctypes.data, pcm.nbytes)
        self._check(rc, "take the audio")
        self._check(self._lib.smile_extaudiosource_set_external_eoi(self._handle, _SOURCE), "end the input")
        self._check(self._lib.smile_run(self._handle), "run")
        if not self._rows:
            return np.full(len(self.names), np.nan, np.float32)
        return np.vstack(self._rows)[-1].astype(np.float32)

    def close(self) -> None:
        """Free the openSMILE instance (also done when the extractor is garbage-collected)."""
        if getattr(self, "_handle", None) is not None:
            self._lib.smile_free(self._handle)
            self._handle = None

    def __del__(self) -> None:
        if sys.is_finalizing():  # the library may be gone at interpreter exit
            return
        self.close()
