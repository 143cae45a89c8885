"""MQTT sink: events, retained state, stats and Home Assistant discovery over paho-mqtt 2.x.

Topics, all under ``<mqtt.prefix>/<device_id>/`` (``<base>``):

==================  ========  =====  ====================================================
topic               retained  QoS    payload
==================  ========  =====  ====================================================
availability        yes       1      ``online`` on every connect; ``offline`` at stop and as
                                     the last will (broker publishes it if the process dies)
face                no        cfg    a face event (envelope + FaceEvent.to_dict())
speech              no        cfg    a speech event (label null = no speech)
emotion             no        cfg    a fused event
face/state          yes       cfg    all faces now: count, the largest face's label/scores,
                                     faces[] (a face leaves after publish.face_timeout_s)
speech/state        yes       cfg    the last published speech event
emotion/state       yes       cfg    the last published fused event
stats               yes       cfg    periodic process/pipeline stats + delivery counters
==================  ========  =====  ====================================================

There are no per-track retained topics: tracks come and go, and every retained topic left
behind would have to be cleared; ``face/state`` lists the live tracks instead.

Policy (``mqtt.publish``): an event goes out when it is the first for its stream (a new face
track, the first speech/fused result), when the smoothed label changed (``on_change``), or when
``heartbeat_s`` passed since that stream's last message (also on a timer when the stream is
quiet). Each stream (each face track, speech, emotion) and each state topic is limited to
``max_rate_hz``; a change held back by the limit is sent when the window opens (the newest
event of that stream, still marked ``reason: change``), so changes are delayed, never lost.
The policy and the ids live in :class:`EventRecorder` (``event_records``), which the daemon shares
with the events file, so both get the same records.

Retained states are published at every connect: at start the idle ones (no face, no speech, no
fused result) replace whatever an earlier run left; a clean stop publishes the idle states again
and a final ``stats`` (``running: false``) before ``offline``.

Delivery: events go through :class:`EventSpool` (bounded, oldest dropped first and counted,
optionally on disk) and a small window of in-flight QoS 1 publishes; a record leaves the spool
only when the broker acknowledged it. After a reconnect paho first re-sends what was in flight,
and only then does the sink send newer records, so the order holds across outages. Consumers
de-duplicate on ``id`` (at-least-once). State and stats are not spooled: after a reconnect the
current state is published again.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from typing import Any, Callable, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from dsrter.edge.config import Config
from dsrter.edge.sinks.credentials import CredentialError, PasswordSource, mqtt_password
from dsrter.edge.sinks.event_records import EventPolicy, EventRecorder, Key, Record  # noqa: F401 (EventPolicy re-exported)
from dsrter.edge.sinks.envelope import dumps
from dsrter.edge.sinks.spool import EventSpool
from dsrter.edge.streams.events import EventBus, FaceEvent
from dsrter.edge.sinks.ha_discovery import availability_topic, base_topic, discovery_messages, status_topic
from dsrter.edge.sinks.stats import ProcessStats

log = logging.getLogger(__name__)



class MqttSinkError(RuntimeError):
    """A configuration problem found at start (TLS files, password file); names the key."""


def build_ssl_context(cfg: Config) -> Optional[ssl.SSLContext]:
    """The client TLS context from ``mqtt.tls`` (None when TLS is off); raises MqttSinkError."""
    tls = cfg.mqtt.tls
    if not tls.enabled:
        return None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file) if tls.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise MqttSinkError(f"mqtt.tls.ca_file: cannot load {tls.ca_file}: {exc}") from None
    if tls.cert_file:
        try:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise MqttSinkError(f"mqtt.tls.cert_file/key_file: cannot load {tls.cert_file}: {exc}") from None
    elif tls.key_file:
        raise MqttSinkError("mqtt.tls.key_file is set but mqtt.tls.cert_file is not")
    if tls.insecure:
        ctx.check_hostname = False
    return ctx


def _send_without_delay(client, userdata, sock) -> None:
    """TCP_NODELAY on the broker socket: without it Nagle holds a PUBLISH back until the broker's
    delayed ACK of the previous one (~40 ms on Linux), which would dominate capture-to-MQTT latency."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError) as exc:  # not a TCP socket (or one that refuses the option)
        log.debug("MQTT: TCP_NODELAY not set: %s", exc)


class MqttSink:
    """Publishes bus events to MQTT; see the module docstring for topics and guarantees."""

    def __init__(self, cfg: Config, bus: EventBus, stats: Callable[[], dict] | None = None,
                 model_versions: dict[str, str] | None = None, recorder: Optional[EventRecorder] = None) -> None:
        self.cfg = cfg
        self.m = cfg.mqtt
        self.bus = bus
        self.base = base_topic(cfg)
        self.availability_topic = availability_topic(cfg)
        # records (policy + ids) shared with the other sinks; without one given, the sink runs its own
        self._own_recorder = recorder is None
        self.recorder = recorder or EventRecorder(self.m.publish, cfg.device_id, model_versions)
        self.encoder = self.recorder.encoder
        self.spool = EventSpool(self.m.buffer.max_events, self.m.buffer.spool_dir)
        self._stats_fn = stats if stats is not None else ProcessStats().snapshot
        self._window = max(1, min(16, self.m.buffer.max_events // 2))
        self._min_interval = 1.0 / self.m.publish.max_rate_hz

        self._lock = threading.RLock()  # policy, face table, states, mid map
        self._wake = threading.Condition()
        self._connected_evt = threading.Event()
        self._client: Optional[mqtt.Client] = None
        self._thread: Optional[threading.Thread] = None
        self._unsubscribe: Optional[Callable[[], None]] = None
        self._unlisten: Callable[[], None] = lambda: None
        self._password: Optional[PasswordSource] = None
        self._ssl_ctx: Optional[ssl.SSLContext] = None

        self._faces: dict[int, dict[str, Any]] = {}
        self._states: dict[str, str] = {}  # retained state topic -> payload
        self._dirty: set[str] = set()
        self._last_sent: dict[str, float] = {}
        self._mids: dict[int, Optional[int]] = {}  # paho mid -> spool key (None: not spooled)
        self._early: dict[int, float] = {}  # acks that arrived before their mid was registered

        self._connected = False
        self._resync = False
        self._resync_since = 0.0
        self._discovery_due = False
        self._final_stats_due = False
        self._probe_due = False
        self._failing = False
        self._next_stats = 0.0
        self._started = False
        self._stopping = False
        self._closing = False
        self._stopped = False
        self.connects = 0
        self.connect_failures = 0
        self.refusals = 0
        self.last_error: Optional[str] = None

    # -- counters ---------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def delivered(self) -> int:
        return self.spool.delivered

    @property
    def dropped(self) -> int:
        return self.spool.dropped

    @property
    def pending(self) -> int:
        return self.spool.pending

    def wait_connected(self, timeout: float) -> bool:
        return self._connected_evt.wait(timeout)

    def flush(self, timeout: float) -> bool:
        """Wait until every event was acknowledged (or ``timeout``); True when nothing is pending."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.spool.pending == 0:
                return True
            self._notify()
            time.sleep(0.02)
        return self.spool.pending == 0

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (retrying with backoff) and start publishing; never blocks."""
        if self._started:
            return
        if not self.m.enabled:
            log.info("MQTT disabled (mqtt.enabled: false)")
            return
        try:
            self._password = mqtt_password(self.m)
        except CredentialError as exc:
            raise MqttSinkError(f"mqtt.password_file / $CREDENTIALS_DIRECTORY/{self.m.credential}: {exc}") from None
        self._ssl_ctx = build_ssl_context(self.cfg)
        client_id = self.m.client_id or f"dsrter-{self.cfg.device_id}"
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311)
        c.will_set(self.availability_topic, "offline", qos=1, retain=True)
        if self.m.username:
            c.username_pw_set(self.m.username, self._password.secret.reveal() if self._password.secret else None)
        elif self._password.secret:
            log.warning("MQTT: a password is configured (%s) but mqtt.username is not; connecting anonymously",
                        self._password.origin)
        if self._ssl_ctx is not None:
            c.tls_set_context(self._ssl_ctx)
            c.tls_insecure_set(self.m.tls.insecure)
        c.reconnect_delay_set(self.m.reconnect_min_s, self.m.reconnect_max_s)
        c.max_inflight_messages_set(0)  # the sink bounds in-flight records itself
        c.max_queued_messages_set(0)
        c.connect_timeout = 5.0
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_socket_open = _send_without_delay
        if self.m.discovery.enabled:
            c.message_callback_add(status_topic(self.cfg), self._on_ha_status)
        self._client = c
        self._started = True
        self._set_idle_states(time.time())
        self._unlisten = self.recorder.listen(self)
        self._unsubscribe = self.bus.subscribe(self._on_event)
        if self._own_recorder:
            self.recorder.start(self.bus)
        self._thread = threading.Thread(target=self._run, name="dsrter-mqtt", daemon=True)
        self._thread.start()
        log.info("MQTT: connecting to %s:%d%s as %s (user %s, %s); events buffered meanwhile%s",
                 self.m.host, self.m.port, " with TLS" if self._ssl_ctx else "", client_id,
                 repr(self.m.username) if self.m.username else "none", self._password.origin,
                 f", {self.spool.restored} restored from the spool" if self.spool.restored else "")
        c.connect_async(self.m.host, self.m.port, keepalive=self.m.keepalive_s)
        c.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        """Flush pending events (while connected), publish "offline", disconnect; within ``timeout``."""
        if not self._started or self._stopped:
            self._stopped = True
            self.spool.close()
            return
        deadline = time.monotonic() + timeout
        reserve = min(1.0, timeout / 4)
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        if self._own_recorder:
            self.recorder.stop()  # held-back changes go out first
        self._unlisten()
        with self._lock:
            self._stopping = True
            # nothing is seen any more: the retained states must not outlive the daemon
            self._faces.clear()
            self._set_idle_states(time.time())
            self._final_stats_due = True
        self._notify()
        while time.monotonic() < deadline - reserve and self._connected:
            with self._lock:
                states_left = bool(self._dirty) or self._final_stats_due
            if self.spool.pending == 0 and not states_left:
                break
            self._notify()
            time.sleep(0.02)
        self._closing = True
        self._notify()
        if self._thread is not None:
            self._thread.join(max(0.1, min(1.0, deadline - time.monotonic())))
        c = self._client
        assert c is not None
        if self._connected:
            info = self._publish(self.availability_topic, "offline", 1, True)
            if info is not None:
                try:
                    info.wait_for_publish(max(0.1, deadline - time.monotonic()))
                except (RuntimeError, ValueError):
                    pass
        c.disconnect()
        c.loop_stop()
        self._connected = False
        self._connected_evt.clear()
        left = self.spool.pending
        self.spool.close()
        self._stopped = True
        if left:
            where = f"kept in {self.m.buffer.spool_dir} for the next start" if self.m.buffer.spool_dir else \
                "lost (set mqtt.buffer.spool_dir to keep them)"
            log.warning("MQTT: stopped with %d undelivered event(s), %s", left, where)
        log.info("MQTT: stopped (delivered %d, dropped %d)", self.delivered, self.dropped)

    # -- bus side (pipeline thread) -----------------------------------------------------------------
    def _on_event(self, event: Any) -> None:
        """Every face event refreshes its entry in the face state (published with the next record)."""
        if isinstance(event, FaceEvent) and not self._stopping:
            with self._lock:
                self._faces[int(event.track_id)] = self._face_entry(event)

    def on_record(self, rec: Record) -> None:
        """A record from the recorder: spool it and update its state topic."""
        kind = rec.kind
        with self._lock:
            self.spool.put(f"{self.base}/{kind}", rec.payload, qos=self.m.qos)
            if self._stopping:
                pass  # the idle states stay
            elif kind == "face":
                self._faces[int(rec.event.track_id)] = self._face_entry(rec.event)
                self._set_face_state(rec.event.timestamp)
            else:
                self._set_state(f"{self.base}/{kind}/state", rec.payload)
        self._notify()

    def on_faces_gone(self, track_ids: list[int]) -> None:
        with self._lock:
            for tid in track_ids:
                self._faces.pop(int(tid), None)
            if not self._stopping:
                self._set_face_state(time.time())
        self._notify()

    def _set_idle_states(self, epoch: float) -> None:
        """Nobody in view, nobody speaking, no fused result: at start (replacing what an earlier run
        left retained) and at stop. State records, not events: they carry no id (caller holds the lock)."""
        self._set_face_state(epoch)
        head = self.encoder.header(epoch)
        speech = {**head, "kind": "speech", "speaking": False, "label": None, "confidence": 0.0, "scores": None,
                  "window": None, "track_id": None, "attribution": "none"}
        emotion = {**head, "kind": "emotion", "label": None, "confidence": 0.0, "scores": None,
                   "sources": {"face": 0.0, "speech": 0.0}, "track_id": None, "attribution": "none"}
        self._set_state(f"{self.base}/speech/state", dumps(speech))
        self._set_state(f"{self.base}/emotion/state", dumps(emotion))

    @staticmethod
    def _face_entry(event: FaceEvent) -> dict[str, Any]:
        d = event.to_dict()
        d.pop("kind", None)
        d["epoch"] = round(float(event.timestamp), 3)
        return d

    def _set_face_state(self, epoch: float) -> None:
        faces = sorted(self._faces.values(), key=lambda f: f["box"]["w"] * f["box"]["h"], reverse=True)
        top = faces[0] if faces else None
        state = self.encoder.header(epoch)
        state.update({
            "kind": "face_state", "count": len(faces),
            "label": top["label"] if top else None,
            "confidence": top["confidence"] if top else 0.0,
            "track_id": top["track_id"] if top else None,
            "scores": top["scores"] if top else None,
            "faces": faces,
        })
        self._set_state(f"{self.base}/face/state", dumps(state))

    def _set_state(self, topic: str, payload: str) -> None:
        self._states[topic] = payload
        self._dirty.add(topic)

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    # -- paho callbacks (network thread) -----------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refusals += 1
            self.last_error = f"refused: {reason_code}"
            hint = ""
            if reason_code.value in (4, 5, 134, 135):
                hint = (f"; check mqtt.username ({self.m.username!r}) and the password "
                        f"({self._password.origin if self._password else 'not read'})")
            log.error("MQTT: broker %s:%d refused the connection: %s%s; retrying with backoff (up to %.0f s)",
                      self.m.host, self.m.port, reason_code, hint, self.m.reconnect_max_s)
            return
        self.connects += 1
        self._failing = False
        self.last_error = None
        _disable_nagle(client)
        if self.m.discovery.enabled:
            client.subscribe(status_topic(self.cfg), qos=1)
        self._publish(self.availability_topic, "online", 1, True)
        with self._lock:
            self._resync = True
            self._resync_since = time.monotonic()
            self._connected = True
        self._connected_evt.set()
        log.info("MQTT: connected to %s:%d%s (connection %d; %d event(s) pending)", self.m.host, self.m.port,
                 " (TLS)" if self._ssl_ctx else "", self.connects, self.spool.pending)
        self._notify()

    def _on_connect_fail(self, client, userdata) -> None:
        self.connect_failures += 1
        if not self._failing:
            self._failing = True
            self._probe_due = True
            log.warning("MQTT: cannot connect to %s:%d; retrying with backoff (%.1f..%.0f s), events are buffered",
                        self.m.host, self.m.port, self.m.reconnect_min_s, self.m.reconnect_max_s)
            self._notify()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self._connected
        self._connected = False
        self._connected_evt.clear()
        if was and not self._closing:
            self._failing = True
            self.last_error = f"disconnected: {reason_code}"
            log.warning("MQTT: lost the connection to %s:%d (%s); reconnecting with backoff, events are buffered",
                        self.m.host, self.m.port, reason_code)
        self._notify()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            if mid in self._mids:
                key = self._mids.pop(mid)
                if key is not None:
                    self.spool.ack(key)
            else:
                self._early[mid] = time.monotonic()
        self._notify()

    def _on_ha_status(self, client, userdata, msg) -> None:
        if msg.payload.strip().lower() == b"online":
            log.info("MQTT: Home Assistant came online; re-sending discovery")
            with self._lock:
                self._discovery_due = True
            self._notify()

    # -- sender thread ------------------------------------------------------------------------------
    def _publish(self, topic: str, payload: str, qos: int, retain: bool, key: Optional[int] = None):
        """Publish through paho and remember the mid so its acknowledgement is matched."""
        c = self._client
        assert c is not None
        try:
            info = c.publish(topic, payload, qos=qos, retain=retain)
        except (ValueError, RuntimeError) as exc:
            log.error("MQTT: cannot publish to %s: %s", topic, exc)
            if key is not None:
                self.spool.ack(key)  # unpublishable: do not block the queue behind it
            return None
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            if key is not None:
                self.spool.requeue(key)
            return None
        if qos == 0:
            # at most once: paho keeps no copy, there is no acknowledgement to wait for
            if key is not None:
                if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    self.spool.ack(key)
                else:
                    self.spool.requeue(key)
                    return None
            return info
        with self._lock:
            if self._early.pop(info.mid, None) is not None:
                if key is not None:
                    self.spool.ack(key)
            else:
                self._mids[info.mid] = key
        return info

    def _run(self) -> None:
        while not self._closing:
            with self._wake:
                self._wake.wait(0.1)
            if self._closing:
                break
            try:
                self._tick()
            except Exception:  # keep delivering whatever happens in one tick
                log.exception("MQTT: sender error")
                time.sleep(0.5)

    def _tick(self) -> None:
        now = time.monotonic()
        self.spool.maybe_sync()
        if self._early:
            with self._lock:  # QoS 0 acknowledgements nobody waits for
                for mid in [m for m, t in self._early.items() if now - t > 5.0]:
                    del self._early[mid]
        if self._probe_due:
            self._probe_due = False
            self._probe()
        if not self._connected:
            return
        with self._lock:
            if self._resync:
                # paho re-sends what was in flight before the outage first; newer records wait
                if self._mids and now - self._resync_since < 10.0:
                    return
                self._resync = False
                self._discovery_due = self.m.discovery.enabled
                self._dirty.update(self._states)
                self._next_stats = now
            discovery = self._discovery_due
            self._discovery_due = False
        if discovery:
            for topic, payload in discovery_messages(self.cfg):
                self._publish(topic, dumps(payload), self.m.qos, True)
        self._publish_states(now)
        self._send_spooled()
        if self._final_stats_due:
            self._final_stats_due = False
            self._publish_stats(final=True)
        elif now >= self._next_stats and not self._stopping:
            self._next_stats = now + self.m.stats_interval_s
            self._publish_stats()

    def _publish_states(self, now: float) -> None:
        with self._lock:
            ready = [t for t in self._dirty if now - self._last_sent.get(t, -1e9) >= self._min_interval]
            out = []
            for t in ready:
                self._dirty.discard(t)
                self._last_sent[t] = now
                out.append((t, self._states[t]))
        for topic, payload in out:
            self._publish(topic, payload, self.m.qos, True)

    def _send_spooled(self) -> None:
        while self._connected and self.spool.inflight < self._window:
            item = self.spool.take()
            if item is None:
                return
            if self._publish(item.topic, item.payload, item.qos, item.retain, key=item.key) is None:
                return

    def _publish_stats(self, final: bool = False):
        """The stats payload; ``final`` (at stop): ``running: false``, no frame rate, no faces, sources
        ``stopped`` and MQTT not connected, since that is the truth once this retained message is read."""
        try:
            snap = dict(self._stats_fn() or {})
        except Exception:
            log.exception("MQTT: stats callback failed")
            snap = {}
        payload = self.encoder.header(time.time())
        payload["kind"] = "stats"
        payload["running"] = not final
        payload.update(snap)
        if final:
            payload.update({"fps": 0.0, "faces": 0})
            for src in ("camera", "microphone"):
                if isinstance(payload.get(src), dict):
                    payload[src] = {**payload[src], "status": "stopped", "since": payload["ts"], "detail": None}
        payload["mqtt"] = {"connected": self._connected and not final, "delivered": self.delivered, "dropped": self.dropped,
                           "pending": self.pending, "connects": self.connects,
                           "connect_failures": self.connect_failures, "refusals": self.refusals}
        return self._publish(f"{self.base}/stats", dumps(payload), self.m.qos, True)

    def _probe(self) -> None:
        """Once per outage: connect by hand to log *why* (refused, DNS, certificate...)."""
        try:
            with socket.create_connection((self.m.host, self.m.port), timeout=3.0) as s:
                if self._ssl_ctx is not None:
                    with self._ssl_ctx.wrap_socket(s, server_hostname=self.m.host):
                        pass
        except (OSError, ssl.SSLError) as exc:
            self.last_error = str(exc)
            log.warning("MQTT: %s:%d: %s", self.m.host, self.m.port, exc)


def _disable_nagle(client) -> None:
    """Send small event packets at once (Nagle's algorithm delayed PUBLISH/PUBACK by ~40 ms)."""
    import socket

    sock = client.socket()
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # TLS wrappers expose the option too; anything else: leave it
        pass

