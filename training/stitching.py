"""Sign stitching (paper 002, section 3.1.1) for fingerspelling: synthetic keypoint sequences of spelled words, made
from a dictionary of real static hands, so that a sequence model can be pre-trained where real fingerspelling
video is scarce. A first step of issue 17: the dictionary, the ASL motion letters and the stitcher, with a command
that writes a reproducible set. The sequence model and the live reader are still to come.

- **Dictionary** (:class:`LetterDictionary`): every detected hand of the cached keypoints, per letter, as 21
  wrist-centred 3-D joints in units of the hand size, right hand (left hands mirrored), with its signer, so that
  held-out signers stay held out.
- **Motion letters** (ASL only so far): J is the I handshape whose little finger traces a hook (down, then
  curving towards the body while the hand turns palm-in); Z is the index handshape (the static "D" pose of the
  datasets, index up) whose fingertip traces a Z (right, down-left, right). Both are trajectories of a real base
  pose: the hand turns and moves about the wrist. Source: the ASL manual alphabet as every ASL fingerspelling
  chart draws it (Gallaudet / Lifeprint); LIS G, J, S, Z are not modelled yet.
- **Stitching** (:func:`stitch`): per letter a hold of random length with jitter, transitions that interpolate
  the pose joint by joint along the hand's bones (each bone's direction turned by slerp, its length blended, the
  hand rebuilt from the wrist: fingers bend, they do not shrink through each other), a low-pass filter, a slow
  drift of the whole hand, a camera-view rotation, repeated letters bounced (a small slide between the two),
  spaces as gaps without a hand, dropped frames and missed detections, at 15-60 frames/s. Every sequence keeps
  the frame span of each letter.
- **Words** (:func:`pronounceable_word`): generated pronounceable strings (consonant-vowel syllables with
  the alphabet's letters), no word list: nothing to license.
- **Held photos** (:func:`hold_photos`, ``train stitch --held-photos``): the other kind of test set issue 17 asks
  for, what a video made from real photos shows: each letter one real photo's hand (its MediaPipe landmarks as
  cached), held still for about a second, cut straight to the next letter's photo; no motion, no transition, no
  jitter, no view change. Repeated letters take two different photos (where the letter has two) with a short drop
  of the hand between them (a photo video cannot bounce); motion letters are left out (no photo shows them).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from realtime.features import FINGERS, NUM_JOINTS, PALM_BASES, WRIST

MOTION_LETTERS = {"asl": ("J", "Z")}
MOTION_BASES = {"J": "I", "Z": "D"}  # the static handshape each motion letter moves
PARENT = np.zeros(NUM_JOINTS, np.int64)  # each joint's parent along the hand's bones (the wrist is the root)
for _chain in FINGERS.values():
    for _k, _j in enumerate(_chain):
        PARENT[_j] = WRIST if _k == 0 else _chain[_k - 1]
VOWELS = set("AEIOUY")


def normalise(landmarks: np.ndarray, is_left: np.ndarray) -> np.ndarray:
    """(N, 21, 3) pixel landmarks -> wrist at the origin, units of the hand size, left hands mirrored to right."""
    lm = np.asarray(landmarks, np.float64).copy()
    lm[np.asarray(is_left, bool), :, 0] *= -1.0
    lm -= lm[:, WRIST:WRIST + 1]
    size = np.linalg.norm(lm[:, PALM_BASES], axis=-1).mean(-1)
    return lm / np.maximum(size, 1e-6)[:, None, None]


@dataclass
class LetterDictionary:
    """Static poses per letter: ``poses[letter]`` (n, 21, 3) normalised, ``signers[letter]`` (n,)."""

    alphabet: str
    poses: dict[str, np.ndarray]
    signers: dict[str, np.ndarray]
    sources: list[str] = field(default_factory=list)

    @property
    def letters(self) -> list[str]:
        return sorted(set(self.poses) | {m for m in MOTION_LETTERS.get(self.alphabet, ())
                                         if MOTION_BASES[m] in self.poses})

    def without(self, signers: set[str]) -> "LetterDictionary":
        """The dictionary without these signers' hands (for held-out evaluation)."""
        keep = {k: ~np.isin(v, list(signers)) for k, v in self.signers.items()}
        return LetterDictionary(self.alphabet, {k: v[keep[k]] for k, v in self.poses.items() if keep[k].any()},
                                {k: v[keep[k]] for k, v in self.signers.items() if keep[k].any()}, self.sources)

    @classmethod
    def from_keypoints(cls, alphabet: str, sets, letters: list[str]) -> "LetterDictionary":
        """From :class:`training.keypoint_set.KeypointSet` s (the keypoint cache): every detected hand of a letter."""
        poses, signers = {}, {}
        for kp in sets:
            ok = kp.detected & kp.readable & np.isin(kp.labels, letters)
            lm = normalise(kp.landmarks[ok], kp.is_left[ok])
            who = np.array([f"{d}/{s}" for d, s in zip(kp.dataset[ok], kp.signers[ok])])
            for letter in np.unique(kp.labels[ok]):
                m = kp.labels[ok] == letter
                poses[letter] = np.concatenate([poses.get(letter, np.zeros((0, NUM_JOINTS, 3))), lm[m]])
                signers[letter] = np.concatenate([signers.get(letter, np.zeros(0, str)), who[m]])
        used = {str(d) for kp in sets for d in np.unique(kp.dataset[kp.detected & np.isin(kp.labels, letters)])}
        return cls(alphabet, poses, signers, sorted(used))


# --- pose interpolation along the bones ---------------------------------------------------------------------------
def _bones(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(21, 3) -> unit bone directions (21, 3) and lengths (21,) from each joint's parent (the wrist's are 0)."""
    v = pose - pose[PARENT]
    length = np.linalg.norm(v, axis=-1)
    return v / np.maximum(length, 1e-9)[:, None], length


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of unit vectors, row by row."""
    dot = np.clip((a * b).sum(-1, keepdims=True), -1.0, 1.0)
    theta = np.arccos(dot)
    s = np.sin(theta)
    near = s < 1e-6
    wa = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / np.where(near, 1.0, s))
    wb = np.where(near, t, np.sin(t * theta) / np.where(near, 1.0, s))
    out = wa * a + wb * b
    return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-9)


def _build(directions: np.ndarray, lengths: np.ndarray, wrist: np.ndarray) -> np.ndarray:
    pose = np.zeros((NUM_JOINTS, 3))
    pose[WRIST] = wrist
    for chain in FINGERS.values():  # parents come before children along each chain
        for j in chain:
            pose[j] = pose[PARENT[j]] + directions[j] * lengths[j]
    return pose


def interpolate(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """The pose a fraction ``t`` of the way from ``a`` to ``b``: bones turned by slerp, lengths and wrist blended.
    ``t`` = 0 and 1 give ``a`` and ``b`` exactly (up to float error)."""
    (da, la), (db, lb) = _bones(a), _bones(b)
    return _build(_slerp(da, db, t), (1 - t) * la + t * lb, (1 - t) * a[WRIST] + t * b[WRIST])


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3x3 rotation: roll about z (in the image plane), then pitch about x, then yaw about y (radians)."""
    cz, sz, cx, sx, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return ry @ rx @ rz


# --- motion letters -------------------------------------------------------------------------------------------------
def motion(letter: str, base: np.ndarray, frames: int, size: float = 1.0) -> np.ndarray:
    """(frames, 21, 3): ``base`` (the letter's static handshape) moving as the letter is signed; image axes, y down,
    hand size 1. ``size`` scales the path (people draw J and Z larger or smaller)."""
    t = np.linspace(0.0, 1.0, frames)
    out = np.zeros((frames, NUM_JOINTS, 3))
    if letter == "J":  # little finger hooks: down, then towards the body (to the signer's left, our +x for a
        # right hand seen from the front is the signer's left) while the hand turns palm-in
        path = np.stack([0.9 * size * np.clip(t - 0.45, 0, None) ** 1.5 * 2.0, 0.8 * size * np.sin(np.pi * t / 1.6),
                         np.zeros_like(t)], -1)
        turns = [rotation(0.0, 0.0, -np.pi / 2 * np.clip((tt - 0.3) / 0.7, 0, 1)) for tt in t]
    elif letter == "Z":  # the index tip draws a Z: right, down-left, right (as the signer sees it: our -x)
        corners = np.array([[0, 0], [-1, 0], [0, 1], [-1, 1]], np.float64) * 0.8 * size
        seg = np.minimum((t * 3).astype(int), 2)
        u = t * 3 - seg
        xy = corners[seg] * (1 - u)[:, None] + corners[seg + 1] * u[:, None]
        path = np.concatenate([xy, np.zeros((frames, 1))], -1)
        turns = [np.eye(3)] * frames
    else:
        raise ValueError(f"{letter!r} is not a motion letter here ({sorted(MOTION_BASES)})")
    for i in range(frames):
        out[i] = base @ turns[i].T + path[i]
    return out


# --- words and stitching --------------------------------------------------------------------------------------------
def pronounceable_word(letters: list[str], rng: np.random.Generator, min_len: int = 2, max_len: int = 7) -> str:
    """A consonant-vowel string from ``letters`` (no word list, so nothing to license), with an occasional double
    letter so that repeats are learnt."""
    vowels = [c for c in letters if c in VOWELS]
    consonants = [c for c in letters if c not in VOWELS]
    n = int(rng.integers(min_len, max_len + 1))
    word = []
    for i in range(n):
        pool = vowels if (i % 2 == 1) == bool(rng.random() < 0.85) and vowels else consonants or vowels
        word.append(str(rng.choice(pool)))
        if word and len(word) < n and rng.random() < 0.08:
            word.append(word[-1])
    return "".join(word[:n])


@dataclass
class Sequence:
    """One stitched sequence: what a sequence model reads and the truth it learns from."""

    text: str  # the letters spelled, " " for a gap between words
    landmarks: np.ndarray  # (T, 21, 3) in a notional 640x480 frame, pixels (x, y) and depth z
    detected: np.ndarray  # (T,) bool: False where the hand was not found (the landmarks there are meaningless)
    t: np.ndarray  # (T,) seconds: frame times (irregular where frames were dropped)
    spans: list[tuple[str, int, int]]  # (letter, first frame, last frame + 1) of each letter's hold, in order
    fps: float


def _hold(pose: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A held pose with natural jitter: a slow wobble of the whole hand plus per-joint tremor."""
    wobble = np.cumsum(rng.normal(0, 0.004, (frames, 1, 3)), 0)
    return pose[None] + wobble + rng.normal(0, 0.006, (frames, NUM_JOINTS, 3))


def _lowpass(x: np.ndarray, fps: float, cutoff_hz: float = 6.0) -> np.ndarray:
    """A moving average about 1/cutoff wide (at least 1 frame): removes the sharp, unnatural corners that
    concatenation leaves (paper 002's filtering step)."""
    k = max(1, int(round(fps / cutoff_hz)) | 1)
    if k == 1:
        return x
    pad = k // 2
    xp = np.concatenate([np.repeat(x[:1], pad, 0), x, np.repeat(x[-1:], pad, 0)])
    c = np.cumsum(np.concatenate([np.zeros((1,) + x.shape[1:]), xp]), 0)
    return (c[k:] - c[:-k]) / k


def stitch(text: str, dictionary: LetterDictionary, rng: np.random.Generator, fps: float = 30.0,
           hold_s: tuple[float, float] = (0.25, 0.7), transition_s: tuple[float, float] = (0.08, 0.25),
           gap_s: tuple[float, float] = (0.4, 0.9), drop: float = 0.03, miss: float = 0.02,
           view_deg: tuple[float, float, float] = (30.0, 20.0, 15.0)) -> Sequence:
    """``text`` (letters of the dictionary and spaces) as a keypoint sequence at ``fps``; see the module docstring."""
    unknown = sorted(set(text.replace(" ", "")) - set(dictionary.letters))
    if unknown:
        raise ValueError(f"letters {unknown} are not in the {dictionary.alphabet} dictionary ({dictionary.letters})")
    frames, spans, gaps = [], [], []

    def n_frames(lo_hi):
        return max(2, int(round(rng.uniform(*lo_hi) * fps)))

    prev = None
    for i, ch in enumerate(text):
        if ch == " ":
            gaps.append((sum(len(f) for f in frames), n_frames(gap_s)))
            frames.append(np.repeat(frames[-1][-1:], gaps[-1][1], 0) if frames else np.zeros((gaps[-1][1], NUM_JOINTS, 3)))
            continue
        base_letter = MOTION_BASES.get(ch, ch)
        pose = dictionary.poses[base_letter][rng.integers(len(dictionary.poses[base_letter]))]
        if ch in MOTION_BASES:
            held = motion(ch, pose, n_frames((0.5, 0.9)), size=rng.uniform(0.7, 1.3))
        else:
            held = _hold(pose, n_frames(hold_s), rng)
        if prev is not None:
            start = held[0].copy()
            if i > 0 and text[i - 1] == ch:  # a repeated letter: a small slide away and back (ASL's bounce)
                start = start + np.array([rng.choice([-1, 1]) * 0.35, -0.15, 0.0])
                held = np.concatenate([np.stack([interpolate(start, held[0], s) for s in np.linspace(0, 1, 4)]), held])
            n = n_frames(transition_s)
            frames.append(np.stack([interpolate(prev, start, s) for s in np.linspace(0, 1, n + 2)[1:-1]]))
        first = sum(len(f) for f in frames)
        frames.append(held)
        spans.append((ch, first, first + len(held)))
        prev = held[-1]
    seq = _lowpass(np.concatenate(frames), fps)
    total = len(seq)
    # the whole hand: a camera-view rotation (fixed per sequence), a slow drift and a scale, into a 640x480 frame
    yaw, pitch, roll = (np.radians(rng.uniform(-d, d)) for d in view_deg)
    seq = seq @ rotation(yaw, pitch, roll).T
    drift = np.cumsum(rng.normal(0, 0.01, (total, 1, 3)), 0) * np.array([1.0, 1.0, 0.2])
    scale = rng.uniform(50.0, 110.0)  # hand size in pixels
    centre = np.array([rng.uniform(220, 420), rng.uniform(200, 300), 0.0])
    seq = (seq + drift) * scale + centre
    t = np.arange(total) / fps
    detected = rng.random(total) >= miss
    for start, n in gaps:
        detected[start:start + n] = False
    keep = rng.random(total) >= drop  # dropped frames: the clock goes on, the frame never arrives
    keep[[s for _, s, _ in spans]] = True  # never drop a letter's first frame: spans stay meaningful
    index = np.cumsum(keep) - 1
    spans = [(c, int(index[s]), int(index[e - 1]) + 1) for c, s, e in spans]
    return Sequence(text, seq[keep].astype(np.float32), detected[keep], t[keep], spans, fps)


def hold_photos(text: str, dictionary: LetterDictionary, rng: np.random.Generator, fps: float = 30.0,
                hold_s: tuple[float, float] = (0.8, 1.2), gap_s: tuple[float, float] = (1.6, 2.2),
                repeat_gap_s: tuple[float, float] = (0.3, 0.5)) -> Sequence:
    """``text`` as a video made from real photos would show it: each letter one photo's hand, held still, cut to the
    next; spaces (and the moment between two photos of a repeated letter: another photo where there is one)
    without a hand. The holds (about a second), the drops of the hand between repeated letters (0.3-0.5 s) and the
    gaps between words (1.6-2.2 s) are what the letter reader's defaults ask of a user (a 0.5 s hold, 0.2 s without
    the letter to type it again, a space after 1.5 s without a hand), so that both readers get a fair test."""
    unknown = sorted(set(text.replace(" ", "")) - set(dictionary.poses))
    if unknown:
        raise ValueError(f"letters {unknown} have no photo in the {dictionary.alphabet} dictionary "
                         f"({''.join(sorted(dictionary.poses))}; motion letters have none)")
    scale, centre = rng.uniform(50.0, 110.0), np.array([rng.uniform(220, 420), rng.uniform(200, 300), 0.0])
    frames, found, spans = [], [], []

    def n_frames(seconds: float) -> int:  # whole frames lasting at least ``seconds``
        return max(1, int(np.ceil(seconds * fps - 1e-9)))

    def blank(n: int) -> None:
        frames.append(np.zeros((n, NUM_JOINTS, 3)))
        found.append(np.zeros(n, bool))

    last = None  # the photo the previous letter showed
    for i, ch in enumerate(text):
        if ch == " ":
            blank(n_frames(rng.uniform(*gap_s)))
            continue
        photos = len(dictionary.poses[ch])
        k = int(rng.integers(photos))
        if i > 0 and text[i - 1] == ch:
            blank(n_frames(rng.uniform(*repeat_gap_s)))
            if photos > 1 and k == last:
                k = (k + 1 + int(rng.integers(photos - 1))) % photos  # another photo of the same letter
        last = k
        n = n_frames(rng.uniform(*hold_s))
        pose = dictionary.poses[ch][k]
        first = sum(len(f) for f in frames)
        frames.append(np.repeat((pose * scale + centre)[None], n, 0))
        found.append(np.ones(n, bool))
        spans.append((ch, first, first + n))
    lm = np.concatenate(frames).astype(np.float32)
    return Sequence(text, lm, np.concatenate(found), np.arange(len(lm)) / fps, spans, fps)


def write_set(path: str | Path, alphabet: str, dictionary: LetterDictionary, count: int, seed: int = 0,
              fps_range: tuple[float, float] = (15.0, 60.0), progress: bool = True, command: str | None = None,
              words: list[str] | None = None, held_photos: bool = False) -> dict:
    """``count`` stitched sequences of generated words (or of ``words``, a word list) -> one .npz (ragged arrays
    concatenated with offsets) and a .json manifest beside it (alphabet, seed, dictionary sources and signers, the
    command's settings). ``held_photos``: :func:`hold_photos` sequences instead (real photos held still; the
    static letters only)."""
    from tqdm import tqdm

    from training.io import atomic_savez

    rng = np.random.default_rng(seed)
    letters = sorted(dictionary.poses) if held_photos else dictionary.letters
    if words is not None:
        words = sorted({w.upper() for w in words if w and set(w.upper()) <= set(letters)})
        if not words:
            raise ValueError(f"no word of the list is spelled with the dictionary's letters {''.join(letters)}")
    seqs = []
    for _ in tqdm(range(count), desc=f"stitch {alphabet}", unit="seq", disable=not progress):
        n = int(rng.integers(1, 3))
        spelled = ([str(w) for w in rng.choice(words, n)] if words is not None
                   else [pronounceable_word(letters, rng) for _ in range(n)])
        make = hold_photos if held_photos else stitch
        seqs.append(make(" ".join(spelled), dictionary, rng, fps=float(rng.uniform(*fps_range))))
    offsets = np.cumsum([0] + [len(s.t) for s in seqs])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_savez(path, landmarks=np.concatenate([s.landmarks for s in seqs]),
                 detected=np.concatenate([s.detected for s in seqs]), t=np.concatenate([s.t for s in seqs]),
                 offsets=offsets, text=np.array([s.text for s in seqs]), fps=np.array([s.fps for s in seqs]),
                 spans=np.array([json.dumps(s.spans) for s in seqs]))
    manifest = {"kind": "held-photo-sequences" if held_photos else "stitched-sequences",
                "what": ("real photos' hands held still, cut from letter to letter (a video made from photos): real "
                         "hands, no real motion" if held_photos else
                         "synthetic: stitched from real people's static hands"),
                "alphabet": alphabet, "sequences": count, "frames": int(offsets[-1]),
                "seed": seed, "fps_range": list(fps_range), "letters": letters,
                "motion_letters": [m for m in MOTION_LETTERS.get(alphabet, ()) if m in letters],
                "dictionary": {"sources": dictionary.sources,
                               "hands": {k: int(len(v)) for k, v in dictionary.poses.items()},
                               "signers": sorted({str(s) for v in dictionary.signers.values() for s in np.unique(v)})},
                "words": (f"{len(words)} words of a word list" if words is not None else
                          "generated pronounceable strings (training.stitching.pronounceable_word), no word list"),
                "synthetic": not held_photos, "command": command}
    path.with_suffix(".json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
