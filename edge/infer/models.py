"""The models one run uses, loaded once at start: face detector, face and speech classifiers."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Optional

import numpy as np

from dsrter.edge.config import Config, FaceConfig
from dsrter.edge.infer.face_classifier import FaceClassifier
from dsrter.edge.infer.face_detector import FaceDetector
from dsrter.edge.infer.face_verifier import CropVerifier
from dsrter.edge.infer.model_io import ModelError, load_card, sha256_file
from dsrter.edge.infer.tiled_detection import TiledDetector
from dsrter.edge.native_log import native_stderr_to_debug

if TYPE_CHECKING:  # pragma: no cover
    from dsrter.edge.infer.speech_classifier import SpeechClassifier

log = logging.getLogger(__name__)


@dataclass
class Models:
    """Everything loaded from models/ at start; None where the stream is disabled."""

    detector: Optional[TiledDetector] = None
    face: Optional[FaceClassifier] = None
    speech: Optional[SpeechClassifier] = None
    versions: dict[str, str] = field(default_factory=dict)  # role -> card version or file hash prefix

    def close(self) -> None:
        if self.detector is not None:
            with native_stderr_to_debug():  # LiteRT logs its tear-down
                self.detector.close()


def _version(path: Path) -> str:
    try:
        v = load_card(path).get("version")
    except ModelError:
        v = None
    return str(v) if v else sha256_file(path)[:12]


def make_detector(face: FaceConfig, detector_model: Optional[Path] = None, verify_model: Optional[Path] = None,
                  mode: Literal["video", "image"] = "video") -> TiledDetector:
    """The face detector as ``face`` configures it: tiles (the detector's own unless set) and, with
    ``verify_model``, a second look at detections under ``min_detection_confidence`` (the paths
    default to the config's)."""
    verify_model = verify_model or face.verify_model
    verifier = None
    threshold = face.min_detection_confidence
    if verify_model is not None and face.verify_per_pass > 0 and face.candidate_confidence < threshold:
        verifier = CropVerifier(FaceDetector(verify_model, max_faces=face.max_faces, mode="image"),
                                max_per_pass=face.verify_per_pass)
        threshold = face.candidate_confidence
    detector = FaceDetector(detector_model or face.detector_model, threshold, face.max_faces, mode=mode)
    return TiledDetector(detector, *(face.detect_tiles or detector.spec.default_tiles), verifier=verifier,
                         accept=face.min_detection_confidence)


def load_models(cfg: Config, detector_mode: Literal["video", "image"] = "video") -> Models:
    """Load the detector and the face and speech classifiers the config enables; raises ModelError.
    Native libraries' loading chatter goes to the DEBUG log (native_log)."""
    with native_stderr_to_debug():
        return _load_models(cfg, detector_mode)


def _load_models(cfg: Config, detector_mode: Literal["video", "image"]) -> Models:
    m = Models()
    t0 = time.monotonic()
    wanted = [("face.model", cfg.face.model), ("face.detector_model", cfg.face.detector_model)] if cfg.face.enabled else []
    wanted += [("face.verify_model", cfg.face.verify_model)] if cfg.face.enabled and cfg.face.verify_model else []
    wanted += [("speech.model", cfg.speech.model)] if cfg.speech.enabled else []
    for key, path in wanted:
        if not Path(path).is_file():
            raise ModelError(f"{path}: model file not found (config key {key}; disable the stream with "
                             f"{key.split('.')[0]}.enabled: false to run without it)")
    if cfg.face.enabled:
        m.face = FaceClassifier(cfg.face.model, threads=cfg.face.threads, mirror_average=cfg.face.mirror_average)
        m.detector = make_detector(cfg.face, mode=detector_mode)
        m.versions["face"] = _version(cfg.face.model)
        m.versions["face_detector"] = sha256_file(cfg.face.detector_model)[:12]
    if cfg.speech.enabled:
        # openSMILE (a native library) is loaded only when the speech stream is on
        from dsrter.edge.infer.speech_classifier import SpeechClassifier

        try:
            m.speech = SpeechClassifier(cfg.speech.model, threads=cfg.speech.threads,
                                        vad_threshold=cfg.speech.vad_threshold, vad_probability=cfg.speech.vad_probability,
                                        voice=cfg.speech.voice_branch)
        except ModelError:
            m.close()
            raise
        m.versions["speech"] = _version(cfg.speech.model)
    _warm_up(m)
    log.info("models loaded and warmed up in %.1f s: %s", time.monotonic() - t0,
             ", ".join(f"{k} {v}" for k, v in m.versions.items()) or "none (both streams disabled)")
    return m


def _warm_up(m: Models) -> None:
    """One inference each, so the first real frame and speech window pay no one-off set-up cost
    (MediaPipe graph, LiteRT allocation, openSMILE configuration: ~1 s on first use)."""
    if m.detector is not None and m.face is not None:
        m.detector.detector.detect(np.zeros((240, 320, 3), np.uint8), 0.0)  # the bare model: passes start at the first frame
        if m.detector.verifier is not None:
            m.detector.verifier.detector.detect(np.zeros((128, 128, 3), np.uint8), 0.0)
        m.face.predict(np.zeros((1, m.face.size, m.face.size), np.uint8))
    if m.speech is not None:
        n = int(round(m.speech.window_s * m.speech.sample_rate))
        noise = np.random.default_rng(0).normal(0.0, 1e-3, n).astype(np.float32)
        m.speech.predict(noise)
        # the voice-activity model the card names is opened per stream later: open and run it once now,
        # so a missing or damaged one is a load error (exit 3) rather than a failure when a stream starts
        m.speech.make_vad().update(noise, m.speech.window_s)
