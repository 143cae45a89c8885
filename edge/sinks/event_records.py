"""One record per published event, shared by every sink (MQTT and the events file).

:class:`EventRecorder` takes the bus's face, speech and fused events, decides with the publish
policy (``mqtt.publish``: first / on change / heartbeat, rate limited per stream) which of them
become records, gives each record its id (``<run>-<seq>``, one gap-free sequence per daemon) and
hands the same :class:`Record` to every listener. So an id names one event wherever it goes.

A timer thread sends held-back changes and heartbeats of quiet streams, and tells listeners
which face tracks left (no event for ``face_timeout_s``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

from dsrter.edge.config import PublishPolicy
from dsrter.edge.sinks.envelope import EventEncoder, dumps
from dsrter.edge.streams.events import EventBus, FaceEvent, FusedEvent, SpeechEvent

log = logging.getLogger(__name__)

TICK_S = 0.1
Key = tuple  # ("face", track_id) | ("speech",) | ("emotion",)
_RANK = {"first": 3, "change": 2, "heartbeat": 1}


@dataclass(frozen=True)
class Record:
    """One published event: its stream key, the bus event, the envelope dict and its JSON."""

    key: tuple
    event: Any
    reason: str
    record: dict
    payload: str

    @property
    def kind(self) -> str:
        return self.key[0]


class RecordListener(Protocol):
    def on_record(self, rec: Record) -> None: ...

    def on_faces_gone(self, track_ids: list[int]) -> None: ...


def stream_key(event: Any) -> Optional[tuple]:
    """("face", track_id) | ("speech",) | ("emotion",); None for anything else."""
    if isinstance(event, FaceEvent):
        return ("face", int(event.track_id))
    if isinstance(event, SpeechEvent):
        return ("speech",)
    if isinstance(event, FusedEvent):
        return ("emotion",)
    return None


class _Stream:
    __slots__ = ("last_pub", "latest", "last_seen", "deferred", "deferred_reason")

    def __init__(self) -> None:
        self.last_pub: Optional[float] = None
        self.latest: Any = None
        self.last_seen = 0.0
        self.deferred: Any = None
        self.deferred_reason: Optional[str] = None


class EventPolicy:
    """Which events to publish: first / on change / heartbeat, rate limited per stream.

    Not thread-safe on its own; the sink calls it under its lock. ``clock`` is injectable.
    """

    def __init__(self, on_change: bool = True, heartbeat_s: float = 10.0, max_rate_hz: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.on_change = on_change
        self.heartbeat_s = heartbeat_s
        self.min_interval = 1.0 / max_rate_hz
        self.clock = clock
        self._streams: dict[Key, _Stream] = {}

    def offer(self, key: Key, event: Any) -> Optional[tuple[Any, str]]:
        """(event, reason) to publish now, or None (ignored, or held back by the rate limit)."""
        now = self.clock()
        st = self._streams.get(key)
        reason: Optional[str]
        if st is None:
            st = self._streams[key] = _Stream()
            reason = "first"
        elif self.on_change and getattr(event, "changed", False):
            reason = "change"
        elif self.heartbeat_s > 0 and st.last_pub is not None and now - st.last_pub >= self.heartbeat_s:
            reason = "heartbeat"
        elif st.deferred is not None:
            reason = st.deferred_reason
        else:
            reason = None
        st.latest = event
        st.last_seen = now
        if reason is None:
            return None
        if st.last_pub is None or now - st.last_pub >= self.min_interval:
            st.last_pub = now
            st.deferred = st.deferred_reason = None
            return event, reason
        if st.deferred_reason is not None and _RANK[st.deferred_reason] > _RANK[reason]:
            reason = st.deferred_reason
        st.deferred, st.deferred_reason = event, reason
        return None

    def due(self) -> list[tuple[Key, Any, str]]:
        """Held-back events whose window opened, and timer heartbeats of quiet streams (none offered
        for at least one rate-limit interval)."""
        now = self.clock()
        out = []
        for key, st in self._streams.items():
            if st.last_pub is None:
                continue
            if st.deferred is not None:
                if now - st.last_pub >= self.min_interval:
                    out.append((key, st.deferred, st.deferred_reason or "change"))
                    st.last_pub = now
                    st.deferred = st.deferred_reason = None
            elif (self.heartbeat_s > 0 and st.latest is not None and now - st.last_pub >= self.heartbeat_s
                  and now - st.last_seen >= self.min_interval):
                # only quiet streams: a live one sends its heartbeat with its next, fresher event
                out.append((key, st.latest, "heartbeat"))
                st.last_pub = now
        return out

    def flush(self) -> list[tuple[Key, Any, str]]:
        """Every held-back event, ignoring the rate limit (at shutdown)."""
        out = []
        for key, st in self._streams.items():
            if st.deferred is not None:
                out.append((key, st.deferred, st.deferred_reason or "change"))
                st.deferred = st.deferred_reason = None
        return out

    def expire(self, kind: str, timeout_s: float) -> list[Key]:
        """Forget streams of ``kind`` not seen for ``timeout_s``; returns their keys."""
        now = self.clock()
        gone = [k for k, st in self._streams.items() if k[0] == kind and now - st.last_seen > timeout_s]
        for k in gone:
            del self._streams[k]
        return gone


class EventRecorder:
    """Publish policy + ids for all sinks; ``start(bus)``/``stop()``. Thread-safe."""

    def __init__(self, publish: PublishPolicy, device: str, model_versions: Optional[dict[str, str]] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.publish = publish
        self.encoder = EventEncoder(device, model_versions)
        self.policy = EventPolicy(publish.on_change, publish.heartbeat_s, publish.max_rate_hz, clock=clock)
        self._lock = threading.RLock()
        self._listeners: list[RecordListener] = []
        self._unsubscribe: Optional[Callable[[], None]] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def run_id(self) -> str:
        return self.encoder.run_id

    def listen(self, listener: RecordListener) -> Callable[[], None]:
        """Add a listener; returns the call that removes it again."""
        with self._lock:
            self._listeners.append(listener)

        def unlisten() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unlisten

    def start(self, bus: EventBus) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._unsubscribe = bus.subscribe(self.offer)
        self._thread = threading.Thread(target=self._run, name="dsrter-records", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop taking events and hand out every held-back change (ignoring the rate limit)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._thread is not None:
            self._stop.set()
            self._thread.join(2.0)
            self._thread = None
        with self._lock:
            for key, ev, reason in self.policy.flush():
                self._emit(key, ev, reason)

    def offer(self, event: Any) -> None:
        """Bus side: one event in, zero or one record out to every listener."""
        key = stream_key(event)
        if key is None:
            return
        with self._lock:
            decision = self.policy.offer(key, event)
            if decision is not None:
                self._emit(key, decision[0], decision[1])

    def tick(self) -> None:
        """Held-back changes, heartbeats of quiet streams, and face tracks that left."""
        with self._lock:
            gone = [k[1] for k in self.policy.expire("face", self.publish.face_timeout_s)]
            if gone:
                for listener in list(self._listeners):
                    self._call(listener.on_faces_gone, gone)
            for key, ev, reason in self.policy.due():
                self._emit(key, ev, reason)

    def _emit(self, key: tuple, event: Any, reason: str) -> None:
        rec = self.encoder.encode(event, reason)
        out = Record(key, event, reason, rec, dumps(rec))
        for listener in list(self._listeners):
            self._call(listener.on_record, out)

    @staticmethod
    def _call(fn: Callable[[Any], None], arg: Any) -> None:
        try:
            fn(arg)
        except Exception:  # one sink must not stop the records reaching the others
            log.exception("record listener %r failed", fn)

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            self.tick()
