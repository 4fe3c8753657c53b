"""Hands that spell nothing, told apart from letters by how unlike every learned letter they are (issue 14).

The live reader types a letter when the hand is held and the reading's confidence is at least 0.6. A hand shape
the model never learned (a digit, a half-formed letter) still gets a confident reading a quarter to a third of the
time. Two ways to say "none of these", each measured on the new-people protocols (:mod:`training.new_people`: the
model trained without the people or dataset it is tested on) against the reader as shipped:

- **a higher confidence threshold** (0.8, 0.9): what the speller's ``--min-confidence`` already offers;
- **distance to the learned letters** (Mahalanobis, Lee et al. 2018): in the classifier's penultimate features
  (the ``embedding`` output the shipped models export), one mean per class and one covariance shared by all,
  from the model's own training rows; a hand farther from its nearest class than ``q`` of the model's held-back
  validation rows are (q = 95%, 99%, 99.9%: chosen before any test, from the model's own data) is not read.

A letter that is not read counts as wrong (nothing is typed); a no-letter hand that is not read, or read with
less than the threshold, counts as right. Accuracy here is therefore "letters typed right": a letter read with
confidence below the threshold is not typed, and counts as wrong, unlike the plain accuracy of docs/results.md.

    fingerspell train rejection --doc docs/results-rejection.md
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from realtime.letter_distance import DISTANCE_FILE, LetterDistance
from training.new_people import methods_table, TYPED_CONFIDENCE, TorchModel, cell_config, protocol_tables, score, test_rows
from training.train_keypoints import NO_LETTER

SHIPPED = f"as shipped (confidence >= {TYPED_CONFIDENCE:g})"
CONFIDENCE = {"confidence >= 0.8": 0.8, "confidence >= 0.9": 0.9}
DISTANCE = {"distance, 99.9% of validation": 0.999, "distance, 99% of validation": 0.99,
            "distance, 95% of validation": 0.95}
METHODS = (SHIPPED, *CONFIDENCE, *DISTANCE)


def evaluate_protocol(recipe: str, protocol, datasets_root, out) -> dict[str, dict]:
    """Method -> :func:`training.new_people.score` of the protocol's held-out rows, with each method's unread hands
    counted as not found (nothing typed) and, for every method, a letter typed only from its confidence threshold
    up."""
    from training.train_keypoints import prepare_data

    run = Path(out) / recipe / protocol.slug
    tm = TorchModel(run / "model.pt")
    labels = tm.labels
    letters = [label for label in labels if label != NO_LETTER]
    cfg = cell_config(recipe, protocol, datasets_root, run)
    data = prepare_data(cfg, progress=False)
    _, _, train_emb = tm.run(data.kp.subset(data.train))
    _, _, val_emb = tm.run(data.kp.subset(data.val))
    distance = LetterDistance.fit(train_emb, data.y[data.train], val_emb)
    val_d = distance(val_emb)

    kp = test_rows(protocol, datasets_root)
    if cfg.read_views is not None:
        kp = kp.found_by_first(cfg.read_views)
    truth = kp.labels.astype(str)
    probs, det = tm.probabilities(kp)
    hands = np.flatnonzero(det)
    d = np.full(len(kp), np.inf)
    if len(hands):
        d[hands] = distance(tm.run(kp.with_points(tm.spec.points).subset(hands))[2])
    conf = probs.max(1)
    read = {SHIPPED: det & (conf >= TYPED_CONFIDENCE)}
    read.update({name: det & (conf >= t) for name, t in CONFIDENCE.items()})
    read.update({name: read[SHIPPED] & (d <= np.quantile(val_d, q)) for name, q in DISTANCE.items()})
    return {name: score(probs, typed, truth, labels, letters) for name, typed in read.items()}


def rejection_table(rows: dict[str, dict[str, dict]], protos) -> list[str]:
    """Markdown: per method, letters typed right (means over signers and over datasets held out, the worst
    protocol) and the false-letter rate of each protocol with no-letter hands."""
    return methods_table(rows, protos, METHODS, SHIPPED, "letters typed right, ")


def protocol_table(rows: dict[str, dict[str, dict]], protos) -> list[str]:
    """Markdown: each protocol's letters typed right per method."""
    lines = ["| protocol | " + " | ".join(METHODS) + " |", "|---|" + "---:|" * len(METHODS)]
    for p in protos:
        r = rows[p.slug]
        if "accuracy" in r[SHIPPED]:
            lines.append(f"| {p.name} | " + " | ".join(f"{r[m]['accuracy']:.1%}" for m in METHODS) + " |")
    return lines


def run_rejection(recipes: list[str], datasets_root, out: str | Path = "runs/new-people",
                  doc: str | Path | None = None, jobs: int = 1, progress: bool = True) -> str:
    head = ["# Not typing hands that spell nothing", "",
            "Made by `fingerspell train rejection --doc docs/results-rejection.md` (training/rejection_experiments.py "
            "says how each method works). For each new-people protocol, the model trained without those people reads "
            "their held-out rows. Letters typed right: the letter read, not rejected, with at least the method's "
            "confidence (no hand found, a rejection or a lower confidence count as wrong). False letters: hands "
            "that spell nothing (digits 3/5/7/8, kaggle_asl's del and space) typed as a letter.", ""]
    return protocol_tables(recipes, datasets_root, out, head, evaluate_protocol,
                           lambda rows, protos: [*rejection_table(rows, protos), "", *protocol_table(rows, protos), ""],
                           doc, jobs, progress)


def make_letter_distance(model: str | Path, preset: str, datasets_root, quantile: float = 0.99,
                         progress: bool = True) -> dict:
    """``distance.npz`` beside a shipped keypoint model (:mod:`realtime.letter_distance`): class means and shared
    covariance of the model's own embeddings of its training hands, the threshold from its validation hands (the
    split of ``preset``'s recipe, checked against the one the manifest records), and the manifest entry."""
    from realtime.classifier import OnnxClassifier
    from realtime.manifest import resolve_model, write_manifest
    from training.experiments import preset as preset_config
    from training.train_keypoints import prepare_data

    folder = resolve_model(model)
    clf = OnnxClassifier(folder, device="cpu")
    if not clf.has_embedding:
        raise ValueError(f"{folder}: the model exports no embedding output; export it again")
    cfg = preset_config(preset, datasets_root, f"runs/{preset}")
    data = prepare_data(cfg, progress=progress)
    counts = {"train": int(len(data.train)), "val": int(len(data.val))}
    recorded = (clf.manifest.raw.get("training") or {}).get("counts", {})
    if any(recorded.get(k) != v for k, v in counts.items()):
        raise ValueError(f"{folder}: the --preset {preset} split ({counts}) is not the one the model was trained with "
                         f"({recorded}): the datasets or the recipe changed")
    if list(cfg.labels) != list(clf.labels):
        raise ValueError(f"{folder}: the preset's labels {cfg.labels} are not the model's {clf.labels}")

    def embed(rows):
        x = np.nan_to_num(data.kp.subset(rows).features(clf.spec)).astype(np.float32)
        return np.concatenate([clf.probs_and_embedding(x[i:i + 4096])[1] for i in range(0, len(x), 4096)])

    dist = LetterDistance.fit(embed(data.train), data.y[data.train], embed(data.val), quantile)
    path = dist.save(folder / DISTANCE_FILE)
    raw = path.read_bytes()
    import hashlib

    entry = {"file": DISTANCE_FILE, "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw),
             "quantile": quantile, "threshold": dist.threshold, "classes": int(len(dist.means)),
             "meaning": "class means and the inverse shared covariance of the model's embeddings of its training "
                        "hands, and the squared Mahalanobis distance beyond which --reject-far-hands reads a hand as "
                        f"no letter ({quantile:.1%} of its validation hands are nearer)",
             "command": f"fingerspell train letter-distance --model {model} --preset {preset} --quantile {quantile}"}
    write_manifest(folder, {**clf.manifest.raw, "distance": entry})
    return entry
