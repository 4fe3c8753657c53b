"""Synthetic hands from 21 3-D keypoints: H-GAN's source domain, whose pose and letter are exact.

A hand is drawn as a forearm, a palm polygon and 15 finger bones as tapered capsules, far parts first (painter's
order on MediaPipe's z, which grows away from the camera), each shaded by its depth and a random light direction,
in one of a range of skin tones, on a plain, dark or noisy background. It is drawn at ``supersample`` times the
crop size and area-averaged down, framed exactly as the real crops are (``realtime.crops.SquareBox.around`` the
landmarks, enlarged by ``CROP_SCALE``), so a rendered crop and a real one of the same pose line up.

The source poses are the cached keypoints of the real datasets, turned in 3-D about the wrist and mirrored
(``source_poses``), so every letter can be drawn from views the photos lack.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from realtime.crops import CROP_SCALE, SquareBox
from realtime.features import FINGERS, hand_size

# Radius of each finger's joints (base .. tip), as a fraction of the hand size (wrist to the finger bases).
FINGER_RADII = {"thumb": (0.17, 0.15, 0.13, 0.11), "index": (0.13, 0.12, 0.105, 0.09),
                "middle": (0.135, 0.125, 0.11, 0.095), "ring": (0.125, 0.115, 0.10, 0.085),
                "pinky": (0.11, 0.10, 0.085, 0.075)}
PALM = (0, 1, 5, 9, 13, 17)
# Skin tones (RGB), light to dark; a hand's tone is a random blend of two neighbours plus a little jitter.
SKIN_TONES = np.array([(250, 222, 200), (236, 192, 160), (222, 170, 130), (196, 140, 100), (160, 104, 70),
                       (112, 72, 48), (80, 52, 36)], np.float32)
BACKGROUNDS = ("plain", "dark", "noise", "mixed")


@dataclass(frozen=True)
class RenderSettings:
    size: int = 32
    scale: float = CROP_SCALE  # the real crops' framing
    supersample: int = 4
    background: str = "mixed"  # plain: any colour; dark: the lis photos' dark cloth; noise: smooth random blobs
    forearm: float = 1.6  # forearm length, in hand sizes (0: none)

    def __post_init__(self):
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {BACKGROUNDS}, got {self.background!r}")
        if self.size < 8 or self.supersample < 1:
            raise ValueError("size >= 8 and supersample >= 1 are required")


def _capsule(img, p, q, r1, r2, color) -> None:
    """A tapered capsule from p (radius r1) to q (radius r2), filled, on a uint8 image (fixed-point coordinates)."""
    shift = 4
    f = float(1 << shift)
    d = np.asarray(q, np.float64) - np.asarray(p, np.float64)
    n = np.array([-d[1], d[0]]) / max(np.hypot(*d), 1e-6)
    quad = np.array([p + n * r1, q + n * r2, q - n * r2, p - n * r1])
    cv2.fillConvexPoly(img, np.round(quad * f).astype(np.int32), color, cv2.LINE_AA, shift)
    for c, r in ((p, r1), (q, r2)):
        cv2.circle(img, tuple(np.round(np.asarray(c) * f).astype(int)), int(round(r * f)), color, -1, cv2.LINE_AA,
                   shift)


def _background(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    """(n, n, 3) float32 RGB 0..255."""
    if kind == "mixed":
        kind = rng.choice(["plain", "dark", "noise"])
    if kind == "plain":
        base = rng.uniform(0, 255, 3)
    else:
        base = rng.uniform(10, 70, 1).repeat(3) + rng.uniform(-8, 8, 3)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None] * rng.uniform(-40, 40)
    img = base[None, None, :] + ramp
    if kind == "noise":
        blobs = cv2.resize(rng.normal(0, 1, (4, 4, 3)).astype(np.float32), (n, n), interpolation=cv2.INTER_CUBIC)
        img = img + blobs * rng.uniform(10, 40)
    img = img + rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.float32)


def render_hand(landmarks: np.ndarray, rng: np.random.Generator, settings: RenderSettings = RenderSettings(),
                tone: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One hand: ``landmarks`` (21, 3) in pixels (z in the unit of x, as MediaPipe gives it, smaller is nearer).

    Returns the RGB uint8 crop (S, S, 3), its hand mask (S, S) float32 0..1, and the keypoints as fractions of the
    crop (21, 2), where the real crops' ``HandCrops.keypoints`` would put them.
    """
    lm = np.asarray(landmarks, np.float64)
    box = SquareBox.around(lm[:, :2], settings.scale)
    big = settings.size * settings.supersample
    xy = (lm[:, :2] - [box.cx - box.side / 2, box.cy - box.side / 2]) / box.side * big  # canvas pixels
    z = lm[:, 2]
    unit = float(hand_size(lm[None])[0]) / box.side * big  # the hand size on the canvas
    if tone is None:
        i = rng.integers(0, len(SKIN_TONES) - 1)
        tone = SKIN_TONES[i] + rng.uniform(0, 1) * (SKIN_TONES[i + 1] - SKIN_TONES[i]) + rng.normal(0, 6, 3)
    light = rng.normal(0, 1, 2)
    light /= max(np.linalg.norm(light), 1e-6)
    z_span = max(float(np.ptp(z)), 1e-6)

    parts = []  # (depth, kind, geometry): drawn far to near
    wrist, mid = xy[0], xy[9]
    axis = (wrist - mid) / max(np.linalg.norm(wrist - mid), 1e-6)
    if settings.forearm > 0:
        parts.append((z[0] + 0.3 * z_span, "capsule", (wrist, wrist + axis * settings.forearm * unit,
                                                        0.42 * unit, 0.48 * unit)))
    across = np.array([-axis[1], axis[0]])
    palm = np.vstack([xy[list(PALM)], wrist + across * 0.33 * unit, wrist - across * 0.33 * unit])
    parts.append((float(z[list(PALM)].mean()) + 0.05 * z_span, "poly", cv2.convexHull(palm.astype(np.float32))))
    for name, joints in FINGERS.items():
        chain = (0,) + joints if name == "thumb" else joints
        radii = FINGER_RADII[name]
        radii = (radii[0] * 1.15,) + radii if name == "thumb" else radii
        for a, b, ra, rb in zip(chain[:-1], chain[1:], radii[:-1], radii[1:]):
            parts.append(((z[a] + z[b]) / 2, "capsule", (xy[a], xy[b], ra * unit, rb * unit)))
    parts.sort(key=lambda p: -p[0])

    colour = np.zeros((big, big, 3), np.float32)
    mask = np.zeros((big, big), np.float32)
    centre = xy[[0, 5, 9, 13, 17]].mean(0)
    for depth, kind, geom in parts:
        layer = np.zeros((big, big), np.uint8)
        if kind == "poly":
            cv2.fillConvexPoly(layer, np.round(geom.reshape(-1, 2) * 16).astype(np.int32), 255, cv2.LINE_AA, 4)
            where = geom.reshape(-1, 2).mean(0)
        else:
            p, q, r1, r2 = geom
            _capsule(layer, p, q, r1, r2, 255)
            where = (p + q) / 2
        near = (z.max() - depth) / z_span  # 1: the nearest part, 0: the farthest
        lit = 0.72 + 0.22 * near + 0.10 * float(np.dot((where - centre) / max(unit, 1e-6), light))
        a = layer.astype(np.float32) / 255
        edge = a - cv2.erode(a, np.ones((3, 3), np.uint8), iterations=max(1, settings.supersample // 2))
        shade = tone * np.clip(lit, 0.35, 1.2) * (1 - 0.35 * edge[..., None])  # darker rims part overlapping fingers
        colour = colour * (1 - a[..., None]) + shade * a[..., None]
        mask = np.maximum(mask, a)
    background = _background(rng, settings.background, big)
    img = background * (1 - mask[..., None]) + colour * mask[..., None]
    img = cv2.resize(img, (settings.size, settings.size), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, (settings.size, settings.size), interpolation=cv2.INTER_AREA)
    img = np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
    return img, mask, box.to_crop(lm[:, :2]).astype(np.float32)


def _one_thread() -> None:
    cv2.setNumThreads(1)  # in each worker: the pool is the parallelism


def _start_method() -> str:
    """forkserver where there is one: a plain fork of a process whose libraries run threads (PyTorch's and OpenCV's
    pools) can deadlock in the child, and a forked child must not inherit a CUDA context. Its workers import the
    caller's main module, which must be guarded (``if __name__ == "__main__"``), as every command here is.
    spawn elsewhere."""
    import multiprocessing

    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _render_chunk(landmarks: np.ndarray, seed: int, start: int, settings: RenderSettings) -> list:
    return [render_hand(lm, np.random.default_rng([seed, start + j]), settings) for j, lm in enumerate(landmarks)]


def render_hands(landmarks: np.ndarray, seed: int = 0, settings: RenderSettings = RenderSettings(),
                 progress: bool = False, workers: int | None = None) -> dict:
    """Many hands: ``landmarks`` (N, 21, 3). Returns ``images`` (N, S, S, 3) uint8, ``masks`` (N, S, S) uint8,
    ``keypoints`` (N, 21, 2) float32 (fractions of the crop). Hand i is drawn with its own generator
    (``seed``, i), so any subset renders the same as in the whole, and so does any number of ``workers``
    (processes; default: one per CPU core, for 200 hands or more: 3,000 hands took 3.7 minutes on one core)."""
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tqdm import tqdm

    n, s = len(landmarks), settings.size
    images, masks = np.zeros((n, s, s, 3), np.uint8), np.zeros((n, s, s), np.uint8)
    keypoints = np.zeros((n, 21, 2), np.float32)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(cores, 32) if workers is None and n >= 200 else (workers or 1)
    chunk = 50
    starts = range(0, n, chunk)
    bar = tqdm(total=n, desc="render hands", unit="hand", disable=not progress)
    jobs = [(landmarks[i:i + chunk], seed, i, settings) for i in starts]

    def fill(results) -> None:
        for i, rendered in zip(starts, results):
            for j, (img, m, kp) in enumerate(rendered):
                images[i + j], masks[i + j], keypoints[i + j] = img, np.round(m * 255), kp
            bar.update(min(chunk, n - i))

    if workers > 1:
        ctx = get_context(_start_method())
        if ctx.get_start_method() == "forkserver":
            ctx.set_forkserver_preload(["training.hgan.render"])  # the server starts with what the workers need
        with ProcessPoolExecutor(workers, ctx, initializer=_one_thread) as pool:
            fill(pool.map(_render_chunk, *zip(*jobs)))
    else:
        fill(_render_chunk(*job) for job in jobs)
    bar.close()
    return {"images": images, "masks": masks, "keypoints": keypoints}



def source_poses(landmarks: np.ndarray, labels: np.ndarray, n: int, seed: int = 0, yaw: float = 35.0,
                 pitch: float = 25.0, roll: float = 20.0, mirror: float = 0.5,
                 finger_scale: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """``n`` poses drawn from real landmarks (N, 21, 3) with their labels, each turned in 3-D about the wrist
    (degrees: uniform in +-yaw, +-pitch, +-roll), mirrored with probability ``mirror`` (the other hand signs the same
    letter) and with finger lengths jittered: views and hands the photos lack, with exact labels."""
    from training.train_keypoints import augment_landmarks

    rng = np.random.default_rng(seed)
    ok = np.flatnonzero(np.isfinite(landmarks).all(axis=(1, 2)))
    if not len(ok):
        raise ValueError("no detected hands to draw poses from")
    pick = ok[rng.integers(0, len(ok), n)]
    lm = augment_landmarks(landmarks[pick], rng, rotate_deg=roll, scale=0.0, jitter=0.0, yaw_deg=yaw,
                           pitch_deg=pitch, finger_scale=finger_scale, flip=mirror)
    return lm.astype(np.float32), np.asarray(labels)[pick]
