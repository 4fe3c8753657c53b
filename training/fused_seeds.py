"""Does a change to the image classifier survive fusion? (``fingerspell train fused-seeds``)

The strategy grid (:mod:`training.strategy_experiments`) judges an image classifier alone, but live it mostly
serves ``--classifier fused``: its probabilities averaged with the keypoint model's. A change that helps the image
model alone can still hurt the fused reading, when it makes the two models err alike or shifts the image model's
confidence. So each grid image classifier of the lis protocols is fused here, seed by seed, with the shipped
keypoint recipe trained without the same person (the new-people cell ``runs/new-people/lis-v3/lis-lis-SIGNER``,
which :func:`training.new_people.run_cell` trains on first use), and scored on every photo of the test signers:
no hand found counts as wrong, as in ``fingerspell eval``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from realtime.crop_classifier import DEFAULT_IMAGE_WEIGHT, FusedClassifier
from training.fused_results import GivenProbabilities
from training.new_people import PROTOCOLS, TorchModel, run_cell, test_rows
from training.strategy_experiments import DATASETS, _paired

# the grid protocols with lis signers held out, whose keypoint models this page can train one signer at a time
FUSED_PROTOCOLS = ("lis", "lis-b", "lis-c")


def _signer_protocol(signer: str):
    return next(p for p in PROTOCOLS if p.alphabet == "lis" and p.test_dataset == "lis" and p.test_signer == signer)


def person_probabilities(signer: str, datasets_root, recipe: str = "lis-v3", new_people="runs/new-people",
                         cache_dir=None):
    """(keypoint probabilities, hand found, truth, rel paths, keypoint labels) of one lis signer's photos, from the
    recipe's model trained without that signer."""
    protocol = _signer_protocol(signer)
    run_cell(recipe, protocol, str(datasets_root), str(new_people), cache_dir=cache_dir)
    model = TorchModel(Path(new_people) / recipe / protocol.slug / "model.pt")
    kp = test_rows(protocol, datasets_root, cache_dir)
    probs, found = model.probabilities(kp)
    return probs, found, kp.labels.astype(str), kp.rel.astype(str), list(model.labels)


def fused_scores(p_kp, found, truth, kp_labels, p_im, im_labels, weight: float = DEFAULT_IMAGE_WEIGHT) -> dict:
    """Accuracy of the keypoint model, the image model and the live path's :class:`FusedClassifier` (``weight`` on
    the image; a keypoint no-letter class keeps its own probability), over all rows; rows without a hand are wrong
    for all three (the live path reads no crop without a hand)."""
    fused = FusedClassifier(GivenProbabilities(kp_labels, "keypoints"), GivenProbabilities(im_labels, "image"), weight)

    def acc(p, labels):
        return float(np.mean(found & (np.asarray(labels)[p.argmax(1)] == truth)))

    return {"keypoints": acc(p_kp, kp_labels), "image": acc(p_im, im_labels),
            "fused": acc(fused((p_kp, p_im)), fused.labels)}


def run_fused_seeds(datasets_root, grid_out="runs/strategies/shipped", protocols=FUSED_PROTOCOLS,
                    methods=("real", "hgan-regularizer", "rendered-regularizer"), weights=(0.3, 0.5),
                    cache_dir=None, progress: bool = True) -> list[dict]:
    """One result per (protocol, method, seed, image weight) that the grid has trained: accuracy over all the
    protocol's test photos (its signers pooled), keypoints alone, image alone and fused."""
    import torch

    from training.gan.trainer import resolve_dataset
    from training.hand_crops import load_hand_crops
    from training.image_classifier import ImageClassifier, to_input

    unknown = sorted(set(protocols) - set(FUSED_PROTOCOLS))
    if unknown:
        raise ValueError(f"unknown protocol(s) {unknown}: fused-seeds knows {', '.join(FUSED_PROTOCOLS)}")
    results = []
    for name in protocols:
        spec = DATASETS[name]
        runs = {m: [f for f in sorted(Path(grid_out, "runs", name, "full", m).glob("seed*")) if (f / "best.pt").exists()]
                for m in methods}
        if not any(runs.values()):
            continue
        # every grid classifier of a protocol has the same crop size: read it from the first
        size = ImageClassifier.load(next(f for fs in runs.values() for f in fs)).size
        crops = load_hand_crops(resolve_dataset(spec.folder or name, datasets_root), size, spec.crop,
                                cache_dir=cache_dir, progress=progress)
        index = {r: i for i, r in enumerate(crops.rel.astype(str))}
        people = [person_probabilities(s, datasets_root, cache_dir=cache_dir) for s in spec.test_signers]
        p_kp = np.concatenate([p[0] for p in people])
        found = np.concatenate([p[1] for p in people])
        truth = np.concatenate([p[2] for p in people])
        rows = np.array([index.get(r, -1) for p in people for r in p[3]])  # hand crops exist where a hand was found
        found = found & (rows >= 0)
        rows = np.where(rows >= 0, rows, 0)
        kp_labels = people[0][4]
        whose = np.concatenate([[s] * len(p[2]) for s, p in zip(spec.test_signers, people)])
        for method in methods:
            for folder in runs[method]:
                clf = ImageClassifier.load(folder)
                with torch.no_grad():
                    p_im = clf.probabilities(to_input(crops.images[rows]))
                for weight in weights:
                    score = fused_scores(p_kp, found, truth, kp_labels, p_im, list(clf.labels), weight)
                    per_signer = {s: fused_scores(p_kp[whose == s], found[whose == s], truth[whose == s], kp_labels,
                                                  p_im[whose == s], list(clf.labels), weight)
                                  for s in spec.test_signers}
                    results.append({"protocol": name, "test_signers": list(spec.test_signers), "method": method,
                                    "seed": int(folder.name[4:]), "image_weight": weight,
                                    "images": int(len(truth)), **score, "per_signer": per_signer})
    return results


def _gain_cells(method: str, own: list[tuple[int, dict]], real: dict[int, dict]) -> str:
    """The two table cells of a method's paired gains over ``real`` (image alone, fused), from (seed, scores) pairs and
    real's scores by seed; empty for ``real`` itself."""
    if method == "real":
        return " | "
    gains = {k: [100 * (v[k] - real[seed][k]) for seed, v in own if seed in real] for k in ("image", "fused")}
    return f"{_paired(gains['image'])} | {_paired(gains['fused'])}"


def fused_seeds_table(results: list[dict]) -> str:
    """Markdown: per image weight, protocol and method, mean accuracy over seeds (keypoints, image alone, fused), and
    each method's paired gain over ``real`` seed by seed (points; seeds better / seeds)."""
    lines = ["| image weight | protocol (test signers) | method | seeds | keypoints alone | image alone | fused | image "
             "gain over real | fused gain over real |", "|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for weight, name in dict.fromkeys((r["image_weight"], r["protocol"]) for r in results):
        rs = [r for r in results if r["protocol"] == name and r["image_weight"] == weight]
        real = {r["seed"]: r for r in rs if r["method"] == "real"}
        for method in dict.fromkeys(r["method"] for r in rs):
            mine = [r for r in rs if r["method"] == method]
            lines.append(f"| {weight} | {name} ({', '.join(mine[0]['test_signers'])}) | {method} | {len(mine)} | "
                         f"{np.mean([r['keypoints'] for r in mine]):.1%} | {np.mean([r['image'] for r in mine]):.1%} | "
                         f"{np.mean([r['fused'] for r in mine]):.1%} | "
                         f"{_gain_cells(method, [(r['seed'], r) for r in mine], real)} |")
    return "\n".join(lines)


def per_signer_table(results: list[dict]) -> str:
    """Markdown: per protocol, image weight and test signer, each method's mean over seeds (image alone and fused)
    and its paired gain over ``real``; empty for results written before the per-signer split existed."""
    rs = [r for r in results if "per_signer" in r]
    lines = ["| image weight | protocol | test signer | method | image alone | fused | image gain over real | "
             "fused gain over real |", "|---:|---|---|---|---:|---:|---:|---:|"]
    for weight, name in dict.fromkeys((r["image_weight"], r["protocol"]) for r in rs):
        mine = [r for r in rs if r["protocol"] == name and r["image_weight"] == weight]
        for signer in mine[0]["test_signers"]:
            real = {r["seed"]: r["per_signer"][signer] for r in mine if r["method"] == "real"}
            for method in dict.fromkeys(r["method"] for r in mine):
                own = [(r["seed"], r["per_signer"][signer]) for r in mine if r["method"] == method]
                lines.append(f"| {weight} | {name} | {signer} | {method} | {np.mean([v['image'] for _, v in own]):.1%} | "
                             f"{np.mean([v['fused'] for _, v in own]):.1%} | {_gain_cells(method, own, real)} |")
    return "\n".join(lines) if rs else ""
