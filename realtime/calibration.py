"""Personal calibration: a few samples of each letter from one person make the recognizer read that person.

A :class:`Profile` belongs to one model (its name, sha256 and labels are recorded and checked) and holds the
person's samples as the model's input features, with the letter each one means. The adaptation is derived from the
samples when the profile is loaded (:class:`CalibratedClassifier`); the one chosen on the calibration protocol
(docs/calibration.md), ``tuned+knn``, has two parts:

- the model's own layers are tuned to the samples (:mod:`realtime.personal_tuning`: about half a second in numpy,
  from the ``tuning.npz`` the model ships), and the tuned network reads every frame in place of the ONNX one;
- on top of its reading, a nearest-neighbour term on its *embedding* (penultimate activations, standardised by
  the samples' own spread):

    logits = log p(x) + alpha * (similarity of x's embedding to the nearest sample of each calibrated letter)

A letter without samples keeps the model's reading; a letter signed in a person's own variant (a handshape the
training data never showed for it) is read from its samples, because the similarity term can outvote the model.
``knn`` (the same term on the untuned model, milliseconds to fit) is what profiles made before tuning existed use,
and what a model without a tuning file gets; ``prototype``, ``head`` and ``knn+head`` remain for the protocol.

A profile recorded with ``--classifier fused`` also keeps each sample's hand crop. With the fused classifier, the
image model's embedding of those crops adds a second similarity term of the same kind: the appearance of the
person's own hand (finger contact, the thumb), which their noisy landmarks blur.

The profile file is JSON (small: tens of kB, a few hundred with crops), written atomically.
"""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from realtime.crops import crops_to_input  # the image classifiers' input, from the profile's crops
from realtime.personal_tuning import LEARNING_RATE, MAX_LEARNING_RATE, MAX_STEPS, STEPS, Tuning, TuningError

PROFILE_FORMAT = 1
METHODS = ("knn", "prototype", "head", "knn+head", "tuned+knn")
SPACES = ("embedding", "input")
# chosen on the calibration protocol (docs/calibration.md): the model's layers tuned to the samples, then kNN on the
# tuned embedding (over 16 people at K=5, 0.9 points above kNN alone, which had beaten prototypes, the input features
# and a fitted head)
SHIPPED_METHOD = "tuned+knn"


class ProfileError(ValueError):
    """A profile that cannot be used: corrupt, or made for another model."""


def _samples(d: dict, source: str) -> np.ndarray:
    """A profile file's samples, one row per sample label. None at all, or rows and labels out of step, is a
    damaged file (a profile is never made without samples), said as such rather than in numpy's words."""
    samples, n = np.asarray(d["samples"], np.float32), len(d["sample_labels"])
    if samples.size == 0 and n == 0:
        raise ProfileError(f"{source}: the profile holds no samples: the file was damaged; calibrate again")
    if samples.size == 0 or n == 0 or samples.size % n or (samples.ndim == 2 and len(samples) != n):
        raise ProfileError(f"{source}: {len(samples)} samples but {n} sample labels: the file was damaged; "
                           "calibrate again")
    return samples.reshape(n, -1)


@dataclass
class Profile:
    """One person's calibration for one model."""

    model: str  # the model's name
    model_sha256: str  # of its ONNX file
    labels: list[str]  # the model's labels, in order
    features: dict  # the model's feature spec (FeatureSpec.to_dict())
    samples: np.ndarray  # (N, dim) float32 model input features
    sample_labels: list[str]  # (N,) the letter each sample means
    # the adaptation (METHODS): "knn" where a profile file names none (profiles made before tuning existed); new
    # profiles get SHIPPED_METHOD (make_profile)
    method: str = "knn"
    alpha: float = 24.0  # weight of the similarity term (a logit bonus of alpha for a perfect match)
    temperature: float = 0.25  # similarity softness: exp(-d^2 / (2 T^2)) on standardised embeddings
    space: str = "embedding"  # compare in the model's penultimate activations ("embedding") or its "input" features
    l2: float = 0.05  # the 'head' methods: weight decay of the fitted correction
    # 'tuned+knn': Adam steps and learning rate of the tuning (recorded, so that a profile always means the same)
    tune_steps: int = STEPS
    tune_lr: float = LEARNING_RATE
    # the samples' hand crops (N, S, S, 3) uint8 RGB, recorded with --classifier fused, and the image model they are
    # for; image_alpha / image_temperature: the image similarity term (docs/calibration.md, fused)
    crops: np.ndarray | None = None
    image_model: str | None = None
    image_model_sha256: str | None = None
    image_alpha: float = 12.0
    image_temperature: float = 0.25
    meta: dict = field(default_factory=dict)  # who / when / how recorded (free form)
    path: str | None = None  # the file it was loaded from (not saved)

    @property
    def calibrated(self) -> list[str]:
        return [l for l in self.labels if l in set(self.sample_labels)]

    @property
    def uncalibrated(self) -> list[str]:
        return [l for l in self.labels if l not in set(self.sample_labels)]

    def counts(self) -> dict[str, int]:
        return {l: int(sum(1 for s in self.sample_labels if s == l)) for l in self.labels}

    def to_json(self) -> dict:
        return {"format": PROFILE_FORMAT, "kind": "fingerspell-profile", "model": self.model,
                "model_sha256": self.model_sha256, "labels": self.labels, "features": self.features,
                "method": self.method, "alpha": self.alpha, "temperature": self.temperature, "space": self.space,
                "l2": self.l2, **({"tuning": {"steps": self.tune_steps, "learning_rate": self.tune_lr}}
                                  if "tuned" in self.method else {}),
                "counts": self.counts(), "uncalibrated": self.uncalibrated, "meta": self.meta,
                "sample_labels": self.sample_labels,
                "samples": np.round(np.asarray(self.samples, np.float64), 5).tolist(),
                **({"image": self._image_json()} if self.crops is not None else {})}

    def _image_json(self) -> dict:
        crops = np.ascontiguousarray(self.crops, np.uint8)
        return {"model": self.image_model, "model_sha256": self.image_model_sha256, "alpha": self.image_alpha,
                "temperature": self.image_temperature, "crop_shape": list(crops.shape[1:]),
                "crops": "base64 of uint8 RGB, sample by sample", "data": base64.b64encode(crops.tobytes()).decode()}

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.to_json()))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # no half-written file beside the path
            raise
        return path

    @classmethod
    def from_json(cls, d: dict, source: str = "profile") -> "Profile":
        try:
            if d.get("kind") != "fingerspell-profile":
                raise ValueError("not a fingerspell profile (no kind 'fingerspell-profile')")
            if int(d["format"]) > PROFILE_FORMAT:
                raise ValueError(f"format {d['format']} is newer than this program's {PROFILE_FORMAT}")
            samples = _samples(d, source)
            p = cls(model=str(d["model"]), model_sha256=str(d["model_sha256"]), labels=list(d["labels"]),
                    features=dict(d["features"]), samples=samples, sample_labels=list(d["sample_labels"]),
                    method=str(d.get("method", "knn")), alpha=float(d.get("alpha", cls.alpha)),
                    temperature=float(d.get("temperature", cls.temperature)), space=str(d.get("space", "embedding")),
                    l2=float(d.get("l2", cls.l2)),
                    **_tuning_fields(d.get("tuning", {})),
                    meta=dict(d.get("meta", {})))
            if "image" in d:
                im = d["image"]
                shape = [len(p.sample_labels)] + [int(v) for v in im["crop_shape"]]
                raw = base64.b64decode(im["data"], validate=True)
                if len(shape) != 4 or shape[3] != 3 or len(raw) != int(np.prod(shape)):
                    raise ValueError(f"image crops: {len(raw)} bytes do not make {shape[0]} crops of "
                                     f"{shape[1:]}")
                p.crops = np.frombuffer(raw, np.uint8).reshape(shape).copy()
                p.image_model, p.image_model_sha256 = str(im["model"]), str(im["model_sha256"])
                p.image_alpha = float(im.get("alpha", cls.image_alpha))
                p.image_temperature = float(im.get("temperature", cls.image_temperature))
        except ProfileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise ProfileError(f"{source}: unreadable or incomplete profile ({type(e).__name__}: {e})") from e
        unknown = sorted(set(p.sample_labels) - set(p.labels))
        if unknown:
            raise ProfileError(f"{source}: samples labelled {unknown}, which the model {p.model} does not know")
        if p.method not in METHODS:
            raise ProfileError(f"{source}: unknown method {p.method!r} (known: {', '.join(METHODS)})")
        if p.space not in SPACES:
            raise ProfileError(f"{source}: unknown space {p.space!r} (known: {', '.join(SPACES)})")
        if "tuned" in p.method and (p.space != "embedding" or not 0 < p.tune_steps <= MAX_STEPS
                                    or not 0 < p.tune_lr <= MAX_LEARNING_RATE):
            raise ProfileError(f"{source}: a tuned profile compares embeddings and tunes 1-{MAX_STEPS} steps at a "
                               f"learning rate in (0, {MAX_LEARNING_RATE:g}]; this one: space {p.space}, "
                               f"{p.tune_steps} steps, rate {p.tune_lr}")
        for name, value, low in (("alpha", p.alpha, 0.0), ("temperature", p.temperature, None), ("l2", p.l2, 0.0),
                                 ("image alpha", p.image_alpha, 0.0), ("image temperature", p.image_temperature, None)):
            if not np.isfinite(value) or (value < low if low is not None else value <= 0):
                raise ProfileError(f"{source}: {name} {value} is out of range (a finite number, "
                                   f"{'at least 0' if low is not None else 'above 0'})")
        if not np.isfinite(p.samples).all():
            bad = sorted({p.sample_labels[i] for i in np.flatnonzero(~np.isfinite(p.samples).all(1))})
            raise ProfileError(f"{source}: samples of {bad} hold values that are not numbers (NaN, infinite or "
                               "null): the file was damaged; calibrate again")
        if len(p.samples) and p.samples.shape[1] != int(p.features.get("dim", p.samples.shape[1])):
            raise ProfileError(f"{source}: samples have {p.samples.shape[1]} features but its feature spec says "
                               f"{p.features.get('dim')}")
        return p

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Profile":
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ProfileError(f"profile {path} not found") from e
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ProfileError(f"{path}: not a readable profile file ({type(e).__name__}: {e})") from e
        if not isinstance(d, dict):
            raise ProfileError(f"{path}: not a profile (JSON {type(d).__name__}, expected an object)")
        profile = cls.from_json(d, str(path))
        profile.path = str(path)
        return profile

    def check_model(self, name: str, sha256: str, labels: list[str], features: dict | None = None) -> None:
        """Refuse a profile made for another model, saying what differs (``features``: the model's feature spec,
        which the samples must have been computed with)."""
        if list(labels) != list(self.labels):
            raise ProfileError(f"this profile was made for {self.model} with labels {_labels(self.labels)}, but {name} "
                               f"has labels {_labels(labels)}: calibrate again for {name}")
        if sha256 != self.model_sha256:
            raise ProfileError(f"this profile was made for {self.model} (sha256 {self.model_sha256}), but the model "
                               f"loaded is {name} (sha256 {sha256}): calibrate again for this model")
        dims = {int(features.get("dim", -1)), int(self.features.get("dim", -1))} if features is not None else set()
        if features is not None and (len(dims) > 1 or self.samples.shape[1:] != (int(features.get("dim", -1)),)):
            raise ProfileError(f"this profile's samples have {self.samples.shape[1]} features (its spec says "
                               f"{self.features.get('dim')}), but {name} reads {features.get('dim')}: the profile is "
                               f"damaged; calibrate again for {name}")


    def check_image_model(self, name: str, sha256: str) -> None:
        """Refuse crops recorded for another image model, saying which."""
        if sha256 != self.image_model_sha256:
            raise ProfileError(f"this profile's hand crops were recorded for the image model {self.image_model} "
                               f"(sha256 {self.image_model_sha256}), but the fused classifier uses {name} (sha256 "
                               f"{sha256}): calibrate again with --classifier fused for this image model, or use "
                               "--classifier keypoints")


def _tuning_fields(d) -> dict:
    """A profile's ``tuning`` settings as Profile fields; anything but whole steps and a finite rate is refused."""
    if not isinstance(d, dict):
        raise ValueError(f"'tuning' must be an object, got {type(d).__name__}")
    steps, lr = d.get("steps", Profile.tune_steps), d.get("learning_rate", Profile.tune_lr)
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise ValueError(f"tuning steps must be a whole number, got {steps!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not np.isfinite(lr):
        raise ValueError(f"tuning learning_rate must be a finite number, got {lr!r}")
    return {"tune_steps": steps, "tune_lr": float(lr)}


def _labels(labels) -> str:
    return " ".join(labels)


def fit_residual_head(z: np.ndarray, y: np.ndarray, base_logp: np.ndarray, classes: np.ndarray, l2: float = 0.05,
                      steps: int = 300, lr: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A linear correction (W, b) of the model's log-probabilities, fitted on one person's samples: softmax(base_logp
    + z W + b) by full-batch gradient descent on the cross-entropy plus ``l2`` |W|^2 (convex; tens of milliseconds).
    Only the calibrated ``classes`` get a column, so a letter without samples keeps the model's reading."""
    n, d = z.shape
    w, b = np.zeros((d, len(classes))), np.zeros(len(classes))
    col = {int(c): i for i, c in enumerate(classes)}
    target = np.array([col[int(c)] for c in y])
    for _ in range(steps):
        logits = base_logp.copy()
        logits[:, classes] += z @ w + b
        logits -= logits.max(1, keepdims=True)
        q = np.exp(logits)
        q /= q.sum(1, keepdims=True)
        g = q[:, classes].copy()
        g[np.arange(n), target] -= 1.0
        g /= n
        w -= lr * (z.T @ g + l2 * w)
        b -= lr * g.sum(0)
    return w, b


class Adapter:
    """The fitted adaptation: model probabilities and embeddings -> calibrated probabilities.

    ``knn`` / ``prototype``: a similarity bonus towards the letters whose samples the frame resembles; ``head``: a
    linear correction of the model's reading fitted on the samples (needs ``sample_probs``, the model's
    probabilities of the samples); ``knn+head``: both."""

    def __init__(self, samples: np.ndarray, sample_labels: list[str], labels: list[str], method: str = "knn",
                 alpha: float = 24.0, temperature: float = 0.25, sample_probs: np.ndarray | None = None,
                 l2: float = 0.05):
        self.labels, self.method, self.alpha, self.temperature = list(labels), method, alpha, temperature
        x = np.asarray(samples, np.float64)
        self.mean = x.mean(0) if len(x) else 0.0
        self.scale = np.maximum(x.std(0), 1e-3) if len(x) > 1 else np.ones(x.shape[1] if x.ndim == 2 else 1)
        z = (x - self.mean) / self.scale / np.sqrt(max(x.shape[1], 1))  # unit-free, about 1 per sample
        y = np.array([self.labels.index(l) for l in sample_labels], np.int64)
        self.classes = np.unique(y)
        if method == "prototype":
            refs, ref_class = (np.stack([z[y == c].mean(0) for c in self.classes]), self.classes) if len(y) else (z, y)
        else:
            order = np.argsort(y, kind="stable")  # each letter's samples side by side, for one reduceat per frame
            refs, ref_class = z[order], y[order]
            self._sample_pos = np.argsort(order)  # where each sample sits among refs
        self.refs, self.ref_class = refs, ref_class
        self._ref_sq = (refs ** 2).sum(1)
        self._starts = np.flatnonzero(np.r_[True, ref_class[1:] != ref_class[:-1]]) if len(ref_class) else ref_class
        self.head = None
        if "head" in method and len(y):
            if sample_probs is None:
                raise ValueError("the 'head' calibration needs the model's probabilities of the samples")
            base = np.log(np.maximum(np.asarray(sample_probs, np.float64).reshape(len(y), -1), 1e-8))
            if "knn" in method:  # the head corrects what the similarity term leaves wrong
                base = base + self.alpha * self._similarity_z(z, leave_one_out=True)
            self.head = fit_residual_head(z, y, base, self.classes, l2)

    def _standardise(self, features: np.ndarray) -> np.ndarray:
        f = (np.asarray(features, np.float64).reshape(-1, len(np.atleast_1d(self.scale))) - self.mean) / self.scale
        return f / np.sqrt(f.shape[1])

    def similarity(self, features: np.ndarray) -> np.ndarray:
        """(B, dim) -> (B, n_labels): exp(-d^2 / 2T^2) to the nearest sample of each calibrated letter, 0 elsewhere."""
        return self._similarity_z(self._standardise(features))

    def _similarity_z(self, f: np.ndarray, leave_one_out: bool = False) -> np.ndarray:
        d2 = np.maximum((f ** 2).sum(1, keepdims=True) + self._ref_sq[None] - 2.0 * f @ self.refs.T, 0.0)  # (B, R)
        if leave_one_out:  # f holds the samples themselves, in their own order: none may find itself
            d2[np.arange(len(f)), self._sample_pos] = np.inf
        out = np.zeros((len(f), len(self.labels)))
        if len(self.refs):
            nearest = np.minimum.reduceat(d2, self._starts, axis=1)  # (B, calibrated letters)
            out[:, self.classes] = np.exp(-nearest / (2 * self.temperature ** 2))
        return out

    def __call__(self, probs: np.ndarray, features: np.ndarray) -> np.ndarray:
        p = np.asarray(probs, np.float64)
        single = p.ndim == 1
        p = p.reshape(1, -1) if single else p
        if len(self.classes) == 0:
            return probs
        logits = np.log(np.maximum(p, 1e-8))
        if self.method != "head":
            logits = logits + self.alpha * self.similarity(features)
        if self.head is not None:
            logits[:, self.classes] += self._standardise(features) @ self.head[0] + self.head[1]
        logits -= logits.max(1, keepdims=True)
        q = np.exp(logits)
        q /= q.sum(1, keepdims=True)
        q = q.astype(np.float32)
        return q[0] if single else q




_TUNED: dict = {}  # the last few tuned networks, by model, samples and settings
_TUNED_LOCK = threading.Lock()


def model_tuning(keypoints):
    """The tuning file a keypoint classifier's folder ships (:class:`realtime.personal_tuning.Tuning`), checked
    against its manifest; ProfileError saying why where there is none or it cannot be used."""
    name = keypoints.manifest.name
    entry = (getattr(keypoints.manifest, "raw", None) or {}).get("tuning")
    folder = getattr(keypoints, "folder", None)
    if entry is None or folder is None:
        raise ProfileError(f"{name} ships no tuning file (exported before personal tuning existed): export it again "
                           "from its model.pt, or calibrate again (its profiles then use kNN alone)")
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not entry.get("sha256"):
        raise ProfileError(f"{name}'s manifest has a damaged 'tuning' entry (it needs a file and its sha256)")
    try:
        tuning = Tuning.load(Path(folder) / entry["file"], entry["sha256"])
    except TuningError as e:
        raise ProfileError(str(e)) from e
    if tuning.base.w1.shape[0] != keypoints.manifest.features.dim or tuning.base.w3.shape[1] != len(keypoints.labels):
        raise ProfileError(f"{name}'s tuning file does not fit its model (features or labels)")
    return tuning


def tuned_model(keypoints, profile: Profile, cache: bool = True):
    """The keypoint classifier's network tuned to the profile's samples (:mod:`realtime.personal_tuning`);
    ``cache``: kept among the last few (a profile applied again, as the demo does when it rebuilds its recognizer, is
    not tuned again), off for one-off networks such as the self-check's folds."""
    try:
        tuning = model_tuning(keypoints)
    except ProfileError as e:
        raise ProfileError(f"this profile tunes the model ({profile.method}), but {e}") from e
    ids = np.array([profile.labels.index(l) for l in profile.sample_labels], np.int64)
    if not cache:
        return tuning.tune(profile.samples, ids, profile.tune_steps, profile.tune_lr)
    key = hashlib.sha256(b"".join([tuning.sha256.encode(), np.ascontiguousarray(profile.samples).tobytes(),
                                   ids.tobytes(), repr((profile.tune_steps, profile.tune_lr)).encode()])).hexdigest()
    with _TUNED_LOCK:  # deterministic, so the same key always gives the same network
        if key not in _TUNED:
            if len(_TUNED) >= 8:
                _TUNED.pop(next(iter(_TUNED)))
            _TUNED[key] = tuning.tune(profile.samples, ids, profile.tune_steps, profile.tune_lr)
        return _TUNED[key]




def make_profile(classifier, samples: np.ndarray, sample_labels: list[str], meta: dict | None = None,
                 method: str | None = None, crops: np.ndarray | None = None, image_classifier=None) -> Profile:
    """A profile of ``samples`` (model input features) for a keypoint ``classifier`` (OnnxClassifier) or a fused one
    (its keypoint model's); with ``crops`` (N, S, S, 3 uint8 RGB, one per sample), also for the fused reading with
    ``image_classifier`` (default: the fused classifier's image model). ``method``: by default
    :data:`SHIPPED_METHOD`, or ``knn`` where the model ships no tuning file."""
    if not len(sample_labels):
        raise ProfileError("no samples were recorded: no profile written")
    image_classifier = image_classifier or getattr(classifier, "image", None)
    classifier = getattr(classifier, "keypoints", classifier)
    m = classifier.manifest
    unknown = sorted(set(sample_labels) - set(m.labels))
    if unknown:
        raise ProfileError(f"labels {unknown} are not letters of {m.name} ({', '.join(m.labels)})")
    if method is None:
        method = SHIPPED_METHOD
        try:
            model_tuning(classifier)
        except ProfileError as e:  # said, and the profile still made: kNN needs nothing but the model
            method = "knn"
            if "tuning" in (getattr(m, "raw", None) or {}):  # a damaged or missing file, not an older model
                print(f"warning: {e}; this profile uses kNN alone", file=sys.stderr)
    meta = {"created": _dt.datetime.now().isoformat(timespec="seconds"), **(meta or {})}
    image = {}
    if crops is not None:
        crops = np.asarray(crops, np.uint8)
        if image_classifier is None or len(crops) != len(sample_labels) or crops.ndim != 4:
            raise ProfileError(f"{len(crops)} crops for {len(sample_labels)} samples (one each, with the image "
                               "classifier they are for)")
        image = {"crops": crops, "image_model": image_classifier.manifest.name,
                 "image_model_sha256": image_classifier.manifest.sha256}
    return Profile(model=m.name, model_sha256=m.sha256, labels=list(m.labels), features=m.features.to_dict(),
                   samples=np.asarray(samples, np.float32).reshape(len(sample_labels), -1),
                   sample_labels=list(sample_labels), method=method, meta=meta, **image)


def in_batches(run, x: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """``run`` (inputs -> (probabilities, embeddings)) over ``x`` in batches a fixed-profile backend accepts (a
    TensorRT engine is built for at most 32 rows by default); the samples of a profile can be more."""
    parts = [run(x[i:i + batch]) for i in range(0, len(x), batch)]
    return np.concatenate([np.atleast_2d(p) for p, _ in parts]), np.concatenate([np.atleast_2d(e) for _, e in parts])


class CalibratedClassifier:
    """Stage: features -> probabilities, the model's reading adapted to one person by a :class:`Profile`.

    Wraps a keypoint classifier (or a fused one: the profile adapts its keypoint part's reading of the features).
    """

    def __init__(self, classifier, profile: Profile | str | os.PathLike, cache_tuning: bool = True):
        profile = profile if isinstance(profile, Profile) else Profile.load(profile)
        kp = getattr(classifier, "keypoints", classifier)  # FusedClassifier: its keypoint model
        manifest = getattr(kp, "manifest", None)
        if manifest is None or getattr(manifest, "kind", "") != "keypoint-classifier":
            raise ProfileError("profiles calibrate keypoint classifiers (--classifier keypoints or fused); "
                               f"{getattr(manifest, 'name', type(classifier).__name__)} is not one")
        profile.check_model(manifest.name, manifest.sha256, list(kp.labels),
                            manifest.raw.get("features") if hasattr(manifest, "raw") else None)
        if list(classifier.labels) != list(kp.labels):
            raise ProfileError(f"{type(classifier).__name__} orders its labels unlike its keypoint model")
        self.base, self.profile, self.keypoints = classifier, profile, kp
        self.labels, self.spec = classifier.labels, getattr(classifier, "spec", None)
        self.manifest = getattr(classifier, "manifest", manifest)
        # the profile keeps the samples' input features; their embeddings come from this very model (same sha256)
        self._embed = getattr(kp, "probs_and_embedding", None) if profile.space == "embedding" else None
        if "head" in profile.method and classifier is not kp:
            raise ProfileError("the 'head' calibration is fitted to the keypoint model's reading; use a 'knn' "
                               "profile with --classifier fused")
        self.tuned = None
        if "tuned" in profile.method and len(profile.samples):  # the model's layers, tuned to this person
            self.tuned = tuned_model(kp, profile, cache_tuning)
            self._embed = self.tuned.probs_and_embedding
        refs, sample_probs = profile.samples, None
        if len(profile.samples):
            if self._embed is not None:
                sample_probs, refs = in_batches(self._embed, profile.samples)
            elif "head" in profile.method:
                sample_probs = in_batches(kp.probs_and_embedding, profile.samples)[0]
        self.adapter = Adapter(refs, profile.sample_labels, profile.labels, profile.method, profile.alpha,
                               profile.temperature, sample_probs=sample_probs, l2=profile.l2)
        # fused, with the samples' crops: the image model's embedding of them, a second similarity term
        self.image_adapter, image = None, getattr(classifier, "image", None)
        if image is not None and profile.crops is not None and len(profile.samples):
            profile.check_image_model(image.manifest.name, image.manifest.sha256)
            if profile.crops.shape[1:] != (image.size, image.size, 3):
                raise ProfileError(f"this profile's hand crops are {profile.crops.shape[1:]}, but {image.manifest.name} "
                                   f"reads ({image.size}, {image.size}, 3): calibrate again with --classifier fused")
            _, crop_emb = in_batches(image.probs_and_embedding, crops_to_input(profile.crops))
            self.image_adapter = Adapter(crop_emb, profile.sample_labels, profile.labels, "knn", profile.image_alpha,
                                         profile.image_temperature)

    def __call__(self, inputs) -> np.ndarray:
        """The keypoint features (or a fused model's (features, crop)) -> adapted probabilities."""
        features = inputs[0] if isinstance(inputs, tuple) else inputs
        if self._embed is None:
            p_kp, emb = self.keypoints(features), features
        else:
            p_kp, emb = self._embed(features)  # one run of the keypoint model gives both
            if len(p_kp) == 1:  # one frame: one row of probabilities, as the classifier stage gives it
                p_kp = p_kp[0]
        if self.base is self.keypoints:
            return self.adapter(p_kp, emb)
        if self.image_adapter is None:  # fused: the image model joins the keypoint reading just computed
            return self.adapter(self.base.fuse(p_kp, inputs[1]), emb)
        p_im, crop_emb = self.base.image.probs_and_embedding(inputs[1])  # one run: probabilities and embedding
        if len(p_im) == 1 and p_kp.ndim == 1:
            p_im = p_im[0]
        return self.image_adapter(self.adapter(self.base.fuse_probs(p_kp, p_im), emb), crop_emb)

    def __getattr__(self, name):  # everything else (session, backend, names) is the wrapped classifier's
        return getattr(self.base, name)
