"""Adapting to a new person without labels, judged on the new-people protocols (issue 14).

A live recognizer sees many frames of the person in front of it before (or instead of) a calibration. Could it
adapt to them from those frames alone? Three ways, each measured against the model as shipped:

- **input statistics** (AdaBN): the network's input BatchNorm re-estimates its mean and variance on the person's
  hands, half way (blend 0.5) or whole (1.0): a per-person standardisation of the features;
- **test-time views**: every hand read in seven views (as it is, yaw +-15 deg, pitch +-12 deg, roll +-10 deg about the
  wrist, the kinds of view the recipe trains with) and the log-probabilities averaged (seven classifier runs a frame);
- **self-training**: the person's own confident readings (confidence >= 0.9, at most 10 hands per letter read) taken
  as calibration samples of the shipped profile method (``tuned+knn``), as if the person had calibrated with them.

Protocol: for each new-people protocol of the shipped recipes (the model trained without that person or dataset,
:mod:`training.new_people`), half of the held-out rows are the frames the method may adapt on, unlabelled, and the
other half is tested: photos split at random (seed 0), the webcam landmark sets' video frames by time (the first
half of each letter's frames adapts, the second is tested).
Every method is tested on the same rows. Two ways this is kinder than a live person would be, said so that the
(negative) results are read right: the lis photos of one moment from its five cameras can fall on both sides of the
random split (near-duplicates, which favour self-training's nearest neighbours), and the video split takes half of
every letter, so the frames adapted on hold every letter equally (a live person adapts on whatever they sign; neighbour
frames straddle only at each letter's midpoint).

    fingerspell train adaptation --doc docs/results-adaptation.md
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from training.new_people import methods_table, TorchModel, protocol_tables, score, test_rows
from training.train_keypoints import NO_LETTER, rotation_matrices

SHIPPED = "as shipped"
ADABN = {"input statistics, blend 0.5": 0.5, "input statistics, blend 1.0": 1.0}
TTA = "seven test-time views"
SELF_TRAINING = "self-training (confidence >= 0.9, <= 10 per letter)"
METHODS = (SHIPPED, *ADABN, TTA, SELF_TRAINING)
# (roll, yaw, pitch) in degrees about the wrist
TTA_VIEWS = ((0, 0, 0), (0, 15, 0), (0, -15, 0), (0, 0, 12), (0, 0, -12), (10, 0, 0), (-10, 0, 0))
SELF_CONFIDENCE, SELF_PER_LETTER = 0.9, 10


def adaptation_split(labels: np.ndarray, video: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(adapt rows, test rows) of a person's held-out rows: photos half and half at random; video frames by time,
    each letter's first half to adapt and second half to test."""
    if not video:
        perm = np.random.default_rng(seed).permutation(len(labels))
        return np.sort(perm[: len(labels) // 2]), np.sort(perm[len(labels) // 2:])
    adapt, test = [], []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        adapt.append(rows[: len(rows) // 2])
        test.append(rows[len(rows) // 2:])
    return np.sort(np.concatenate(adapt)), np.sort(np.concatenate(test))


def restandardised(model, x_adapt: np.ndarray, blend: float):
    """A copy of the torch model whose input BatchNorm statistics moved ``blend`` of the way to those of
    ``x_adapt``."""
    import torch

    out = copy.deepcopy(model)
    bn = out.norm
    mean = torch.from_numpy(x_adapt.mean(0)).to(bn.running_mean)
    var = torch.from_numpy(x_adapt.var(0)).to(bn.running_var)
    bn.running_mean.mul_(1 - blend).add_(blend * mean)
    bn.running_var.mul_(1 - blend).add_(blend * var)
    return out


def probabilities(model, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(np.nan_to_num(x))), -1).numpy()


def view_probabilities(tm: TorchModel, kp, views=TTA_VIEWS) -> np.ndarray:
    """The mean log-probability over ``views`` (rotations about the wrist) of every row of ``kp`` (hands only),
    renormalised."""
    import torch

    lm = kp.landmarks.astype(np.float64)
    wrist = lm[:, :1]
    logp = 0.0
    for roll, yaw, pitch in views:
        rot = rotation_matrices(*(np.full(len(kp), np.deg2rad(a)) for a in (roll, yaw, pitch)))
        turned = wrist + np.einsum("bij,bnj->bni", rot, lm - wrist)
        x = tm.spec.compute(turned, kp.is_left, kp.image_size.astype(np.float64))
        with torch.no_grad():
            logp = logp + torch.log_softmax(tm.model(torch.from_numpy(np.nan_to_num(x))), -1).numpy()
    p = np.exp(logp / len(views))
    return p / p.sum(1, keepdims=True)


def self_training_samples(probs: np.ndarray, labels: list[str], rows: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rows (of ``rows``) whose reading is a letter with at least :data:`SELF_CONFIDENCE`, at most
    :data:`SELF_PER_LETTER` per letter read, drawn at random."""
    rng = np.random.default_rng(seed)
    pred, conf = probs[rows].argmax(1), probs[rows].max(1)
    keep = []
    for c in np.unique(pred):
        if labels[c] == NO_LETTER:
            continue
        keep.append(rng.permutation(rows[(pred == c) & (conf >= SELF_CONFIDENCE)])[:SELF_PER_LETTER])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)


def person_of(recipe: str, protocol):
    from training.calibration_experiments import Person

    return Person(protocol.slug, f"{recipe}/{protocol.slug}", protocol.test_dataset, protocol.test_signer)


def evaluate_protocol(recipe: str, protocol, datasets_root, out) -> dict[str, dict]:
    """Method -> :func:`training.new_people.score` on the test half of the protocol's held-out rows, plus how many
    hands self-training took and how many of their readings were right."""
    from realtime.calibration import Adapter
    from training.calibration_experiments import cell_tuning
    from training.landmark_sets import is_landmark_set

    kp = test_rows(protocol, datasets_root)
    tm = TorchModel(Path(out) / recipe / protocol.slug / "model.pt")
    labels = tm.labels
    letters = [label for label in labels if label != NO_LETTER]
    truth = kp.labels.astype(str)
    det = kp.with_points(tm.spec.points).detected
    adapt, test = adaptation_split(truth, is_landmark_set(Path(datasets_root) / protocol.test_dataset))
    hands = np.flatnonzero(det)
    x = np.zeros((len(kp), tm.spec.dim), np.float32)
    x[hands] = np.nan_to_num(kp.subset(hands).features(tm.spec))
    pool = adapt[det[adapt]]  # the person's hands the method may look at, without their labels

    reads = {SHIPPED: np.zeros((len(kp), len(labels)), np.float32)}
    reads[SHIPPED][hands] = probabilities(tm.model, x[hands])
    for name, blend in ADABN.items():
        reads[name] = np.zeros_like(reads[SHIPPED])
        reads[name][hands] = probabilities(restandardised(tm.model, x[pool], blend), x[hands])
    reads[TTA] = np.zeros_like(reads[SHIPPED])
    reads[TTA][hands] = view_probabilities(tm, kp.with_points(tm.spec.points).subset(hands))

    chosen = self_training_samples(reads[SHIPPED], labels, pool)
    ids = reads[SHIPPED][chosen].argmax(1)
    taken = [labels[i] for i in ids]
    reads[SELF_TRAINING] = reads[SHIPPED].copy()
    if len(chosen):
        tuned, emb = cell_tuning(person_of(recipe, protocol), Path(out), datasets_root, tm).tune(
            x[chosen], ids).probs_and_embedding(x[hands])
        full_emb = np.zeros((len(kp), emb.shape[1]))
        full_emb[hands] = emb
        reads[SELF_TRAINING][hands] = tuned
        adapter = Adapter(full_emb[chosen], taken, labels, method="tuned+knn")
        reads[SELF_TRAINING][hands] = adapter(reads[SELF_TRAINING][hands], emb)
    res = {name: score(p[test], det[test], truth[test], labels, letters) for name, p in reads.items()}
    res[SELF_TRAINING].update(self_samples=int(len(chosen)),
                              self_precision=float(np.mean(np.array(taken) == truth[chosen])) if len(chosen) else None)
    return res


def adaptation_table(rows: dict[str, dict[str, dict]], protos) -> list[str]:
    """Markdown: per method, the means over the protocols' test halves, the worst protocol, and the false letters."""
    return methods_table(rows, protos, METHODS, SHIPPED)


def protocol_table(rows: dict[str, dict[str, dict]], protos) -> list[str]:
    """Markdown: each protocol's test-half accuracy per method, and what self-training took."""
    lines = ["| protocol | " + " | ".join(METHODS) + " | self-training: hands taken, readings right |",
             "|---|" + "---:|" * (len(METHODS) + 1)]
    for p in protos:
        r = rows[p.slug]
        if "accuracy" not in r[SHIPPED]:
            continue
        st = r[SELF_TRAINING]
        right = f"{st['self_precision']:.1%}" if st["self_precision"] is not None else "-"
        lines.append(f"| {p.name} | " + " | ".join(f"{r[m]['accuracy']:.1%}" for m in METHODS) +
                     f" | {st['self_samples']}, {right} |")
    return lines


def run_adaptation(recipes: list[str], datasets_root, out: str | Path = "runs/new-people",
                   doc: str | Path | None = None, jobs: int = 1, progress: bool = True) -> str:
    head = ["# Adapting to a new person without labels", "",
            "Made by `fingerspell train adaptation --doc docs/results-adaptation.md` (training/adaptation_experiments.py "
            "says how each method works). For each new-people protocol, the model trained without those people "
            "adapts on half of their rows (unlabelled: photos at random, seed 0; webcam video by time, each "
            "letter's first half) and is tested on the other half: accuracy over all test images (no hand found "
            "counts as wrong); false letters: no-letter hands read as a letter with confidence >= 0.6. Kinder than live use: the "
            "adapt half holds every letter equally, and lis photos of one moment from its five cameras fall on both "
            "sides of the random split (near-duplicates).", ""]
    return protocol_tables(recipes, datasets_root, out, head, evaluate_protocol,
                           lambda rows, protos: [*adaptation_table(rows, protos), "", *protocol_table(rows, protos), ""],
                           doc, jobs, progress)
