"""J2S experiments (paper 003): the two presets, the grid search of section 4.6, the reproduction tables.

    fingerspell train j2s --preset dynamic --split signer       # one run
    fingerspell train j2s-grid                                   # lr x alpha, few epochs, table
    fingerspell train j2s-results                                # 4 runs, paper beside ours -> docs/j2s.md

The paper trained 150 epochs with the learning rate divided by 10 at epoch 90. ``--epochs``
scales the schedule (the step keeps its 60% position) so a CPU budget can run all four rows.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from training.train_j2s import J2STrainConfig, train_j2s

PRESETS = {
    "static": {"weighting": "static", "lr": 0.01, "alpha": 0.5},
    "dynamic": {"weighting": "dynamic", "lr": 0.005, "alpha": 0.8},
}

# Paper 003, tables 1 and 2 (random 66/17/17 split, 256-pixel inputs, OpenPose ground truth).
PAPER = {
    "static": {"epe_median": 17.815, "epe_mean": 21.913, "auc": 0.406, "accuracy": 0.9860, "precision": 0.9889,
               "recall": 0.9858, "f1": 0.9865},
    "dynamic": {"epe_median": 17.149, "epe_mean": 21.817, "auc": 0.419, "accuracy": 0.9962, "precision": 0.9962,
                "recall": 0.9961, "f1": 0.9961},
}

GRID = {
    "static": {"lr": (0.01, 0.001, 0.0001), "alpha": (0.3, 0.4, 0.5)},
    "dynamic": {"lr": (0.005, 0.001), "alpha": (0.5, 0.8, 1.0)},
}


def preset(name: str, data: str | Path, out: str | Path, split: str = "random", epochs: int | None = None,
           **overrides) -> J2STrainConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown J2S preset {name!r}; choose from {sorted(PRESETS)}")
    cfg = J2STrainConfig(data=str(data), out=str(out), split=split, **PRESETS[name])
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs, step_size=max(1, round(epochs * 90 / 150)))
    return replace(cfg, **overrides)


def run_grid(data: str | Path, out: str | Path, epochs: int = 5, doc: str | Path | None = None,
             progress: bool = True, **overrides) -> list[dict]:
    """Section 4.6's first search: few epochs per (weighting, lr, alpha) on the random split, scored on validation."""
    rows = []
    for weighting, grid in GRID.items():
        for lr in grid["lr"]:
            for alpha in grid["alpha"]:
                cfg = replace(preset(weighting, data, Path(out) / f"{weighting}-lr{lr:g}-a{alpha:g}", epochs=epochs,
                                     **overrides), lr=lr, alpha=alpha)
                if progress:
                    print(f"== {weighting} lr={lr:g} alpha={alpha:g}")
                s = train_j2s(cfg, progress=progress, evaluate_test=False)
                v = s["final_val"]
                rows.append({"weighting": weighting, "lr": lr, "alpha": alpha, "val_accuracy": v["val_accuracy"],
                             "val_epe_median_px": v["val_epe_median"], "val_reg": v["val_reg"], "val_cls": v["val_cls"]})
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "grid.json").write_text(json.dumps(rows, indent=1))
    table = grid_table(rows, epochs, overrides)
    if doc:
        Path(doc).parent.mkdir(parents=True, exist_ok=True)
        Path(doc).write_text(table)
    if progress:
        print(table)
    return rows


def grid_table(rows: list[dict], epochs: int, overrides: dict) -> str:
    best = {w: max((r for r in rows if r["weighting"] == w), key=lambda r: r["val_accuracy"]) for w in GRID}
    lines = [f"Grid search (paper 003 section 4.6): `lis`, random 66/17/17 split, {epochs} epochs per cell, "
             f"scored on the validation part{'; ' + str(overrides) if overrides else ''}.", "",
             "| weighting | lr | alpha | val accuracy | val EPE median (64-px crop) | val L_reg | val L_cls |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        mark = " **(best)**" if r is best[r["weighting"]] else ""
        lines.append(f"| {r['weighting']}{mark} | {r['lr']:g} | {r['alpha']:g} | {r['val_accuracy']:.1%} | "
                     f"{r['val_epe_median_px']:.2f} | {r['val_reg']:.4f} | {r['val_cls']:.3f} |")
    return "\n".join(lines) + "\n"


def run_results(data: str | Path, out: str | Path, doc: str | Path = "docs/j2s.md", epochs: int | None = None,
                progress: bool = True, **overrides) -> list[dict]:
    """Static and dynamic J2S on the paper's random split and on the held-out signer; tables and plots into docs."""
    from training.plots import plot_pck

    results = []
    for split in ("random", "signer"):
        for name in PRESETS:
            cfg = preset(name, data, Path(out) / f"{name}-{split}", split=split, epochs=epochs, **overrides)
            if progress:
                print(f"== J2S {name}, {split} split")
            s = train_j2s(cfg, progress=progress)
            t = s["test"]
            c, k = t["classification"], t["keypoints_256px"]
            results.append({"preset": name, "split": split, "split_description": s["split"], "out": cfg.out,
                            "epochs": cfg.epochs, "backbone": cfg.backbone, "images": c["images"],
                            "accuracy": c["accuracy"], "precision": c["macro_precision"], "recall": c["macro_recall"],
                            "f1": c["macro_f1"], "epe_median": k["epe_median"], "epe_mean": k["epe_mean"],
                            "auc": k["auc"], "epe_median_crop_px": t["keypoints_crop_px"]["epe_median"],
                            "keypoint_images": k["images"], "pck": k})
    doc = Path(doc)
    figs = doc.parent / "j2s"
    figs.mkdir(parents=True, exist_ok=True)
    for split in ("random", "signer"):
        plot_pck({f"J2S {r['preset']}": r["pck"] for r in results if r["split"] == split}, figs / f"pck-{split}.png",
                 title=f"PCK, lis test set ({split} split)", xlabel="threshold (pixels, 256-pixel scale)")
    for r in results:
        for plot in ("confusion_matrix.png", "loss_curves.png"):
            if (Path(r["out"]) / plot).exists():
                shutil.copy(Path(r["out"]) / plot, figs / f"{Path(r['out']).name}-{plot.replace('_', '-')}")
    (Path(out) / "results.json").write_text(json.dumps([{k: v for k, v in r.items() if k != "pck"} for r in results],
                                                      indent=1))
    text = results_markdown(results, overrides)
    doc.write_text(text)
    if progress:
        print(text)
    return results


def results_markdown(results: list[dict], overrides: dict) -> str:
    from training.io import command_line

    r0 = results[0]
    lines = ["# J2S reproduction (paper 003) on `lis`", "",
             f"Produced by `{command_line()}` "
             f"(backbone `{r0['backbone']}`, {r0['epochs']} epochs, learning rate / 10 after "
             f"{round(r0['epochs'] * 90 / 150)}; the paper: 150 and 90). "
             "Ground-truth keypoints are MediaPipe's (the paper used OpenPose); our crops are 64x64, so the EPE is "
             "given scaled to the paper's 256-pixel inputs (x4) and, in brackets, in crop pixels. PCK thresholds run "
             "0-50 pixels at the 256-pixel scale (the paper does not state its range). Precision, recall and F1 "
             "are macro averages over the 22 letters.", ""]
    for split, what in (("random", "the paper's random stratified 66/17/17 split"),
                        ("signer", "signer-independent: the test signer GIULIA never seen in training")):
        rows = [r for r in results if r["split"] == split]
        if not rows:
            continue
        lines += [f"## {what}", "", f"Test: {rows[0]['images']} images ({rows[0]['split_description']}).", "",
                  "| method | EPE median (px) | EPE mean (px) | AUC | accuracy | precision | recall | F1 |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            if split == "random":
                p = PAPER[r["preset"]]
                lines.append(f"| paper J2S {r['preset']} | {p['epe_median']:.2f} | {p['epe_mean']:.2f} | {p['auc']:.3f} "
                             f"| {p['accuracy']:.2%} | {p['precision']:.4f} | {p['recall']:.4f} | {p['f1']:.4f} |")
            lines.append(f"| ours J2S {r['preset']} | {r['epe_median']:.2f} ({r['epe_median_crop_px']:.2f}) | "
                         f"{r['epe_mean']:.2f} | {r['auc']:.3f} | {r['accuracy']:.2%} | {r['precision']:.4f} | "
                         f"{r['recall']:.4f} | {r['f1']:.4f} |")
        lines += ["", f"![PCK]({'j2s/pck-' + split + '.png'})", ""]
        lines += [f"![confusion {r['preset']}](j2s/{Path(r['out']).name}-confusion-matrix.png)" for r in rows]
        lines.append("")
    return "\n".join(lines)
