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


def keypoint_report(pred_px: np.ndarray, true_px: np.ndarray, mask: np.ndarray, scale_to: float = 1.0,
                    max_threshold: float = 50.0, steps: int = 101) -> dict:
    """End-point error and PCK of predicted keypoints, as paper 003 section 5.1 reports them.

    ``pred_px``, ``true_px`` (N, 21, 2) in pixels of the crop; ``mask`` (N, 21) which ground-truth points
    exist. Every distance is multiplied by ``scale_to`` first (e.g. 4 for 64-pixel crops compared with
    the paper's 256-pixel inputs). EPE mean and median are taken per keypoint, then averaged over the
    keypoints. The PCK curve runs over thresholds 0..``max_threshold`` (scaled pixels); its AUC is
    normalised to 0..1.
    """
    err = np.linalg.norm(np.asarray(pred_px, np.float64) - np.asarray(true_px, np.float64), axis=-1) * scale_to
    mask = np.asarray(mask, bool)
    per_joint = [err[mask[:, j], j] for j in range(err.shape[1])]
    per_joint = [e for e in per_joint if len(e)]
    thresholds = np.linspace(0.0, max_threshold, steps)
    if not per_joint:
        return {"points": 0, "images": 0, "scale_to": scale_to, "epe_mean": float("nan"), "epe_median": float("nan"),
                "thresholds": thresholds.tolist(), "pck": [0.0] * steps, "auc": float("nan")}
    flat = err[mask]
    pck = np.array([(flat <= t).mean() for t in thresholds])
    auc = float(np.trapz(pck, thresholds) / max_threshold) if max_threshold > 0 else float("nan")
    return {"points": int(mask.sum()), "images": int(mask.any(1).sum()), "scale_to": scale_to,
            "epe_mean": float(np.mean([e.mean() for e in per_joint])),
            "epe_median": float(np.mean([np.median(e) for e in per_joint])),
            "thresholds": thresholds.tolist(), "pck": pck.tolist(), "auc": auc}
