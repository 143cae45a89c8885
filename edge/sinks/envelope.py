"""The versioned JSON envelope of every event record the MQTT and JSON-lines sinks write::

    {"schema": 1, "id": "<run>-<seq>", "run": "<run>", "seq": <int>, "device": "<device_id>",
     "ts": "2025-01-01T12:00:00.123Z", "epoch": 1735732800.123, "reason": "change",
     "models": {"face": "...", "speech": "..."}, "kind": "face", ...the event's to_dict()...}

``run`` is random per daemon process, ``seq`` counts the records one sink wrote in that run
(1, 2, 3, ... with no gaps unless the buffer dropped some), so ``id`` is unique across restarts
and a consumer can both de-duplicate (QoS 1 is at-least-once) and notice loss.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from dsrter.edge.streams.events import SCHEMA_VERSION

RUN_ID = uuid.uuid4().hex[:12]  # one per daemon process, shared by every sink


def iso_utc(epoch: float) -> str:
    """ISO-8601 UTC with milliseconds and a Z suffix."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_default(obj: Any) -> Any:
    """json.dumps fallback for numpy scalars/arrays and paths."""
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=json_default, allow_nan=False)


class EventEncoder:
    """Turns bus events into envelope dicts with this sink's own gap-free sequence."""

    def __init__(self, device: str, model_versions: Optional[dict[str, str]] = None, run_id: str = RUN_ID) -> None:
        self.device = device
        self.models = dict(model_versions or {})
        self.run_id = run_id
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def header(self, epoch: float) -> dict[str, Any]:
        """The fields every payload carries (state and stats payloads too), without an id."""
        return {"schema": SCHEMA_VERSION, "device": self.device, "run": self.run_id,
                "ts": iso_utc(epoch), "epoch": round(float(epoch), 3)}

    def encode(self, event: Any, reason: Optional[str] = None) -> dict[str, Any]:
        with self._lock:
            seq = next(self._seq)
        rec: dict[str, Any] = {"schema": SCHEMA_VERSION, "id": f"{self.run_id}-{seq}", "run": self.run_id,
                               "seq": seq, "device": self.device,
                               "ts": iso_utc(event.timestamp), "epoch": round(float(event.timestamp), 3)}
        if reason is not None:
            rec["reason"] = reason
        rec["models"] = self.models
        rec.update(event.to_dict())
        return rec
