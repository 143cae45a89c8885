"""Classification metrics from a confusion matrix (rows = true, columns = predicted)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsrter.edge.labels import LABELS


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int = len(LABELS)) -> np.ndarray:
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


@dataclass
class Report:
    """Accuracy, macro scores over the classes present in the truth, per-class rows."""

    confusion: np.ndarray
    accuracy: float  # = weighted accuracy (WA)
    unweighted_accuracy: float  # macro recall over present classes (UA)
    macro_precision: float
    macro_recall: float
    macro_f1: float
    per_class: list[dict]
    present: list[str]
    absent: list[str]

    def to_dict(self) -> dict:
        return {
            "n": int(self.confusion.sum()),
            "accuracy": self.accuracy,
            "weighted_accuracy": self.accuracy,
            "unweighted_accuracy": self.unweighted_accuracy,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "macro_f1": self.macro_f1,
            "per_class": self.per_class,
            "classes_present": self.present,
            "classes_absent": self.absent,
            "confusion_matrix": self.confusion.tolist(),
            "labels": list(LABELS),
        }


def report_from_confusion(cm: np.ndarray) -> Report:
    """Classes with no true samples are reported as absent and left out of the macro means."""
    cm = np.asarray(cm, dtype=np.int64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / np.maximum(support, 1), np.nan)
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        f1 = np.where(precision + np.nan_to_num(recall) > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    rows = []
    for i, name in enumerate(LABELS[: len(cm)]):
        rows.append(
            {
                "label": name,
                "support": int(support[i]),
                "precision": float(precision[i]) if present[i] else None,
                "recall": float(recall[i]) if present[i] else None,
                "f1": float(f1[i]) if present[i] else None,
            }
        )
    total = cm.sum()
    mean = lambda v: float(np.mean(v[present])) if present.any() else 0.0  # noqa: E731
    return Report(
        confusion=cm,
        accuracy=float(tp.sum() / total) if total else 0.0,
        unweighted_accuracy=mean(recall),
        macro_precision=mean(precision),
        macro_recall=mean(recall),
        macro_f1=mean(np.nan_to_num(f1)),
        per_class=rows,
        present=[LABELS[i] for i in range(len(cm)) if present[i]],
        absent=[LABELS[i] for i in range(len(cm)) if not present[i]],
    )


def classification_report(y_true: np.ndarray, y_pred: np.ndarray) -> Report:
    return report_from_confusion(confusion_matrix(y_true, y_pred))


def format_report(rep: Report, title: str = "") -> str:
    """Plain-text per-class table and confusion matrix."""
    lines = [title] if title else []
    lines.append(
        f"n={int(rep.confusion.sum())}  accuracy={rep.accuracy:.4f}  UA={rep.unweighted_accuracy:.4f}  "
        f"macro P/R/F1={rep.macro_precision:.4f}/{rep.macro_recall:.4f}/{rep.macro_f1:.4f}"
    )
    lines.append(f"{'class':<10}{'support':>8}{'prec':>8}{'recall':>8}{'f1':>8}")
    for r in rep.per_class:
        if r["support"] == 0:
            lines.append(f"{r['label']:<10}{0:>8}  (absent from this set)")
        else:
            lines.append(f"{r['label']:<10}{r['support']:>8}{r['precision']:>8.3f}{r['recall']:>8.3f}{r['f1']:>8.3f}")
    short = [lab[:4] for lab in LABELS]
    lines.append("confusion (rows true, cols predicted):")
    lines.append(" " * 10 + "".join(f"{s:>6}" for s in short))
    for i, row in enumerate(rep.confusion):
        lines.append(f"{LABELS[i]:<10}" + "".join(f"{v:>6}" for v in row))
    return "\n".join(lines)
