"""Which letters two manual alphabets share, measured rather than assumed: a model of one alphabet that never saw
the other's data reads the other's photos; a letter whose photos it reads as the same letter most of the time has the
same handshape (as MediaPipe's landmarks show it) in both.

The ``lis-v3-asl`` recipes (training/experiments.py ``SHARED_WITH_ASL``) took the ASL datasets' photos of the letters
the shipped ``lis-letters`` (trained on lis and lis_webcam_landmarks only) reads as themselves in at least half of them,
averaged over the four ASL letter datasets:

    python -m training.shared_letters --model lis-letters --datasets massey,roboflow,kaggle_asl,asl_webcam_landmarks
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

AGREEMENT = 0.5  # the mean same-letter rate above which a letter counts as shared


def same_letter_rates(model: str, datasets_root: str | Path, datasets: list[str]) -> dict[str, dict[str, float]]:
    """Letter -> dataset -> the fraction of that dataset's hands of the letter that ``model`` (a shipped keypoint
    classifier, name or folder) reads as the same letter; only letters both the model and the dataset have."""
    from realtime.classifier import OnnxClassifier
    from training.keypoints import load_keypoints

    clf = OnnxClassifier(model)
    labels = list(clf.manifest.labels)
    out: dict[str, dict[str, float]] = {}
    for name in datasets:
        kp = load_keypoints(Path(datasets_root) / name, progress=False)
        kp = kp.subset(np.flatnonzero(kp.readable & kp.detected & np.isin(kp.labels, labels)))
        if not len(kp):
            continue
        read = np.array(labels)[clf(kp.features(clf.spec)).argmax(1)]
        for letter in sorted(set(kp.labels.astype(str))):
            rows = kp.labels == letter
            out.setdefault(letter, {})[name] = float((read[rows] == letter).mean())
    return out


def shared(rates: dict[str, dict[str, float]], agreement: float = AGREEMENT) -> list[str]:
    """The letters whose mean same-letter rate over the datasets is at least ``agreement``."""
    return sorted(letter for letter, by in rates.items() if np.mean(list(by.values())) >= agreement)


def rates_table(rates: dict[str, dict[str, float]], datasets: list[str]) -> str:
    lines = ["| letter | " + " | ".join(datasets) + " | mean | shared |", "|---|" + "---:|" * (len(datasets) + 2)]
    for letter, by in sorted(rates.items()):
        mean = float(np.mean(list(by.values())))
        cells = [f"{by[d]:.0%}" if d in by else "" for d in datasets]
        lines.append(f"| {letter} | " + " | ".join(cells) + f" | {mean:.0%} | {'yes' if mean >= AGREEMENT else 'no'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from realtime.cli_common import ENV_DATASETS, datasets_root

    ap = argparse.ArgumentParser(description="Which letters of one alphabet a model of another reads as themselves.")
    ap.add_argument("--model", default="lis-letters", help="keypoint classifier, name or folder (default: %(default)s)")
    ap.add_argument("--datasets", default="massey,roboflow,kaggle_asl,asl_webcam_landmarks",
                    help="comma-separated datasets of the other alphabet (default: %(default)s)")
    ap.add_argument("--root", help=f"folder holding the datasets (default: ${ENV_DATASETS})")
    args = ap.parse_args(argv)
    names = [d for d in args.datasets.split(",") if d]
    rates = same_letter_rates(args.model, datasets_root(args.root), names)
    print(rates_table(rates, names))
    print("shared:", ", ".join(shared(rates)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
