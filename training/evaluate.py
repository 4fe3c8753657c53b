"""``fingerspell eval``: the whole per-photo path (hand detection, features, classifier) over a dataset.

Each image goes through MediaPipe in static-image mode with the same upscale-and-pad cascade
as the keypoint cache, then the model's own feature spec and its ONNX file (``--keypoints j2s``:
the palm detector alone, the hand crop and the J2S model). An image with no
hand found counts as wrong in ``accuracy`` and is left out of ``accuracy_detected``. Labels the
model does not know are reported and left out; unreadable files are counted and skipped.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from realtime.pipeline import DEFAULT_IMAGE_WEIGHT, Recognizer
from realtime.images import DatasetError, ImageFolder, read_image
from training.metrics import classification_report, format_report


def evaluate(model: str | None, data: str | Path, signers: list[str] | None = None, limit: int | None = None,
             json_out: str | Path | None = None, plot: str | Path | None = None, device: str = "auto",
             hand: str = "any", progress: bool = True, seed: int = 0, keypoints: str = "mediapipe",
             hands: str = "mediapipe", backend: str = "auto", precision: str = "fp32", classifier: str = "keypoints",
             image_model: str | None = None, image_weight: float = DEFAULT_IMAGE_WEIGHT, profile=None) -> dict:
    """``profile``: a personal calibration (:class:`realtime.calibration.Profile`) applied to the classifier."""
    rec = Recognizer.build(model, hand=hand, device=device, keypoints=keypoints, static=True, hands=hands, backend=backend,
                     precision=precision, classifier_kind=classifier, image_model=image_model,
                     image_weight=image_weight, profile=profile)
    clf = rec.classifier
    name = getattr(clf, "name", None) or clf.manifest.name
    try:
        ds = ImageFolder(data)
        samples = ds.samples
        if signers:
            samples = [s for s in samples if s.signer in set(signers)]
            if not samples:
                raise ValueError(f"no images of signer(s) {signers} in {ds.root}")
        unknown = Counter(s.label for s in samples if s.label not in clf.labels)
        samples = [s for s in samples if s.label in clf.labels]
        if limit and len(samples) > limit:  # a stratified-ish random subset, reproducible
            idx = np.sort(np.random.default_rng(seed).choice(len(samples), limit, replace=False))
            samples = [samples[i] for i in idx]
        if not samples:
            raise ValueError(f"none of the labels in {ds.root} ({sorted(ds.labels)}) is known to the model "
                             f"({clf.labels})")
        trained = clf.manifest.raw.get("training", {})
        config = trained.get("config") or {}
        held_out = set() if config.get("split") == "random" else set(config.get("test_signers") or [])
        if ds.name in (trained.get("data") or []) and not (signers and set(signers) <= held_out):
            print(f"warning: {clf.manifest.name} was trained on {ds.name!r}"
                  + (f" (all but signers {sorted(held_out)})" if held_out else "")
                  + ": these figures are not on unseen data")
        y_true, y_pred, unreadable = [], [], []
        for s in tqdm(samples, desc=f"eval {name} on {ds.name}", unit="img", disable=not progress):
            img = read_image(s.path)
            if img is None:
                unreadable.append(s.rel)
                continue
            _, h, probs = rec.read(img)
            y_true.append(clf.labels.index(s.label))
            y_pred.append(-1 if h is None else int(np.argmax(probs)))
    finally:
        rec.close()
    if not y_true:
        raise DatasetError(f"none of the {len(samples)} images of {ds.root} could be read "
                           f"({unreadable_note(unreadable)}): nothing to evaluate")
    rep = classification_report(np.array(y_true), np.array(y_pred), clf.labels)
    rep.update(model=name, profile=profile.path if profile is not None else None, classifier=classifier,
               image_weight=image_weight if classifier == "fused" else None, keypoints=keypoints, hands=hands,
               data=str(ds.root), signers=signers or "all", unreadable=len(unreadable), unreadable_files=unreadable,
               unknown_labels=dict(unknown))
    if progress:
        print(format_report(rep, f"{name} on {ds.root}" + (f" signers {signers}" if signers else "")))
        if unknown:
            print(f"left out {sum(unknown.values())} images of labels the model does not know: {dict(unknown)}")
        if unreadable:
            print(unreadable_note(unreadable))
    if json_out:  # the figures first: a plot that fails must not lose them
        Path(json_out).write_text(json.dumps(rep, indent=1))
        if progress:
            print(f"report: {json_out}")
    if plot:
        from training.plots import plot_confusion

        plot_confusion(rep, plot, title=f"{clf.manifest.name} on {ds.name}: accuracy {rep['accuracy']:.1%}")
        if progress:
            print(f"confusion matrix: {plot}")
    return rep


def unreadable_note(files: list[str], show: int = 3) -> str:
    """Which files were skipped, so they can be found and fixed; only the first few of a long list."""
    n = len(files)
    more = f" and {n - show} more" if n > show else ""
    return f"skipped {n} unreadable image{'s' if n != 1 else ''}: {', '.join(files[:show])}{more}"


def plot_path(plot: str | None, plots_dir: str | None, json_out: str | None) -> Path | None:
    """Where the confusion matrix goes: --plot as given, else into --plots DIR, else beside --json; never
    unasked into the current folder."""
    if plot:
        from matplotlib.figure import Figure

        kinds = Figure().canvas.get_supported_filetypes()
        if Path(plot).suffix.lower().lstrip(".") not in kinds:
            raise ValueError(f"--plot {plot}: a confusion matrix is written as one of "
                             f"{', '.join('.' + k for k in sorted(kinds))}")
        return Path(plot)
    if plots_dir:
        return Path(plots_dir) / "confusion_matrix.png"
    if json_out:
        j = Path(json_out)
        return j.with_name(j.stem + "-confusion.png")
    return None
