"""Does the hand's image help the ASL keypoint classifier on people never seen? The fused-classifier table.

For each ASL photo dataset held out in turn (roboflow, kaggle_asl, massey, digits), on all of its photos (no hand
found counts as wrong, as in :mod:`training.new_people`):

- ``keypoints``: the shipped keypoint recipe (``asl-v3``) trained without that dataset (the new-people cell
  ``runs/new-people/asl-v3/asl-DATASET/model.pt``, trained here if missing);
- ``image``: the ASL image classifier (``fingerspell train classifier``, the CPU preset: EfficientNetV2-t on 32x32
  landmark-framed crops) trained on the other photo datasets;
- ``fused``: both, combined by :class:`realtime.crop_classifier.FusedClassifier` (the live path's own code) with
  the image weight 0.3 and 0.5.

The crops are the live path's (``realtime.crops``: the landmarks' box squared and enlarged 1.5x), from the same
static-mode landmarks as the keypoint cache. Each fold is cached in ``OUT/FOLD.json`` (and its image classifier in
``OUT/image-asl-FOLD``), so a killed run resumes.

    fingerspell train results-fused --doc docs/results-fused.md
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

FOLDS = ("roboflow", "kaggle_asl", "massey", "digits")
IMAGE_DATA = ("massey", "roboflow", "kaggle_asl", "digits")
KEYPOINT_RECIPE = "asl-v3"
WEIGHTS = (0.3, 0.5)
# the CPU preset of the image classifiers (weights/lis-letters-image's)
IMAGE_ARGS = ("--arch", "efficientnet_v2_t", "--size", "32", "--epochs", "12", "--batch-size", "32", "--lr", "1e-3",
              "--cosine")


def image_command(out: str | Path, test_dataset: str | None = None, data=IMAGE_DATA, extra=()) -> list[str]:
    """The ``fingerspell train classifier`` arguments of the ASL image classifier (``test_dataset`` held out)."""
    args = ["train", "classifier", "--data", ",".join(data), *IMAGE_ARGS, "--out", str(out)]
    if test_dataset:
        args += ["--test-datasets", test_dataset]
    return args + list(extra)


class GivenProbabilities:
    """A classifier stand-in that returns the probabilities it is given (already computed for every row), so that the
    fusion is the live path's :class:`FusedClassifier` itself."""

    def __init__(self, labels: list[str], name: str, spec=None):
        self.labels, self.spec, self.manifest = list(labels), spec, SimpleNamespace(name=name)

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        return probs


def keypoint_probs(model_pt: str | Path, kp) -> tuple[np.ndarray, list[str]]:
    """(N, classes) probabilities of a trained keypoint model on a KeypointSet (zeros where no hand was found)."""
    import torch

    from training.train_keypoints import load_trained

    model, labels, spec = load_trained(model_pt)
    probs = np.zeros((len(kp), len(labels)), np.float32)
    det = kp.with_points(spec.points).detected
    if det.any():
        x = kp.features(spec, det)
        with torch.no_grad():
            probs[det] = torch.softmax(model(torch.from_numpy(x)), -1).numpy()
    return probs, labels


def image_probs(run: str | Path, dataset_root: str | Path, kp, cache_dir=None) -> tuple[np.ndarray, np.ndarray, list]:
    """The image classifier at ``run`` on the landmark-framed crop of each row of ``kp`` -> (probs, has_crop, labels)."""
    from training.hand_crops import load_hand_crops
    from training.image_classifier import ImageClassifier, to_input

    clf = ImageClassifier.load(run)
    crops = load_hand_crops(dataset_root, clf.size, "hand", cache_dir=cache_dir, progress=False)
    where = {r: i for i, r in enumerate(crops.rel.tolist())}
    idx = np.array([where.get(str(r), -1) for r in kp.rel])
    has = (idx >= 0) & kp.detected
    probs = np.zeros((len(kp), len(clf.labels)), np.float32)
    if has.any():
        probs[has] = clf.probabilities(to_input(crops.images[idx[has]]))
    return probs, has, clf.labels


def run_fold(dataset: str, datasets_root: str | Path, out: str | Path = "runs/fused",
             keypoint_runs: str | Path = "runs/new-people", cache_dir=None, weights=WEIGHTS) -> dict:
    """One dataset held out: train what is missing, score keypoints, image and fused on all its photos."""
    from realtime.crop_classifier import FusedClassifier
    from training.new_people import (
        PROTOCOLS,
        TYPED_CONFIDENCE,
        run_cell,
        score,
        test_rows,
    )

    out = Path(out)
    result_file = out / f"{dataset}.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    protocol = next(p for p in PROTOCOLS if p.alphabet == "asl" and p.test_dataset == dataset and not p.test_signer)
    kp_model = Path(keypoint_runs) / KEYPOINT_RECIPE / protocol.slug / "model.pt"
    if not kp_model.exists():
        run_cell(KEYPOINT_RECIPE, protocol, str(datasets_root), str(keypoint_runs), cache_dir=cache_dir)
    run = out / f"image-asl-{dataset}"
    command = image_command(run, dataset)
    t0 = time.perf_counter()
    if not (run / "report.json").exists():
        cmd = [sys.executable, "-m", "realtime.cli", *command, "--datasets", str(datasets_root)]
        if cache_dir:
            cmd += ["--cache-dir", str(cache_dir)]
        subprocess.run(cmd, check=True)
    train_s = json.loads((run / "report.json").read_text()).get("train_seconds", time.perf_counter() - t0)

    rows = test_rows(protocol, datasets_root, cache_dir)
    truth = rows.labels.astype(str)
    p_kp, kp_labels = keypoint_probs(kp_model, rows)
    p_im, has_crop, im_labels = image_probs(run, Path(datasets_root) / dataset, rows, cache_dir)
    det = rows.detected & has_crop  # a photo whose crop could not be made counts as no hand, for every method
    letters = [l for l in kp_labels if l != "none"]
    res = {"dataset": dataset, "images": len(rows), "hand_found": float(det.mean()),
           "keypoint_model": str(kp_model), "image_model": str(run),
           "image_command": "fingerspell " + " ".join(command), "image_train_seconds": train_s,
           "methods": {"keypoints": score(p_kp, det, truth, kp_labels, letters),
                       "image": score(p_im, det, truth, im_labels, letters)}}
    res_probs = {}
    for w in weights:
        fused = FusedClassifier(GivenProbabilities(kp_labels, "keypoints", spec=None), GivenProbabilities(im_labels, "image"), w)
        res_probs[w] = fused((p_kp, p_im))
        res["methods"][f"fused {w:g}"] = score(res_probs[w], det, truth, fused.labels, letters)
    probs = {"keypoints": (p_kp, kp_labels), "image": (p_im, im_labels)}
    for w in weights:
        probs[f"fused {w:g}"] = (res_probs[w], kp_labels)
    letter = truth != "none"
    for name, m in res["methods"].items():
        m.pop("report", None)
        p, labels = probs[name]
        right = det & (np.array(labels)[p.argmax(1)] == truth) & (p.max(1) >= TYPED_CONFIDENCE)
        m["typed_right"] = float(right[letter].mean())  # what the speller would type, and right
    out.mkdir(parents=True, exist_ok=True)
    result_file.write_text(json.dumps(res, indent=1))
    return res


def fused_table(results: list[dict]) -> str:
    """Markdown: one row per held-out dataset (accuracy / macro-F1 of each method), the mean, and the false-letter
    rates where the dataset has no-letter hands."""
    from training.new_people import TYPED_CONFIDENCE

    methods = list(results[0]["methods"])
    lines = ["| held out (all photos) | images | hand found | " + " | ".join(f"{m} acc / F1" for m in methods) +
             f" | worst letters ({methods[-1]}) |", "|---|---:|---:|" + "---:|" * len(methods) + "---|"]
    for r in results:
        cells = [f"{r['methods'][m]['accuracy']:.1%} / {r['methods'][m]['macro_f1']:.3f}" for m in methods]
        worst = ", ".join(f"{l} {a:.0%}" for l, a in r["methods"][methods[-1]].get("worst", []))
        lines.append(f"| {r['dataset']} | {r['methods'][methods[0]]['images']} | {r['hand_found']:.1%} | "
                     + " | ".join(cells) + f" | {worst} |")
    means = [(np.mean([r["methods"][m]["accuracy"] for r in results]),
              np.mean([r["methods"][m]["macro_f1"] for r in results])) for m in methods]
    best = max(a for a, _ in means)
    lines.append("| **mean** | | | " + " | ".join(
        (f"**{a:.1%}** / {f:.3f}" if a == best else f"{a:.1%} / {f:.3f}") for a, f in means) + " | |")
    lines += ["", (f"Letters typed right: letter photos read as the right letter with confidence >= {TYPED_CONFIDENCE}, "
                   "the live speller's threshold (a fusion that only lowers confidence types fewer letters, right or "
                   "wrong)."), "", "| held out | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for r in results:
        lines.append(f"| {r['dataset']} | " + " | ".join(f"{r['methods'][m]['typed_right']:.1%}" for m in methods) + " |")
    nothing = [r for r in results if "false_letter_rate" in r["methods"][methods[0]]]
    if nothing:
        lines += ["", (f"False letters: no-letter hands of the held-out dataset read as a letter with confidence >= "
                       f"{TYPED_CONFIDENCE} (the image model has no no-letter class; fused keeps the keypoint model's)."),
                  "", "| held out | no-letter photos | " + " | ".join(methods) + " |",
                  "|---|---:|" + "---:|" * len(methods)]
        for r in nothing:
            lines.append(f"| {r['dataset']} | {r['methods'][methods[0]]['no_letter_images']} | " + " | ".join(
                f"{r['methods'][m]['false_letter_rate']:.1%}" for m in methods) + " |")
    return "\n".join(lines) + "\n"


def run_fused_results(datasets_root: str | Path, out: str | Path = "runs/fused", doc: str | Path | None = None,
                      folds=FOLDS, keypoint_runs: str | Path = "runs/new-people", cache_dir=None,
                      progress: bool = True) -> list[dict]:
    results = []
    for d in folds:
        if progress:
            print(f"[fused] {d} held out", flush=True)
        results.append(run_fold(d, datasets_root, out, keypoint_runs, cache_dir))
    table = fused_table(results)
    if doc:
        secs = [r["image_train_seconds"] for r in results]
        head = ["# The ASL image classifier and the fused classifier on people never seen", "",
                ("Written by `fingerspell train results-fused` (`training/fused_results.py`). Each row holds one "
                 "photo dataset out: the keypoint model is the shipped recipe (`asl-v3`) trained without it "
                 "(`runs/new-people`), the image classifier "
                 f"(`fingerspell {' '.join(image_command('OUT', 'DATASET'))}`) is trained on the other photo "
                 f"datasets of {', '.join(IMAGE_DATA)}, and fused is `--classifier fused` with that image weight. "
                 "Accuracy is over all photos of the held-out dataset (no hand found counts as wrong); the crops are "
                 "the live path's landmark framing."),
                "", f"Image classifier training: {min(secs):.0f}-{max(secs):.0f} s per fold on this machine's CPU.",
                "", table]
        Path(doc).parent.mkdir(parents=True, exist_ok=True)
        Path(doc).write_text("\n".join(head))
    if progress:
        print(table)
    return results
