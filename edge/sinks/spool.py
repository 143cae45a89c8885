"""A bounded, optionally on-disk, ordered buffer of event records waiting for delivery (the
records are envelopes: :mod:`dsrter.edge.sinks.envelope`).

Spool on disk (``mqtt.buffer.spool_dir``)::

    seg-000000000001.jsonl   one record per line: {"k": key, "t": topic, "q": qos, "r": retain, "p": payload}
    seg-000000001001.jsonl   a new segment every SEGMENT_RECORDS records
    acked                    the watermark W: every key <= W was delivered (or dropped)

Records are appended (and flushed to the kernel) when they are put, so a crash, SIGKILL or
restart loses nothing; the watermark is rewritten (and the segment fsync'ed) at most once per
``sync_interval_s``, so after a crash up to that much already-delivered history is sent again
(duplicates with the same ids, which consumers drop). Fully delivered segments are deleted.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from dsrter.edge.sinks.envelope import dumps

log = logging.getLogger(__name__)

SEGMENT_RECORDS = 1000


@dataclass(frozen=True)
class SpoolItem:
    key: int
    topic: str
    payload: str
    qos: int = 1
    retain: bool = False


class EventSpool:
    """Ordered, bounded buffer of records awaiting delivery (oldest dropped first, counted).

    ``put`` appends; ``take`` hands out the oldest queued item and keeps it "in flight" until
    ``ack`` (delivered) or ``requeue`` (send again, before anything newer). ``pending`` counts
    queued plus in-flight items. Thread-safe.
    """

    def __init__(self, max_events: int, spool_dir: Optional[Path] = None, sync_interval_s: float = 1.0) -> None:
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        self.max_events = max_events
        self.dir = Path(spool_dir) if spool_dir is not None else None
        self.sync_interval_s = sync_interval_s
        self._lock = threading.Lock()
        self._queue: collections.deque[SpoolItem] = collections.deque()
        self._inflight: dict[int, SpoolItem] = {}
        self._done_above: set[int] = set()  # delivered/dropped keys above the watermark
        self._watermark = 0  # every key <= watermark is delivered or dropped
        self._next_key = 1
        self.dropped = 0
        self.delivered = 0
        self.restored = 0  # records loaded from disk at start
        self._segment: Optional[Any] = None
        self._segment_first = 0
        self._segment_count = 0
        self._dirty = False
        self._last_sync = time.monotonic()
        self._closed = False
        if self.dir is not None:
            self._load()

    # -- public API ---------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + len(self._inflight)

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def inflight(self) -> int:
        with self._lock:
            return len(self._inflight)

    def put(self, topic: str, payload: str, qos: int = 1, retain: bool = False) -> Optional[SpoolItem]:
        """Append a record; None (counted as dropped) once the spool is closed."""
        with self._lock:
            if self._closed:
                self.dropped += 1
                return None
            item = SpoolItem(self._next_key, topic, payload, qos, retain)
            self._next_key += 1
            if self.dir is not None:
                self._append(item)
            self._queue.append(item)
            while len(self._queue) + len(self._inflight) > self.max_events and self._queue:
                old = self._queue.popleft()
                self.dropped += 1
                self._mark_done(old.key)
            return item

    def take(self) -> Optional[SpoolItem]:
        with self._lock:
            if not self._queue:
                return None
            item = self._queue.popleft()
            self._inflight[item.key] = item
            return item

    def ack(self, key: int) -> None:
        with self._lock:
            if self._inflight.pop(key, None) is not None:
                self.delivered += 1
                self._mark_done(key)

    def requeue(self, key: int) -> None:
        """Put an in-flight item back so it is sent again, in key order before newer ones."""
        with self._lock:
            item = self._inflight.pop(key, None)
            if item is None:
                return
            # the queue is sorted by key; requeued items are older than nearly everything queued
            idx = 0
            for idx, other in enumerate(self._queue):
                if other.key > key:
                    break
            else:
                idx = len(self._queue)
            self._queue.insert(idx, item)

    def requeue_all(self) -> None:
        for key in sorted(self._inflight, reverse=True):
            self.requeue(key)

    def snapshot(self) -> list[SpoolItem]:
        """Everything pending, oldest first (for tests and diagnostics)."""
        with self._lock:
            return sorted(list(self._inflight.values()) + list(self._queue), key=lambda i: i.key)

    def maybe_sync(self) -> None:
        if self.dir is not None and self._dirty and time.monotonic() - self._last_sync >= self.sync_interval_s:
            self.sync()

    def sync(self) -> None:
        """Persist the watermark, fsync the open segment and delete delivered segments."""
        if self.dir is None:
            return
        with self._lock:
            self._sync_locked()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self.dir is not None:
                self._sync_locked()
                if self._segment is not None:
                    self._segment.close()
                    self._segment = None
                self._delete_finished_segments()
            self._closed = True

    # -- internals ----------------------------------------------------------------------------
    def _mark_done(self, key: int) -> None:
        if key == self._watermark + 1:
            self._watermark = key
            while self._watermark + 1 in self._done_above:
                self._done_above.discard(self._watermark + 1)
                self._watermark += 1
        elif key > self._watermark:
            self._done_above.add(key)
        self._dirty = True

    def _segments(self) -> list[tuple[int, Path]]:
        assert self.dir is not None
        out = []
        for p in self.dir.glob("seg-*.jsonl"):
            try:
                out.append((int(p.stem[4:]), p))
            except ValueError:
                continue
        return sorted(out)

    def _load(self) -> None:
        assert self.dir is not None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeError(f"{self.dir}: cannot create the spool folder: {exc}") from None
        mark = self.dir / "acked"
        if mark.exists():
            try:
                self._watermark = int(mark.read_text().strip() or 0)
            except ValueError:
                log.warning("%s: unreadable watermark; resending everything in the spool", mark)
        seen: set[int] = set()
        records: list[SpoolItem] = []
        bad = 0
        max_key = self._watermark
        for _, path in self._segments():
            for rec in self._read_segment(path):
                if rec is None:
                    bad += 1
                    continue
                max_key = max(max_key, rec.key)
                if rec.key > self._watermark and rec.key not in seen:
                    seen.add(rec.key)
                    records.append(rec)
        if bad:
            log.warning("%s: skipped %d unreadable spool line(s) (a crash mid-write leaves at most one)", self.dir, bad)
        records.sort(key=lambda r: r.key)
        self._next_key = max_key + 1
        # keys between the watermark and the first restored record are gone: close the gap
        present = {r.key for r in records}
        for k in range(self._watermark + 1, self._next_key):
            if k not in present:
                self._mark_done(k)
        if len(records) > self.max_events:
            extra = len(records) - self.max_events
            for r in records[:extra]:
                self._mark_done(r.key)
            self.dropped += extra
            records = records[extra:]
            log.warning("%s: %d spooled events exceed mqtt.buffer.max_events; dropped the oldest %d", self.dir,
                        len(records) + extra, extra)
        self._queue.extend(records)
        self.restored = len(records)
        if records:
            log.info("%s: restored %d undelivered event(s) from the spool", self.dir, len(records))
        self._open_segment(self._next_key)
        self._dirty = True
        self._sync_locked()

    @staticmethod
    def _read_segment(path: Path) -> Iterator[Optional[SpoolItem]]:
        try:
            with open(path, "r", encoding="utf-8", errors="replace") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        d = json.loads(line)
                        yield SpoolItem(int(d["k"]), str(d["t"]), str(d["p"]), int(d.get("q", 1)), bool(d.get("r", False)))
                    except (ValueError, KeyError, TypeError):
                        yield None
        except OSError as exc:
            log.warning("%s: cannot read spool segment: %s", path, exc)

    def _open_segment(self, first_key: int) -> None:
        assert self.dir is not None
        if self._segment is not None:
            self._segment.flush()
            os.fsync(self._segment.fileno())
            self._segment.close()
        self._segment_first = first_key
        self._segment_count = 0
        self._segment = open(self.dir / f"seg-{first_key:012d}.jsonl", "a", encoding="utf-8")

    def _append(self, item: SpoolItem) -> None:
        if self._segment is None or self._segment_count >= SEGMENT_RECORDS:
            self._open_segment(item.key)
        segment = self._segment
        assert segment is not None  # _open_segment set it
        line = dumps({"k": item.key, "t": item.topic, "q": item.qos, "r": item.retain, "p": item.payload})
        try:
            segment.write(line + "\n")
            segment.flush()
        except OSError as exc:  # a full disk must not stop the pipeline; memory still holds it
            log.warning("%s: spool write failed (%s); the event is kept in memory only", self.dir, exc)
        self._segment_count += 1
        self._dirty = True

    def _sync_locked(self) -> None:
        if self.dir is None or not self._dirty:
            return
        try:
            if self._segment is not None:
                self._segment.flush()
                os.fsync(self._segment.fileno())
            tmp = self.dir / "acked.tmp"
            with open(tmp, "w") as f:
                f.write(f"{self._watermark}\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.dir / "acked")
            self._delete_finished_segments()
        except OSError as exc:
            log.warning("%s: spool sync failed: %s", self.dir, exc)
        self._dirty = False
        self._last_sync = time.monotonic()

    def _delete_finished_segments(self) -> None:
        segs = self._segments()
        for i, (first, path) in enumerate(segs):
            if first == self._segment_first and self._segment is not None:
                continue  # the one being written
            last = segs[i + 1][0] - 1 if i + 1 < len(segs) else self._next_key - 1
            if last <= self._watermark:
                try:
                    path.unlink()
                except OSError:
                    pass
