"""How the letter reader's word list weighs its evidence (realtime/lexicon.py ``EXTRA_LETTER``, ``MISSED_LETTER``,
``LETTER_BONUS``), chosen on validation sets, never on the test people: held-photo words and strings of NOOR, read by
the LIS letter model trained without NOOR. Each setting is scored on the words (should rise) and on the strings
outside the list (should not fall: a name must still be spelled as signed).

    fingerspell export --checkpoint runs/new-people/lis-v3/lis-lis-NOOR/model.pt --out runs/models/lis-v3-without-noor
    fingerspell train stitch --alphabet lis --only-signers lis/NOOR --held-photos --words realtime/wordlists/it.txt \\
        --count 100 --seed 20 --out runs/stitched-lis/photos-words-val.npz
    fingerspell train stitch --alphabet lis --only-signers lis/NOOR --held-photos --count 100 --seed 22 \\
        --out runs/stitched-lis/photos-strings-val.npz
    python -m training.lexicon_choice --doc docs/lexicon-choice.md        # 1 minute: the table of settings
"""
from __future__ import annotations

import argparse
import itertools


SETTINGS = {"extra": (0.002, 0.005, 0.02), "missed": (0.2, 0.5), "bonus": (3.0, 4.5, 6.0, 9.0)}


def frame_probabilities(path, model: str) -> tuple[list, list[str]]:
    """(per sequence: (per-frame probabilities or None, times, text), labels): the classifier run once per frame."""
    from realtime.pipeline import PipelineOptions, build_classifier
    from training.sequence_eval import letter_probabilities, open_stitched, read_sequences

    features, classifier = build_classifier(PipelineOptions(model=model))
    seqs = [(letter_probabilities(lm, det, features, classifier), t, text)
            for lm, det, t, text in read_sequences(open_stitched(path))]
    return seqs, classifier.labels


def read_all(seqs, labels, words: str | None, extra=0.0, missed=0.0, bonus=0.0) -> dict:
    """CER and word accuracy of the letter reader (with ``words``: the word list at these settings)."""
    from realtime.pipeline import PipelineOptions, make_speller
    from training.sequence_eval import spell
    from training.sequence_model import score_texts

    options = PipelineOptions(lexicon=words)
    pairs = []
    for probs, t, text in seqs:
        speller = make_speller(options, labels)
        if words:  # the settings under test, on this speller alone
            speller.lexicon.bonus = bonus
            speller.extra_letter, speller.missed_letter = extra, missed
        pairs.append((text, spell(probs, t, labels, speller, options.smoothing_s)))
    return score_texts(pairs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="The letter reader's word-list settings on validation sets.")
    ap.add_argument("--words-set", default="runs/stitched-lis/photos-words-val.npz", help="held-photo words (.npz)")
    ap.add_argument("--strings-set", default="runs/stitched-lis/photos-strings-val.npz",
                    help="held-photo strings outside the list (.npz)")
    ap.add_argument("--model", default="runs/models/lis-v3-without-noor", help="letter model that never saw them")
    ap.add_argument("--lexicon", default="realtime/wordlists/it.txt", help="the word list")
    ap.add_argument("--doc", help="also write the table to this markdown file")
    args = ap.parse_args(argv)
    sets = {name: frame_probabilities(path, args.model) for name, path in
            (("words", args.words_set), ("strings", args.strings_set))}
    base = {name: read_all(seqs, labels, None) for name, (seqs, labels) in sets.items()}
    lines = ["# The letter reader's word list: settings on validation sets", "",
             f"`python -m training.lexicon_choice` (training/lexicon_choice.py): {args.words_set} and {args.strings_set}"
             f" read by {args.model}, word list {args.lexicon}. CER and words read right.", "",
             "| extra | missed | bonus | words: CER / right | strings: CER / right |", "|---:|---:|---:|---:|---:|",
             f"| no list | | | {base['words']['cer']:.1%} / {base['words']['word_accuracy']:.1%} | "
             f"{base['strings']['cer']:.1%} / {base['strings']['word_accuracy']:.1%} |"]
    print("\n".join(lines))
    for extra, missed, bonus in itertools.product(*SETTINGS.values()):
        r = {name: read_all(seqs, labels, args.lexicon, extra, missed, bonus) for name, (seqs, labels) in sets.items()}
        lines.append(f"| {extra:g} | {missed:g} | {bonus:g} | {r['words']['cer']:.1%} / "
                     f"{r['words']['word_accuracy']:.1%} | {r['strings']['cer']:.1%} / "
                     f"{r['strings']['word_accuracy']:.1%} |")
        print(lines[-1], flush=True)
    if args.doc:
        from training.io import atomic_write_text

        atomic_write_text(args.doc, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
