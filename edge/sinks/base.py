"""What the daemon needs of a sink (MQTT, the JSON-lines events file).

A sink subscribes itself to the :class:`~dsrter.edge.streams.events.EventBus` it was given in
``start()`` and never blocks the publisher; ``stop()`` delivers what is pending within
``timeout`` seconds and releases its connection or file.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Sink(Protocol):
    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...
