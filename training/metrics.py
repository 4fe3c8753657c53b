"""Classification metrics in plain numpy (no scikit-learn dependency).

Predictions of -1 mean "no hand found": they count as wrong in ``accuracy`` and are left out
of ``accuracy_detected``.
"""
from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class, plus a last column for 'no hand' (-1)."""
    cm = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    pred = np.where(y_pred < 0, num_classes, y_pred)
    np.add.at(cm, (y_true, pred), 1)
    return cm


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    """Accuracy (all and detected), macro precision / recall / F1, per-class accuracy and the confusion matrix."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    c = len(labels)
    cm = confusion_matrix(y_true, y_pred, c)
    detected = y_pred >= 0
    tp = np.diag(cm[:, :c]).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm[:, :c].sum(axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    n = len(y_true)
    return {
        "images": int(n),
        "detected": int(detected.sum()),
        "detection_rate": float(detected.mean()) if n else 0.0,
        "accuracy": float((y_pred == y_true).mean()) if n else 0.0,
        "accuracy_detected": float((y_pred[detected] == y_true[detected]).mean()) if detected.any() else 0.0,
        "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
        "macro_recall": float(np.nanmean(recall[present])) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {labels[i]: {"support": int(support[i]), "accuracy": None if not present[i] else float(recall[i]),
                                  "precision": float(precision[i]), "f1": float(f1[i])} for i in range(c)},
        "labels": list(labels),
        "confusion_matrix": cm.tolist(),
    }


def format_report(rep: dict, title: str = "") -> str:
    lines = [title] if title else []
    lines.append(f"images {rep['images']}  detected {rep['detected']} ({rep['detection_rate']:.1%})  "
                 f"accuracy {rep['accuracy']:.2%}  accuracy|detected {rep['accuracy_detected']:.2%}  "
                 f"macro-F1 {rep['macro_f1']:.4f}")
    per = [f"{k}:{v['accuracy']:.0%}" for k, v in rep["per_class"].items() if v["accuracy"] is not None]
    lines.append("per class  " + "  ".join(per))
    return "\n".join(lines)
