"""Recording a calibration: which letter to sign next, which frames are good samples, and when a letter is done.

:class:`CalibrationSession` is the state machine, with no window of its own, so the camera window
(:func:`calibrate_camera`), the browser demo's calibration tab and the tests share it:

- it asks for each letter of the model in turn (``none``, the model's no-letter class, is never asked for);
- a frame is a sample when a hand is found and its shape has been still for :attr:`still_s` (so half-formed
  shapes on the way to a letter are not recorded), at most one sample every :attr:`gap_s`;
- after a letter's K samples it waits :attr:`pause_s` before the next letter's first sample, so the last shape is
  not recorded again under the next letter;
- ``redo()`` clears the current letter, ``skip()`` leaves it uncalibrated, ``back()`` returns to the previous one.

:func:`calibrate_images` records from a folder of the person's own photos (``LABEL/file``) instead, and
:func:`self_check` checks a recording when it is done: which letters are worth recording again.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from realtime.calibration import CalibratedClassifier, Profile, make_profile
from realtime.crops import input_to_crops
from realtime.manifest import NO_LETTER


@dataclass
class CalibrationSession:
    labels: list[str]  # the model's labels
    per_letter: int = 5
    still_s: float = 0.4  # the shape must be this still before a frame counts
    gap_s: float = 0.25  # at least this long between two samples of a letter
    pause_s: float = 1.2  # after a letter is done, time to form the next one
    still_tolerance: float = 0.06  # mean absolute feature change between frames that still counts as still
    samples: dict = field(default_factory=dict)  # letter -> list of feature vectors
    crops: dict = field(default_factory=dict)  # letter -> list of hand crops (fused calibration), one per sample
    skipped: list = field(default_factory=list)

    def __post_init__(self):
        if self.per_letter < 1:
            raise ValueError(f"--per-letter must be at least 1, got {self.per_letter}")
        self.letters = [l for l in self.labels if l != NO_LETTER]
        self.index = 0
        self._prev: np.ndarray | None = None
        self._still_since: float | None = None
        self._last_sample = -1e9
        self._paused_until = -1e9

    @property
    def letter(self) -> str | None:
        """The letter to sign now; None when every letter is done or skipped."""
        return self.letters[self.index] if self.index < len(self.letters) else None

    @property
    def done(self) -> bool:
        return self.letter is None

    def count(self, letter: str | None = None) -> int:
        return len(self.samples.get(letter or self.letter, []))

    @property
    def progress(self) -> float:
        """Fraction of all samples recorded (skipped letters count as done)."""
        total = len(self.letters) * self.per_letter
        got = sum(min(len(v), self.per_letter) for v in self.samples.values()) + len(self.skipped) * self.per_letter
        return min(1.0, got / total) if total else 1.0

    def status(self, t: float) -> str:
        if self.done:
            return "all letters done"
        if t < self._paused_until:
            return f"next: {self.letter} in {self._paused_until - t:.1f} s"
        return f"sign {self.letter}: {self.count()}/{self.per_letter}"

    def update(self, t: float, features: np.ndarray | None, crop: np.ndarray | None = None) -> bool:
        """One frame: ``features`` of the spelling hand (or None: no hand), and with a fused classifier its hand
        ``crop`` (S, S, 3 uint8 RGB), kept with the sample. Returns True if it became a sample."""
        if self.done:
            return False
        if features is None:
            self._prev, self._still_since = None, None
            return False
        f = np.asarray(features, np.float32).reshape(-1)
        still = self._prev is not None and float(np.abs(f - self._prev).mean()) <= self.still_tolerance
        self._prev = f
        if not still:
            self._still_since = None
            return False
        if self._still_since is None:
            self._still_since = t
        if t < self._paused_until or t - self._still_since < self.still_s or t - self._last_sample < self.gap_s:
            return False
        self.samples.setdefault(self.letter, []).append(f)
        if crop is not None:
            self.crops.setdefault(self.letter, []).append(np.asarray(crop, np.uint8))
        self._last_sample = t
        if self.count() >= self.per_letter:
            self._advance(t)
        return True

    def _advance(self, t: float) -> None:
        self.index += 1
        self._paused_until = t + self.pause_s
        self._still_since = None

    def _forget(self, letter: str) -> None:
        self.samples.pop(letter, None)
        self.crops.pop(letter, None)

    def redo(self) -> None:
        if not self.done:
            self._forget(self.letter)
            self._still_since = None

    def skip(self, t: float = 0.0) -> None:
        if not self.done:
            self._forget(self.letter)
            self.skipped.append(self.letter)
            self._advance(t)

    def back(self) -> None:
        if self.index > 0:
            self.index -= 1
            letter = self.letters[self.index]
            self._forget(letter)
            if letter in self.skipped:
                self.skipped.remove(letter)

    def recorded(self) -> tuple[np.ndarray, list[str]]:
        feats, labels = [], []
        for letter in self.letters:
            for f in self.samples.get(letter, []):
                feats.append(f)
                labels.append(letter)
        return (np.stack(feats) if feats else np.zeros((0, 0), np.float32)), labels

    def recorded_crops(self) -> np.ndarray | None:
        """The samples' hand crops in :meth:`recorded`'s order, or None unless every sample has one."""
        crops = [c for letter in self.letters for c in self.crops.get(letter, [])]
        n = sum(len(self.samples.get(letter, [])) for letter in self.letters)
        return np.stack(crops) if crops and len(crops) == n else None

    def to_profile(self, classifier, meta: dict | None = None) -> Profile:
        """``classifier``: the keypoint classifier, or a fused one (its image model's crops go into the profile)."""
        x, y = self.recorded()
        fused, crops = getattr(classifier, "image", None) is not None, self.recorded_crops()
        if fused and len(y) and crops is None:
            import sys

            print("warning: not every sample has its hand crop, so the profile keeps the keypoints only",
                  file=sys.stderr)
        return make_profile(classifier, x, y,
                            {"per_letter": self.per_letter, "skipped": list(self.skipped), **(meta or {})},
                            crops=crops if fused else None)


def sample_of(recognizer, hand, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(the keypoint model's input features of the hand, its crop as S x S x 3 uint8 RGB or None): a fused
    recognizer's features stage gives both, the crop as the image model's -1..1 input, turned back to pixels."""
    f = recognizer.features(hand, frame_bgr)
    if not isinstance(f, tuple):
        return np.asarray(f).reshape(-1), None
    return np.asarray(f[0]).reshape(-1), input_to_crops(f[1])[0]


def check_can_record_crops(recognizer) -> None:
    """A fused recognizer records crops only for an image model with the ``embedding`` output: say so up front."""
    clf = getattr(recognizer, "classifier", None)
    image = getattr(getattr(clf, "base", clf), "image", None)
    if image is not None and not image.has_embedding:
        from realtime.manifest import ModelError

        raise ModelError(f"{image.manifest.name} has no 'embedding' output, so a profile cannot use its crops: add it "
                         f"with 'fingerspell export --model {image.manifest.name} --add-embedding --out DIR' and "
                         "calibrate with --image-model DIR, or calibrate with --classifier keypoints")


def describe(profile: Profile) -> str:
    """One paragraph for the terminal: what was calibrated and what was not."""
    counts = profile.counts()
    done = [f"{l}:{n}" for l, n in counts.items() if n]
    missing = [l for l in profile.uncalibrated if l != NO_LETTER]
    text = f"{len(profile.sample_labels)} samples of {len(done)} letters ({' '.join(done)})"
    if missing:
        text += f"; not calibrated (the model's own reading is kept): {', '.join(missing)}"
    if profile.crops is not None:
        text += f"; with each sample's hand crop, for --classifier fused with {profile.image_model}"
    return text


def self_check(classifier, profile: Profile, folds: int = 5) -> dict:
    """How well the profile reads the person's own samples, honestly: each sample is read by a profile made without
    it (``folds``-fold, the k-th sample of every letter in fold k), through the keypoint reading with the profile's
    method. Tells the person which letters to record again, and as what they are read.

    Returns {"read": n right, "samples": n, "letters": {letter: (right, samples, {read as: n})}}; letters with one
    sample are read by a profile without that letter (the model's own reading)."""
    keypoints = getattr(classifier, "keypoints", classifier)
    labels = list(profile.sample_labels)
    fold = np.zeros(len(labels), np.int64)
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        fold[i] = seen.get(label, 0) % folds
        seen[label] = seen.get(label, 0) + 1
    letters: dict[str, list] = {}
    right = 0
    for k in range(min(folds, max(seen.values(), default=0))):
        test, keep = np.flatnonzero(fold == k), np.flatnonzero(fold != k)
        part = replace(profile, samples=profile.samples[keep], sample_labels=[labels[i] for i in keep], crops=None)
        reader = CalibratedClassifier(keypoints, part, cache_tuning=False) if len(keep) else keypoints
        probs = np.atleast_2d(reader(profile.samples[test]))
        for i, p in zip(test, probs):
            read_as = keypoints.labels[int(np.argmax(p))]
            entry = letters.setdefault(labels[i], [0, 0, {}])
            entry[1] += 1
            if read_as == labels[i]:
                entry[0] += 1
                right += 1
            else:
                entry[2][read_as] = entry[2].get(read_as, 0) + 1
    return {"read": right, "samples": len(labels), "letters": {l: tuple(v) for l, v in letters.items()}}


def describe_check(check: dict, worst: int = 5) -> str:
    """One line: the share of the samples read right, and the letters worth recording again."""
    if not check["samples"]:
        return "no samples to check"
    weak = sorted((right / n, letter, right, n, read_as) for letter, (right, n, read_as) in check["letters"].items()
                  if right < n)[:worst]
    text = (f"self-check (each sample read by a profile made without it): {check['read']}/{check['samples']} "
            f"read right ({check['read'] / check['samples']:.0%})")
    if weak:
        text += "; worth recording again: " + ", ".join(
            f"{letter} {right}/{n} (read as {', '.join(sorted(read_as, key=lambda other: -read_as[other]))})"
            for _, letter, right, n, read_as in weak)
    return text


def model_label(folder: str, labels: list[str]) -> str:
    """A person's folder name as the model's label: ``a/`` is the model's ``A`` (their own folders are named as
    they like; the models' letters are upper-case)."""
    return folder.upper() if folder not in labels and len(folder) == 1 and folder.upper() in labels else folder


def calibrate_images(recognizer, folder: str | Path, per_letter: int = 5, seed: int = 0,
                     progress: bool = True) -> tuple[Profile, dict]:
    """A profile from a person's own photos (``LABEL/file``): up to ``per_letter`` photos with a hand per letter.

    Returns (profile, report) where the report names the labels the model does not know and the unreadable or
    handless photos, so nothing is dropped silently.
    """
    check_can_record_crops(recognizer)
    from tqdm import tqdm

    from realtime.images import DatasetError, ImageFolder, read_image

    ds = ImageFolder(folder)
    labels = list(recognizer.labels)
    named = {s.label: model_label(s.label, labels) for s in ds.samples}
    unknown = sorted(f for f, label in named.items() if label not in labels)
    rng = np.random.default_rng(seed)
    feats, names, crops, unreadable, no_hand = [], [], [], [], []
    by_label: dict[str, list] = {}
    for s in ds.samples:
        if named[s.label] in labels and named[s.label] != NO_LETTER:
            by_label.setdefault(named[s.label], []).append(s)
    work = [(label, [by_label[label][i] for i in rng.permutation(len(by_label[label]))]) for label in labels
            if label in by_label]
    bar = tqdm(total=sum(min(per_letter, len(v)) for _, v in work), desc="calibration photos", unit="sample",
               disable=not progress)
    for label, samples in work:
        got = 0
        for s in samples:
            if got >= per_letter:
                break
            img = read_image(s.path)
            if img is None:
                unreadable.append(s.rel)
                continue
            hands, hand, _ = recognizer.read(img)
            if hand is None:
                no_hand.append(s.rel)
                continue
            f, crop = sample_of(recognizer, hand, img)
            feats.append(f)
            crops.append(crop)
            names.append(label)
            got += 1
            bar.update(1)
    bar.close()
    report = {"unknown_labels": unknown, "unreadable": unreadable, "no_hand": no_hand}
    if not feats:
        raise DatasetError(f"no photo in {folder} gave a sample, so no profile was made: {len(unknown)} label "
                           f"folder(s) the model does not know ({', '.join(unknown[:5]) or 'none'}), {len(unreadable)} "
                           f"unreadable file(s), {len(no_hand)} photo(s) without a hand found; the model's letters: "
                           f"{', '.join(l for l in labels if l != NO_LETTER)}")
    clf = getattr(recognizer.classifier, "base", recognizer.classifier)
    profile = make_profile(clf, np.stack(feats) if feats else np.zeros((0, 0)), names,
                           {"source": f"photos in {Path(folder).name}", "per_letter": per_letter},
                           crops=np.stack(crops) if crops and crops[0] is not None else None)
    return profile, report


def calibrate_camera(recognizer, reader, per_letter: int = 5, mirror: bool = True, photos: dict | None = None,
                     window: str | None = "fingerspell calibrate") -> tuple[CalibrationSession, str | None]:
    """The guided window: shows the letter to sign (and its reference photo), records samples, keys r / s / b / q.
    ``window=None`` records without showing anything (tests, or a script that feeds a video).

    Returns (session, why it stopped early or None). A camera that fails mid-way keeps what was recorded.
    """
    check_can_record_crops(recognizer)
    import cv2
    from tqdm import tqdm

    from realtime.capture import ThreadedCapture

    session = CalibrationSession(list(recognizer.labels), per_letter)
    total = len(session.letters) * per_letter
    bar = tqdm(total=total, desc="calibration", unit="sample")
    stopped = None
    try:
        with ThreadedCapture(reader) as cap:
            while not session.done:
                try:
                    frame = cap.read()
                except Exception as e:  # SourceError, OSError, cv2.error...: whatever the camera failed with
                    stopped = f"the camera stopped ({type(e).__name__}: {e}); what was recorded so far is kept"
                    break
                if frame is None:
                    stopped = "the camera stopped; what was recorded so far is kept"
                    break
                t = frame.media_t if frame.media_t is not None and not cap.live else frame.t
                hands, hand, _ = recognizer.read(frame.image)
                session.update(t, *(sample_of(recognizer, hand, frame.image) if hand is not None else (None, None)))
                if window is None:
                    continue
                cv2.imshow(window, draw_calibration(frame.image, session, t, hand, mirror, photos))
                key = cv2.waitKey(1) & 0xFF
                if key in (ord("q"), 27):
                    stopped = "stopped by the user; what was recorded so far is kept"
                    break
                if key == ord("r"):
                    session.redo()
                elif key == ord("s"):
                    session.skip(t)
                elif key == ord("b"):
                    session.back()
                bar.n = int(round(session.progress * total))
                bar.refresh()
            if window is None:
                bar.n = int(round(session.progress * total))
    except KeyboardInterrupt:
        stopped = "interrupted; what was recorded so far is kept"
    finally:
        bar.close()
        if window is not None:
            try:
                cv2.destroyWindow(window)
            except cv2.error:
                pass
    return session, stopped


def draw_calibration(frame_bgr: np.ndarray, session: CalibrationSession, t: float, hand=None, mirror: bool = True,
                     photos: dict | None = None, hint: str | None = "r redo  s skip  b back  q finish") -> np.ndarray:
    """The frame (mirrored like a mirror), the hand's landmarks, the letter to sign, its photo and the progress.
    ``hint``: the window's keys (the browser demo, which has buttons instead, passes None)."""
    import cv2

    from realtime.overlay import draw_hand

    img = frame_bgr.copy()
    if hand is not None:
        draw_hand(img, hand)
    if mirror:
        img = cv2.flip(img, 1)
    h, w = img.shape[:2]
    cv2.rectangle(img, (0, 0), (w, 70), (0, 0, 0), -1)
    cv2.putText(img, session.status(t), (12, 48), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2, cv2.LINE_AA)
    photo = (photos or {}).get(session.letter)
    if photo is not None:
        ph = cv2.resize(photo, (min(120, w // 4), min(120, w // 4)))
        img[80:80 + ph.shape[0], w - ph.shape[1] - 10:w - 10] = ph
    cv2.rectangle(img, (0, h - 36), (w, h), (0, 0, 0), -1)
    cv2.rectangle(img, (10, h - 26), (10 + int((w - 20) * session.progress), h - 10), (0, 200, 0), -1)
    if hint:
        cv2.putText(img, hint, (12, h - 44), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return img
