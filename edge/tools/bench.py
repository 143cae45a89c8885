"""``dsrter bench``: per-stage time, end-to-end rate, latency, CPU, memory and start-up of the
edge pipeline on real decoded video, side by side with the `fer` package's pipeline (the peer).

What runs (all on this machine; every time figure is machine-dependent):

* **ours** (in this process, as fast as the frames come): decode -> FaceStream (BlazeFace
  detector, tracker, crop + int8 face classifier, smoothing, lip-motion attribution, fusion, bus)
  -> ``draw_overlay``; the speech worker runs on its own thread on the clip's audio track, and an
  :class:`~dsrter.edge.sinks.mqtt.MqttSink` publishes to a mosquitto the bench starts on 127.0.0.1.
* **peer** (same process, same clip decoded again, so the very same frames: checked by CRC):
  fer's Haar cascade + quantized mini-Xception (:mod:`dsrter.edge.tools.peer_pipeline`) + its drawing.
  The peer has no speech stream and no MQTT.
* **daemon** (a child ``dsrter run`` on the 1-face clip at the clip's real-time pace, looping,
  with the clip's audio as the microphone): start-up time to ``READY=1`` on a ``NOTIFY_SOCKET``
  the bench binds, then CPU and memory of that process at camera pace.

Latency: *capture-to-overlay* is from the moment the frame is decoded to the moment its
overlay is drawn; *capture-to-MQTT* is from the decode of the frame that produced an event to
the broker's PUBACK for that event (face and fused events; the bench's publish policy sends
every stream ~10 times a second so there are enough samples).

The Raspberry Pi figures are an **estimate**, not a measurement: see :func:`pi_estimate`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np

from dsrter.edge.app.wiring import Streams
from dsrter.edge.config import Config, load_config, parse_config
from dsrter.edge.display.overlay import draw_overlay
from dsrter.edge.infer.face_classifier import FaceClassifier
from dsrter.edge.infer.models import make_detector
from dsrter.edge.infer.model_io import TFLiteModel, load_card
from dsrter.edge.infer.speech_classifier import SpeechClassifier
from dsrter.edge.sinks.mqtt import MqttSink
from dsrter.edge.sources.base import Frame
from dsrter.edge.sources.media_file import MediaFileSource
from dsrter.edge.streams.events import EventBus
from dsrter.edge.resources import shipped_root
from dsrter.edge.tools.checkout import checkout_dir, shared_av_samples
from dsrter.edge.tools.local_broker import BrokerError, LocalBroker
from dsrter.edge.tools.peer_pipeline import FerPeer, PeerUnavailable

log = logging.getLogger("dsrter.bench")

SIZE = (640, 480)
ONE_FACE_CLIP = "clip03_face-happy_speech-happy.mp4"
MOSAIC_CLIPS = ("clip00_face-angry_speech-disgust.mp4", "clip03_face-happy_speech-happy.mp4",
                "clip05_face-surprise_speech-fear.mp4", "clip10_face-happy_speech-sad.mp4")

# -- published figures behind the Raspberry Pi estimate ------------------------------------------
# XNNPACK README, "Raspberry Pi" table (benchmarked Feb 2022, end2end-bench, Raspbian, 4 threads):
# RPi 4 (BCM2711, ARM64): FP32 MobileNet v2 1.0X 46 ms, INT8 MobileNet v2 1.0X 17 ms.
# MobileNet v2 1.0 at 224x224 is ~300 M multiply-accumulates.
MOBILENET_V2_MACS = 300e6
PI4_PUBLISHED_MS = {"float32": 46.0, "int8": 17.0}
PI4_PUBLISHED_THREADS = 4
# Raspberry Pi 5 launch material: "2-3x the CPU performance of Raspberry Pi 4".
PI5_SPEEDUP = (2.0, 3.0)
# Assumed single-core speed ratio of this kind of x86 server core to a 1.8 GHz Cortex-A72 for
# the non-neural work (Python, OpenCV, FFmpeg decode, openSMILE). An assumption, see --pi-factor.
DEFAULT_PI4_FACTOR = 5.0


class BenchError(RuntimeError):
    """The bench cannot run as asked (no clip, no models, ...); the message says what to do."""


# ------------------------------------------------------------------------------------------------
# small statistics helpers


def pct(values: Iterable[float], q: float) -> Optional[float]:
    xs = sorted(float(v) for v in values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(values: Iterable[float], digits: int = 3) -> dict[str, Optional[float]]:
    xs = [float(v) for v in values]
    if not xs:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}

    def r(v: Optional[float]) -> Optional[float]:
        return None if v is None else round(v, digits)

    return {"n": len(xs), "mean": r(statistics.fmean(xs)), "p50": r(pct(xs, 50)), "p95": r(pct(xs, 95)),
            "p99": r(pct(xs, 99)), "max": r(max(xs))}


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


# ------------------------------------------------------------------------------------------------
# frames: a clip (or four of them as a 2x2 mosaic), decoded as the loop asks


def sample_face_image() -> Optional[np.ndarray]:
    """A real photograph of a face that ships with matplotlib (a runtime dependency)."""
    import cv2

    try:
        import matplotlib

        p = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    except Exception:
        return None
    img = cv2.imread(str(p)) if p.is_file() else None
    if img is not None and img.shape[:2] == (600, 512):
        img = img[60:400, 90:430]  # the head and shoulders: the face fills about 60 % of the height
    return img


def _speechlike(seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Voiced, syllable-paced harmonic sound with short pauses: passes an energy voice gate."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t) + 15 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum((0.6 / k) * np.sin(k * phase) for k in range(1, 12))
    syll = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 0.5
    phrase = (np.sin(2 * np.pi * 0.25 * t) > -0.8).astype(np.float64)  # a pause every 4 s
    noise = rng.normal(0, 0.01, t.shape)
    return (0.25 * voice * syll * phrase + noise).astype(np.float32)


def make_bench_clip(path: Path, seconds: float = 6.0, fps: int = 30, size: tuple[int, int] = SIZE) -> Path:
    """A 640x480 (or ``size``) H.264 + AAC clip: a photographed face moving slowly over a textured background,
    with a speech-like audio track (used when ../shared/data/av-samples is absent)."""
    import av
    import cv2

    rng = np.random.default_rng(7)
    face = sample_face_image()
    W, H = size
    bg = cv2.GaussianBlur(rng.integers(40, 200, (H, W, 3), dtype=np.uint8), (0, 0), 6)
    if face is None:  # no photograph available: a drawn face (detectors may not find it)
        face = np.full((300, 240, 3), 200, np.uint8)
        cv2.ellipse(face, (120, 150), (100, 135), 0, 0, 360, (150, 170, 210), -1)
        for x in (80, 160):
            cv2.circle(face, (x, 120), 14, (40, 40, 40), -1)
        cv2.ellipse(face, (120, 215), (40, 15), 0, 0, 180, (60, 60, 150), 4)
    fh = int(round(0.625 * H))
    scale = fh / face.shape[0]
    face = cv2.resize(face, (int(face.shape[1] * scale), fh), interpolation=cv2.INTER_AREA)
    fh, fw = face.shape[:2]
    n = int(seconds * fps)
    rate = 48000
    audio = _speechlike(seconds, rate, rng)
    with av.open(str(path), mode="w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.options = {"preset": "veryfast", "crf": "23", "bframes": "0"}
        as_ = out.add_stream("aac", rate=rate, layout="mono")
        for i in range(n):
            img = bg.copy()
            x = int((W - fw) / 2 + 0.19 * W * np.sin(2 * np.pi * i / n))
            y = int((H - fh) / 2 + 0.06 * H * np.sin(4 * np.pi * i / n))
            img[y:y + fh, x:x + fw] = face
            img = np.clip(img.astype(np.int16) + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="bgr24")
            f.pts, f.time_base = i, Fraction(1, fps)
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        block = 1024
        for s in range(0, len(audio), block):
            chunk = np.ascontiguousarray(audio[s:s + block][None, :])
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            af.sample_rate, af.pts, af.time_base = rate, s, Fraction(1, rate)
            for p in as_.encode(af):
                out.mux(p)
        for p in as_.encode(None):
            out.mux(p)
    return path


class FrameFeed:
    """Frames of one clip, or a 2x2 mosaic of four clips (each shrunk to 320x240), at 640x480.

    ``read()`` returns ``(Frame, decode_ms)``; the clips loop. ``audio`` is the first clip's
    audio track (an AudioSource for the speech worker)."""

    def __init__(self, clips: list[Path], mosaic: bool):
        self.clips = clips
        self.mosaic = mosaic
        self.sources = [MediaFileSource(c, realtime=False, loop=True) for c in (clips if mosaic else clips[:1])]
        for s in self.sources:
            s.open()
        self.audio = self.sources[0].audio
        self.index = 0

    def read(self) -> tuple[Frame, float]:
        import cv2

        t0 = time.perf_counter()
        got = [s.read() for s in self.sources]
        frames = [f for f in got if f is not None]
        if len(frames) != len(got):
            raise BenchError(f"cannot decode frames from {', '.join(c.name for c in self.clips)}")
        if self.mosaic:
            W, H = SIZE
            img = np.empty((H, W, 3), np.uint8)
            for k, f in enumerate(frames):
                r, c = divmod(k, 2)
                img[r * H // 2:(r + 1) * H // 2, c * W // 2:(c + 1) * W // 2] = cv2.resize(
                    f.image, (W // 2, H // 2), interpolation=cv2.INTER_AREA)
        else:
            img = frames[0].image
            if (img.shape[1], img.shape[0]) != SIZE:
                img = cv2.resize(img, SIZE, interpolation=cv2.INTER_AREA)
        frame = Frame(img, frames[0].t, self.index)
        self.index += 1
        return frame, (time.perf_counter() - t0) * 1e3

    def close(self) -> None:
        for s in self.sources:
            s.close()


# ------------------------------------------------------------------------------------------------
# models: the configured (shipped) ones, or stand-ins made for the bench when they are missing


@dataclass
class ModelSet:
    detector: Path
    face: Path
    speech: Optional[Path]
    origin: dict[str, str] = field(default_factory=dict)  # role -> "shipped" | "configured" | "stand-in ..."
    verifier: Optional[Path] = None  # face.verify_model (the second look), None when off


def _stand_in_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "dsrter" / "bench-stand-in-models"


STAND_IN = "stand-in: tiny random-weight int8 model made for the bench (tests/model_factory.py); NOT the shipped model"

_BUILD = r"""
import json, sys
from pathlib import Path
tests, out, what = sys.argv[1], Path(sys.argv[2]), sys.argv[3].split(",")
sys.path.insert(0, tests)
from dsrter.edge.infer.speech_features import default_recipe   # openSMILE before TensorFlow
import model_factory as m
out.mkdir(parents=True, exist_ok=True)
if "face" in what:
    m.write_face_model(out, m.build_face_tflite())
if "speech" in what:
    recipe = default_recipe()
    (out / "speech_emotion.tflite").write_bytes(m.build_speech_tflite(recipe))
    (out / "speech_emotion.json").write_text(json.dumps(m.speech_card(recipe), indent=2))
"""


def make_stand_ins(what: list[str]) -> Path:
    """Build (once, cached) the test suite's small int8 face/speech models; needs TensorFlow."""
    out = _stand_in_dir()
    need = [w for w in what if not (out / f"{w}_emotion.tflite").is_file() or not (out / f"{w}_emotion.json").is_file()]
    if not need:
        return out
    repo = checkout_dir()
    tests = repo / "tests" if repo else None
    if tests is None or not (tests / "model_factory.py").is_file():
        raise BenchError("the shipped models are missing, and tests/model_factory.py (in a source checkout installed "
                         "with pip install -e) is not there to make stand-ins")
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise BenchError("the shipped models (models/face_emotion.tflite, models/speech_emotion.tflite) are missing, "
                         "and making stand-ins needs the training extra (TensorFlow): pip install -e '.[train]'")
    log.warning("making stand-in %s model(s) with TensorFlow (once; cached in %s)", "+".join(need), out)
    r = subprocess.run([sys.executable, "-c", _BUILD, str(tests), str(out), ",".join(need)], capture_output=True,
                       text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if r.returncode != 0:
        raise BenchError(f"making stand-in models failed: {r.stderr.strip()[-1500:]}")
    return out


def resolve_models(cfg: Config) -> ModelSet:
    shipped = shipped_root()

    def origin(p: Path) -> str:
        try:
            inside = shipped is not None and p.resolve().is_relative_to((shipped / "models").resolve())
        except (OSError, ValueError):
            inside = False
        return "shipped (models/)" if inside else "configured"

    det = Path(cfg.face.detector_model)
    if not det.is_file():
        raise BenchError(f"{det}: face detector model not found (face.detector_model)")
    face, speech = Path(cfg.face.model), Path(cfg.speech.model) if cfg.speech.enabled else None
    missing = [w for w, p in (("face", face), ("speech", speech)) if p is not None and not p.is_file()]
    out = ModelSet(det, face, speech, {"detector": origin(det)})
    if cfg.face.verify_model is not None:
        out.verifier = Path(cfg.face.verify_model)
        if not out.verifier.is_file():
            raise BenchError(f"{out.verifier}: second-look detector model not found (face.verify_model)")
        out.origin["verifier"] = origin(out.verifier)
    stand = make_stand_ins(missing) if missing else None
    for w in ("face", "speech"):
        p = getattr(out, w)
        if p is None:
            out.origin[w] = "disabled (speech.enabled: false)"
        elif w in missing:
            assert stand is not None
            setattr(out, w, stand / f"{w}_emotion.tflite")
            out.origin[w] = STAND_IN + f" ({p.name} not found)"
        else:
            out.origin[w] = origin(p)
    return out


# ------------------------------------------------------------------------------------------------
# model arithmetic: multiply-accumulates per invoke, counted from the .tflite graph


def count_macs(model_path: Path) -> dict[str, Any]:
    """MACs of one invoke (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED; other ops counted as output
    elements), the arithmetic type that dominates, and the median single-thread invoke time here."""
    model = TFLiteModel(model_path)
    tensors = model.tensors()
    macs, other = 0, 0
    by_type: dict[str, int] = {}
    by_kernel: dict[str, int] = {}  # where the MACs are: conv3x3, conv1x1, depthwise, fully_connected, ...
    for op in model.ops():
        outs, ins = op["outputs"], op["inputs"]
        if len(outs) == 0:
            continue
        n_out = int(np.prod(tensors[outs[0]]["shape"]))
        name = op["op_name"]
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(ins) > 1 and ins[1] >= 0:
            w = tensors[ins[1]]["shape"]
            if name == "CONV_2D":
                m = n_out * int(w[1] * w[2] * w[3])
            elif name == "DEPTHWISE_CONV_2D":
                m = n_out * int(w[1] * w[2])
            else:
                m = n_out * int(w[-1])
            macs += m
            kind = "int8" if tensors[ins[0]]["dtype"] in (np.int8, np.uint8) else "float32"
            by_type[kind] = by_type.get(kind, 0) + m
            op_kind = ("depthwise" if name == "DEPTHWISE_CONV_2D" else "fully_connected" if name == "FULLY_CONNECTED"
                       else f"conv{int(w[1])}x{int(w[2])}")
            by_kernel[op_kind] = by_kernel.get(op_kind, 0) + m
        else:
            other += n_out
    rng = np.random.default_rng(0)
    model.run(*(rng.integers(-20, 20, d["shape"]).astype(d["dtype"]) if np.issubdtype(d["dtype"], np.integer)
                else rng.normal(0, 1, d["shape"]).astype(d["dtype"]) for d in model.inputs), raw=True)
    times = []
    for _ in range(60):
        t = time.perf_counter()
        model.invoke()
        times.append((time.perf_counter() - t) * 1e3)
    kind = max(by_type, key=lambda k: by_type[k]) if by_type else "float32"
    return {"macs": int(macs), "macs_by_kernel": dict(sorted(by_kernel.items(), key=lambda kv: -kv[1])),
            "other_elements": int(other), "arithmetic": kind,
            "invoke_ms_here": round(min(times[10:]), 4), "invoke_ms_here_p50": round(pct(times[10:], 50) or 0.0, 4)}


# ------------------------------------------------------------------------------------------------
# wrappers that time the stages the pipeline lumps together


class TimedClassifier:
    """FaceClassifier with ``crop`` and ``predict`` timed separately (the pipeline calls both)."""

    def __init__(self, clf):
        self.clf = clf
        self.crop_ms = 0.0
        self.predict_ms = 0.0
        self.faces = 0

    def take(self) -> tuple[float, float, int]:
        out = (self.crop_ms, self.predict_ms, self.faces)
        self.crop_ms = self.predict_ms = 0.0
        self.faces = 0
        return out

    def crop(self, frame, box):
        t = time.perf_counter()
        c = self.clf.crop(frame, box)
        self.crop_ms += (time.perf_counter() - t) * 1e3
        return c

    def predict(self, crops):
        t = time.perf_counter()
        p = self.clf.predict(crops)
        self.predict_ms += (time.perf_counter() - t) * 1e3
        self.faces += len(p)
        return p


class TimedSpeech:
    """SpeechClassifier with the voice gate, the features and the model call timed per window."""

    def __init__(self, clf):
        self.clf = clf
        self.sample_rate, self.window_s, self.hop_s = clf.sample_rate, clf.window_s, clf.hop_s
        self.gate_ms: list[float] = []
        self.features_ms: list[float] = []
        self.classify_ms: list[float] = []
        self._feat = 0.0
        original = clf.features

        def features(audio):
            t = time.perf_counter()
            r = original(audio)
            self._feat = (time.perf_counter() - t) * 1e3
            return r

        clf.features = features  # predict() looks it up on the instance

    def is_speech(self, audio) -> bool:
        t = time.perf_counter()
        r = self.clf.is_speech(audio)
        self.gate_ms.append((time.perf_counter() - t) * 1e3)
        return r

    def make_vad(self):
        """The classifier's voice-activity detector, each update timed into ``gate_ms``."""
        vad = self.clf.make_vad()
        update = vad.update

        def timed(audio, end_t):
            t = time.perf_counter()
            r = update(audio, end_t)
            self.gate_ms.append((time.perf_counter() - t) * 1e3)
            return r

        vad.update = timed
        return vad

    def predict(self, audio, start_s=None):
        t = time.perf_counter()
        p = self.clf.predict(audio, start_s)
        total = (time.perf_counter() - t) * 1e3
        self.features_ms.append(self._feat)
        self.classify_ms.append(max(0.0, total - self._feat))
        return p


# ------------------------------------------------------------------------------------------------
# a local broker and MQTT latency probes


class PublishProbe:
    """Capture-to-PUBACK latency of the events an MqttSink publishes.

    Hooks the sink's encoder (event -> record), spool ``put`` (record -> key) and ``ack``
    (key delivered). The event timestamp is the capture time of its frame (the pipeline's
    event clock is set to it), so ack time - timestamp is the capture-to-MQTT latency.

    Only records spooled on the frame loop's own thread count: the sink's timer also re-sends
    the latest state of quiet or held-back streams (heartbeats, rate-limited changes), whose
    age is policy, not pipeline latency; those are counted in ``resent``."""

    def __init__(self, sink):
        self.sink = sink
        self.latencies_ms: list[float] = []
        self.by_kind: dict[str, list[float]] = {}
        self.resent = 0
        self.frame_thread = threading.get_ident()
        self._pending: dict[int, tuple[str, float]] = {}
        self._stash: Optional[tuple[str, float]] = None
        self._lock = threading.Lock()
        enc, spool = sink.encoder, sink.spool
        encode, put, ack = enc.encode, spool.put, spool.ack

        def encode_hook(event, reason=None):
            self._stash = (event.kind, float(event.timestamp))
            return encode(event, reason)

        def put_hook(*a, **kw):
            item = put(*a, **kw)
            stash, self._stash = self._stash, None
            if stash is not None and stash[0] in ("face", "emotion"):
                if threading.get_ident() != self.frame_thread:
                    self.resent += 1
                else:
                    with self._lock:
                        self._pending[item.key] = stash
            return item

        def ack_hook(key):
            now = time.time()
            ack(key)
            with self._lock:
                got = self._pending.pop(key, None)
                if got is not None:
                    ms = (now - got[1]) * 1e3
                    self.latencies_ms.append(ms)
                    self.by_kind.setdefault(got[0], []).append(ms)

        enc.encode, spool.put, spool.ack = encode_hook, put_hook, ack_hook


# ------------------------------------------------------------------------------------------------
# process measurements


def rss_bytes(pid: Optional[int] = None) -> int:
    import psutil

    return psutil.Process(pid).memory_info().rss


def status_bytes(pid: Optional[int], *keys: str) -> dict[str, Optional[int]]:
    """Fields of /proc/PID/status given in kB (VmHWM, RssAnon, RssFile, ...), in bytes; None where absent."""
    found: dict[str, Optional[int]] = dict.fromkeys(keys)
    try:
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in found:
                found[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return found


def peak_rss_bytes(pid: Optional[int] = None) -> Optional[int]:
    """VmHWM: the process's peak resident set since it started (Linux)."""
    return status_bytes(pid, "VmHWM")["VmHWM"]


def has_tensorflow_mapped(pid: Optional[int] = None) -> bool:
    try:
        return "tensorflow" in Path(f"/proc/{pid or 'self'}/maps").read_text()
    except OSError:
        return False


class CpuWindow:
    """Process CPU seconds over a wall-clock window (psutil cpu_times user+system)."""

    def __init__(self, pid: Optional[int] = None):
        import psutil

        self.p = psutil.Process(pid)
        self.c0 = self._cpu()
        self.t0 = time.monotonic()

    def _cpu(self) -> float:
        ct = self.p.cpu_times()
        return ct.user + ct.system

    def result(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        cpu = self._cpu() - self.c0
        return {"cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
                "cpu_percent": round(100.0 * cpu / wall, 1) if wall > 0 else 0.0}


def machine_info() -> dict[str, Any]:
    import psutil

    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("ai-edge-litert", "mediapipe", "opencv-contrib-python", "av", "opensmile", "paho-mqtt", "numpy"):
        with contextlib.suppress(PackageNotFoundError):
            versions[dist] = version(dist)  # metadata only: importing mediapipe may pull TensorFlow in
    return {"cpu": model, "logical_cpus": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(), "os": platform.platform(terse=True),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_avg_start": [round(x, 2) for x in os.getloadavg()], "versions": versions}


# ------------------------------------------------------------------------------------------------
# the runs


@dataclass
class BenchOptions:
    clip: Optional[Path] = None
    faces: tuple[int, ...] = (1, 4)
    frames: int = 300
    warmup: int = 30
    config: Optional[Path] = None
    json_out: Optional[Path] = None
    peer: bool = True
    mqtt: bool = True
    daemon: bool = True
    daemon_seconds: float = 12.0
    pi_factor: float = DEFAULT_PI4_FACTOR


def _bench_cfg(cfg: Config, broker: Optional[LocalBroker], device: str) -> Config:
    """The user's config with the bench's MQTT (local broker, ~10 events/s per stream) and no files."""
    data = cfg.model_dump(mode="json")
    data["device_id"] = device
    m = data["mqtt"]
    m.update({"enabled": broker is not None, "host": "127.0.0.1", "port": broker.port if broker else 1883,
              "username": None, "password_file": None, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0,
              "stats_interval_s": 2.0})
    m["tls"]["enabled"] = False
    m["buffer"]["spool_dir"] = None
    m["publish"].update({"heartbeat_s": 0.1, "max_rate_hz": 10.0})
    data["events_file"]["enabled"] = False
    data["overlay"]["backend"] = "none"
    return parse_config(data, env={})


def run_ours(cfg: Config, models: ModelSet, clips: list[Path], mosaic: bool, opts: BenchOptions,
             broker: Optional[LocalBroker], progress: Callable[[str], None]) -> dict[str, Any]:
    bcfg = _bench_cfg(cfg, broker, f"bench{'4' if mosaic else '1'}")
    bus = EventBus()
    det = make_detector(cfg.face, models.detector, models.verifier)
    clf = TimedClassifier(FaceClassifier(models.face, threads=cfg.face.threads, mirror_average=cfg.face.mirror_average))
    speech = worker = None
    if models.speech is not None:
        speech = TimedSpeech(SpeechClassifier(models.speech, threads=cfg.speech.threads,
                                              vad_threshold=cfg.speech.vad_threshold, vad_probability=cfg.speech.vad_probability,
                                              voice=cfg.speech.voice_branch))
    capture_epoch = [time.time()]
    feed = FrameFeed(clips, mosaic)
    streams = Streams(bcfg, bus, det, clf, event_clock=lambda: capture_epoch[0])
    pipe = streams.face
    sink = probe = None
    if broker is not None:
        sink = MqttSink(bcfg, bus, model_versions={"face": models.face.name})
        probe = PublishProbe(sink)
    if speech is not None:
        worker = streams.add_speech(feed.audio, speech, event_clock=time.time)
        worker.start()
    rows: dict[str, list[float]] = {k: [] for k in (
        "decode", "detect", "crop", "face_classify", "face_classify_per_face", "track_smooth_attribute", "fuse",
        "publish", "overlay_draw", "capture_to_overlay", "faces")}
    crcs: list[int] = []
    rss: list[int] = []
    cpu = None
    t_start = 0.0
    crc_s = 0.0
    wall = 0.0
    windows0 = 0
    invokes0 = verify0 = classified = 0
    try:
        total = opts.warmup + opts.frames
        for i in range(total):
            if i == opts.warmup:
                if speech is not None:
                    for lst in (speech.gate_ms, speech.features_ms, speech.classify_ms):
                        lst.clear()
                    windows0 = worker.windows if worker is not None else 0
                if sink is not None:
                    # attached only now, so each stream's first message comes from a measured frame
                    sink.start()
                    if not sink.wait_connected(10):
                        raise BenchError("the bench's MQTT sink could not connect to its local broker")
                cpu = CpuWindow()
                invokes0, verify0 = det.invokes, det.verify_invokes
                t_start = time.perf_counter()
            frame, decode_ms = feed.read()
            t_cap = time.perf_counter()
            capture_epoch[0] = time.time()
            clf.take()
            res = pipe.process(frame)
            t_proc = time.perf_counter()
            img = draw_overlay(frame.image, res.faces, res.speech, res.fused, res.stats.fps)
            t_ov = time.perf_counter()
            del img
            if i < opts.warmup:
                continue
            k = i - opts.warmup
            st = res.stats.stage_ms
            crop_ms, pred_ms, n = clf.take()
            classified += n
            rows["decode"].append(decode_ms)
            rows["detect"].append(st.get("detect", 0.0))
            rows["crop"].append(crop_ms)
            rows["face_classify"].append(pred_ms)
            if n:
                rows["face_classify_per_face"].append(pred_ms / n)
            rows["track_smooth_attribute"].append(st.get("track", 0.0) + st.get("smooth", 0.0)
                                                  + st.get("attribute", 0.0))
            rows["fuse"].append(st.get("fuse", 0.0))
            rows["publish"].append(max(0.0, (t_proc - t_cap) * 1e3 - st.get("total", 0.0)))
            rows["overlay_draw"].append((t_ov - t_proc) * 1e3)
            rows["capture_to_overlay"].append((t_ov - t_cap) * 1e3)
            rows["faces"].append(len(res.faces))
            if k % 10 == 0:
                t = time.perf_counter()
                crcs.append(zlib.crc32(frame.image.tobytes()))
                rss.append(rss_bytes())
                crc_s += time.perf_counter() - t
            if k and k % 100 == 0:
                progress(f"  ours {'4' if mosaic else '1'}-face: {k}/{opts.frames} frames")
        wall = time.perf_counter() - t_start - crc_s
        cpu_res = cpu.result() if cpu else {}
    finally:
        if worker is not None:
            worker.stop()
        windows = (worker.windows - windows0) if worker is not None and opts.frames else 0
        if sink is not None:
            sink.flush(5)
            sink.stop(timeout=5)
        feed.close()
        det.close()
    n = len(rows["capture_to_overlay"])
    out: dict[str, Any] = {
        "frames": n, "wall_s": round(wall, 3), "fps": round(n / wall, 2) if wall > 0 else None,
        "faces_per_frame": round(statistics.fmean(rows["faces"]), 2) if n else 0.0,
        # what the face stream ran per measured frame (the Raspberry Pi estimate scales the networks by these)
        "detect_tiles": [det.columns, det.rows],
        "detector_invokes_per_frame": round((det.invokes - invokes0) / n, 4) if n else None,
        "verify_invokes_per_frame": round((det.verify_invokes - verify0) / n, 4) if n else None,
        "faces_classified_per_frame": round(classified / n, 4) if n else None,
        "classifier_runs_per_face": 2 if clf.clf.hflip_average else 1,
        "stages_ms": {k: summary(v) for k, v in rows.items() if k not in ("faces", "capture_to_overlay")},
        "capture_to_overlay_ms": summary(rows["capture_to_overlay"]),
        "cpu": {**cpu_res, "cpu_ms_per_frame": round(1e3 * cpu_res.get("cpu_s", 0) / n, 3) if n else None},
        "rss_mb": {"steady": round(statistics.median(rss[len(rss) // 2:]) / 2**20, 1) if rss else None,
                   "max_sampled": round(max(rss) / 2**20, 1) if rss else None},
        "frame_crc": crcs,
    }
    if speech is not None:
        out["speech"] = {"windows": windows, "classified": len(speech.features_ms),
                         "gate_ms": summary(speech.gate_ms), "features_ms": summary(speech.features_ms),
                         "classify_ms": summary(speech.classify_ms)}
    if probe is not None and sink is not None:
        out["capture_to_mqtt_ms"] = summary(probe.latencies_ms)
        out["capture_to_mqtt_by_kind"] = {k: summary(v) for k, v in probe.by_kind.items()}
        out["mqtt"] = {"delivered": sink.delivered, "dropped": sink.dropped, "pending_at_stop": sink.pending,
                       "timer_resends_not_timed": probe.resent}
    return out


def run_peer(clips: list[Path], mosaic: bool, opts: BenchOptions, progress: Callable[[str], None]) -> dict[str, Any]:
    peer = FerPeer()
    feed = FrameFeed(clips, mosaic)
    rows: dict[str, list[float]] = {k: [] for k in ("decode", "detect", "crop", "face_classify",
                                                    "face_classify_per_face", "overlay_draw", "capture_to_overlay",
                                                    "faces")}
    crcs: list[int] = []
    cpu = None
    t_start = crc_s = 0.0
    try:
        for i in range(opts.warmup + opts.frames):
            if i == opts.warmup:
                cpu = CpuWindow()
                t_start = time.perf_counter()
            frame, decode_ms = feed.read()
            t_cap = time.perf_counter()
            res = peer.process(frame.image, draw=True)
            t_ov = time.perf_counter()
            if i < opts.warmup:
                continue
            k = i - opts.warmup
            st = res.stage_ms
            n = len(res.faces)
            rows["decode"].append(decode_ms)
            rows["detect"].append(st["detect"])
            rows["crop"].append(st["crop"])
            rows["face_classify"].append(st["classify"])
            if n:
                rows["face_classify_per_face"].append(st["classify"] / n)
            rows["overlay_draw"].append(st["draw"])
            rows["capture_to_overlay"].append((t_ov - t_cap) * 1e3)
            rows["faces"].append(n)
            if k % 10 == 0:
                t = time.perf_counter()
                crcs.append(zlib.crc32(frame.image.tobytes()))
                crc_s += time.perf_counter() - t
            if k and k % 100 == 0:
                progress(f"  peer {'4' if mosaic else '1'}-face: {k}/{opts.frames} frames")
        wall = time.perf_counter() - t_start - crc_s
        cpu_res = cpu.result() if cpu else {}
    finally:
        feed.close()
    n = len(rows["capture_to_overlay"])
    return {
        "pipeline": f"fer {peer.version or '?'}: Haar cascade (scaleFactor 1.1, minNeighbors 5, minSize 50) + "
                    "emotion_model_quantized.tflite (64x64 grey), one face per invoke",
        "frames": n, "wall_s": round(wall, 3), "fps": round(n / wall, 2) if wall > 0 else None,
        "faces_per_frame": round(statistics.fmean(rows["faces"]), 2) if n else 0.0,
        "stages_ms": {k: summary(v) for k, v in rows.items() if k not in ("faces", "capture_to_overlay")},
        "capture_to_overlay_ms": summary(rows["capture_to_overlay"]),
        "cpu": {**cpu_res, "cpu_ms_per_frame": round(1e3 * cpu_res.get("cpu_s", 0) / n, 3) if n else None},
        "frame_crc": crcs,
    }


def _write_run_config(cfg, models: ModelSet, clip: Path, broker: Optional[LocalBroker], path: Path) -> str:
    import yaml

    device = "benchdaemon"
    data = _bench_cfg(cfg, broker, device).model_dump(mode="json")
    data["camera"].update({"enabled": True, "device": str(clip), "realtime": True, "loop": True})
    data["face"]["model"] = str(models.face)
    data["face"]["detector_model"] = str(models.detector)
    if models.speech is not None:
        data["speech"]["model"] = str(models.speech)
    data["logging"]["level"] = "WARNING"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return device


def run_daemon_probe(cfg, models: ModelSet, clip: Path, broker: Optional[LocalBroker], seconds: float,
                     workdir: Path) -> dict[str, Any]:
    """``dsrter run`` on the clip at real-time pace: start-up to READY=1, then CPU and memory."""
    import psutil

    conf = workdir / "daemon.yaml"
    device = _write_run_config(cfg, models, clip, broker, conf)
    sock_path = workdir / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.2)
    stats: list[dict] = []
    offline = threading.Event()
    sub = None
    if broker is not None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        sub = mqtt.Client(CallbackAPIVersion.VERSION2)
        base = f"{cfg.mqtt.prefix}/{device}"

        def on_msg(c, u, msg):
            if msg.topic.endswith("/stats"):
                with contextlib.suppress(ValueError):
                    stats.append(json.loads(msg.payload))
            elif msg.topic.endswith("/availability") and msg.payload == b"offline":
                offline.set()

        sub.on_message = on_msg
        sub.on_connect = lambda c, u, f, rc, p: c.subscribe([(f"{base}/stats", 1), (f"{base}/availability", 1)])
        sub.connect("127.0.0.1", broker.port)
        sub.loop_start()
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "PYTHONUNBUFFERED": "1"}
    env.pop("WATCHDOG_USEC", None)
    cmd = [sys.executable, "-m", "dsrter.edge.cli.main", "run", "-c", str(conf)]
    err = (workdir / "daemon.stderr").open("wb")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
    out: dict[str, Any] = {"command": "dsrter run -c <bench config: the clip as camera, realtime, looping; "
                                      "its audio as microphone; overlay none>"}
    try:
        ready_at = None
        deadline = t0 + 120
        while ready_at is None and time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(socket.timeout):
                msg = sock.recv(4096).decode(errors="replace")
                if "READY=1" in msg.split("\n"):
                    ready_at = time.monotonic()
        if ready_at is None:
            raise BenchError(f"dsrter run did not report READY (exit {proc.poll()}); see {workdir / 'daemon.stderr'}")
        out["startup_to_ready_s"] = round(ready_at - t0, 3)
        p = psutil.Process(proc.pid)
        samples: list[tuple[float, float, int]] = []  # (t, cpu_s, rss)
        end = ready_at + seconds
        while time.monotonic() < end and proc.poll() is None:
            ct = p.cpu_times()
            samples.append((time.monotonic(), ct.user + ct.system, p.memory_info().rss))
            time.sleep(0.25)
        # peak, and RSS = anonymous memory (heap, buffers) + mapped library pages (the second depends on the page cache)
        parts = status_bytes(proc.pid, "VmHWM", "RssAnon", "RssFile")
        peak = parts["VmHWM"]
        out["tensorflow_in_process"] = has_tensorflow_mapped(proc.pid)
        out["threads"] = p.num_threads()
        t_term = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
        out["sigterm_exit_code"] = rc
        out["stop_s"] = round(time.monotonic() - t_term, 3)
        if sub is not None:
            out["offline_published"] = offline.wait(5)
        warm = [s for s in samples if s[0] >= ready_at + min(3.0, seconds / 3)]
        if len(warm) >= 2:
            (ta, ca, _), (tb, cb, _) = warm[0], warm[-1]
            out["cpu_percent"] = round(100 * (cb - ca) / (tb - ta), 1)
            out["cpu_window_s"] = round(tb - ta, 2)
        rss = [s[2] for s in samples]
        if rss:
            out["rss_mb"] = {"steady": round(statistics.median(rss[len(rss) // 2:]) / 2**20, 1),
                             "peak": round(max([peak or 0, *rss]) / 2**20, 1),
                             **{k: round(v / 2**20, 1) for k, v in (("anon_at_end", parts["RssAnon"]),
                                                                    ("file_at_end", parts["RssFile"])) if v is not None}}
        # the last stats while running: the final one at shutdown says running false, fps 0
        last = next((s for s in reversed(stats) if "fps" in s and s.get("running", True)), None)
        if last is not None:
            out["daemon_stats"] = {k: last.get(k) for k in ("fps", "frames", "dropped_frames", "faces")}
            out["daemon_stats"]["latency_ms"] = last.get("latency_ms")
            out["daemon_stats"]["speech"] = last.get("speech")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
        sock.close()
        if sub is not None:
            sub.disconnect()
            sub.loop_stop()
    return out


# ------------------------------------------------------------------------------------------------
# Raspberry Pi estimate


def _cpu_norm(run: dict[str, Any]) -> float:
    """Wall-clock stage times include waiting for a CPU when the machine is busy: the factor that
    scales them down to the process CPU time per frame (which also covers the speech and MQTT threads)."""
    st = run["stages_ms"]
    wall = sum(float(v.get("mean") or 0.0) for k, v in st.items() if k not in ("face_classify_per_face", "face_classify")) \
        + float(st.get("face_classify", {}).get("mean") or 0.0)
    cpu = float((run.get("cpu") or {}).get("cpu_ms_per_frame") or wall)
    return min(1.0, cpu / wall) if wall > 0 else 1.0


def pi_estimate(ours: dict[str, Any], macs: dict[str, dict], factor: float, detect_every: int = 1,
                speech_run: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per-frame time on one Raspberry Pi 4 / 5 core: an ESTIMATE, derived as follows.

    * Neural compute: MACs per invoke (counted from the .tflite graphs) divided by a per-core rate
      derived from XNNPACK's published Raspberry Pi 4 (ARM64) figures: MobileNet v2 1.0 (~300 M
      MACs) in 17 ms (int8) / 46 ms (fp32) on 4 threads, taken as 4x one core (perfect scaling,
      so the per-core rate is a lower bound and the time an upper bound): 4.4 GMAC/s int8,
      1.6 GMAC/s fp32 per core.
    * Everything else in the stage (pre/post-processing, Python, OpenCV, decode, drawing): the
      time measured here minus this machine's bare invoke time for the model, times ``factor``
      (an assumed single-core speed ratio of this machine to a 1.8 GHz Cortex-A72).
    * The networks run as often as the face stream ran them in the measured run: detector invokes
      per frame (``face.detect_every_n_frames``; one pass, whole frame or one tile, per detection
      frame) and faces classified per frame (``face.classify_every_n_frames``) x runs per face (2
      with ``face.mirror_average``), all counted, not assumed; the measured stage times already
      average over the frames without a detection or a classification.
    * Raspberry Pi 5: the Pi 4 figure divided by 2..3 (Raspberry Pi's published "2-3x the CPU
      performance of Raspberry Pi 4").
    """
    rate = {k: MOBILENET_V2_MACS / (ms * PI4_PUBLISHED_THREADS) for k, ms in PI4_PUBLISHED_MS.items()}  # MAC/ms

    def nn_ms(role: str) -> float:
        m = macs.get(role)
        return m["macs"] / rate[m["arithmetic"]] if m else 0.0

    def here_invoke(role: str) -> float:
        m = macs.get(role)
        return m["invoke_ms_here"] if m else 0.0

    st = ours["stages_ms"]
    faces = ours.get("faces_per_frame", 1.0) or 0.0
    norm = _cpu_norm(ours)

    def mean(k: str) -> float:
        return float(st.get(k, {}).get("mean") or 0.0) * norm

    det_calls = ours.get("detector_invokes_per_frame")  # counted; else one per detection frame
    det_calls = float(det_calls) if det_calls is not None else 1.0 / max(1, int(detect_every))
    runs_per_face = int(ours.get("classifier_runs_per_face") or macs.get("face", {}).get("per_face_factor", 1))
    classified = ours.get("faces_classified_per_frame")
    classified = float(classified) if classified is not None else faces
    stages: dict[str, float] = {}
    stages["decode"] = mean("decode") * factor
    verify_calls = float(ours.get("verify_invokes_per_frame") or 0.0)  # second looks (face.verify_model)
    stages["detect"] = (max(0.0, mean("detect") - det_calls * here_invoke("detector") - verify_calls * here_invoke("verifier"))
                        * factor + det_calls * nn_ms("detector") + verify_calls * nn_ms("verifier"))
    stages["crop"] = mean("crop") * factor
    per_face_here = float(st.get("face_classify_per_face", {}).get("mean") or 0.0) * norm
    stages["face_classify"] = classified * runs_per_face * nn_ms("face") \
        + classified * max(0.0, per_face_here - runs_per_face * here_invoke("face")) * factor
    for k in ("track_smooth_attribute", "fuse", "publish", "overlay_draw"):
        stages[k] = mean(k) * factor
    frame_ms = sum(stages.values())
    speech_run = speech_run or ours  # the run whose speech windows were timed (the one that classified most)
    sp = speech_run.get("speech") or {}
    speech_window = None
    if sp.get("features_ms", {}).get("mean") is not None:
        sn = _cpu_norm(speech_run)
        feat = sp["features_ms"]["mean"] * sn * factor
        # classify = the emotion network (MACs) + everything else, the voice branch included, x factor
        cls = max(0.0, (sp["classify_ms"]["mean"] or 0.0) * sn - here_invoke("speech")) * factor + nn_ms("speech")
        speech_window = {"features_ms": round(feat, 1), "classify_ms": round(cls, 1)}
    lo, hi = PI5_SPEEDUP
    return {
        "estimate": True,
        "how": ("neural compute = MACs counted from the .tflite graphs / per-core rate from XNNPACK's published "
                "Raspberry Pi 4 ARM64 MobileNet v2 figures (int8 17 ms, fp32 46 ms on 4 threads, ~300 M MACs, "
                "taken as 4 cores' work); other work = stage time measured here (scaled to the process CPU time "
                "per frame, so waiting for a busy CPU is not counted) minus this machine's best bare invoke "
                f"time, x {factor:g} (assumed single-core speed ratio of this machine to a 1.8 GHz Cortex-A72; "
                "--pi-factor); Pi 5 = Pi 4 / 2..3 (Raspberry Pi's published 2-3x CPU performance)"),
        "pi4_rate_gmac_per_core": {k: round(v / 1e6, 2) for k, v in rate.items()},
        "here_wall_to_cpu_scale": round(norm, 3),
        "pi4_factor": factor,
        "detect_every_n_frames": max(1, int(detect_every)),
        "detector_invokes_per_frame": round(det_calls, 4),
        "verify_invokes_per_frame": round(verify_calls, 4),
        "faces_classified_per_frame": round(classified, 4),
        "classifier_runs_per_face": runs_per_face,
        "pi4": {"stages_ms": {k: round(v, 1) for k, v in stages.items()}, "frame_ms": round(frame_ms, 1),
                "fps_one_core": round(1000 / frame_ms, 1) if frame_ms else None, "speech_window": speech_window},
        "pi5": {"frame_ms": [round(frame_ms / hi, 1), round(frame_ms / lo, 1)],
                "fps_one_core": [round(lo * 1000 / frame_ms, 1), round(hi * 1000 / frame_ms, 1)] if frame_ms else None},
        "detect_every_n_frames_for_30fps_pi4": _detect_every_for(
            {**stages, "detect": stages["detect"] / det_calls if det_calls > 0 else 0.0}, 30.0),
    }


def _detect_every_for(stages: dict[str, float], fps: float) -> Optional[int]:
    """Smallest detect_every_n_frames that brings the Pi 4 estimate to ``fps`` (None if none up to 10)."""
    det = stages.get("detect", 0.0)
    rest = sum(stages.values()) - det
    for n in range(1, 11):
        if rest + det / n <= 1000.0 / fps:
            return n
    return None


# ------------------------------------------------------------------------------------------------
# the whole bench


def pick_clips(opts: BenchOptions, workdir: Path) -> tuple[dict[int, tuple[list[Path], bool]], str]:
    """faces -> (clips, mosaic), and a description of where the frames come from."""
    if opts.clip is not None:
        if not Path(opts.clip).is_file():
            raise BenchError(f"{opts.clip}: no such clip")
        c = Path(opts.clip)
        return {1: ([c], False), 4: ([c] * 4, True)}, f"{c.name} (4 faces: the clip tiled 2x2)"
    av = shared_av_samples()
    if av is not None and all((av / n).is_file() for n in (ONE_FACE_CLIP, *MOSAIC_CLIPS)):
        return ({1: ([av / ONE_FACE_CLIP], False), 4: ([av / n for n in MOSAIC_CLIPS], True)},
                f"av-samples {ONE_FACE_CLIP} (4 faces: 2x2 mosaic of {', '.join(n[:6] for n in MOSAIC_CLIPS)})")
    gen = make_bench_clip(workdir / "bench-clip.mp4")
    return {1: ([gen], False), 4: ([gen] * 4, True)}, \
        "generated clip (a photographed face moving over a textured background + speech-like audio; " \
        "4 faces: tiled 2x2), as ../shared/data/av-samples is absent"


def run_bench(opts: BenchOptions, progress: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    if opts.config is not None and Path(opts.config).is_file():
        cfg = load_config(opts.config)
        cfg_name = str(opts.config)
    elif opts.config is not None and Path(opts.config) != Path("config.yaml"):
        raise BenchError(f"{opts.config}: config file not found")
    else:
        cfg = parse_config({}, base_dir=shipped_root() or Path.cwd())  # the shipped models/
        cfg_name = "built-in defaults (no config.yaml here)"
    report: dict[str, Any] = {
        "tool": "dsrter bench", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": cfg_name,
        "machine": machine_info(),
        "machine_dependent": ["every *_ms, fps, cpu, rss, startup and latency figure (this machine, its load, "
                              "its CPU); counts of MACs, faces and frames are not"],
        "settings": {"frame_size": list(SIZE), "frames": opts.frames, "warmup": opts.warmup,
                     "detect_every_n_frames": cfg.face.detect_every_n_frames, "face_threads": cfg.face.threads,
                     "detect_tiles": list(cfg.face.detect_tiles) if cfg.face.detect_tiles else "the detector's own (runs.*.detect_tiles)",
                     "classify_every_n_frames": cfg.face.classify_every_n_frames,
                     "mirror_average": cfg.face.mirror_average,
                     "publish_policy_for_bench": "heartbeat 0.1 s, max 10 msgs/s per stream (QoS %d)" % cfg.mqtt.qos},
    }
    with tempfile.TemporaryDirectory(prefix="dsrter-bench-") as tmp:
        work = Path(tmp)
        progress("resolving models ...")
        models = resolve_models(cfg)
        report["models"] = {k: {"path": str(getattr(models, k)) if getattr(models, k) else None,
                                "origin": models.origin.get(k)} for k in ("detector", "verifier", "face", "speech")}
        macs: dict[str, dict] = {}
        for role in ("detector", "verifier", "face", "speech"):
            p = getattr(models, role)
            if p is not None:
                macs[role] = count_macs(p)
                report["models"][role].update(macs[role])
        # runs per face: the crop and its mirror (2) when face.mirror_average (null: the card) says so
        mirror = cfg.face.mirror_average
        if mirror is None:
            with contextlib.suppress(Exception):
                mirror = bool(load_card(models.face).get("inference", {}).get("hflip_average"))
        if "face" in macs:
            macs["face"]["per_face_factor"] = 2 if mirror else 1
            report["models"]["face"]["per_face_factor"] = 2 if mirror else 1
        clips, source = pick_clips(opts, work)
        report["frames_from"] = source
        broker = None
        if opts.mqtt:
            broker = LocalBroker(work)
            try:
                broker.start()
            except BrokerError as exc:
                raise BenchError(f"{exc}; or use --no-mqtt") from None
            report["broker"] = "mosquitto on 127.0.0.1 (started by the bench)"
        peer_info = None
        if opts.peer:
            try:
                peer = FerPeer()
                macs["peer"] = count_macs(peer.model_path)
                peer_info = {"model": str(peer.model_path.name), "version": peer.version, **macs["peer"]}
            except PeerUnavailable as exc:
                report["peer_skipped"] = str(exc)
                opts.peer = False
        report["peer"] = peer_info
        runs: dict[str, Any] = {}
        try:
            for n in opts.faces:
                cl, mosaic = clips[n]
                progress(f"ours, {n} face(s): {opts.warmup} warm-up + {opts.frames} frames ...")
                runs[f"ours_{n}"] = run_ours(cfg, models, cl, mosaic, opts, broker, progress)
                if opts.peer:
                    progress(f"peer, {n} face(s): same frames ...")
                    runs[f"peer_{n}"] = run_peer(cl, mosaic, opts, progress)
                    runs[f"peer_{n}"]["same_frames_as_ours"] = \
                        runs[f"peer_{n}"]["frame_crc"] == runs[f"ours_{n}"]["frame_crc"]
            if opts.daemon:
                progress(f"dsrter run on the 1-face clip (real-time pace) for {opts.daemon_seconds:g} s ...")
                runs["daemon"] = run_daemon_probe(cfg, models, clips[1][0][0], broker, opts.daemon_seconds, work)
        finally:
            if broker is not None:
                broker.stop()
        for r in runs.values():
            r.pop("frame_crc", None)
        report["runs"] = runs
        report["process"] = {"bench_peak_rss_mb": round((peak_rss_bytes() or 0) / 2**20, 1),
                             "bench_tensorflow_in_process": has_tensorflow_mapped()}
        if "ours_1" in runs:
            timed = [k for k in ("ours_1", "ours_4") if k in runs]
            speech_from = max(timed, key=lambda k: (runs[k].get("speech") or {}).get("classified", 0))
            report["raspberry_pi_estimate"] = pi_estimate(runs["ours_1"], macs, opts.pi_factor,
                                                             cfg.face.detect_every_n_frames, runs[speech_from])
            if report["raspberry_pi_estimate"]["pi4"].get("speech_window"):
                report["raspberry_pi_estimate"]["pi4"]["speech_window"]["timed_in"] = speech_from
        report["ratios_ours_over_peer"] = ratios(runs)
        report["targets"] = targets(runs)
        report["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


ROW_KEYS = ("decode", "detect", "crop", "face_classify_per_face", "overlay_draw")


def ratios(runs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in (1, 4):
        o, p = runs.get(f"ours_{n}"), runs.get(f"peer_{n}")
        if not o or not p:
            continue
        r = {k: ratio(o["stages_ms"][k]["mean"], p["stages_ms"][k]["mean"]) for k in ROW_KEYS}
        r["fps"] = ratio(o["fps"], p["fps"])
        for q in ("p50", "p95", "p99"):
            r[f"capture_to_overlay_{q}"] = ratio(o["capture_to_overlay_ms"][q], p["capture_to_overlay_ms"][q])
        r["cpu_ms_per_frame"] = ratio(o["cpu"]["cpu_ms_per_frame"], p["cpu"]["cpu_ms_per_frame"])
        r["faces_per_frame"] = ratio(o["faces_per_frame"], p["faces_per_frame"])
        out[f"{n}_face" if n == 1 else f"{n}_faces"] = r
    return out


def targets(runs: dict[str, Any]) -> dict[str, Any]:
    o = runs.get("ours_1")
    if not o:
        return {}
    fps = o["fps"] or 0.0
    p95 = o["capture_to_overlay_ms"]["p95"]
    return {"fps_ge_30": {"value": fps, "pass": fps >= 30.0},
            "p95_capture_to_overlay_lt_50ms": {"value": p95, "pass": p95 is not None and p95 < 50.0},
            "speech_active": bool((o.get("speech") or {}).get("classified"))}


# ------------------------------------------------------------------------------------------------
# the printed table


def _f(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _trio(s: Optional[dict]) -> str:
    if not s or s.get("p50") is None:
        return "-"
    return f"{s['p50']:.1f}/{s['p95']:.1f}/{s['p99']:.1f}"


def format_report(rep: dict[str, Any]) -> str:
    runs = rep.get("runs", {})
    m = rep["machine"]
    lines = [f"DSRTER bench - {rep['settings']['frame_size'][0]}x{rep['settings']['frame_size'][1]}, "
             f"{rep['settings']['frames']} frames after {rep['settings']['warmup']} warm-up; frames: {rep['frames_from']}",
             f"machine*: {m['cpu']}, {m['logical_cpus']} logical CPUs, Python {m['python']}; load average at start "
             f"{m['load_avg_start'][0]:.2f}, at end {m.get('load_avg_end', ['?'])[0]}"
             + ("  (BUSY: other work shares these CPUs; figures are disturbed)"
                if max(m["load_avg_start"][0], m.get("load_avg_end", [0])[0]) > 0.5 * (m["logical_cpus"] or 1) else "")]
    for role in ("detector", "verifier", "face", "speech"):
        info = rep["models"].get(role) or {}
        if info.get("path"):
            lines.append(f"model {role}: {Path(info['path']).name} - {info['origin']}; "
                         f"{info.get('macs', 0) / 1e6:.2f} M MACs ({info.get('arithmetic')})")
    if rep.get("peer"):
        pi = rep["peer"]
        lines.append(f"peer: fer {pi.get('version') or '?'} pipeline - Haar cascade + {pi['model']} "
                     f"({pi['macs'] / 1e6:.2f} M MACs, {pi['arithmetic']}), no speech, no MQTT")
    elif rep.get("peer_skipped"):
        lines.append(f"peer: skipped ({rep['peer_skipped']})")
    lines.append("* = machine-dependent (all times, rates, CPU, memory, start-up)")
    lines.append("")
    cols = []
    for n in (1, 4):
        if f"ours_{n}" in runs:
            cols.append((f"ours {n}f", runs[f"ours_{n}"]))
            if f"peer_{n}" in runs:
                cols.append((f"peer {n}f", runs[f"peer_{n}"]))
                cols.append(("ratio", None))
    width = 19

    def row(label: str, get: Callable[[dict], Any], ratio_of: Optional[Callable[[dict], Optional[float]]] = None,
            digits: int = 2) -> str:
        cells = []
        prev_ours = prev_peer = None
        for name, r in cols:
            if r is None:
                v: Optional[float] = ratio(ratio_of(prev_ours), ratio_of(prev_peer)) if ratio_of and prev_ours and prev_peer else None
                cells.append(_f(v, 2) if v is not None else "-")
                continue
            if name.startswith("ours"):
                prev_ours, prev_peer = r, None
            else:
                prev_peer = r
            cells.append(_f(get(r), digits))
        return f"{label:<34}" + "".join(f"{c:>{width}}" for c in cells)

    def stage(k: str) -> Callable[[dict], Any]:
        return lambda r: (r["stages_ms"].get(k) or {}).get("mean")

    def sp(k: str) -> Callable[[dict], Any]:
        return lambda r: ((r.get("speech") or {}).get(k) or {}).get("mean")

    lines.append(f"{'stage (mean ms)':<34}" + "".join(f"{c[0]:>{width}}" for c in cols))
    for label, k in (("decode*", "decode"), ("detect*", "detect"), ("crop (all faces)*", "crop"),
                     ("face classify, per face*", "face_classify_per_face"),
                     ("track+smooth+attribute*", "track_smooth_attribute")):
        lines.append(row(label, stage(k), stage(k)))
    lines.append(row("speech features, per window*", sp("features_ms")))
    lines.append(row("speech classify, per window*", sp("classify_ms")))
    for label, k in (("fuse*", "fuse"), ("overlay draw*", "overlay_draw"), ("publish (bus+MQTT enqueue)*", "publish")):
        lines.append(row(label, stage(k), stage(k)))
    lines.append(row("end-to-end fps*", lambda r: r["fps"], lambda r: r["fps"], 1))
    lines.append(row("capture->overlay p50/p95/p99 ms*", lambda r: _trio(r["capture_to_overlay_ms"]),
                     lambda r: r["capture_to_overlay_ms"]["p95"]))
    lines.append(row("capture->MQTT p50/p95/p99 ms*", lambda r: _trio(r.get("capture_to_mqtt_ms"))))
    lines.append(row("CPU % of one core*", lambda r: r["cpu"].get("cpu_percent"), None, 0))
    lines.append(row("CPU ms per frame*", lambda r: r["cpu"].get("cpu_ms_per_frame"),
                     lambda r: r["cpu"].get("cpu_ms_per_frame")))
    lines.append(row("faces found per frame", lambda r: r["faces_per_frame"], lambda r: r["faces_per_frame"]))
    lines.append(row("speech windows (classified)",
                     lambda r: f"{r['speech']['windows']} ({r['speech']['classified']})" if r.get("speech") else "-"))
    lines.append("(ratio = ours / peer on the same frames; < 1 is faster/fewer for times, > 1 is better for fps; "
                 "the peer has no speech stream, tracker, fusion or MQTT)")
    d = runs.get("daemon")
    if d:
        lines.append("")
        rss = d.get("rss_mb") or {}
        ds = d.get("daemon_stats") or {}
        lines.append(f"dsrter run (1-face clip at its real-time 30 fps, speech on, MQTT to local mosquitto)*: "
                     f"start-up to READY {_f(d.get('startup_to_ready_s'), 2)} s; CPU {_f(d.get('cpu_percent'))} % of one "
                     f"core; RSS steady {_f(rss.get('steady'))} MB, peak {_f(rss.get('peak'))} MB (at the end: anonymous "
                     f"{_f(rss.get('anon_at_end'))}, library files {_f(rss.get('file_at_end'))} MB); daemon fps "
                     f"{_f(ds.get('fps'))}, dropped {ds.get('dropped_frames', '-')}; SIGTERM -> exit "
                     f"{d.get('sigterm_exit_code')} in {_f(d.get('stop_s'), 2)} s, offline published "
                     f"{d.get('offline_published', '-')}"
                     + ("; TensorFlow is loaded in that process (mediapipe imports it when installed: a runtime-only "
                        "install has no TensorFlow and less memory)" if d.get("tensorflow_in_process") else ""))
    t = rep.get("targets") or {}
    if t:
        lines.append(f"target 640x480, 1 face, speech {'active' if t['speech_active'] else 'NOT active'}: "
                     f">=30 fps: {_f(t['fps_ge_30']['value'])} -> {'PASS' if t['fps_ge_30']['pass'] else 'FAIL'}; "
                     f"p95 capture->overlay < 50 ms: {_f(t['p95_capture_to_overlay_lt_50ms']['value'])} -> "
                     f"{'PASS' if t['p95_capture_to_overlay_lt_50ms']['pass'] else 'FAIL'}")
    pe = rep.get("raspberry_pi_estimate")
    if pe:
        p4 = pe["pi4"]
        lines.append("")
        lines.append(f"Raspberry Pi ESTIMATE (not measured), 1 face, one core: Pi 4 ~{p4['frame_ms']} ms/frame "
                     f"(~{p4['fps_one_core']} fps; detect every {pe['detect_every_n_frames_for_30fps_pi4'] or '>10'} "
                     f"frames for 30 fps), Pi 5 ~{pe['pi5']['frame_ms'][0]}-{pe['pi5']['frame_ms'][1]} ms/frame"
                     + (f"; speech window on Pi 4 ~{p4['speech_window']['features_ms']} ms features + "
                        f"{p4['speech_window']['classify_ms']} ms classify (its own core)" if p4.get("speech_window") else ""))
        lines.append(f"  per frame as run: {pe['detector_invokes_per_frame']} detector invokes, "
                     f"{pe.get('verify_invokes_per_frame', 0)} second looks, "
                     f"{pe['faces_classified_per_frame']} faces classified x {pe['classifier_runs_per_face']} run(s); "
                     "Pi 4 stages ms: " + ", ".join(f"{k} {v}" for k, v in p4["stages_ms"].items()))
        lines.append(f"  how: {pe['how']}")
    return "\n".join(lines)
