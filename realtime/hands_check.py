"""``fingerspell hands-check``: the ONNX hand pipeline (or another row of :data:`realtime.hands.HAND_PIPELINES`)
against MediaPipe's own, on real photos; ``--tracking``: the ONNX tracker against MediaPipe's, frame by frame.

Both run in static-image mode with the same settings and the same upscale-and-pad cascade
(:class:`realtime.hands.StaticHandDetector` and :class:`realtime.hands.onnx.OnnxStaticHandDetector`).
For each photo: did each find a hand; where both did, the distance between their 21 landmarks (the
best-matching hands when there are several), in pixels and as a fraction of the hand's size (the
longer side of MediaPipe's landmark box), and whether they call it the same hand (left or right).
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm


def hand_size(landmarks: np.ndarray) -> float:
    xy = landmarks[:, :2]
    return float(max(xy[:, 0].max() - xy[:, 0].min(), xy[:, 1].max() - xy[:, 1].min(), 1e-6))


def compare_hands(ref: list, got: list) -> dict | None:
    """The closest pair of hands (mean landmark distance) -> distances and handedness agreement; None if either is empty."""
    if not ref or not got:
        return None
    best = None
    for a in ref:
        for b in got:
            d = np.linalg.norm(a.landmarks[:, :2] - b.landmarks[:, :2], axis=1)
            if best is None or d.mean() < best[0].mean():
                best = (d, a, b)
    d, a, b = best
    size = hand_size(a.landmarks)
    return {"mean_px": float(d.mean()), "max_px": float(d.max()), "mean_frac": float(d.mean() / size),
            "size_px": size, "same_handedness": a.handedness == b.handedness}


def sample_paths(data: str | Path, limit: int | None, seed: int = 0) -> list[Path]:
    from realtime.images import ImageFolder

    ds = ImageFolder(data)
    paths = [s.path for s in ds.samples]
    if limit and len(paths) > limit:
        idx = np.sort(np.random.default_rng(seed).choice(len(paths), limit, replace=False))
        paths = [paths[i] for i in idx]
    return paths


def check_hands(data: str | Path, limit: int | None = 200, model: str = "full", seed: int = 0,
                device: str = "auto", candidate: str = "onnx", reference: str = "mediapipe",
                progress: bool = True) -> dict:
    """Run two pipelines of :data:`realtime.hands.HAND_PIPELINES` (``reference`` on the CPU, ``candidate`` on
    ``device``) over a dataset folder (a reproducible random subset of ``limit`` photos) and compare them."""
    from realtime.hands import HAND_PIPELINES, StaticSettings
    from realtime.images import read_image

    for name in (reference, candidate):
        if name not in HAND_PIPELINES:
            raise ValueError(f"hand pipeline must be one of {tuple(HAND_PIPELINES)}, got {name!r}")
    settings = replace(StaticSettings(), model=model)
    paths = sample_paths(data, limit, seed)
    ref_stage = HAND_PIPELINES[reference].static(settings=settings, mirrored_input=False, device="cpu")
    got_stage = HAND_PIPELINES[candidate].static(settings=settings, mirrored_input=False, device=device)
    rows, ms_ref, ms_got, unreadable = [], [], [], 0
    try:
        for p in tqdm(paths, desc=f"hands-check {Path(data).name}", unit="img", disable=not progress):
            img = read_image(p)
            if img is None:
                unreadable += 1
                continue
            t0 = time.perf_counter()
            ref = ref_stage(img)
            t1 = time.perf_counter()
            got = got_stage(img)
            t2 = time.perf_counter()
            ms_ref.append((t1 - t0) * 1000)
            ms_got.append((t2 - t1) * 1000)
            rows.append({"path": str(p), "reference": len(ref), "candidate": len(got), "pair": compare_hands(ref, got)})
    finally:
        ref_stage.close()
        got_stage.close()
    return summarise(rows, data=str(data), model=model, unreadable=unreadable, ms_reference=ms_ref,
                     ms_candidate=ms_got, reference=reference, candidate=candidate,
                     providers=getattr(got_stage, "providers", None) or ["cpu"])


def summarise(rows: list[dict], **extra) -> dict:
    n = len(rows)
    both = [r for r in rows if r["reference"] and r["candidate"]]
    only_ref = sum(1 for r in rows if r["reference"] and not r["candidate"])
    only_got = sum(1 for r in rows if r["candidate"] and not r["reference"])
    neither = n - len(both) - only_ref - only_got
    pairs = [r["pair"] for r in both]
    px = np.array([p["mean_px"] for p in pairs]) if pairs else np.zeros(0)
    frac = np.array([p["mean_frac"] for p in pairs]) if pairs else np.zeros(0)
    ms_ref, ms_got = extra.pop("ms_reference", []), extra.pop("ms_candidate", [])
    rep = {
        "images": n, "both": len(both), "only_reference": only_ref, "only_candidate": only_got, "neither": neither,
        "detection_agreement": (len(both) + neither) / n if n else float("nan"),
        "landmark_mean_px": float(px.mean()) if len(px) else None,
        "landmark_median_px": float(np.median(px)) if len(px) else None,
        "landmark_mean_frac": float(frac.mean()) if len(frac) else None,
        "landmark_median_frac": float(np.median(frac)) if len(frac) else None,
        "landmark_p95_frac": float(np.percentile(frac, 95)) if len(frac) else None,
        "landmark_worst_frac": float(frac.max()) if len(frac) else None,  # the photo that differs most (mean)
        "landmark_worst_px": float(max(p["max_px"] for p in pairs)) if pairs else None,  # any single landmark
        "handedness_agreement": float(np.mean([p["same_handedness"] for p in pairs])) if pairs else None,
        "ms_per_image": {"reference": float(np.median(ms_ref)) if ms_ref else None,
                         "candidate": float(np.median(ms_got)) if ms_got else None},
        **extra, "rows": rows,
    }
    return rep


def format_check(r: dict) -> str:
    def pct(v, digits=1):
        return "n/a" if v is None else f"{v:.{digits}%}"

    def num(v, f=".2f"):
        return "n/a" if v is None else format(v, f)

    ref, got = r.get("reference", "mediapipe"), r.get("candidate", "onnx")
    lines = [
        (f"{r.get('data', '')}: {r['images']} photos, hand model {r.get('model', '?')}: --hands {got} (on "
         f"{', '.join(r.get('providers') or [])}) against --hands {ref}"),
        (f"  hand found by both {r['both']}, only {ref} {r['only_reference']}, only {got} {r['only_candidate']}, "
         f"neither {r['neither']}: detection agreement {pct(r['detection_agreement'])}"),
        (f"  landmark distance where both found one: mean {num(r['landmark_mean_px'], '.3f')} px, median "
         f"{num(r['landmark_median_px'], '.3f')} px, largest {num(r['landmark_worst_px'], '.3f')} px; as a fraction "
         f"of the hand size: mean {pct(r['landmark_mean_frac'], 3)}, median {pct(r['landmark_median_frac'], 3)}, 95th "
         f"percentile {pct(r['landmark_p95_frac'], 3)}, worst photo {pct(r['landmark_worst_frac'], 3)}"),
        f"  same handedness: {pct(r['handedness_agreement'])}",
        (f"  median time per photo (whole cascade): {ref} {num(r['ms_per_image']['reference'], '.1f')} ms, "
         f"{got} {num(r['ms_per_image']['candidate'], '.1f')} ms"),
    ]
    return "\n".join(lines)


def moving_frames(image: np.ndarray, n: int = 15, size=(640, 480), height: int = 320) -> list[np.ndarray]:
    """A photo scaled to ``height`` px, centred on a black frame, then turned 1.5 degrees and moved 3 px right
    per frame: a hand moving slowly in front of a webcam, for the tracking comparison."""
    import cv2

    w, h = size
    s = height / image.shape[0]
    img = cv2.resize(image, (max(1, int(image.shape[1] * s)), height), interpolation=cv2.INTER_AREA)
    img = img[:, : min(img.shape[1], w)]
    canvas = np.zeros((h, w, 3), np.uint8)
    y0, x0 = (h - img.shape[0]) // 2, (w - img.shape[1]) // 2
    canvas[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
    out = []
    for k in range(n):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 1.5 * k, 1.0)
        m[0, 2] += 3 * k
        out.append(cv2.warpAffine(canvas, m, (w, h)))
    return out


def _mediapipe_tracking_graph(model: str, max_hands: int):
    """MediaPipe Hands in video mode (what realtime.hands.HandTracker runs, same default thresholds), also giving
    the ROIs it derives from each frame's landmarks and from palm detections."""
    from mediapipe.python.solution_base import SolutionBase

    return SolutionBase(binary_graph_path="mediapipe/modules/hand_landmark/hand_landmark_tracking_cpu.binarypb",
                        side_inputs={"model_complexity": 0 if model == "lite" else 1, "num_hands": max_hands,
                                     "use_prev_landmarks": True},
                        outputs=["multi_hand_landmarks", "multi_handedness", "hand_rects_from_landmarks",
                                 "hand_rects_from_palm_detections"])


def check_tracking(data: str | Path, limit: int = 6, model: str = "lite", seed: int = 0, device: str = "auto",
                   progress: bool = True) -> dict:
    """Both pipelines in video mode (one hand) on a clip made of ``limit`` photos, each moving for 15 frames then
    5 empty ones.

    Closed loop: each tracker follows its own hand (the next ROI from its own landmarks), so the tiny
    per-frame differences feed back. Open loop: on the frames MediaPipe tracked, the ONNX landmark stage is
    given MediaPipe's own ROI from the frame before, which isolates one frame's crop + model + projection.
    """
    import cv2

    from realtime.hands.roi import Roi
    from realtime.hands.mediapipe import to_hands
    from realtime.backends import select_providers
    from realtime.hands.onnx import OnnxHandTracker
    from realtime.images import read_image

    providers, _ = select_providers(device, tensorrt=False, strict=True)
    frames = []
    for p in sample_paths(data, limit, seed):
        img = read_image(p)
        if img is not None:
            frames += moving_frames(img) + [np.zeros((480, 640, 3), np.uint8)] * 5
    graph = _mediapipe_tracking_graph(model, 1)
    ox = OnnxHandTracker(model, max_hands=1, providers=providers)
    same_count, dist, frac, same_label, open_loop = 0, [], [], [], []
    prev_roi = None
    try:
        for f in tqdm(frames, desc=f"hands-check tracking {Path(data).name}", unit="frame", disable=not progress):
            h, w = f.shape[:2]
            res = graph.process(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
            ref, got = to_hands(res, w, h, mirrored_input=False), ox(f)
            same_count += len(ref) == len(got)
            if ref and got:
                pair = compare_hands(ref, got)
                dist.append(pair["max_px"])
                frac.append(pair["mean_frac"])
                same_label.append(pair["same_handedness"])
            if ref and prev_roi is not None and not res.hand_rects_from_palm_detections:
                mine = ox.landmarks(f, [prev_roi], rgb=False)[0].landmarks
                open_loop.append(float(np.abs(mine[:, :2] - ref[0].landmarks[:, :2]).max()))
            prev_roi = None
            if res.hand_rects_from_landmarks:
                q = res.hand_rects_from_landmarks[0]
                prev_roi = Roi(q.x_center * w, q.y_center * h, q.width * w, q.height * h, q.rotation)
    finally:
        graph.close()
        ox.close()

    def stats(v):
        a = np.array(v) if v else np.zeros(1)
        return {"frames": len(v), "median": float(np.median(a)), "p95": float(np.percentile(a, 95)),
                "max": float(a.max())}

    return {"data": str(data), "model": model, "max_hands": 1, "frames": len(frames),
            "same_hand_count": same_count, "closed_loop_px": stats(dist), "open_loop_px": stats(open_loop),
            "mean_frac": float(np.mean(frac)) if frac else None,
            "handedness_agreement": float(np.mean(same_label)) if same_label else None,
            "palm_detector_runs": ox.palm.calls, "landmark_runs": ox.landmarks.calls - len(open_loop),
            "providers": ox.providers}


def format_tracking(r: dict) -> str:
    c, o = r["closed_loop_px"], r["open_loop_px"]
    return "\n".join([
        (f"{r['data']}: tracking on {r['frames']} frames (moving photos and empty frames), hand model {r['model']}, "
         f"one hand"),
        f"  same number of hands on {r['same_hand_count']} of {r['frames']} frames",
        (f"  each following its own hand (closed loop), largest landmark distance per frame: median "
         f"{c['median']:.3f} px, 95th percentile {c['p95']:.3f} px, max {c['max']:.3f} px over {c['frames']} frames"
         + (f"; mean distance {r['mean_frac']:.3%} of the hand size" if r["mean_frac"] is not None else "")),
        (f"  from MediaPipe's own ROI (open loop): median {o['median']:.3f} px, 95th percentile {o['p95']:.3f} px, "
         f"max {o['max']:.3f} px over {o['frames']} frames"),
        f"  same handedness: {r['handedness_agreement']:.1%}" if r["handedness_agreement"] is not None else "",
        (f"  ONNX palm detector ran on {r['palm_detector_runs']} frames, the landmark model on "
         f"{r['landmark_runs']}"),
    ])


def write_json(r: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(r, indent=1))
