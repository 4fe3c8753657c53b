"""How good is a generator? FID, KID, precision/recall/density/coverage and "does it show its label?".

Inception weights cannot be downloaded here, so the feature space is that of a hand-sign classifier this
project trains on real crops (the *evaluator*, ``training.image_classifier.SmallCNN``): FID and KID through
torchmetrics with it as a custom feature extractor, PRDC (Naeem et al. 2020) with the ``prdc`` package,
and its accuracy on the generated images (the probability mass on the intended class). Numbers in this
space are comparable between our runs, not with published Inception FIDs; a user who has the Inception
weight file can pass it to get the standard FID as well.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.gan.config import GANConfig
from training.gan.sampling import LoadedGenerator, PoseSource, generate, save_grid
from training.hand_crops import HandCrops
from training.image_classifier import ClassifierConfig, ImageClassifier, to_input, train_classifier


class ClassifierFeatures(nn.Module):
    """The evaluator's penultimate layer as a torchmetrics feature extractor (float images in -1..1)."""

    def __init__(self, clf: ImageClassifier):
        super().__init__()
        self.clf = clf
        self.num_features = clf.model.feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.clf.features(x.float())).double()


def evaluator_dir(config: GANConfig, root: str | os.PathLike = "runs/evaluators") -> Path:
    held = "-minus-" + "-".join(config.exclude_signers) if config.exclude_signers else ""
    return Path(root) / f"{Path(config.dataset).name}-{config.crop}{config.size}{held}"


def ensure_evaluator(config: GANConfig, datasets=None, cache_dir=None, root="runs/evaluators",
                     epochs: int = 12, progress: bool = True, seed: int = 0, device: str = "cpu") -> ImageClassifier:
    """The real-data classifier for ``config``'s data: the config's ``evaluator`` if set, else trained once
    (a few minutes on 2 cores) on all the real training crops (never reduced, never the held-out signers)
    and kept in ``root``, with the data's content hash: other data under the same name (a GPU pack's half of a
    dataset, say) trains it again. Its accuracy on the held-out signers is stored with it."""
    if config.evaluator:
        return ImageClassifier.load(config.evaluator)
    from realtime.images import ImageFolder
    from training.gan.trainer import resolve_dataset, training_set
    from training.splits import stratified_indices

    out = evaluator_dir(config, root)
    data_hash = ImageFolder(resolve_dataset(config.dataset, datasets)).content_hash()
    if (out / "best.pt").exists() and (out / "report.json").exists():
        made_from = json.loads((out / "report.json").read_text()).get("data_sha256")
        if made_from in (None, data_hash):  # None: kept from before the hash was recorded
            return ImageClassifier.load(out)
        (out / "best.pt").unlink()  # trained on other data: train again, from the start
        for stale in out.glob("*.pt"):
            stale.unlink()
    full = replace(config, per_class=None, model="reacgan")  # every real crop of the split, posed or not
    data = training_set(full, datasets, cache_dir, progress)
    labels = sorted(set(data.labels.tolist()))
    train_idx, val_idx = stratified_indices(data.labels, [0.9, 0.1], seed=0)
    recipe = ClassifierConfig(arch="cnn", epochs=epochs, lr=1e-3, betas=(0.9, 0.999), cosine=True, seed=seed)
    clf = train_classifier(data.images[train_idx], data.labels[train_idx], data.images[val_idx],
                           data.labels[val_idx], labels, out, recipe, device=device, progress=progress)
    report = {"train_images": int(len(train_idx)), "val_images": int(len(val_idx)),
              "val_acc": clf.info.get("val_acc"), "data_sha256": data_hash}
    if config.exclude_signers:
        from training.gan.trainer import resolve_dataset
        from training.hand_crops import load_hand_crops

        crops = load_hand_crops(resolve_dataset(config.dataset, datasets), config.size, config.crop,
                                labels=labels, cache_dir=cache_dir, progress=progress)
        test = crops.subset(np.flatnonzero(np.isin(crops.signers, config.exclude_signers)))
        report["test_signers"] = list(config.exclude_signers)
        report["test_images"] = len(test)
        report["test_acc"] = real_accuracy(clf, test)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return clf


def real_accuracy(clf: ImageClassifier, crops: HandCrops) -> float:
    if not len(crops):
        return float("nan")
    p = clf.probabilities(to_input(crops.images))
    pred = np.asarray(clf.labels)[p.argmax(1)]
    return float((pred == crops.labels).mean())


def fid_kid(real: torch.Tensor, fake: torch.Tensor, extractor: nn.Module, kid_subset: int = 500) -> dict:
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    fid = FrechetInceptionDistance(feature=extractor, normalize=True, reset_real_features=False)
    kid = KernelInceptionDistance(feature=extractor, normalize=True, subset_size=min(kid_subset, len(real), len(fake)),
                                  reset_real_features=False)
    for i in range(0, len(real), 500):
        fid.update(real[i:i + 500], real=True)
        kid.update(real[i:i + 500], real=True)
    for i in range(0, len(fake), 500):
        fid.update(fake[i:i + 500], real=False)
        kid.update(fake[i:i + 500], real=False)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}


def prdc_scores(real_features: np.ndarray, fake_features: np.ndarray, k: int = 5) -> dict:
    from prdc import compute_prdc

    return {key: float(v) for key, v in compute_prdc(real_features, fake_features, nearest_k=k).items()}


class InceptionFeatures(nn.Module):
    """Standard FID features from a user-supplied Inception weight file (torch-fidelity's 'pt_inception'
    file, the one torchmetrics would download). Optional: needs ``pip install torch-fidelity``."""

    def __init__(self, weights_path: str):
        super().__init__()
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError as e:
            raise RuntimeError("standard FID needs torch-fidelity: pip install torch-fidelity") from e
        if not Path(weights_path).is_file():
            raise FileNotFoundError(f"Inception weight file not found: {weights_path}")
        self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                               feature_extractor_weights_path=weights_path)
        self.num_features = 2048

    def forward(self, x):
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # the extractor resizes to 299 itself
        return self.net(x)[0].double()


def evaluate_generator(gen: LoadedGenerator, evaluator: ImageClassifier, real: HandCrops, n: int = 2000,
                       truncation: float | None = None, poses: PoseSource | None = None, seed: int = 0,
                       out: str | os.PathLike | None = None, inception_weights: str | None = None) -> dict:
    """Metrics of ``n`` generated images (balanced over classes) against the real crops ``real``."""
    classes = [c for c in gen.classes if c in set(real.labels.tolist())]
    if poses is None and gen.config.model == "spade":
        poses = PoseSource(real.keypoints, real.labels, real.dataset)
    per = max(1, n // len(classes))
    fakes, intended = [], []
    for i, c in enumerate(classes):
        fakes.append(generate(gen, c, per, truncation, poses, seed=seed * 7919 + i))
        intended += [c] * per
    fake = torch.cat(fakes)
    intended = np.asarray(intended)
    rng = np.random.default_rng(seed)
    ridx = rng.choice(len(real), min(len(real), len(fake)), replace=False)
    real_x = to_input(real.images[ridx])
    # metrics in the evaluator's feature space
    extractor = ClassifierFeatures(evaluator)
    result = {"generator": str(gen.path), "step": gen.step, "model": gen.config.model, "images": len(fake),
              "real_images": len(real_x), "truncation": truncation, "feature_space": "evaluator (SmallCNN, real data)"}
    result.update(fid_kid(real_x, fake, extractor))
    rf, ff = evaluator.features(real_x), evaluator.features(fake)
    result.update(prdc_scores(rf, ff))
    # reference: two disjoint halves of the real data, what "as good as real" reads as
    half = len(real_x) // 2
    ref = fid_kid(real_x[:half], real_x[half:], extractor)
    result["fid_real_vs_real"] = ref["fid"]
    # does each image show its label?
    probs = evaluator.probabilities(fake)
    pred = np.asarray(evaluator.labels)[probs.argmax(1)]
    result["accuracy"] = float((pred == intended).mean())
    result["per_class_accuracy"] = {c: float((pred[intended == c] == c).mean()) for c in classes}
    result["mean_intended_probability"] = float(probs[np.arange(len(probs)),
                                                      [evaluator.labels.index(c) for c in intended]].mean())
    real_pred = np.asarray(evaluator.labels)[evaluator.probabilities(real_x).argmax(1)]
    result["real_accuracy"] = float((real_pred == real.labels[ridx]).mean())
    if inception_weights:
        result["fid_inception"] = fid_kid(real_x, fake, InceptionFeatures(inception_weights))["fid"]
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(result, indent=1))
        grid = torch.cat([fake[intended == c][:10] for c in classes])
        save_grid(grid, out / "samples_per_class.png", 10, classes)
    return result


def format_metrics(m: dict) -> str:
    lines = [f"{m['images']} generated vs {m['real_images']} real images, features: {m['feature_space']}",
             f"  FID {m['fid']:.2f}  (real vs real: {m['fid_real_vs_real']:.2f})   KID {m['kid']:.4f} +- {m['kid_std']:.4f}",
             f"  precision {m['precision']:.3f}  recall {m['recall']:.3f}  density {m['density']:.3f}  "
             f"coverage {m['coverage']:.3f}",
             f"  real-data classifier on generated images: accuracy {m['accuracy']:.1%} "
             f"(on real training images: {m['real_accuracy']:.1%}), mean p(intended) {m['mean_intended_probability']:.3f}"]
    if "fid_inception" in m:
        lines.append(f"  FID (Inception, user-supplied weights): {m['fid_inception']:.2f}")
    return "\n".join(lines)


def metrics_markdown(m: dict, title: str, command: str, grid: str | None = None) -> str:
    """A markdown section for docs: the figures, the command that produced them, the sample grid."""
    rows = [("FID (evaluator features)", f"{m['fid']:.2f}"), ("FID, real vs real (two halves)", f"{m['fid_real_vs_real']:.2f}"),
            ("KID", f"{m['kid']:.4f} ± {m['kid_std']:.4f}"), ("precision", f"{m['precision']:.3f}"),
            ("recall", f"{m['recall']:.3f}"), ("density", f"{m['density']:.3f}"), ("coverage", f"{m['coverage']:.3f}"),
            ("real-data classifier accuracy on generated images", f"{m['accuracy']:.1%}"),
            ("… on real training images", f"{m['real_accuracy']:.1%}"),
            ("mean p(intended class)", f"{m['mean_intended_probability']:.3f}")]
    if "fid_inception" in m:
        rows.append(("FID (Inception, user weights)", f"{m['fid_inception']:.2f}"))
    worst = sorted(m["per_class_accuracy"].items(), key=lambda kv: kv[1])[:5]
    lines = [f"## {title}", "", f"`{command}`", "",
             f"{m['images']} generated images (balanced over classes, generator step {m['step']}) against "
             f"{m['real_images']} real training crops.", "", "| metric | value |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "Hardest classes for the generator (accuracy of the real-data classifier on its images): "
              + ", ".join(f"{c} {a:.0%}" for c, a in worst) + "."]
    if grid:
        lines += ["", f"![samples per class]({grid})"]
    return "\n".join(lines) + "\n"
