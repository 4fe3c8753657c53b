"""``fingerspell bench``: per-stage latency (median, p95) and end-to-end FPS of the live path.

Frames are read synchronously here (no capture thread), so 'capture' is the decode time of one
frame and the FPS is what one core-bound loop achieves. Video files are looped if shorter
than ``--frames``; image folders are letterboxed into a ``--size`` frame, as a webcam would give.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from realtime.capture import ImageFolderReader, SourceError, make_reader
from realtime.pipeline import STAGES, Recognizer, StageTimer


def machine_description() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime as ort

    try:
        import mediapipe

        mp_version = mediapipe.__version__
    except Exception:  # pragma: no cover
        mp_version = "?"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "python": platform.python_version(), "system": platform.platform(),
            "onnxruntime": ort.__version__, "providers": ort.get_available_providers(), "mediapipe": mp_version}


def letterbox(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    w, h = size
    s = min(w / img.shape[1], h / img.shape[0])
    resized = cv2.resize(img, (max(1, int(img.shape[1] * s)), max(1, int(img.shape[0] * s))))
    out = np.zeros((h, w, 3), np.uint8)
    y0, x0 = (h - resized.shape[0]) // 2, (w - resized.shape[1]) // 2
    out[y0:y0 + resized.shape[0], x0:x0 + resized.shape[1]] = resized
    return out


def _describe(classifier) -> str:
    """What runs the classifier stage: its backend's description, or the stage's own (the sequence reader); both
    models' for the fused classifier."""
    base = getattr(classifier, "base", classifier)  # a calibrated classifier: the one it wraps
    parts = [p for p in (getattr(base, "keypoints", None), getattr(base, "image", None)) if p is not None]
    said = []
    for part in parts or [classifier]:
        said += [obj.describe() for obj in (getattr(part, "backend", None), part) if hasattr(obj, "describe")][:1]
    if getattr(classifier, "tuned", None) is not None:  # a tuned profile's network replaces the keypoint model's run
        said.append("keypoint network tuned by the profile, in numpy (the backend above is not used for it)")
    return "; ".join(said) or "?"


def run_bench(recognizer: Recognizer, source: str, frames: int = 300, warmup: int = 10,
              size: tuple[int, int] = (640, 480), json_out: str | Path | None = None, progress: bool = True) -> dict:
    from realtime.overlay import draw

    reader = make_reader(source)
    folder = isinstance(reader, ImageFolderReader)
    times: dict[str, list[float]] = {s: [] for s in STAGES}
    with_hand = 0
    total_ms: list[float] = []
    t_frame = 0.0
    bar = tqdm(total=frames + warmup, desc="bench", unit="frame", disable=not progress)
    n = 0
    def capture(timer):
        with timer("capture"):
            img = reader.grab()
            return letterbox(img, size) if folder and img is not None else img

    while n < frames + warmup:
        timer = StageTimer()
        t0 = time.perf_counter()
        img = capture(timer)
        if img is None:  # loop the source; reopening it is not a frame's capture time, so the frame starts after
            reader.close()
            reader = make_reader(source)
            timer = StageTimer()
            t0 = time.perf_counter()
            img = capture(timer)
            if img is None:
                raise SourceError(f"{source!r} has no readable frames")
        t_frame += 1 / 30  # pretend 30 FPS so the speller sees realistic timing
        result = recognizer.process(img, t_frame, timer)
        with timer("overlay"):
            draw(img, result, 0.0)
        elapsed = (time.perf_counter() - t0) * 1000
        if n >= warmup:
            total_ms.append(elapsed)
            with_hand += result.hand is not None
            for s in STAGES:
                times[s].append(timer.ms.get(s, 0.0))
        n += 1
        bar.update(1)
    bar.close()
    reader.close()
    stats = {s: {"median_ms": float(np.median(v)), "p95_ms": float(np.percentile(v, 95)), "mean_ms": float(np.mean(v))}
             for s, v in times.items()}
    after = [sum(times[s][i] for s in ("features", "classifier", "smoothing", "overlay")) for i in range(frames)]
    report = {
        "source": str(source), "frames": frames, "frames_with_hand": with_hand, "frame_size": list(img.shape[1::-1]),
        "model": getattr(recognizer.classifier, "name", None) or recognizer.classifier.manifest.name,
        "keypoints": recognizer.keypoints,
        "hand_model": getattr(recognizer.hands, "model", "?"),
        "hands": getattr(recognizer.hands, "backend", "mediapipe"),
        "classifier_backend": _describe(recognizer.classifier),
        # features and classifier inside the hands stage's device step (realtime.torch_reader): their time is in
        # 'hands', and their own stages run only for a hand the full model found again
        "read_in_hands_step": recognizer.reads_in_hands_step,
        "reject_far_hands": getattr(recognizer.classifier, "distance", None) is not None,
        "profile": getattr(getattr(recognizer.classifier, "profile", None), "path", None),
        "fps": float(1000.0 / np.mean(total_ms)), "end_to_end": {"median_ms": float(np.median(total_ms)),
                                                              "p95_ms": float(np.percentile(total_ms, 95))},
        "after_landmarks": {"median_ms": float(np.median(after)), "p95_ms": float(np.percentile(after, 95))},
        "stages": stats, "machine": machine_description(),
    }
    if progress:
        print(format_bench(report))
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=1))
    return report


def format_bench(r: dict) -> str:
    m = r["machine"]
    lines = [f"machine: {m['cpu']} ({m['cores']} cores), onnxruntime {m['onnxruntime']}, mediapipe {m['mediapipe']}",
             f"source: {r['source']}  frame {r['frame_size'][0]}x{r['frame_size'][1]}  model {r['model']}  "
             f"keypoints {r.get('keypoints', 'mediapipe')}  hands {r.get('hands', 'mediapipe')} {r['hand_model']}  frames {r['frames']} ({r['frames_with_hand']} with a hand)",
             f"classifier: {r.get('classifier_backend', '?')}"
             + ("; run inside the hands step, on the device (its time is in 'hands')"
                if r.get("read_in_hands_step") else "")
             + ("; hands far from every learned letter read as no letter (--reject-far-hands)"
                if r.get("reject_far_hands") else ""),
             f"{'stage':<16}{'median ms':>11}{'p95 ms':>10}"]
    for s, v in r["stages"].items():
        lines.append(f"{s:<16}{v['median_ms']:>11.3f}{v['p95_ms']:>10.3f}")
    a = r["after_landmarks"]
    lines.append(f"{'after landmarks':<16}{a['median_ms']:>11.3f}{a['p95_ms']:>10.3f}")
    e = r["end_to_end"]
    lines.append(f"{'end to end':<16}{e['median_ms']:>11.3f}{e['p95_ms']:>10.3f}   {r['fps']:.1f} FPS")
    return "\n".join(lines)
