"""Report plots: confusion matrices and training curves (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Lay out ``fig``, write it to ``path`` (folders made as needed) and close it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def plot_confusions(panels: Sequence[tuple[str, np.ndarray]], labels: Sequence[str], path: str | Path) -> Path:
    """One row-normalised confusion matrix per (title, matrix), side by side, counts in the cells."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.8), squeeze=False)
    for ax, (title, cm) in zip(axes[0], panels):
        cm = np.asarray(cm)
        rows = cm.sum(axis=1, keepdims=True)
        norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, f"{cm[i, j]}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.55 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path, dpi=120)


def plot_history(history: Sequence[dict], keys: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Per-epoch curves of the given history keys."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = [h["epoch"] for h in history]
    for k in keys:
        ax.plot(epochs, [h.get(k) for h in history], label=k, marker=".")
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return save_figure(fig, path)


def plot_corruptions(series: dict[str, dict[str, float]], names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Grouped bars: accuracy per corruption (plus clean and mean) for each model in ``series``."""
    plt = pyplot()
    cols = ["clean", *names, "mean"]
    fig, ax = plt.subplots(figsize=(1.1 * len(cols) + 2, 4.2))
    width = 0.8 / max(len(series), 1)
    for i, (model, acc) in enumerate(series.items()):
        xs = np.arange(len(cols)) + (i - (len(series) - 1) / 2) * width
        ax.bar(xs, [acc.get(c, np.nan) for c in cols], width, label=model)
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)
