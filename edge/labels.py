"""The one canonical emotion label order used by every model, event and report."""

from __future__ import annotations

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(LABELS)
LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(LABELS)}


def label_index(name: str) -> int:
    """Index of a label name; raises ValueError naming the unknown label."""
    try:
        return LABEL_INDEX[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown emotion label {name!r}; expected one of {', '.join(LABELS)}") from None
