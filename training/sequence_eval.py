"""``fingerspell eval-sequences``: the letter reader (held letters) beside the sequence reader, with and without a
lexicon, on stitched keypoint sequences (``fingerspell train stitch``) or held-photo ones (``--held-photos``: real
photos held still, as a video made from photos shows them).

Every reader sees the same frames as it would live: the landmarks of one frame at a time (no look-ahead), with
their times. The letter reader is the default live path after the hand detector (keypoint classifier, smoother,
speller; ``--lexicon`` rescores its words); the sequence reader is ``--reader sequence`` (and ``--lexicon``). Scores: character error rate (edit
distance over the reference length) and word accuracy (words right, where the word count matches).

Stitched sequences are synthetic (made from real people's hands); held-photo ones show real hands but no real
motion. The result names which (from the set's manifest); say so wherever the figures are quoted.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from realtime.hands import Hand
from training.sequence_model import FRAME, score_texts

READERS_EVALUATED = ("letters", "letters+lexicon", "sequence", "sequence+lexicon")


STITCHED_ARRAYS = ("landmarks", "detected", "t", "offsets", "text")  # what 'fingerspell train stitch' writes


def open_stitched(path: str | Path):
    """The arrays of a stitched set; any other file (a model's tuning.npz, a damaged one) is refused naming it,
    before the readers load, instead of failing later in numpy's words."""
    not_a_set = f"{path} is not a stitched sequence set (made by 'fingerspell train stitch')"
    try:
        z = np.load(path)
    except (ValueError, EOFError, zipfile.BadZipFile):
        raise ValueError(f"{not_a_set}: not a NumPy .npz archive") from None
    missing = [k for k in STITCHED_ARRAYS if k not in getattr(z, "files", ())]
    if missing:
        raise ValueError(f"{not_a_set}: it has no {', '.join(missing)} arrays")
    return z


def read_sequences(z):
    """(landmarks, detected, t, text) per sequence of a stitched set (:func:`open_stitched`)."""
    off = z["offsets"]
    for i, (a, b) in enumerate(zip(off[:-1], off[1:])):
        yield z["landmarks"][a:b], z["detected"][a:b], z["t"][a:b], str(z["text"][i])


def letter_probabilities(landmarks, detected, features, classifier) -> list:
    """One sequence's frames -> the letter classifier's probabilities per frame (None where no hand was found)."""
    return [classifier(features(Hand(lm.astype(np.float32), "Right", 1.0, FRAME))) if found else None
            for lm, found in zip(landmarks, detected)]


def spell(probs: list, t, labels: list[str], speller, smoothing_s: float) -> str:
    """One sequence's per-frame probabilities (None: no hand) and times through the letter reader's smoother and
    ``speller`` (a fresh one) -> the text it typed."""
    from realtime.pipeline import smooth_and_spell
    from realtime.speller import ProbabilitySmoother

    smoother = ProbabilitySmoother(smoothing_s)
    for p, ti in zip(probs, t):
        smooth_and_spell(p, float(ti), labels, smoother, speller)
    speller.finish()
    return speller.text.strip()


def letter_readers(model: str, lexicons: dict[str, str | None]):
    """A function (landmarks, detected, t) -> {name: text}: the live letter path after the hand detector, once per
    entry of ``lexicons`` (name -> word list or None). The classifier reads each sequence once; each reader spells
    its probabilities with its own speller (with ``--lexicon``, its words rescored against the list)."""
    from realtime.pipeline import PipelineOptions, build_classifier, make_speller

    options = {name: PipelineOptions(model=model, lexicon=lexicon) for name, lexicon in lexicons.items()}
    features, classifier = build_classifier(PipelineOptions(model=model))

    def read(landmarks, detected, t) -> dict[str, str]:
        probs = letter_probabilities(landmarks, detected, features, classifier)
        return {name: spell(probs, t, classifier.labels, make_speller(o, classifier.labels), o.smoothing_s)
                for name, o in options.items()}
    return read


def sequence_reader(model: str | None, lexicon: str | None):
    """A function (landmarks, detected, t) -> text: ``--reader sequence`` (with ``--lexicon``), a fresh stream each."""
    from realtime.features import FeatureExtractor
    from realtime.sequence_reader import DEFAULT_SEQUENCE_MODEL, SequenceReader

    reader = SequenceReader(model or DEFAULT_SEQUENCE_MODEL, lexicon=lexicon)
    features = FeatureExtractor(reader.spec)

    def read(landmarks, detected, t) -> str:
        reader.reset()
        for lm, found, ti in zip(landmarks, detected, t):
            reader.update(features(Hand(lm.astype(np.float32), "Right", 1.0, FRAME)) if found else None, float(ti))
        reader.finish()
        return reader.text.strip()
    return read


# alphabet -> (the letter reader's keypoint model, the sequence model): the shipped ones
DEFAULT_READERS = {"asl": ("asl-letters", "asl-sequence"), "lis": ("lis-letters", "lis-sequence")}


def evaluate_sequences(path: str | Path, readers=READERS_EVALUATED, model: str | None = None,
                       sequence_model: str | None = None, lexicon: str | None = None, limit: int | None = None,
                       progress: bool = True) -> dict:
    """Scores per reader on the stitched set at ``path``, and a few examples of what each read."""
    unknown = sorted(set(readers) - set(READERS_EVALUATED))
    if unknown:
        raise ValueError(f"unknown readers {unknown}; choose from {READERS_EVALUATED}")
    needs = [r for r in readers if r.endswith("+lexicon")]
    if needs and not lexicon:
        raise ValueError(f"the {' and '.join(needs)} reader{'s need' if len(needs) > 1 else ' needs'} --lexicon FILE")
    z = open_stitched(path)
    manifest = Path(path).with_suffix(".json")
    about = json.loads(manifest.read_text()) if manifest.is_file() else {}
    letters_default, sequence_default = DEFAULT_READERS.get(about.get("alphabet"), DEFAULT_READERS["asl"])
    model, sequence_model = model or letters_default, sequence_model or sequence_default  # the set's alphabet's
    letters = {name: lexicon if name == "letters+lexicon" else None for name in readers if name.startswith("letters")}
    read_letters = letter_readers(model, letters) if letters else None
    fns = {name: sequence_reader(sequence_model, lexicon if name == "sequence+lexicon" else None)
           for name in readers if name.startswith("sequence")}
    seqs = list(read_sequences(z))[:limit]
    got = {name: [] for name in readers}
    for lm, det, t, text in tqdm(seqs, desc="read sequences", unit="seq", disable=not progress):
        if read_letters:
            for name, typed in read_letters(lm, det, t).items():
                got[name].append((text, typed))
        for name, fn in fns.items():
            got[name].append((text, fn(lm, det, t)))
    return {"data": str(path), "models": {"letters": model, "sequence": sequence_model},
            "synthetic": about.get("synthetic", True),
            "what": about.get("what", "synthetic: stitched from real people's static hands"), "lexicon": lexicon,
            "readers": {name: {**score_texts(pairs), "examples": pairs[:5]} for name, pairs in got.items()}}
