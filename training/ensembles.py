"""Seed ensembles and test-time mirror images of a keypoint recipe, judged on the new-people protocols (issue 14:
"small ensembles or test-time flips only where the per-frame budget allows").

For each protocol the recipe is trained with seeds 0..N-1 (``RECIPE@SEED`` cells of :mod:`training.new_people`,
cached, so the seed-0 cell is the one of the new-people table), and its held-out people are read by

- the seed-0 model alone (the shipped recipe as it is);
- the mean probabilities of the first 2, 3, ... seeds' models (an ensemble costs one classifier run per member);
- the seed-0 model on the hand and on its mirror image (x reflected about the wrist, handedness swapped), averaged:
  a test-time flip costs a second run. Not for a model that mirrors left hands itself (``canonical``, as lis-v3):
  there the mirror image is the same input, so the row would only repeat the seed-0 one.

    fingerspell train ensembles --recipes asl-v3,lis-v3 --seeds 3 --jobs 2 --doc docs/results-ensembles.md
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from training.new_people import TorchModel, recipe_protocols, recipe_table, run_new_people, score, test_rows
from training.train_keypoints import NO_LETTER


def mirrored(kp):
    """The same hands seen in a mirror: x reflected about each wrist, handedness swapped."""
    out = kp.subset(np.arange(len(kp)))
    for name in ("landmarks", "world"):
        lm = getattr(out, name).copy()
        lm[..., 0] = 2 * lm[:, :1, 0] - lm[..., 0]
        setattr(out, name, lm)
    out.is_left = ~out.is_left
    return out


MIRROR = "seed 0 + mirror image"


def variants(seeds: int, mirror: bool) -> list[str]:
    return ["seed 0 alone"] + [f"ensemble of {k} seeds" for k in range(2, seeds + 1)] + ([MIRROR] if mirror else [])


def evaluate_protocol(recipe: str, protocol, seeds: int, datasets_root, out) -> dict[str, dict]:
    """Variant name -> :func:`training.new_people.score` on the protocol's held-out rows."""
    kp = test_rows(protocol, datasets_root)
    names = [recipe] + [f"{recipe}@{s}" for s in range(1, seeds)]
    models = [TorchModel(Path(out) / n / protocol.slug / "model.pt") for n in names]
    labels = models[0].labels
    letters = [label for label in labels if label != NO_LETTER]
    first, det = models[0].probabilities(kp)  # every seed reads the same points, so finds the same hands
    probs = [first] + [m.probabilities(kp)[0] for m in models[1:]]
    reads = {"seed 0 alone": probs[0]}
    reads.update({f"ensemble of {k} seeds": np.mean(probs[:k], axis=0) for k in range(2, seeds + 1)})
    if not models[0].spec.canonical:
        reads[MIRROR] = (probs[0] + models[0].probabilities(mirrored(kp))[0]) / 2
    truth = kp.labels.astype(str)
    return {name: score(p, det, truth, labels, letters) for name, p in reads.items()}


def run_ensembles(recipes: list[str], datasets_root, seeds: int = 3, out: str | Path = "runs/new-people",
                  doc: str | Path | None = None, jobs: int = 1, progress: bool = True) -> str:
    if seeds < 2:
        raise ValueError("an ensemble needs at least 2 seeds")
    if any("@" in r for r in recipes):
        raise ValueError("give the recipes without @SEED: their seeds are 0..--seeds-1")
    members = [f"{r}@{s}" if s else r for r in recipes for s in range(seeds)]
    results = run_new_people(members, datasets_root, out, jobs=jobs, progress=False)  # trains the cells that lack
    table = ["## Ensembles and mirror images", "",
             "Accuracy over all test images of people never seen (no hand found counts as wrong), means over the "
             "protocols; false letters: no-letter hands read as a letter with confidence >= 0.6. Per-frame cost: an "
             "ensemble of k runs the classifier k times, the mirror image twice.", ""]
    for recipe in recipes:
        protos = recipe_protocols(recipe, datasets_root)
        rows = {p.slug: evaluate_protocol(recipe, p, seeds, datasets_root, out) for p in protos}
        mirror = MIRROR in rows[protos[0].slug]
        loso = [p.slug for p in protos if p.test_signer]
        lodo = [p.slug for p in protos if not p.test_signer and "accuracy" in rows[p.slug]["seed 0 alone"]]
        none = [p.slug for p in protos if "false_letter_rate" in rows[p.slug]["seed 0 alone"]]
        head = ["signers held out (mean)", "datasets held out (mean)"] + \
               [f"false letters, {s.split('-', 1)[1]} held out" for s in none]
        table += [f"| {recipe} | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
        for v in variants(seeds, mirror):
            mean = lambda slugs: np.mean([rows[s][v]["accuracy"] for s in slugs]) if slugs else None  # noqa: E731
            cells = [f"{m:.1%}" if m is not None else "" for m in (mean(loso), mean(lodo))]
            cells += [f"{rows[s][v]['false_letter_rate']:.1%}" for s in none]
            table.append(f"| {v} | " + " | ".join(cells) + " |")
        if not mirror:
            table += ["", f"{recipe} mirrors left hands itself (canonical features), so a mirror image is the same "
                      "input: no test-time flip row."]
        table.append("")
    table += ["## Each seed alone (the spread an ensemble averages over)", "", recipe_table(results, members)]
    text = "\n".join(table)
    if doc:
        Path(doc).write_text(text)
    if progress:
        print(text)
    return text
