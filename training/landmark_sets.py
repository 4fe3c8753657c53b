"""Landmark-only datasets (a ``landmarks.csv`` of MediaPipe points, no images) read into a :class:`KeypointSet`.

Each such set was recorded its own way, so each has a declared :class:`LandmarkFormat` (from the
dataset's README) that turns its numbers back into what the keypoint cache holds for photos:
21x3 points in pixels of an unmirrored frame (z = MediaPipe's depth x frame width), the physical hand.

- ``asl_webcam_landmarks``: raw MediaPipe x, y in 0..1 of a mirrored (selfie) frame, probably 1280x720.
  Un-mirrored with x -> 1 - x, then scaled to pixels; it is the signer's right hand.
- ``lis_webcam_landmarks``: x and y min-max normalised over each hand, each axis on its own, so the hand's
  aspect is lost; z is raw. :func:`recover_aspect` fits the two lost axis scales per row so that the
  rigid palm (wrist and the four knuckles) has the shape of a reference palm measured on photos.
  Its ``source_split=test`` rows (an earlier pilot take of A, B and C) are left out: their labels disagree
  with the main take (see :data:`EXCLUDED` and :func:`take_agreement`).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.manifest import sha256_file
from training.keypoint_set import KeypointSet

LANDMARKS_FILE = "landmarks.csv"
PALM = (0, 1, 5, 9, 13, 17)  # wrist, thumb CMC and the four knuckles: a near-rigid set
BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (5, 6), (6, 7), (7, 8), (9, 10), (10, 11), (11, 12), (13, 14), (14, 15),
         (15, 16), (17, 18), (18, 19), (19, 20))
# distances whose ratios barely change between people and handshapes: the palm's, and each finger bone's length
PALM_PAIRS = tuple(sorted({(a, b) for i, a in enumerate(PALM) for b in PALM[i + 1:]} | set(BONES)))


@dataclass(frozen=True)
class LandmarkFormat:
    """How a landmark-only dataset stored its points (see each dataset's README)."""

    mirrored: bool  # the frame was flipped (selfie view) before MediaPipe
    frame: tuple[int, int] | None  # (width, height) of the camera frame, if known
    per_hand_minmax: bool  # x and y were min-max normalised over each hand (aspect lost)
    hand: str = "right"  # the physical hand recorded
    excluded_splits: tuple[str, ...] = ()  # source_split values left out (each with its reason in EXCLUDED)


# Why a take is left out. Checked by tests/test_landmark_sets.py with take_agreement() on the real file.
EXCLUDED = {
    ("lis_webcam_landmarks", "test"): (
        "the pilot take of A, B and C is labelled inconsistently with the main take of the same recording: the "
        "nearest main-take hand of 91% of the pilot 'A' rows is a B, of 97% of the pilot 'B' rows an A, and the "
        "pilot 'C' rows are nearest to U and V; the LIS model trained without this person reads them as W, A and "
        "V, while it reads the main take's A, B and C as A, B and C (100%, 88%, 100%). "
        "Kept, they would teach and test A, B and C with the wrong handshapes."),
}

FORMATS = {
    "asl_webcam_landmarks": LandmarkFormat(mirrored=True, frame=(1280, 720), per_hand_minmax=False),
    "lis_webcam_landmarks": LandmarkFormat(mirrored=False, frame=None, per_hand_minmax=True,
                                           excluded_splits=("test",)),
}
RECOVERED_SIZE = 1000.0  # lis_webcam_landmarks: points are placed in a notional frame this wide


def is_landmark_set(root: str | Path) -> bool:
    return (Path(root) / LANDMARKS_FILE).is_file()


def content_hash(root: str | Path) -> str:
    """sha256 of the landmarks file: what training records, and a changed file never reuses a stale run."""
    return sha256_file(Path(root) / LANDMARKS_FILE)


def _palm_distances(lm: np.ndarray) -> np.ndarray:
    """(..., 21, 3) -> (..., len(PALM_PAIRS)) 3-D distances between palm joints."""
    a = lm[..., [p for p, _ in PALM_PAIRS], :]
    b = lm[..., [q for _, q in PALM_PAIRS], :]
    return np.linalg.norm(a - b, axis=-1)


def reference_palm(landmarks: np.ndarray) -> np.ndarray:
    """Median palm-distance profile (scale removed) of real hands in pixel coordinates."""
    d = _palm_distances(landmarks.astype(np.float64))
    d = d / d.mean(-1, keepdims=True)
    return np.nanmedian(d, axis=0)


def recover_aspect(norm: np.ndarray, reference: np.ndarray, grid: int = 41) -> np.ndarray:
    """Undo a per-hand, per-axis min-max of x and y: (N, 21, 3) with x, y in 0..1 and raw z ->
    points in a notional frame :data:`RECOVERED_SIZE` wide.

    The box width ``a`` and height ``b`` (as fractions of the frame width, which is z's unit) are searched on
    a log grid; the pair whose palm and bone lengths match ``reference`` best (scale-free log distances) wins.
    Checked on photos min-max normalised the same way (tests/test_landmark_sets.py): the recovered aspect is off
    by a median 27% (p90 2x), against the hand's true aspect; an approximation, not a reconstruction.
    """
    norm = np.asarray(norm, np.float64)
    widths = np.exp(np.linspace(np.log(0.02), np.log(0.8), grid))
    a, b = np.meshgrid(widths, widths, indexing="ij")  # (grid, grid)
    best_cost = np.full(len(norm), np.inf)
    best = np.zeros((len(norm), 2))
    log_ref = np.log(reference)
    for i in range(grid):
        for j in range(grid):
            lm = norm * np.array([a[i, j], b[i, j], 1.0])
            ld = np.log(np.maximum(_palm_distances(lm), 1e-9)) - log_ref
            cost = ((ld - ld.mean(-1, keepdims=True)) ** 2).sum(-1)
            better = cost < best_cost
            best_cost[better] = cost[better]
            best[better] = (a[i, j], b[i, j])
    return norm * np.concatenate([best, np.ones((len(norm), 1))], axis=1)[:, None, :] * RECOVERED_SIZE


def read_landmark_set(root: str | Path, reference: np.ndarray | None = None, keep_excluded: bool = False):
    """A landmark-only dataset folder -> :class:`training.keypoint_set.KeypointSet` (every row detected), without
    the takes its format excludes (``keep_excluded``: with them, to check why they are excluded)."""
    root = Path(root).expanduser().resolve()
    fmt = FORMATS.get(root.name)
    if fmt is None:
        raise ValueError(f"{root}: landmark-only dataset of unknown format; declare how its points were recorded "
                         f"in training.landmark_sets.FORMATS (known: {', '.join(FORMATS)})")
    with open(root / LANDMARKS_FILE, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{root / LANDMARKS_FILE} has no rows")
    if not keep_excluded:
        rows = [r for r in rows if (r.get("source_split") or "") not in fmt.excluded_splits]
    n = len(rows)
    lm = np.array([[float(r[f"{c}{j}"]) for j in range(21) for c in "xyz"] for r in rows], np.float64).reshape(n, 21, 3)
    if fmt.mirrored:
        lm[..., 0] = 1.0 - lm[..., 0]
    if fmt.per_hand_minmax:
        lm = recover_aspect(lm, REFERENCE if reference is None else reference)
        size = (RECOVERED_SIZE, RECOVERED_SIZE)
    else:
        w, h = fmt.frame
        lm = lm * np.array([w, h, w])
        size = fmt.frame
    labels = np.array([r["label"] for r in rows])
    signers = np.array([r.get("signer") or "" for r in rows])
    # consecutive rows are near-duplicate frames: keep the row number so splits can work on blocks
    rel = np.array([f"{LANDMARKS_FILE}#{i}" for i in range(n)])
    return KeypointSet(dataset=np.array([root.name] * n), rel=rel, labels=labels, signers=signers,
                       source_splits=np.array([r.get("source_split") or "" for r in rows]),
                       landmarks=lm.astype(np.float32), is_left=np.full(n, fmt.hand == "left"),
                       hand_score=np.ones(n, np.float32), detected=np.ones(n, bool), readable=np.ones(n, bool),
                       image_size=np.tile(np.array(size, np.int32), (n, 1)))


def take_agreement(kp, take: str, main: str = "train") -> dict[str, dict[str, float]]:
    """For each label of ``take``: the share of its rows whose nearest ``main``-take row (scale-free 3-D
    landmarks about the wrist) carries each label. A consistently labelled take points mostly at its own label."""
    def norm(lm):
        x = lm - lm[:, :1]
        return (x / np.linalg.norm(x, axis=(1, 2), keepdims=True)).reshape(len(x), -1)

    splits = kp.source_splits.astype(str)
    ref, ref_labels = norm(kp.landmarks[splits == main].astype(np.float64)), kp.labels[splits == main]
    out = {}
    for label in np.unique(kp.labels[splits == take]):
        q = norm(kp.landmarks[(splits == take) & (kp.labels == label)].astype(np.float64))
        d2 = (q ** 2).sum(1)[:, None] + (ref ** 2).sum(1)[None] - 2 * q @ ref.T
        nearest = ref_labels[d2.argmin(1)]
        values, counts = np.unique(nearest, return_counts=True)
        out[str(label)] = {str(v): float(c / len(q)) for v, c in zip(values, counts)}
    return out


# The median scale-free profile of PALM_PAIRS distances on the cached keypoints of massey + roboflow + kaggle_asl,
# measured once with:
#   python -c "from training.keypoints import KeypointSet, load_keypoints; from training.landmark_sets import *;
#     kp = KeypointSet.concat([load_keypoints(f'$FINGERSPELL_DATASETS/{d}') for d in ('massey', 'roboflow', 'kaggle_asl')]);
#     print(reference_palm(kp.landmarks[kp.detected]))"
REFERENCE = np.array([
    0.9012, 2.1115, 2.0066, 1.8944, 1.8139, 0.8488, 1.5951, 1.6824, 1.7589, 1.875, 0.7463, 0.6158, 0.879, 0.5232,
    1.0022, 1.488, 0.5802, 0.4681, 0.9175, 0.4955, 1.0024, 0.667, 0.4873, 0.8042, 0.5147, 0.6446, 0.4673, 0.6577,
    0.4695, 0.3892])
