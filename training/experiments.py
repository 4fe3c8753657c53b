"""Presets for the shipped models and the signer-independent results table in the README.

``fingerspell train results`` runs every row below with the shipped recipe and writes a
markdown table (and JSON) with the data and split of each row named.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from training.train_keypoints import ASL_LETTERS, LIS_LETTERS, TrainConfig, train

ASL_SOURCES = ("massey", "roboflow", "kaggle_asl")  # not lsa16: its licence forbids shipped weights


EVALUATION = {
    "asl-letters": "trained on all data; its accuracy on new signers is estimated by the same recipe with signers "
                   "held out: docs/results.md rows 'ASL leave-one-signer-out' and 'ASL cross-dataset'",
    "lis-letters": "test figures are on the held-out signer GIULIA (docs/results.md row 'LIS signer-independent')",
}


def preset(name: str, datasets_root: str | Path, out: str | Path, **overrides) -> TrainConfig:
    """The recipe of a shipped model (``asl-letters`` or ``lis-letters``)."""
    root = Path(datasets_root)
    if name == "asl-letters":
        cfg = TrainConfig(data=[str(root / d) for d in ASL_SOURCES], labels=ASL_LETTERS, out=str(out), epochs=60)
    elif name == "lis-letters":
        cfg = TrainConfig(data=[str(root / "lis")], labels=LIS_LETTERS, out=str(out), test_signers=["GIULIA"], epochs=60)
    else:
        raise ValueError(f"unknown preset {name!r}; choose asl-letters or lis-letters")
    return replace(cfg, **overrides)


def experiment_rows(datasets_root: str | Path, out: str | Path, **overrides) -> list[tuple[str, str, str, TrainConfig]]:
    """(row name, train data, test data, config) for each row of the results table."""
    out = Path(out)
    rows = []
    asl = lambda sub, **kw: preset("asl-letters", datasets_root, out / sub, **{**overrides, **kw})  # noqa: E731
    for k in range(1, 6):
        rows.append((f"ASL leave-one-signer-out, massey hand{k}", "massey (other 4 signers) + roboflow + kaggle_asl",
                     f"massey hand{k}", asl(f"asl-loso-hand{k}", test_signers=[f"massey/hand{k}"])))
    rows.append(("ASL cross-dataset", "massey + kaggle_asl", "roboflow (all)",
                 replace(asl("asl-cross-roboflow"), test_datasets=["roboflow"])))
    rows.append(("LIS signer-independent", "lis without GIULIA", "lis GIULIA",
                 preset("lis-letters", datasets_root, out / "lis-giulia", **overrides)))
    return rows


def run_results(datasets_root: str | Path, out: str | Path, doc: str | Path | None = None, progress: bool = True,
                **overrides) -> list[dict]:
    rows = experiment_rows(datasets_root, out, **overrides)
    results = []
    for name, train_on, test_on, cfg in rows:
        if progress:
            print(f"== {name}")
        s = train(cfg, progress=progress)
        t = s["test"]
        results.append({"row": name, "train": train_on, "test": test_on, "images": t["images"],
                        "detection_rate": t["detection_rate"], "accuracy": t["accuracy"],
                        "accuracy_detected": t["accuracy_detected"], "macro_f1": t["macro_f1"], "out": cfg.out})
    loso = [r for r in results if r["row"].startswith("ASL leave-one")]
    if loso:
        results.insert(len(loso), {"row": "ASL leave-one-signer-out, mean of 5", "train": "", "test": "massey (5 folds)",
                                   "images": int(sum(r["images"] for r in loso)),
                                   **{k: float(np.mean([r[k] for r in loso])) for k in
                                      ("detection_rate", "accuracy", "accuracy_detected", "macro_f1")}, "out": ""})
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "results.json").write_text(json.dumps(results, indent=1))
    table = results_table(results)
    if doc:
        Path(doc).parent.mkdir(parents=True, exist_ok=True)
        Path(doc).write_text(table)
        for r in results:  # the plots beside the table, named after the row's run folder
            if r["out"] and (Path(r["out"]) / "confusion_matrix.png").exists():
                shutil.copy(Path(r["out"]) / "confusion_matrix.png",
                            Path(doc).parent / f"confusion-{Path(r['out']).name}.png")
    if progress:
        print(table)
    return results


def results_table(results: list[dict]) -> str:
    lines = ["| experiment | trained on | tested on | images | hand found | accuracy (all images) | accuracy (hand found) | macro-F1 |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['row']} | {r['train']} | {r['test']} | {r['images']} | {r['detection_rate']:.1%} | "
                     f"{r['accuracy']:.1%} | {r['accuracy_detected']:.1%} | {r['macro_f1']:.3f} |")
    return "\n".join(lines) + "\n"
