"""Real inputs for a model folder: its held-out evaluation set, and calibration samples for INT8 engines.

The evaluation set is rebuilt from the manifest's own recipe and the datasets under
``$FINGERSPELL_DATASETS``, whose content hashes must equal the ones the manifest recorded:

- keypoint classifiers: the training split is reproduced exactly (``prepare_data`` with the manifest's
  config); the held-out test signers when the recipe has them (``lis-letters``: GIULIA, the images where
  MediaPipe found a hand), else the validation part (``asl-letters``: 702 images of its own recipe);
- J2S: the dataset's crops of the held-out test signers (``lis-j2s``: GIULIA, 808 crops);
- image classifiers: the landmark-framed hand crops of the held-out test signers (``lis-letters-image``: GIULIA).

Nothing is extracted here: the cached MediaPipe keypoints (``fingerspell train extract``) and decoded crops
must exist, otherwise :class:`NoData` says what is missing. Calibration (:func:`calibration_inputs`) may
extract, since it is asked for explicitly with ``--calib DIR``. Calibration and evaluation samples are
disjoint: calibration leaves out the held-out signers and every image of the evaluation set (for
``asl-letters``, whose recipe has no test split, that is its validation part).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from realtime.manifest import Manifest, resolve_model

ENV = "FINGERSPELL_DATASETS"


class NoData(RuntimeError):
    """The real data a step needs is not here; the message says what is missing."""


@dataclass
class EvalSet:
    inputs: dict[str, np.ndarray]  # name -> (N, ...) float32
    labels: np.ndarray  # (N,) int: index into the manifest's labels
    description: str
    images: np.ndarray | None = None  # (N,) 'dataset/relative path' of each row (keypoint classifiers)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, rows) -> dict[str, np.ndarray]:
        return {k: np.ascontiguousarray(v[rows]) for k, v in self.inputs.items()}


def datasets_root(root: str | Path | None = None) -> Path:
    value = root or os.environ.get(ENV)
    if value and not Path(value).is_dir():
        raise NoData(f"datasets folder {value} does not exist (seen from {os.getcwd()})")
    if not value:
        raise NoData(f"needs the real datasets: set {ENV} (or give the folder) to where they are")
    return Path(value)


def _dataset_folder(root: Path, recorded: str) -> Path:
    from training.landmark_sets import is_landmark_set

    folder = root / Path(str(recorded).rstrip("/")).name
    if not ((folder / "manifest.csv").is_file() or is_landmark_set(folder)):
        raise NoData(f"dataset {folder.name!r} not found under {root}")
    return folder


def _check_hash(folder: Path, manifest: Manifest) -> None:
    from realtime.images import ImageFolder
    from training.landmark_sets import content_hash, is_landmark_set

    recorded = (manifest.raw.get("training") or {}).get("data_sha256") or {}
    want = recorded.get(folder.name)
    have = content_hash(folder) if is_landmark_set(folder) else ImageFolder(folder).content_hash()
    if want and have != want:
        raise NoData(f"{folder} differs from the {folder.name} that {manifest.name} was trained on "
                     "(content hash): its split cannot be reproduced")


def _keypoints_cached(folder: Path) -> None:
    from realtime.hands import StaticSettings
    from realtime.images import ImageFolder
    from training.keypoints import cache_key, default_cache_dir
    from training.landmark_sets import is_landmark_set

    if is_landmark_set(folder):  # read as it is, nothing to extract
        return
    ds = ImageFolder(folder)
    if not (default_cache_dir() / f"{ds.name}-{cache_key(ds, StaticSettings())}.npz").is_file():
        raise NoData(f"the MediaPipe keypoints of {folder.name} are not cached: run "
                     f"'fingerspell train extract {folder}' first (minutes)")


def _keypoint_eval_set(manifest: Manifest, root: Path) -> EvalSet:
    from training.train_keypoints import TrainConfig, prepare_data

    cfg = dict((manifest.raw.get("training") or {}).get("config") or {})
    if not cfg.get("data"):
        raise NoData(f"{manifest.name}: the manifest records no training config to rebuild its split from")
    folders = [_dataset_folder(root, d) for d in cfg["data"]]
    for f in folders:
        _check_hash(f, manifest)
        _keypoints_cached(f)
    known = {f.name for f in fields(TrainConfig)}
    cfg = {k: v for k, v in cfg.items() if k in known}
    cfg.update(data=[str(f) for f in folders], cache_dir=None, workers=1)
    data = prepare_data(TrainConfig(**cfg), progress=False)
    kp = data.kp
    if len(data.test):
        rows = data.test[kp.detected[data.test]]
        what = (f"held-out test part ({data.split_description}): {len(rows)} of {len(data.test)} images with a "
                "hand")
    else:
        rows = data.val
        what = f"validation part of the training recipe ({data.split_description}): {len(rows)} images"
    x = kp.features(manifest.features, rows)
    return EvalSet({manifest.input_name: x}, data.y[rows], what, image_keys(kp)[rows])


def image_keys(kp) -> np.ndarray:
    """'dataset/relative path' of each row of a :class:`training.keypoints.KeypointSet`: an image's identity."""
    return np.char.add(np.char.add(kp.dataset.astype(str), "/"), kp.rel.astype(str))


def _j2s_eval_set(manifest: Manifest, root: Path) -> EvalSet:
    from realtime.images import ImageFolder
    from training.j2s_data import load_crops, normalise
    from training.keypoints import default_cache_dir

    cfg = (manifest.raw.get("training") or {}).get("config") or {}
    signers = cfg.get("test_signers") or []
    if cfg.get("split") != "signer" or not signers:
        raise NoData(f"{manifest.name}: no held-out signers recorded in the manifest")
    folder = _dataset_folder(root, cfg.get("data") or "lis")
    _check_hash(folder, manifest)
    _keypoints_cached(folder)
    size = int(manifest.raw["input"]["shape"][-1])
    ds = ImageFolder(folder)
    if not (default_cache_dir().parent / "images" / f"{ds.name}-{ds.content_hash()[:16]}-rgb{size}.npz").is_file():
        raise NoData(f"the {size}-px crops of {folder.name} are not cached (fingerspell train j2s makes them)")
    crops = load_crops(folder, manifest.labels, size=size, progress=False)
    rows = np.flatnonzero(np.isin(crops.signers, signers) & crops.readable)
    y = np.array([manifest.labels.index(v) for v in crops.labels[rows]], dtype=np.int64)
    x = normalise(crops.images[rows])
    return EvalSet({manifest.input_name: x}, y, f"the dataset's crops of the held-out signers {signers}: "
                                                 f"{len(rows)} images")


def _image_eval_set(manifest: Manifest, root: Path) -> EvalSet:
    """Image classifiers: the landmark-framed hand crops of the held-out signers (cached by training)."""
    from realtime.images import ImageFolder
    from training.hand_crops import hand_crops_path, load_hand_crops
    from training.image_classifier import to_input

    cfg = (manifest.raw.get("training") or {}).get("config") or {}
    signers = cfg.get("test_signers") or []
    data = (manifest.raw.get("training") or {}).get("data") or []
    if not signers or not data:
        raise NoData(f"{manifest.name}: no held-out signers recorded in the manifest")
    folder = _dataset_folder(root, data[0])
    _check_hash(folder, manifest)
    size = int(manifest.raw["input"]["shape"][-1])
    ds = ImageFolder(folder)
    if not hand_crops_path(ds, size, "hand").exists():
        raise NoData(f"the {size}-px hand crops of {folder.name} are not cached (fingerspell train classifier "
                     f"makes them)")
    crops = load_hand_crops(folder, size, "hand", labels=manifest.labels, progress=False)
    rows = np.flatnonzero(np.isin(crops.signers, signers))
    y = np.array([manifest.labels.index(v) for v in crops.labels[rows]], dtype=np.int64)
    return EvalSet({manifest.input_name: to_input(crops.images[rows]).numpy()}, y,
                   f"hand crops of the held-out signers {signers}: {len(rows)} images")


def eval_set(model: str | Path, root: str | Path | None = None) -> EvalSet:
    """The held-out real inputs of a model (see the module docstring); :class:`NoData` when they are not here."""
    manifest = Manifest.load(resolve_model(model))
    root = datasets_root(root)
    if manifest.kind == "j2s":
        return _j2s_eval_set(manifest, root)
    if manifest.kind == "image-classifier":
        return _image_eval_set(manifest, root)
    return _keypoint_eval_set(manifest, root)


def _pick(n: int, limit: int, seed: int) -> np.ndarray:
    return np.arange(n) if n <= limit else np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def evaluation_images(manifest: Manifest, root: str | Path | None = None) -> np.ndarray:
    """The images (:func:`image_keys`) of a keypoint classifier's evaluation set, which calibration must not see.
    A model whose set cannot be rebuilt here gets none, with a warning: no accuracy can be measured on it here,
    but an engine calibrated now could be measured elsewhere on images it was calibrated on."""
    import warnings

    try:
        return _keypoint_eval_set(manifest, datasets_root(root)).images
    except NoData as e:
        warnings.warn(f"INT8 calibration cannot leave out the evaluation images of {manifest.name} ({e}); an accuracy "
                      "measured on them with this engine would be optimistic", stacklevel=3)
        return np.zeros(0, str)


def calibration_rows(kp, exclude_signers: list[str], held_out: np.ndarray) -> np.ndarray:
    """Rows of a keypoint set usable for calibration: a hand found, not a held-out signer, not an evaluation image."""
    return np.flatnonzero(kp.detected & ~np.isin(kp.signers, exclude_signers) & ~np.isin(image_keys(kp), held_out))


def _calibration_from(manifest: Manifest, calib: Path, exclude: list[str], limit: int, seed: int,
                      held_out: np.ndarray) -> np.ndarray:
    shape = manifest.raw["input"]["shape"][1:]
    if calib.is_file():
        if calib.suffix == ".npy":
            return np.load(calib)
        if calib.suffix == ".npz":
            with np.load(calib) as z:
                if manifest.input_name not in z:
                    raise NoData(f"{calib} has no array {manifest.input_name!r} (has {list(z)})")
                return z[manifest.input_name]
        raise NoData(f"{calib}: calibration data must be a dataset folder, a .npy or a .npz file")
    if not (calib / "manifest.csv").is_file():
        raise NoData(f"{calib}: not a dataset folder (LABEL/file + manifest.csv), .npy or .npz")
    if manifest.kind == "j2s":
        from training.j2s_data import load_crops, normalise

        crops = load_crops(calib, manifest.labels, size=int(shape[-1]))
        rows = np.flatnonzero(crops.readable & ~np.isin(crops.signers, exclude))
        return normalise(crops.images[rows[_pick(len(rows), limit, seed)]])  # normalise only what is kept
    from training.keypoints import load_keypoints

    kp = load_keypoints(calib, labels=None).with_points(manifest.features.points)  # rows with the points it reads
    kp = kp.subset(calibration_rows(kp, exclude, held_out))
    return kp.features(manifest.features)


def calibration_inputs(model: str | Path, calib: str | Path | list, limit: int = 512, seed: int = 0) -> np.ndarray:
    """Up to ``limit`` real inputs of ``model`` for INT8 calibration, drawn reproducibly from ``calib`` (one or
    more of):

    - a ``.npy`` file, or a ``.npz`` holding an array named as the model's input: used as given;
    - an image-folder dataset (``LABEL/file`` + ``manifest.csv``): keypoint classifiers get the features of
      the images where MediaPipe finds a hand (the keypoint cache; extracted on first use), J2S models the
      images resized to the model's input and normalised as in training. The signers the manifest holds out
      for testing are left out, and so are the images of the model's evaluation set (:func:`eval_set`; for a
      recipe without a test split, its validation part), so that calibration and evaluation never share a sample.
    """
    manifest = Manifest.load(resolve_model(model))
    shape = manifest.raw["input"]["shape"][1:]
    exclude = list(((manifest.raw.get("training") or {}).get("config") or {}).get("test_signers") or [])
    calibs = [Path(c) for c in (calib if isinstance(calib, (list, tuple)) else [calib])]
    held_out = np.zeros(0, str)
    if manifest.kind != "j2s" and any((c / "manifest.csv").is_file() for c in calibs):  # J2S: held-out signers only
        held_out = evaluation_images(manifest, os.environ.get(ENV) or calibs[0].parent)
    parts = [np.asarray(_calibration_from(manifest, c, exclude, limit, seed, held_out), dtype=np.float32)
             for c in calibs]
    for x, c in zip(parts, calibs):
        if list(x.shape[1:]) != [int(d) for d in shape]:
            raise NoData(f"calibration inputs from {c} have shape {x.shape[1:]} per sample; {manifest.name} takes "
                         f"{shape}")
    x = np.concatenate(parts)
    if not len(x):
        raise NoData(f"{calib}: no usable calibration samples")
    return np.ascontiguousarray(x[_pick(len(x), limit, seed)])


def training_datasets(model: str | Path, root: str | Path | None = None) -> list[Path]:
    """The dataset folders a model was trained on, found under ``$FINGERSPELL_DATASETS`` (for calibration)."""
    manifest = Manifest.load(resolve_model(model))
    cfg = (manifest.raw.get("training") or {}).get("config") or {}
    data = cfg.get("data") or (manifest.raw.get("training") or {}).get("data") or []
    data = [data] if isinstance(data, str) else data
    if not data:
        raise NoData(f"{manifest.name}: the manifest names no training data")
    root = datasets_root(root)
    return [_dataset_folder(root, d) for d in data]
