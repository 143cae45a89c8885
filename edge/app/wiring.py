"""Where the two streams meet, built in one place for the daemon, ``dsrter analyze`` and the bench.

The face stream reads the speech stream's newest event to fuse it with the face it attributes
speech to; the speech stream asks the face stream, for every window, whose lips move. The face
stream is built first (it owns the attribution); the speech stream joins it when there is audio
(at start, or later when a media file opens after a retry)::

    streams = Streams(cfg, bus, models.detector, models.face, event_clock=time.time)
    worker = streams.add_speech(audio, models.speech, event_clock=time.time)
    worker.start()                    # or worker.step() per hop on a clip's own timeline
    result = streams.face.process(frame)

``event_clock`` sets the events' timestamps: wall time for the daemon, the frame's own time
(None) for a clip, the capture time for the bench.
"""

from __future__ import annotations

from typing import Callable, Optional

from dsrter.edge.config import Config
from dsrter.edge.infer.models import Models
from dsrter.edge.sources.base import AudioSource
from dsrter.edge.streams.events import EventBus, FusedEvent, SpeechEvent
from dsrter.edge.streams.face_stream import Detector, FaceModel, FaceStream
from dsrter.edge.streams.fusion import Attributor, LipMotion
from dsrter.edge.streams.smoothing import LabelSmoother
from dsrter.edge.streams.speech_stream import SpeechModel, SpeechWorker

Clock = Callable[[], float]


class Streams:
    """The face stream and (once added) the speech stream of one run, wired to each other."""

    def __init__(self, cfg: Config, bus: EventBus, detector: Optional[Detector], classifier: Optional[FaceModel],
                 *, event_clock: Optional[Clock] = None) -> None:
        """``detector`` None: no face stream (frames are still counted; speech is fused alone)."""
        self.cfg = cfg
        self.bus = bus
        self.speech: Optional[SpeechWorker] = None
        self.face = FaceStream.from_config(cfg, bus, detector, classifier, attributor=Attributor(LipMotion()),
                                           speech_state=self.speech_latest, event_clock=event_clock)
        self._fused_alone: Optional[SpeechEvent] = None

    @classmethod
    def from_models(cls, cfg: Config, bus: EventBus, models: Models, *,
                    event_clock: Optional[Clock] = None) -> "Streams":
        return cls(cfg, bus, models.detector, models.face, event_clock=event_clock)

    def speech_latest(self) -> Optional[SpeechEvent]:
        """The speech stream's newest event (None before the first window or without speech)."""
        worker = self.speech
        return worker.latest if worker is not None else None

    def add_speech(self, audio: AudioSource, model: SpeechModel, *,
                   event_clock: Optional[Clock] = None) -> SpeechWorker:
        """The speech stream on ``audio`` (``speech.smoothing``, ``speech.hop_s``), attributed by the face
        stream. Not started: ``start()`` runs it on its own thread, ``step()`` analyses one window."""
        self.speech = SpeechWorker(audio, model, self.bus, LabelSmoother.from_config(self.cfg.speech.smoothing),
                                   hop_s=self.cfg.speech.hop_s, attribution=self.face.attribution,
                                   event_clock=event_clock)
        return self.speech

    def fuse_speech_alone(self, timestamp: float) -> Optional[FusedEvent]:
        """Without frames (camera missing or disabled): fuse the newest speech event on its own, once
        per event, and publish it; None when there is nothing new."""
        ev = self.speech_latest()
        if ev is None or ev is self._fused_alone:
            return None
        self._fused_alone = ev
        fused = self.face.fuser.fuse(ev.window[1], None, None, ev, None, "none")
        fused.timestamp = timestamp
        self.bus.publish(fused)
        return fused
