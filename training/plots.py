"""Plots people would rather look at than read: loss curves, confusion matrix, per-class accuracy."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: list[dict], path: str | Path) -> None:
    """Training / validation loss and validation accuracy per epoch."""
    plt = _plt()
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    ax[0].plot(ep, [h["train_loss"] for h in history], label="train")
    ax[0].plot(ep, [h["val_loss"] for h in history], label="validation")
    ax[0].set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax[0].legend()
    ax[1].plot(ep, [h["val_accuracy"] for h in history], color="tab:green")
    ax[1].set(xlabel="epoch", ylabel="accuracy", title="validation accuracy", ylim=(0, 1))
    for a in ax:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_confusion(report: dict, path: str | Path, title: str = "") -> None:
    """Row-normalised confusion matrix; the last column counts images where no hand was found."""
    plt = _plt()
    labels = report["labels"]
    cm = np.asarray(report["confusion_matrix"], dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(0.42 * n + 2.5, 0.4 * n + 2))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n + 1), labels + ["no hand"], rotation=90)
    ax.set_yticks(range(n), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title or f"accuracy {report['accuracy']:.1%}")
    for i in range(n):
        for j in range(n + 1):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_per_class(report: dict, path: str | Path, title: str = "per-class accuracy") -> None:
    plt = _plt()
    items = [(k, v["accuracy"]) for k, v in report["per_class"].items() if v["accuracy"] is not None]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(items) + 1.5), 3.5))
    ax.bar([k for k, _ in items], [a for _, a in items], color="tab:blue")
    ax.axhline(report["accuracy"], color="tab:red", ls="--", lw=1, label=f"overall {report['accuracy']:.1%}")
    ax.set(ylim=(0, 1), ylabel="accuracy", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
