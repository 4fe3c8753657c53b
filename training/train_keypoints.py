"""Train the keypoint classifier on cached MediaPipe landmarks.

- Splits by signer or by dataset (what we report), or random (to compare with papers).
- Sampling balanced across datasets, then signers, then classes: without it the 5,800
  single-signer ``kaggle_asl`` photos would dominate a mix and the model would learn one person.
- Augmentation on the landmarks before the features: in-plane rotation about the wrist,
  scale, jitter, and (after the features) a dropped finger.
- A checkpoint after every epoch (written atomically); the same command resumes a killed run.
"""
from __future__ import annotations

import copy
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from realtime.manifest import NO_LETTER  # noqa: F401  (the class of hands that spell nothing; re-exported)
from realtime.features import FINGERS, FeatureSpec
from realtime.hands.base import TRAINING_VIEWS
from training.keypoint_model import KeypointClassifier
from training.keypoints import KeypointSet, load_keypoints
from training.metrics import classification_report, format_report
from training.data import source_photo_id
from training.io import CheckpointError, atomic_torch_save, atomic_write_text, command_line, load_checkpoint
from training.splits import grouped_stratified_indices

ASL_LETTERS = list("ABCDEFGHIKLMNOPQRSTUVWXY")  # static ASL letters: A-Y without J and Z
LIS_LETTERS = list("ABCDEFHIKLMNOPQRTUVWXY")  # LIS letters without motion: no G, J, S, Z


@dataclass
class TrainConfig:
    data: list[str]  # dataset folders
    labels: list[str]
    out: str
    test_signers: list[str] = field(default_factory=list)  # "SIGNER" or "dataset/SIGNER"
    test_datasets: list[str] = field(default_factory=list)  # dataset names held out whole
    random_test: float = 0.0  # fraction for a stratified random test split (paper comparisons only)
    val_fraction: float = 0.1
    features: list[str] = field(default_factory=lambda: ["polar_scaled", "cart_scaled"])
    points: str = "image"  # "world": MediaPipe's metric world landmarks instead of the image ones (photos only)
    epochs: int = 60
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    hidden: list[int] = field(default_factory=lambda: [256, 128])
    dropout: float = 0.3
    label_smoothing: float = 0.05
    rotate_deg: float = 15.0  # in-plane roll about the wrist
    yaw_deg: float = 0.0  # 3-D rotation about the wrist's vertical axis (the hand turning left / right)
    pitch_deg: float = 0.0  # 3-D rotation about the wrist's horizontal axis (tilting towards the camera)
    scale: float = 0.15
    jitter: float = 0.02  # std of landmark noise, as a fraction of the hand size
    finger_scale: float = 0.0  # each finger's bones scaled by U(1 - f, 1 + f): other people's hand shapes
    flip: float = 0.0  # probability of mirroring a hand (left-handed signers; needs canonical=False to matter)
    # wider views for the letters whose meaning does not depend on where the hand points: [roll, yaw, pitch] in degrees
    # for every label not in `oriented_letters` (ASL H is U pointing sideways, P is K pointing down); [] keeps the
    # ranges above for all
    free_views: list[float] = field(default_factory=list)
    oriented_letters: list[str] = field(default_factory=list)
    canonical: bool = True  # mirror left hands (by MediaPipe's handedness) before the features
    drop_finger: float = 0.1  # probability of zeroing one finger's features
    half_shapes: float = 0.0  # fraction of each batch replaced by half-formed shapes (two letters blended), as NO_LETTER
    mixup: float = 0.0  # alpha of Beta(alpha, alpha): pairs of feature vectors and their labels blended (0: off)
    # weight of a head that tries to tell the training group (dataset/signer) from the penultimate features, through a
    # reversed gradient (DANN): features that do not say whose hand it is (0: off)
    group_adversary: float = 0.0
    label_map: dict = field(default_factory=dict)  # dataset name -> {its label: label learned}, e.g. digits 0 -> O
    balance: bool = True
    # with balance: each class's rows together drawn as often as any other's (within a class the rows keep their
    # relative weights), for a recipe whose datasets teach only some of the letters (ASL data in an LIS model)
    balance_classes: bool = False
    seed: int = 0
    # photos: learn only from hands the first N views of the cascade found (realtime.hands.base says why), and read
    # every photo, training and test, with the first N views only (None: all of them; ablations of the cascade)
    training_views: int = TRAINING_VIEWS
    read_views: int | None = None
    # photos: learn from the landmarks of each of these MediaPipe hand models (each a keypoint cache of its own); the
    # live loop tracks with the lite one by default, the caches and tables come from the full one
    hand_models: list[str] = field(default_factory=lambda: ["full"])
    cache_dir: str | None = None
    workers: int | None = None

    def fingerprint(self) -> str:
        """What must match for a checkpoint to be resumed (everything but where files go and how many workers)."""
        d = asdict(self)
        for k in ("out", "cache_dir", "workers"):
            d.pop(k)
        if d["points"] == "image":  # the default before world landmarks existed: older checkpoints still resume
            d.pop("points")
        # added later: at their default (off) they leave older fingerprints as they were
        for k in ("mixup", "group_adversary", "free_views", "oriented_letters", "balance_classes"):
            if not d[k]:
                d.pop(k)
        if d["hand_models"] == ["full"]:
            d.pop("hand_models")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class PreparedData:
    kp: KeypointSet
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    y: np.ndarray
    split_description: str
    data_hashes: dict | None = None  # dataset name -> content sha256 (manifest rows and file sizes)


def prepare_data(cfg: TrainConfig, progress: bool = True) -> PreparedData:
    from realtime.images import ImageFolder

    from training.landmark_sets import content_hash, is_landmark_set

    from realtime.hands.base import StaticSettings

    models = [StaticSettings(model=m) for m in cfg.hand_models]
    sets = [map_labels(load_keypoints(d, cache_dir=cfg.cache_dir, workers=cfg.workers, progress=progress,
                                      settings=settings), cfg.label_map.get(Path(d).name, {}), cfg.labels)
            for d in cfg.data for settings in (models[:1] if is_landmark_set(d) else models)]
    hashes = {Path(d).name: content_hash(d) if is_landmark_set(d) else ImageFolder(d).content_hash() for d in cfg.data}
    kp = KeypointSet.concat(sets).with_points(cfg.points)
    kp = kp.subset(np.flatnonzero(kp.readable))  # unreadable files were counted at extraction
    if not len(kp):
        raise ValueError(f"none of the labels {', '.join(cfg.labels)} is in {', '.join(Path(d).name for d in cfg.data)}"
                         " (after its label map)")
    if cfg.read_views is not None:
        kp = kp.found_by_first(cfg.read_views)
    y = np.array([cfg.labels.index(l) for l in kp.labels], dtype=np.int64)
    groups = kp.groups()
    is_test = np.isin(kp.dataset, cfg.test_datasets)
    for s in cfg.test_signers:
        hit = (groups == s) if "/" in s else (kp.signers == s)
        if not hit.any():
            raise ValueError(f"test signer {s!r} not found in {sorted(set(groups.tolist()))}")
        is_test |= hit
    descr = []
    if cfg.test_signers:
        descr.append(f"test signers {cfg.test_signers}")
    if cfg.test_datasets:
        descr.append(f"test datasets {cfg.test_datasets}")
    photos = np.char.add(np.char.add(kp.dataset.astype(str), "/"), [source_photo_id(r) for r in kp.rel])
    pool = np.flatnonzero(~is_test)
    if cfg.random_test > 0:
        rest, rnd = grouped_stratified_indices(kp.labels[pool], photos[pool], (1 - cfg.random_test, cfg.random_test),
                                               cfg.seed)
        is_test[pool[rnd]] = True
        pool = pool[rest]
        descr.append(f"stratified random {cfg.random_test:.0%} test")
    test = np.flatnonzero(is_test)
    # training needs landmarks, and only those of the first views of the photo cascade (realtime.hands.base says
    # why); test images are read with every view, and those with no hand found count as wrong
    pool = pool[kp.detected[pool] & (kp.view[pool] < cfg.training_views)]
    if not len(pool):
        raise ValueError(f"no training rows with a hand in {', '.join(Path(d).name for d in cfg.data)} for the labels "
                         f"{', '.join(cfg.labels)} (after the held-out split: {'; '.join(descr) or 'none'})")
    unseen = [l for i, l in enumerate(cfg.labels) if not (y[pool] == i).any()]
    if unseen:  # a class the model can never predict right: said, not trained silently
        print(f"warning: no training rows for the label(s) {', '.join(unseen)}", file=sys.stderr)
    tr, va = grouped_stratified_indices(kp.labels[pool], photos[pool], (1 - cfg.val_fraction, cfg.val_fraction),
                                        cfg.seed + 1)
    return PreparedData(kp, pool[tr], pool[va], test, y, "; ".join(descr) or "no test split (all data trains)", hashes)


def map_labels(kp: KeypointSet, mapping: dict, labels: list[str]) -> KeypointSet:
    """Rename a dataset's labels (``mapping``; its key ``"*"`` renames every other label, and None drops a row),
    then keep only the rows whose label is learned."""
    if mapping:
        kp.labels = np.array([str(mapping.get(str(l), mapping.get("*", str(l)))) for l in kp.labels])
    return kp.subset(np.flatnonzero(np.isin(kp.labels, list(labels))))


def balanced_weights(kp: KeypointSet, idx: np.ndarray, classes_equal: bool = False) -> np.ndarray:
    """Sampling weight per row: each dataset equal, each signer equal within it, each class equal within a signer;
    with ``classes_equal`` each class's rows then rescaled together to the same total."""
    ds, grp, lab = kp.dataset[idx], kp.groups()[idx], kp.labels[idx]
    w = np.zeros(len(idx), dtype=np.float64)
    for d in np.unique(ds):
        in_d = ds == d
        signers = np.unique(grp[in_d])
        for g in signers:
            in_g = grp == g
            classes = np.unique(lab[in_g])
            for c in classes:
                m = in_g & (lab == c)
                w[m] = 1.0 / (len(signers) * len(classes) * m.sum())
    if classes_equal:
        for c in np.unique(lab):
            w[lab == c] /= w[lab == c].sum()
    return w / w.sum()


def rotation_matrices(roll: np.ndarray, yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """(B,) angles in radians -> (B, 3, 3): roll about the camera axis (z), yaw about the image's vertical
    axis (y), pitch about its horizontal axis (x), applied in that order to wrist-relative points."""
    b = len(roll)
    def axis(ang, i, j):
        m = np.tile(np.eye(3), (b, 1, 1))
        c, s = np.cos(ang), np.sin(ang)
        m[:, i, i], m[:, i, j], m[:, j, i], m[:, j, j] = c, -s, s, c
        return m
    return axis(pitch, 1, 2) @ axis(yaw, 2, 0) @ axis(roll, 0, 1)


def augment_landmarks(lm: np.ndarray, rng: np.random.Generator, rotate_deg: float, scale: float,
                      jitter: float, yaw_deg: float = 0.0, pitch_deg: float = 0.0, finger_scale: float = 0.0,
                      flip: float = 0.0, is_left: np.ndarray | None = None):
    """New views and new hands from cached landmarks (pixels, z in the same unit as x):

    - other hand shapes: each finger's bones scaled about its base (``finger_scale``);
    - other views: a 3-D rotation about the wrist (roll in the image plane, yaw, pitch), a scale about it;
    - the other hand: a mirror image (``flip``), which also swaps ``is_left``;
    - noise scaled to the hand.

    The three angle ranges are degrees, each one number or one per hand (letter-aware views).
    Returns the landmarks, or (landmarks, is_left) when ``is_left`` is given.
    """
    from realtime.features import FINGERS, hand_size

    b = lm.shape[0]
    lm = lm.astype(np.float64).copy()
    if finger_scale > 0:
        for joints in FINGERS.values():
            k = rng.uniform(1 - finger_scale, 1 + finger_scale, b)[:, None]
            base = lm[:, joints[0]]
            bones = np.diff(lm[:, list(joints)], axis=1) * k[..., None]  # (B, 3, 3) bone vectors, rescaled
            lm[:, list(joints[1:])] = base[:, None] + np.cumsum(bones, axis=1)
    wrist = lm[:, :1, :].copy()
    rel = lm - wrist
    def ang(d):
        if np.ndim(d) == 0:  # one range for all (the draws the shipped recipes were trained with)
            return np.deg2rad(rng.uniform(-d, d, b)) if d > 0 else np.zeros(b)
        return np.deg2rad(rng.uniform(-1.0, 1.0, b) * np.asarray(d, np.float64))
    rot = rotation_matrices(ang(rotate_deg), ang(yaw_deg), ang(pitch_deg))
    k = rng.uniform(1 - scale, 1 + scale, b)[:, None, None]
    rel = np.einsum("bij,bnj->bni", rot, rel) * k
    if flip > 0:
        mirror = rng.random(b) < flip
        rel[mirror, :, 0] *= -1
        if is_left is not None:
            is_left = np.where(mirror, ~np.asarray(is_left, bool), is_left)
    lm = wrist + rel
    if jitter > 0:
        size = hand_size(lm)[:, None, None]
        lm += rng.normal(0, 1, lm.shape) * jitter * size
    return lm if is_left is None else (lm, is_left)


def view_ranges(cfg: TrainConfig, y: np.ndarray):
    """(roll, yaw, pitch) ranges in degrees for a batch with label ids ``y``: the config's, or with ``free_views``
    one range per hand, wide for the letters not in ``oriented_letters``."""
    if not cfg.free_views:
        return cfg.rotate_deg, cfg.yaw_deg, cfg.pitch_deg
    unknown = sorted(set(cfg.oriented_letters) - set(cfg.labels))
    if unknown:
        raise ValueError(f"oriented_letters {unknown} are not among the labels")
    if len(cfg.free_views) != 3:
        raise ValueError(f"free_views must be [roll, yaw, pitch] in degrees, got {cfg.free_views}")
    free = ~np.isin(y, [cfg.labels.index(c) for c in cfg.oriented_letters])
    return tuple(np.where(free, wide, narrow) for wide, narrow in
                 zip(cfg.free_views, (cfg.rotate_deg, cfg.yaw_deg, cfg.pitch_deg)))


def half_formed_shapes(lm: np.ndarray, is_left: np.ndarray, y: np.ndarray, none: int, fraction: float,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Replace about ``fraction`` of a batch by blends of two different letters (t in 0.35..0.65), labelled
    ``none``: the shapes a hand passes through between letters, which must not be typed. Blended in the
    wrist-relative, size-normalised frame (the partner mirrored when its handedness differs)."""
    from realtime.features import hand_size

    rows = np.flatnonzero((rng.random(len(y)) < fraction) & (y != none))
    if not len(rows):
        return lm, y
    lm, y = lm.copy(), y.copy()
    partners = rng.integers(0, len(y), len(rows))
    ok = (y[partners] != y[rows]) & (y[partners] != none)
    rows, partners = rows[ok], partners[ok]
    rel = lm - lm[:, :1]
    size = np.maximum(hand_size(lm), 1e-6)[:, None, None]
    other = rel[partners].copy()
    other[..., 0] *= np.where(is_left[partners] != is_left[rows], -1.0, 1.0)[:, None]
    t = rng.uniform(0.35, 0.65, len(rows))[:, None, None]
    mixed = (1 - t) * rel[rows] / size[rows] + t * other / size[partners]
    lm[rows] = lm[rows, :1] + mixed * size[rows]
    y[rows] = none
    return lm, y


def make_features(spec: FeatureSpec, kp: KeypointSet, idx: np.ndarray) -> np.ndarray:
    return kp.features(spec, idx)


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient times -scale backward (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def dann_scale(progress: float) -> float:
    """DANN's ramp of the reversed gradient from 0 to 1 over training (progress in 0..1): the group head learns
    before it pushes back on the features."""
    return float(2.0 / (1.0 + np.exp(-10.0 * progress)) - 1.0)


def mix_feature_pairs(feats: np.ndarray, y: np.ndarray, alpha: float, rng: np.random.Generator):
    """Blend each row with a random partner of the batch: (features, y, partner's y, weight of y per row)."""
    lam = rng.beta(alpha, alpha, len(y))
    lam = np.maximum(lam, 1 - lam)  # the row's own label stays the larger share
    perm = rng.permutation(len(y))
    mixed = lam[:, None] * feats + (1 - lam[:, None]) * feats[perm]
    return mixed.astype(feats.dtype), y, y[perm], lam.astype(np.float32)



def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn) -> tuple[float, float, np.ndarray]:
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 4096]) for i in range(0, len(x), 4096)]) if len(x) else torch.zeros(0)
        loss = float(loss_fn(logits, y)) if len(x) else float("nan")
        pred = logits.argmax(1).numpy() if len(x) else np.zeros(0, np.int64)
    return loss, float((pred == y.numpy()).mean()) if len(x) else float("nan"), pred


def train(cfg: TrainConfig, resume: bool = True, progress: bool = True, data: PreparedData | None = None,
          on_epoch_end=None) -> dict:
    """Train, evaluate on the test split, write plots and metrics to ``cfg.out``. Returns the summary.

    ``on_epoch_end(epoch)`` is called after each epoch's checkpoint is written (tests use it to kill a run).
    """
    from training.plots import plot_confusion, plot_history, plot_per_class

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # a small MLP: extra threads only contend (and oversubscribe parallel runs)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    data = data or prepare_data(cfg, progress)
    kp = data.kp
    spec_kwargs = {}
    if "j2s_polar" in cfg.features:  # the paper's missing-wrist fallback: the training set's mean wrist
        frac = kp.landmarks[data.train, 0, :2] / kp.image_size[data.train].astype(np.float64)
        spec_kwargs["mean_wrist"] = tuple(float(v) for v in frac.mean(0))
    spec = FeatureSpec(parts=tuple(cfg.features), canonical=cfg.canonical, points=cfg.points, **spec_kwargs)

    x_val = torch.from_numpy(make_features(spec, kp, data.val))
    y_val = torch.from_numpy(data.y[data.val])
    model = KeypointClassifier(spec.dim, len(cfg.labels), tuple(cfg.hidden), cfg.dropout)
    group_names, group_of_row = np.unique(kp.groups()[data.train], return_inverse=True)
    group_id = np.full(len(kp), -1, np.int64)
    group_id[data.train] = group_of_row
    group_head = None
    if cfg.group_adversary > 0 and len(group_names) < 2:
        print(f"group_adversary {cfg.group_adversary}: the training rows hold one group ({group_names[0]}), "
              "nothing to tell apart; training without the adversary")
    elif cfg.group_adversary > 0:
        group_head = nn.Sequential(nn.Linear(model.hidden[1], 64), nn.ReLU(), nn.Linear(64, len(group_names)))
    params = list(model.parameters()) + (list(group_head.parameters()) if group_head is not None else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * max(
        1, int(np.ceil(len(data.train) / cfg.batch_size))), pct_start=0.1)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    weights = balanced_weights(kp, data.train, cfg.balance_classes) if cfg.balance else np.full(len(data.train), 1 / len(data.train))
    drop_cols = [spec.columns_for_joints(j) for j in FINGERS.values()]

    history: list[dict] = []
    best = {"val_loss": float("inf"), "epoch": -1, "state": None}
    start_epoch = 0
    ckpt_path = out / "checkpoint.pt"
    if resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, needs=("fingerprint", "model", "optimizer", "scheduler"))
        if ck["fingerprint"] != cfg.fingerprint():
            raise CheckpointError(f"{ckpt_path} was made with a different configuration; use a new --out or "
                                  "--no-resume")
        if ck.get("data_sha256") != data.data_hashes:
            raise CheckpointError(f"{ckpt_path} was made from different data (dataset content changed); "
                             "use a new --out or --no-resume")
        model.load_state_dict(ck["model"])
        if group_head is not None:
            group_head.load_state_dict(ck["group_head"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        history, best, start_epoch = ck["history"], ck["best"], ck["epoch"] + 1
        rng.bit_generator.state = ck["numpy_rng"]
        torch.set_rng_state(ck["torch_rng"])
        if progress:
            print(f"resuming from epoch {start_epoch} ({ckpt_path})")

    steps = max(1, int(np.ceil(len(data.train) / cfg.batch_size)))
    bar = tqdm(range(start_epoch, cfg.epochs), desc="train keypoints", unit="epoch", disable=not progress,
               initial=start_epoch, total=cfg.epochs)
    for epoch in bar:
        t0 = time.time()
        model.train()
        order = rng.choice(data.train, size=steps * cfg.batch_size, replace=True, p=weights)
        total = 0.0
        for s in range(steps):
            idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            y = data.y[idx]
            roll, yaw, pitch = view_ranges(cfg, y)
            lm, left = augment_landmarks(kp.landmarks[idx], rng, roll, cfg.scale, cfg.jitter, yaw, pitch,
                                         cfg.finger_scale, cfg.flip, kp.is_left[idx])
            if cfg.half_shapes > 0 and NO_LETTER in cfg.labels:
                lm, y = half_formed_shapes(lm, left, y, cfg.labels.index(NO_LETTER), cfg.half_shapes, rng)
            feats = spec.compute(lm, left, kp.image_size[idx].astype(np.float64))
            drop = rng.random(len(idx)) < cfg.drop_finger
            for row in np.flatnonzero(drop):
                feats[row, drop_cols[rng.integers(len(drop_cols))]] = 0.0
            if cfg.mixup > 0:
                feats, y, y_partner, lam = mix_feature_pairs(feats, y, cfg.mixup, rng)
            emb = model.embed(torch.from_numpy(feats))
            logits = model.fc3(emb)
            if cfg.mixup > 0:
                lam_t = torch.from_numpy(lam)
                per_row = nn.functional.cross_entropy(logits, torch.from_numpy(y), reduction="none",
                                                      label_smoothing=cfg.label_smoothing)
                per_partner = nn.functional.cross_entropy(logits, torch.from_numpy(y_partner), reduction="none",
                                                          label_smoothing=cfg.label_smoothing)
                loss = (lam_t * per_row + (1 - lam_t) * per_partner).mean()
            else:
                loss = loss_fn(logits, torch.from_numpy(y))
            if group_head is not None:
                scale = dann_scale((epoch * steps + s) / (cfg.epochs * steps))
                group_logits = group_head(_ReverseGradient.apply(emb, scale))
                loss = loss + cfg.group_adversary * nn.functional.cross_entropy(
                    group_logits, torch.from_numpy(group_id[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        val_loss, val_acc, _ = _evaluate(model, x_val, y_val, loss_fn)
        history.append({"epoch": epoch, "train_loss": total / steps, "val_loss": val_loss, "val_accuracy": val_acc,
                        "lr": sched.get_last_lr()[0], "seconds": time.time() - t0})
        if val_loss < best["val_loss"]:
            best = {"val_loss": val_loss, "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        bar.set_postfix(loss=f"{total / steps:.3f}", val_loss=f"{val_loss:.3f}", val_acc=f"{val_acc:.3f}")
        atomic_torch_save({"fingerprint": cfg.fingerprint(), "data_sha256": data.data_hashes,
                            "model": model.state_dict(), "optimizer": opt.state_dict(),
                            **({"group_head": group_head.state_dict()} if group_head is not None else {}),
                            "scheduler": sched.state_dict(), "history": history, "best": best, "epoch": epoch,
                            "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}, ckpt_path)
        if on_epoch_end is not None:
            on_epoch_end(epoch)

    model.load_state_dict(best["state"])
    model.eval()
    summary = {"config": asdict(cfg), "features": spec.to_dict(), "split": data.split_description,
               "best_epoch": best["epoch"], "best_val_loss": best["val_loss"],
               "counts": {"train": int(len(data.train)), "val": int(len(data.val)), "test": int(len(data.test))},
               "train_data": sorted(set(kp.groups()[data.train].tolist())),
               "data_sha256": data.data_hashes, "command": command_line()}
    if len(data.test):
        pred = np.full(len(data.test), -1, np.int64)
        det = kp.detected[data.test]
        if det.any():
            x = torch.from_numpy(make_features(spec, kp, data.test[det]))
            with torch.no_grad():
                pred[det] = model(x).argmax(1).numpy()
        rep = classification_report(data.y[data.test], pred, cfg.labels)
        summary["test"] = rep
        plot_confusion(rep, out / "confusion_matrix.png", title=f"test: {data.split_description}\n"
                       f"accuracy {rep['accuracy']:.1%} (detected {rep['accuracy_detected']:.1%})")
        plot_per_class(rep, out / "per_class_accuracy.png")
        if progress:
            print(format_report(rep, f"test ({data.split_description})"))
    _, val_acc, _ = _evaluate(model, x_val, y_val, loss_fn)
    summary["val_accuracy"] = val_acc
    plot_history(history, out / "loss_curves.png")
    bank_x, bank_y = exemplar_bank(cfg, data, spec, seed=cfg.seed)  # its own generator: training is unchanged
    atomic_torch_save({"config": model.config(), "state_dict": model.state_dict(), "labels": cfg.labels,
                       "features": spec.to_dict(), "exemplars": {"features": bank_x, "labels": bank_y}},
                      out / "model.pt")
    atomic_write_text(out / "history.json", json.dumps(history, indent=1))
    atomic_write_text(out / "metrics.json", json.dumps(summary, indent=1))
    return summary



def exemplar_bank(cfg: TrainConfig, data: PreparedData, spec: FeatureSpec, per_label: int | None = None,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(features, label ids): ``per_label`` training hands of each label, each in one random view the model learned
    from (the training augmentation); what personal tuning replays beside a person's samples
    (:mod:`realtime.personal_tuning`)."""
    from realtime.personal_tuning import EXEMPLARS_PER_LABEL

    per_label = per_label or EXEMPLARS_PER_LABEL
    rng = np.random.default_rng(seed)
    kp = data.kp
    rows = np.concatenate([rng.choice(pool, per_label, replace=len(pool) < per_label) for c in range(len(cfg.labels))
                           if len(pool := data.train[data.y[data.train] == c])]).astype(np.int64)
    roll, yaw, pitch = view_ranges(cfg, data.y[rows])
    lm, left = augment_landmarks(kp.landmarks[rows], rng, roll, cfg.scale, cfg.jitter, yaw, pitch, cfg.finger_scale,
                                 cfg.flip, kp.is_left[rows])
    return np.nan_to_num(spec.compute(lm, left, kp.image_size[rows].astype(np.float64))).astype(np.float32), data.y[rows]


def load_trained(path: str | Path) -> tuple[KeypointClassifier, list[str], FeatureSpec]:
    """A model.pt written by :func:`train` -> (model in eval mode, labels, feature spec)."""
    ck = torch.load(path, weights_only=False)
    c = ck["config"]
    model = KeypointClassifier(c["in_dim"], c["num_classes"], tuple(c["hidden"]), c["dropout"])
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck["labels"], FeatureSpec.from_dict(ck["features"])


def load_exemplars(path: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The exemplar bank a model.pt keeps for personal tuning (:func:`exemplar_bank`), or None for a run trained
    before it was kept."""
    ex = torch.load(path, weights_only=False).get("exemplars")
    return None if ex is None else (np.asarray(ex["features"], np.float32), np.asarray(ex["labels"], np.int64))
