"""Paper 002's comparison on the data we have (issue 17): a sequence reader trained on synthetic stitched motion
only, on "real" sequences only, on both at once (joint), and pre-trained on synthetic then fine-tuned on real.

No real fingerspelling video exists in the datasets. The closest real sequences are held-photo ones
(:func:`training.stitching.hold_photos`: real people's hands, each letter one photo held still, cut to the next),
so they stand in for the real data here, and the result says so: they teach real hand shapes held still, never
real motion between letters.

Every set is built from the shipped recipe's datasets without massey hand1 and hand2. Model selection (the best
epoch) uses hand2's sequences, the test uses hand1's, whom no model saw:

- stitched strings of hand1 (synthetic motion);
- held photos of hand1, list words and generated strings (real hands, no motion).

    fingerspell train sequence-compare --doc docs/sequence-compare.md      # about 17 minutes on 2 cores
"""
from __future__ import annotations

import json
from pathlib import Path

from realtime.cli_common import datasets_root as default_datasets_root

HELD_OUT = ("massey/hand1", "massey/hand2")
VAL_SIGNER, TEST_SIGNER = "massey/hand2", "massey/hand1"
WORDS = Path(__file__).resolve().parents[1] / "realtime" / "wordlists" / "en.txt"

# set name -> (signers: "train" = all but HELD_OUT, or one held-out signer; held photos?; word list?; count; seed)
SETS = {
    "stitched-train": ("train", False, False, 1500, 0),
    "photos-train": ("train", True, False, 1500, 10),
    "stitched-val": (VAL_SIGNER, False, False, 100, 11),
    "photos-val": (VAL_SIGNER, True, False, 100, 12),
    "stitched-test": (TEST_SIGNER, False, False, 150, 13),
    "photos-words-test": (TEST_SIGNER, True, True, 150, 14),
    "photos-strings-test": (TEST_SIGNER, True, False, 150, 15),
}
TESTS = {"stitched-test": "stitched strings (synthetic motion)", "photos-words-test": "held photos, list words",
         "photos-strings-test": "held photos, generated strings"}
# variant -> (training sets, the variant it starts from, epochs, peak learning rate)
VARIANTS = {
    "synthetic only": (("stitched-train",), None, 12, 2e-3),
    "held photos only": (("photos-train",), None, 12, 2e-3),
    "joint": (("stitched-train", "photos-train"), None, 12, 2e-3),
    "pre-trained, fine-tuned": (("photos-train",), "synthetic only", 6, 5e-4),
}


def build_sets(out: Path, datasets_root, progress: bool = True) -> dict[str, Path]:
    """Every set of :data:`SETS` under ``out``/sets (kept: built once)."""
    from realtime.lexicon import Lexicon
    from training.experiments import RECIPES
    from training.keypoints import load_keypoints
    from training.stitching import LetterDictionary, write_set
    from training.train_keypoints import ASL_LETTERS

    root = Path(datasets_root)
    paths = {name: out / "sets" / f"{name}.npz" for name in SETS}
    def built(p: Path) -> bool:  # the manifest is written after the arrays: both, or the set is made again
        return p.exists() and p.with_suffix(".json").exists()

    if all(built(p) for p in paths.values()):
        return paths
    sets = [load_keypoints(root / d, progress=progress) for d in RECIPES["asl-v3"][0]]
    full = LetterDictionary.from_keypoints("asl", sets, ASL_LETTERS)
    everyone = {str(s) for v in full.signers.values() for s in v}
    words = Lexicon.load(WORDS, ASL_LETTERS).words
    for name, (who, held, use_words, count, seed) in SETS.items():
        if built(paths[name]):
            continue
        d = full.without(set(HELD_OUT)) if who == "train" else full.without(everyone - {who})
        write_set(paths[name], "asl", d, count, seed=seed, progress=False, held_photos=held,
                  words=words if use_words else None, command=f"training.sequence_experiments {name}")
    return paths


def run_compare(datasets_root=None, out: str | Path = "runs/sequence-compare", doc: str | Path | None = None,
                progress: bool = True) -> dict:
    """Train every variant (resumable), score each on every test set; write the table to ``doc``."""
    from training.sequence_model import (SequenceConfig, load_set, load_trained_sequence, score, set_letters,
                                         train_sequence)

    out = Path(out)
    paths = build_sets(out, datasets_root or default_datasets_root(None), progress)
    letters = set_letters([paths["stitched-train"], paths["photos-train"]])
    val = [paths["stitched-val"], paths["photos-val"]]
    tests = {name: load_set(paths[name])[:2] for name in TESTS}
    results = {}
    for variant, (train, start, epochs, lr) in VARIANTS.items():
        run = out / variant_folder(variant)
        init = out / variant_folder(start) / "model.pt" if start else None
        config = SequenceConfig(alphabet=letters, epochs=epochs, lr=lr)
        if not (run / "metrics.json").exists():
            if progress:
                print(f"{variant}: training on {', '.join(train)}" + (f", starting from {start}" if start else ""))
            train_sequence([paths[t] for t in train], val, run, config, progress=progress, init=init)
        model = load_trained_sequence(run / "model.pt")
        results[variant] = {name: score(model, feats, texts) for name, (feats, texts) in tests.items()}
        results[variant]["best_epoch"] = json.loads((run / "metrics.json").read_text())["best"]["epoch"]
    (out / "results.json").write_text(json.dumps(results, indent=1))
    table = compare_table(results)
    if doc:
        Path(doc).write_text(table)
    if progress:
        print(table)
    return results


def variant_folder(variant: str) -> str:
    """The folder a variant's run is kept in."""
    return variant.replace(" ", "-").replace(",", "")


def compare_table(results: dict) -> str:
    lines = ["Character error rate / word accuracy on massey hand1, whom no model saw (greedy decoding; streaming "
             "reads the same). The best epoch of each run was chosen on hand2's stitched and held-photo sequences. "
             "\"Real\" here is held photos: real hands held still, no real motion (no fingerspelling video exists in "
             "the datasets).", "",
             "| training | " + " | ".join(TESTS.values()) + " |", "|---|" + "---:|" * len(TESTS)]
    for variant, r in results.items():
        cells = [f"{r[t]['cer']:.1%} / {r[t]['word_accuracy']:.1%}" for t in TESTS]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
