"""Metrics against a confusion matrix worked out by hand."""

import numpy as np
import pytest

from dsrter.train.metrics import classification_report, confusion_matrix, format_report, report_from_confusion


def test_hand_computed_three_class_case():
    # truth:  angry x4, disgust x2, fear x4 ; predictions chosen so every cell is known
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 0, 0, 2, 1, 0, 2, 2, 1, 2])
    cm = confusion_matrix(y_true, y_pred)
    assert cm[:3, :3].tolist() == [[3, 0, 1], [1, 1, 0], [0, 1, 3]]
    rep = classification_report(y_true, y_pred)
    assert rep.accuracy == pytest.approx(7 / 10)
    # recalls 3/4, 1/2, 3/4 ; precisions 3/4, 1/2, 3/4 ; F1 equal to them
    assert rep.unweighted_accuracy == pytest.approx((0.75 + 0.5 + 0.75) / 3)
    assert rep.macro_precision == pytest.approx((0.75 + 0.5 + 0.75) / 3)
    assert rep.macro_f1 == pytest.approx((0.75 + 0.5 + 0.75) / 3)
    # classes with no true samples are absent, not zero recall
    assert rep.absent == ["happy", "sad", "surprise", "neutral"]
    assert rep.per_class[3]["recall"] is None
    assert "absent from this set" in format_report(rep)


def test_precision_of_never_predicted_class_is_zero():
    rep = report_from_confusion(np.diag([0, 0, 0, 0, 0, 0, 0]) + np.eye(7, k=1, dtype=int) * 2)
    # every class i (0..5) predicted as i+1: accuracy 0, and class 6 absent from the truth
    assert rep.accuracy == 0 and rep.absent == ["neutral"]
    assert rep.macro_f1 == 0
