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


def plot_pck(curves: dict[str, dict], path: str | Path, title: str = "PCK", xlabel: str = "threshold (pixels)") -> None:
    """PCK curves (fraction of keypoints within a threshold) of several runs, AUC in the legend."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, rep in curves.items():
        ax.plot(rep["thresholds"], rep["pck"], label=f"{name} (AUC {rep['auc']:.3f})")
    ax.set(xlabel=xlabel, ylabel="fraction of keypoints within", ylim=(0, 1), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_j2s_history(history: list[dict], path: str | Path) -> None:
    """J2S training: regression and classification losses, the weights, validation accuracy and EPE."""
    plt = _plt()
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 3, figsize=(14, 3.8))
    ax[0].plot(ep, [h["train_total"] for h in history], label="train total")
    ax[0].plot(ep, [h["train_reg"] for h in history], label="train L_reg")
    ax[0].plot(ep, [h["train_cls"] for h in history], label="train L_cls")
    ax[0].plot(ep, [h["val_reg"] for h in history], "--", label="val L_reg")
    ax[0].plot(ep, [h["val_cls"] for h in history], "--", label="val L_cls")
    ax[0].set(xlabel="epoch", ylabel="loss", title="losses", yscale="log")
    ax[0].legend(fontsize=7)
    ax[1].plot(ep, [h["w_reg"] for h in history], label="w_reg (epoch mean)")
    ax[1].plot(ep, [h["w_cls"] for h in history], label="w_cls (epoch mean)")
    ax[1].set(xlabel="epoch", title="loss weights")
    ax[1].legend(fontsize=7)
    ax[2].plot(ep, [h["val_accuracy"] for h in history], color="tab:green", label="val accuracy")
    ax2 = ax[2].twinx()
    ax2.plot(ep, [h["val_epe_median"] for h in history], color="tab:red", label="val EPE median (px)")
    ax[2].set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1), title="validation")
    ax2.set_ylabel("EPE median (crop px)")
    for a in ax:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_recipe_bars(rows: list[tuple[str, dict[str, float]]], path: str | Path, title: str = "") -> None:
    """Grouped bars: one group per protocol (row name), one bar per recipe (its accuracy), recipes in order."""
    plt = _plt()
    recipes = list(dict.fromkeys(r for _, accs in rows for r in accs))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 4.2))
    width = 0.8 / max(1, len(recipes))
    for k, recipe in enumerate(recipes):
        xs = [i + (k - (len(recipes) - 1) / 2) * width for i in range(len(rows))]
        ys = [100 * accs.get(recipe, np.nan) for _, accs in rows]
        ax.bar(xs, ys, width, label=recipe)
    ax.set_xticks(range(len(rows)), [name for name, _ in rows], rotation=35, ha="right", fontsize=8)
    ax.set(ylabel="accuracy, all images (%)", ylim=(0, 100), title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
