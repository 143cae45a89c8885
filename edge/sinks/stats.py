"""Process and pipeline statistics for the MQTT ``stats`` topic, the systemd STATUS line and logs.

``PipelineStats`` listens for :class:`FrameStats` on the bus and keeps a window of recent frames;
``snapshot()`` returns a JSON-ready dict::

    {"uptime_s": 812.4, "fps": 29.6, "faces": 2, "frames": 24031, "dropped_frames": 3,
     "latency_ms": {"detect": {"p50": 1.1, "p95": 1.9}, "classify": {...}, "total": {...}},
     "cpu_percent": 61.0, "system_cpu_percent": 48.5, "memory_rss_mb": 212.4, "memory_percent": 5.4,
     "load_avg": [1.2, 1.1, 0.9], "temperature_c": 51.2,
     "camera": {"status": "ok", "since": "2025-...Z", "detail": null},
     "microphone": {"status": "missing", "since": "...", "detail": "no input device"}}

The daemon reports source changes with ``set_source("camera", "ok"|"missing"|"error"|"disabled", detail)``.
``cpu_percent`` is the process's share of one core since the previous snapshot (can exceed 100
with several threads); ``temperature_c`` is present where the board exposes a sensor.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import threading
import time
from typing import Callable, Optional

from dsrter.edge.sinks.envelope import iso_utc
from dsrter.edge.streams.events import EventBus, FrameStats

log = logging.getLogger(__name__)

try:  # psutil is a runtime dependency; stats degrade gracefully without it
    import psutil
except ImportError:  # pragma: no cover
    psutil = None  # type: ignore[assignment]


def percentile(values: list[float], q: float) -> Optional[float]:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list; None when empty."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return float(xs[0])
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


class ProcessStats:
    """Uptime, CPU, memory, load and board temperature of this process/machine."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.started_epoch = time.time()
        self._proc = psutil.Process() if psutil else None
        if self._proc is not None:
            self._proc.cpu_percent(None)  # prime: the next call measures since now
            psutil.cpu_percent(None)

    def snapshot(self) -> dict:
        out: dict = {"uptime_s": round(self._clock() - self.started, 1), "started": iso_utc(self.started_epoch)}
        if self._proc is None:
            return out
        try:
            mem = self._proc.memory_info()
            out.update({
                "cpu_percent": round(self._proc.cpu_percent(None), 1),
                "system_cpu_percent": round(psutil.cpu_percent(None), 1),
                "memory_rss_mb": round(mem.rss / 1_048_576, 1),
                "memory_percent": round(self._proc.memory_percent(), 2),
                "threads": self._proc.num_threads(),
            })
        except (psutil.Error, OSError) as exc:  # pragma: no cover - /proc hidden or gone
            log.debug("process stats unavailable: %s", exc)
        try:
            out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
        except OSError:  # pragma: no cover
            pass
        temp = board_temperature()
        if temp is not None:
            out["temperature_c"] = temp
        return out


def board_temperature() -> Optional[float]:
    """The SoC temperature in °C where the kernel exposes one (Raspberry Pi: cpu_thermal)."""
    if psutil is None or not hasattr(psutil, "sensors_temperatures"):
        return None
    try:
        temps = psutil.sensors_temperatures()
    except (OSError, RuntimeError):  # pragma: no cover
        return None
    for name in ("cpu_thermal", "coretemp", "k10temp", "soc_thermal"):
        for entry in temps.get(name, []):
            if entry.current is not None:
                return round(float(entry.current), 1)
    return None


class PipelineStats(ProcessStats):
    """FrameStats window + source status + process stats, as one ``snapshot()`` dict."""

    SOURCES = ("camera", "microphone")

    def __init__(self, bus: Optional[EventBus] = None, window: int = 300,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self._lock = threading.Lock()
        self._frames: collections.deque[FrameStats] = collections.deque(maxlen=window)
        self._count = 0
        self._sources: dict[str, dict] = {name: {"status": "unknown", "since": iso_utc(time.time()), "detail": None}
                                          for name in self.SOURCES}
        self._unsubscribe = bus.subscribe(self.on_event) if bus is not None else None

    def on_event(self, event) -> None:
        if isinstance(event, FrameStats):
            with self._lock:
                self._frames.append(event)
                self._count += 1

    def set_source(self, name: str, status: str, detail: Optional[str] = None) -> None:
        """Record a camera/microphone state change (ok, missing, error, disabled, ...)."""
        with self._lock:
            cur = self._sources.get(name)
            if cur is not None and cur["status"] == status and cur["detail"] == detail:
                return
            self._sources[name] = {"status": status, "since": iso_utc(time.time()), "detail": detail}

    def snapshot(self) -> dict:
        with self._lock:
            frames = list(self._frames)
            count = self._count
            sources = {k: dict(v) for k, v in self._sources.items()}
        out = super().snapshot()
        last = frames[-1] if frames else None
        stages: dict[str, list[float]] = {}
        for f in frames:
            for stage, ms in f.stage_ms.items():
                stages.setdefault(stage, []).append(float(ms))
        out.update({
            "fps": round(float(last.fps), 2) if last else 0.0,
            "faces": int(last.faces) if last else 0,
            "frames": count,
            "dropped_frames": int(last.dropped_frames) if last else 0,
            "latency_ms": {stage: {"p50": round(percentile(v, 50) or 0.0, 2), "p95": round(percentile(v, 95) or 0.0, 2)}
                           for stage, v in sorted(stages.items())},
        })
        out.update(sources)
        return out

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None


def status_line(snap: dict, mqtt_connected: Optional[bool] = None) -> str:
    """A short STATUS= text for systemd from a snapshot: ``29.6 fps, 2 faces, camera ok, mic missing``."""
    parts = [f"{snap.get('fps', 0.0):.1f} fps", f"{snap.get('faces', 0)} face{'s' if snap.get('faces', 0) != 1 else ''}"]
    for key, short in (("camera", "camera"), ("microphone", "mic")):
        src = snap.get(key)
        if isinstance(src, dict):
            parts.append(f"{short} {src.get('status')}")
    if mqtt_connected is not None:
        parts.append("mqtt connected" if mqtt_connected else "mqtt offline")
    return ", ".join(parts)
