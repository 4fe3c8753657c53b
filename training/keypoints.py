"""Run MediaPipe over a dataset once and cache the landmarks.

Per image the cache keeps the 21x3 landmarks in the image's pixels (and MediaPipe's metric world landmarks), the
physical handedness
and its score, whether a hand was found and by which view of the photo cascade (training learns only from hands the
first ``realtime.hands.TRAINING_VIEWS`` views found), whether the file could be read, and the image size.
The cache file name carries a key made of the dataset's content hash (manifest rows and file
sizes) and the detector settings, so a changed dataset or setting never reuses stale points.
Extraction saves a partial file every few hundred images; run it again and it resumes.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from realtime.hands import StaticSettings
from realtime.images import ImageFolder
from training.io import atomic_savez
from training.keypoint_set import KeypointSet
from training.landmark_sets import is_landmark_set, read_landmark_set

FORMAT_VERSION = 3  # 2: world landmarks kept too; 3: which view of the cascade found the hand
CACHE_ENV = "FINGERSPELL_CACHE"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "fingerspell")) / "keypoints"


def extraction_record(settings: StaticSettings = StaticSettings()) -> dict:
    """What cached landmarks come from, besides the data: the detector settings and the cache format."""
    return {"settings": settings.to_dict(), "format": FORMAT_VERSION}


def cache_key(dataset: ImageFolder, settings: StaticSettings) -> str:
    payload = json.dumps({"data": dataset.content_hash(), **extraction_record(settings)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# --- worker side -------------------------------------------------------------------------
_detector = None


def _init_worker(settings_dict: dict) -> None:
    global _detector
    from realtime.hands import StaticHandDetector

    views = tuple(tuple(v) for v in settings_dict["views"])
    settings = StaticSettings(settings_dict["model"], settings_dict["min_detection"], settings_dict["min_side"], views,
                              settings_dict["max_hands"])
    _detector = StaticHandDetector(settings)


def _process(item: tuple[int, str]):
    from realtime.images import read_image

    i, path = item
    img = read_image(path)
    if img is None:
        return i, False, False, None, None, False, 0.0, 0, 0, -1
    h, w = img.shape[:2]
    try:
        hands, view = _detector.detect_with_view(img)
    except Exception:  # a frame MediaPipe chokes on is a miss, not a crash
        hands, view = [], -1
    if not hands:
        return i, True, False, None, None, False, 0.0, w, h, -1
    hand = hands[0]
    return i, True, True, hand.landmarks, hand.world, hand.is_left, hand.score, w, h, view


# --- driver ------------------------------------------------------------------------------

def extract_keypoints(dataset: ImageFolder, cache_dir: str | os.PathLike | None = None,
                      settings: StaticSettings = StaticSettings(), workers: int | None = None,
                      save_every: int = 500, progress: bool = True, limit: int | None = None) -> KeypointSet:
    """Landmarks for every sample of ``dataset``, from the cache when it is current.

    ``limit`` stops early after that many new images (for tests of resumption); the partial
    file stays and the next call continues from it.
    """
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(dataset, settings)
    final = cache_dir / f"{dataset.name}-{key}.npz"
    partial = cache_dir / f"{dataset.name}-{key}.partial.npz"
    n = len(dataset)
    meta = dict(
        dataset=np.array([dataset.name] * n),
        rel=np.array([s.rel for s in dataset.samples]),
        labels=np.array([s.label for s in dataset.samples]),
        signers=np.array([s.signer for s in dataset.samples]),
        source_splits=np.array([s.source_split for s in dataset.samples]),
    )
    if final.exists():
        with np.load(final) as z:
            return KeypointSet(**meta, **{f: z[f] for f in KeypointSet.FIELDS[5:]})

    arrays = dict(landmarks=np.full((n, 21, 3), np.nan, np.float32), is_left=np.zeros(n, bool),
                  hand_score=np.zeros(n, np.float32), detected=np.zeros(n, bool), readable=np.zeros(n, bool),
                  image_size=np.zeros((n, 2), np.int32), world=np.full((n, 21, 3), np.nan, np.float32),
                  view=np.full(n, -1, np.int8))
    done = np.zeros(n, bool)
    if partial.exists():
        with np.load(partial) as z:
            arrays = {k: z[k].copy() for k in arrays}
            done = z["done"].copy()
        if progress:  # as training does: a resumed run says so
            print(f"{dataset.name}: resuming keypoint extraction at {int(done.sum())} of {n} images ({partial})")

    todo = [(i, str(dataset.samples[i].path)) for i in np.flatnonzero(~done)]
    if limit is not None:
        todo = todo[:limit]
    workers = workers or max(1, min(os.cpu_count() or 1, 8))

    def store(res) -> None:
        i, readable, detected, lm, world, is_left, score, w, h, view = res
        arrays["readable"][i], arrays["detected"][i], arrays["image_size"][i] = readable, detected, (w, h)
        arrays["view"][i] = view
        if detected:
            arrays["landmarks"][i], arrays["is_left"][i], arrays["hand_score"][i] = lm, is_left, score
            if world is not None:
                arrays["world"][i] = world
        done[i] = True

    bar = tqdm(total=n, initial=int(done.sum()), desc=f"keypoints {dataset.name}", unit="img", disable=not progress)
    since_save = 0
    pool = None
    try:
        if workers == 1:
            _init_worker(settings.to_dict())
            results = map(_process, todo)
        else:
            pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(settings.to_dict(),))
            results = pool.imap_unordered(_process, todo, chunksize=8)
        for res in results:
            store(res)
            bar.update(1)
            since_save += 1
            if since_save >= save_every:
                atomic_savez(partial, done=done, **arrays)
                since_save = 0
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
        if not done.all():
            atomic_savez(partial, done=done, **arrays)
    if not done.all():
        return KeypointSet(**meta, **arrays)  # partial (only when limit was given)
    atomic_savez(final, **arrays)
    partial.unlink(missing_ok=True)
    kp = KeypointSet(**meta, **arrays)
    if progress:
        print(f"{dataset.name}: {kp.summary()} -> {final}")
    return kp


def load_keypoints(root: str | os.PathLike, labels=None, cache_dir=None, settings: StaticSettings = StaticSettings(),
                   workers: int | None = None, progress: bool = True) -> KeypointSet:
    """Extract (or load) the keypoints of one dataset folder, keeping only ``labels`` if given.

    A landmark-only folder (``landmarks.csv``, :mod:`training.landmark_sets`) is read as it is.

    The cache always covers the whole folder, so filtering by label never forces a re-run.
    """
    if is_landmark_set(root):  # landmark-only datasets feed the cache's format directly
        kp = read_landmark_set(root)
        return kp.subset(np.flatnonzero(np.isin(kp.labels, list(labels)))) if labels is not None else kp
    ds = ImageFolder(root)
    kp = extract_keypoints(ds, cache_dir, settings, workers, progress=progress)
    if labels is not None:
        kp = kp.subset(np.flatnonzero(np.isin(kp.labels, list(labels))))
    return kp
