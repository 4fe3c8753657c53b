"""Which MediaPipe hand model reads new people best: the lite one the live loop uses by default, or the full one
that made every training keypoint and every table (issue 14).

The keypoint cache, and so every model and every new-people figure, comes from the photo cascade with MediaPipe's
*full* hand models; ``fingerspell live`` tracks with the *lite* ones unless ``--hands-model full``. A model that
learned full-model landmarks may read lite-model landmarks worse: the tables would then overstate what a live user
gets. Here each new-people cell's model (trained without the people it reads, :mod:`training.new_people`) reads its
held-out photos twice: landmarks from the full models (as the tables) and from the lite ones (the same cascade of
views, ``StaticSettings(model="lite")``, cached apart). The landmark-only sets (webcam rows recorded by someone else)
cannot be read again and are left out.

    fingerspell train hand-model --recipes asl-v3,asl-v3-both,lis-v3,lis-v3-both --jobs 2 --doc docs/results-hand-model.md
"""
from __future__ import annotations

from pathlib import Path

from realtime.hands.base import StaticSettings
from training.new_people import cell_config, evaluate_trained, methods_table, protocol_tables, test_rows

MODELS = {"full hand model (training, tables)": "full", "lite hand model (live default)": "lite"}
BASELINE = next(iter(MODELS))


def is_photo_protocol(protocol, datasets_root) -> bool:
    from training.landmark_sets import is_landmark_set

    return not is_landmark_set(Path(datasets_root) / protocol.test_dataset)


def evaluate_protocol(recipe: str, protocol, datasets_root, out) -> dict[str, dict]:
    """Hand model -> :func:`training.new_people.score` of the protocol's held-out photos read with it ({} for a
    landmark-only set)."""
    if not is_photo_protocol(protocol, datasets_root):
        return {}
    run = Path(out) / recipe / protocol.slug
    cfg = cell_config(recipe, protocol, datasets_root, run)
    rows = {}
    for name, size in MODELS.items():
        kp = test_rows(protocol, datasets_root, settings=StaticSettings(model=size))
        if cfg.read_views is not None:
            kp = kp.found_by_first(cfg.read_views)
        rows[name] = evaluate_trained(run / "model.pt", kp)
    return rows


def hand_model_tables(rows: dict[str, dict[str, dict]], protos) -> list[str]:
    """Markdown: accuracy per hand model (means over signers and datasets held out, the worst protocol, false
    letters), then each protocol's accuracy and hands found."""
    photos = [p for p in protos if rows[p.slug]]
    lines = methods_table(rows, photos, list(MODELS), BASELINE, "accuracy, ")
    lines += ["", "| protocol | " + " | ".join(f"{m}: accuracy (hands found)" for m in MODELS) + " |",
              "|---|" + "---:|" * len(MODELS)]
    for p in photos:
        r = rows[p.slug]
        if "accuracy" in r[BASELINE]:
            lines.append(f"| {p.name} | " + " | ".join(f"{r[m]['accuracy']:.1%} ({r[m]['detection_rate']:.1%})"
                                                       for m in MODELS) + " |")
    return lines + [""]


def run_hand_model(recipes: list[str], datasets_root, out: str | Path = "runs/new-people",
                   doc: str | Path | None = None, jobs: int = 1, progress: bool = True) -> str:
    head = ["# Reading new people with the lite or the full hand model", "",
            "Made by `fingerspell train hand-model --recipes asl-v3,asl-v3-both,lis-v3,lis-v3-both --jobs 2 --doc "
            "docs/results-hand-model.md` "
            "(training/hand_model_experiments.py). Each new-people cell's model (trained on full-model landmarks, "
            "without the people it reads) reads its held-out photos with landmarks from MediaPipe's full hand models "
            "(as every other table) and from the lite ones (`fingerspell live`'s default), through the same photo "
            "cascade. Accuracy over all images (no hand found counts as wrong); false letters: hands that spell "
            "nothing typed as a letter. The landmark-only sets cannot be read again and are left out.", ""]
    return protocol_tables(recipes, datasets_root, out, head, evaluate_protocol, hand_model_tables, doc, jobs,
                           progress)

