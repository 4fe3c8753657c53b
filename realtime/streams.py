"""Many cameras, one model: N video streams read letters through one hand pipeline and one classifier.

Each step takes the newest frame of every stream and runs

    hands (one palm batch for the streams that need a detection, one landmark batch for every tracked hand)
    -> features (per stream) -> classifier (one batch) -> smoothing and spelling (per stream)

or, with ``--reader sequence``, features -> one run of the sequence model's streaming step for every stream (each
with its own state) -> decoding (per stream),

so the nets see batches of up to N (palm) and N x hands (landmarks) instead of N separate calls: on a GPU that
is what turns one camera's launch-bound latency into throughput. Each stream keeps its own tracking, smoother
and speller, and its own count of frames without a hand for ``--redetect-after``
(:meth:`MultiStreamRecognizer.redetect`). Hand pipelines that can batch are the rows of
:data:`realtime.hands.HAND_PIPELINES` marked ``batches`` (``onnx``, ``torch``; MediaPipe's own graph runs one image
at a time). ``fingerspell bench --streams N`` measures it.
"""
from __future__ import annotations

import time

import numpy as np

from realtime.hands import HAND_PIPELINES, RedetectSchedule, pick_hand, redetect_fallback
from realtime.pipeline import (FrameResult, PipelineOptions, build_classifier, build_sequence_reader,
                               make_speller, smooth_and_spell)
from realtime.sequence_reader import step_streams
from realtime.speller import ProbabilitySmoother
from realtime.torch_reader import device_reader



class MultiStreamRecognizer:
    """``process(frames)``: one frame per stream -> one :class:`FrameResult` per stream."""

    def __init__(self, streams: int, options: PipelineOptions):
        if streams < 1:
            raise ValueError(f"streams must be at least 1, got {streams}")
        options.check()
        batching = [name for name, row in HAND_PIPELINES.items() if row.batches]
        if options.hands not in batching:  # MediaPipe's own graph runs one image at a time
            raise ValueError(f"several streams (live --source A,B; bench --streams N) batch the hand nets across "
                             f"streams: use --hands {' or '.join(batching)} (not {options.hands})")
        if options.keypoints != "mediapipe" or options.static:
            raise ValueError("several streams (live --source A,B; bench --streams N) read video with MediaPipe's "
                             "landmarks (--keypoints mediapipe)")
        if options.classifier_kind != "keypoints":  # the image classifier reads one crop per call
            raise ValueError(f"several streams read with the keypoint classifier only (--classifier keypoints), not "
                             f"--classifier {options.classifier_kind}")
        self.sequence = None  # --reader sequence: one reader per stream, one model run per step for all of them
        reader = None  # the classifier inside the landmark step, on the device (realtime.torch_reader)
        if options.reader == "sequence":
            from realtime.features import FeatureExtractor

            first = build_sequence_reader(options)
            self.sequence = [first] + [first.shared() for _ in range(streams - 1)]
            self.features, self.classifier, self.labels = FeatureExtractor(first.spec), None, first.labels
        else:
            self.features, self.classifier = build_classifier(options)
            self.labels = self.classifier.labels
            reader = device_reader(options, self.classifier)
        self.tracker = HAND_PIPELINES[options.hands].tracker(model=options.hand_model, max_hands=options.max_hands,
                                                             mirrored_input=options.mirrored_input,
                                                             device=options.device, search_every=options.search_every,
                                                             reader=reader)
        self.options, self.streams = options, streams
        self.tracked = [[] for _ in range(streams)]
        self._fallback = None  # the full model on the whole frame, built on first need, shared by the streams
        # --redetect-after per stream, as one camera has it (realtime.hands.RedetectSchedule): each stream keeps its own
        # count of frames without a hand; the shared fallback looks at every stream that is due in one batch
        self.redetects = [RedetectSchedule(after=options.redetect_after)
                          for _ in range(streams)] if options.redetect_after else None
        # the letter reader smooths each stream's probabilities; the sequence reader keeps its own state
        self.smoothers = None if self.sequence else [ProbabilitySmoother(options.smoothing_s) for _ in range(streams)]
        self.spellers = self.sequence or [make_speller(options, self.labels) for _ in range(streams)]

    def process(self, frames: list[np.ndarray], t: float | list[float] | None = None) -> list[FrameResult]:
        """``t``: each stream's frame time (one number: the same for all; None: now)."""
        if len(frames) != self.streams:
            raise ValueError(f"{len(frames)} frames for {self.streams} streams")
        now = time.perf_counter()
        times = [now if t is None else t] * self.streams if t is None or np.ndim(t) == 0 else list(t)
        if len(times) != self.streams:
            raise ValueError(f"{len(times)} frame times for {self.streams} streams")
        t0 = time.perf_counter()
        hands, self.tracked = self.tracker.step(frames, self.tracked)
        hands = self.redetect(frames, hands)
        t1 = time.perf_counter()
        picked = [pick_hand(h, self.options.hand) for h in hands]
        read = {i: h.reading for i, h in enumerate(picked) if h is not None and h.reading is not None}
        rows = [i for i, h in enumerate(picked) if h is not None and i not in read]  # the rest: read on the host
        feats = self.features.many([picked[i] for i in rows])  # one vectorised call for every stream's hand
        t2 = time.perf_counter()
        if self.sequence is not None:  # every stream's frame goes to its reader, with a hand or without
            of_stream = dict(zip(rows, feats))
            x = [of_stream.get(i) for i in range(self.streams)]
            read = step_streams(self.sequence, x, times)
            t3 = t4 = time.perf_counter()
            out = [FrameResult(times[i], hands[i], picked[i], *read[i], self.sequence[i].text, {})
                   for i in range(self.streams)]
        else:
            probs = np.asarray(self.classifier(feats)).reshape(len(rows), -1) if rows else None
            t3 = time.perf_counter()
            of_stream = {**(dict(zip(rows, probs)) if rows else {}), **read}
            out = []
            for i in range(self.streams):
                p = of_stream.get(i)
                letter, conf, committed = smooth_and_spell(p, times[i], self.labels, self.smoothers[i],
                                                           self.spellers[i])
                out.append(FrameResult(times[i], hands[i], picked[i], letter, conf, committed, self.spellers[i].text,
                                       {}))
            t4 = time.perf_counter()
        ms = {"hands": (t1 - t0) * 1000, "features": (t2 - t1) * 1000, "classifier": (t3 - t2) * 1000,
              "smoothing": (t4 - t3) * 1000}
        for r in out:
            r.ms = dict(ms)  # the step's stages, shared by every stream's frame
        return out

    def redetect(self, frames: list[np.ndarray], hands: list[list]) -> list[list]:
        """``--redetect-after`` on each stream: where the tracker has found no hand in a stream for that many frames,
        the full model looks at that stream's frame again (every 5 frames until a hand is back). Without it, several
        streams would read differently from one camera with the same options: the lite tracker can keep missing a
        hand the full model finds. Only the empty frames pay for it: the streams due on this step are looked at
        together, each level of the full model's cascade in one batch."""
        if self.redetects is None:
            return hands
        due = [i for i, (stage, found) in enumerate(zip(self.redetects, hands)) if stage.due(found)]
        if not due:
            return hands
        out = list(hands)
        for i, found in zip(due, self._build_fallback().detect_many([frames[i] for i in due])):
            out[i] = self.redetects[i].accept(found)
        return out

    def _build_fallback(self):
        if self._fallback is None:
            o = self.options
            self._fallback = redetect_fallback(o.hands, o.max_hands, o.mirrored_input, o.device)
        return self._fallback

    def activity(self) -> dict:
        """Running totals of what the steps did (the bench takes each step's share, to say what a slow step did):
        palm images, landmark crops, images the full model's palm detector looked at (a frame per level of its
        cascade: one level for --redetect-after), CUDA graphs captured (a new batch shape's capture runs the step
        four times: a slow step), and Python's garbage collections (a full one can pause a step)."""
        import gc

        full = getattr(self._fallback, "tracker", None)
        models = [self.tracker.palm, self.tracker.landmarks] + ([full.palm, full.landmarks] if full else [])
        backend = getattr(self.classifier, "backend", None)
        return {"palm_images": self.tracker.palm.rows, "landmark_crops": self.tracker.landmarks.rows,
                "full_model_images": full.palm.rows if full else 0,
                "cuda_graph_captures": sum(m.captures for m in models)
                + getattr(backend, "captures", 0),
                "gc_collections": sum(s["collections"] for s in gc.get_stats()),
                "gc_full_collections": gc.get_stats()[-1]["collections"]}

    def close(self) -> None:
        self.tracker.close()
        close = getattr(self._fallback, "close", None)  # shared by the streams' Redetect wrappers: closed once here
        if close:
            close()


def run_streams_bench(options: PipelineOptions, sources: list[str], streams: int, frames: int = 200,
                      warmup: int = 10, size: tuple[int, int] = (640, 480), progress: bool = True) -> dict:
    """N streams (``sources`` cycled: the same video N times is N cameras showing the same thing) for ``frames``
    steps: frames/s in total, and the per-frame latency (a frame waits for its whole batched step). Only the
    recognition step is timed (hands, features, classifier, smoothing): decoding and drawing are not, unlike the
    one-stream bench's end-to-end figure."""
    from tqdm import tqdm

    from realtime.bench import letterbox
    from realtime.capture import make_reader

    rec = MultiStreamRecognizer(streams, options)
    readers = [make_reader(sources[i % len(sources)]) for i in range(streams)]
    steps, ms, stage_ms, letters, did = [], [], {}, 0, []
    try:
        for step in tqdm(range(warmup + frames), desc=f"bench {streams} streams", unit="step", disable=not progress):
            batch = []
            for i, r in enumerate(readers):
                img = r.grab()
                if img is None:  # a finished video starts again
                    r.close()
                    readers[i] = r = make_reader(sources[i % len(sources)])
                    img = r.grab()
                if img is None:
                    raise ValueError(f"source {sources[i % len(sources)]} gives no frames")
                batch.append(letterbox(img, size) if img.shape[:2] != (size[1], size[0]) else img)
            before = rec.activity()
            t0 = time.perf_counter()
            results = rec.process(batch)
            dt = (time.perf_counter() - t0) * 1000
            if step >= warmup:
                ms.append(dt)
                steps.append(step)
                did.append({k: v - before[k] for k, v in rec.activity().items()})
                letters += sum(r.letter is not None for r in results)
                for k, v in results[0].ms.items():
                    stage_ms.setdefault(k, []).append(v)
    finally:
        rec.close()
        for r in readers:
            r.close()
    total_s = sum(ms) / 1000
    report = {"streams": streams, "steps": len(ms), "frames": len(ms) * streams, "hands": options.hands,
              "backend": options.backend, "device": options.device, "reader": options.reader,
              "read_in_hands_step": bool(getattr(rec.tracker, "reads", False)),
              "model": rec.sequence[0].manifest.name if rec.sequence else rec.classifier.manifest.name
              if hasattr(rec.classifier, "manifest") else None,
              "frames_per_s": len(ms) * streams / total_s if total_s else None,
              "latency_ms": {"median": float(np.median(ms)), "p95": float(np.percentile(ms, 95)),
                             "mean": float(np.mean(ms)), "max": float(np.max(ms))},
              # the slowest steps, with what each did (its place in the source, its batches, graphs captured)
              "slowest_steps": [{"ms": round(ms[i], 2), "step": steps[i], **did[i],
                                 "stages_ms": {k: round(v[i], 2) for k, v in stage_ms.items()}}
                                for i in np.argsort(ms)[::-1][:8]],
              "stages_ms": {k: float(np.median(v)) for k, v in stage_ms.items()},
              "frames_with_a_letter": letters, "sources": sources}
    return report


def format_streams(r: dict) -> str:
    stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stages_ms"].items())
    return (f"{r['streams']} stream(s), {r['steps']} steps ({r['frames']} frames), --hands {r['hands']} --backend "
            f"{r['backend']} --device {r['device']}: {r['frames_per_s']:.1f} frames/s in total (recognition steps "
            f"only: decoding and drawing not counted); per-frame latency "
            f"median {r['latency_ms']['median']:.2f} ms, p95 {r['latency_ms']['p95']:.2f} ms (a frame waits for its "
            f"whole batched step); median ms per step: {stages}; frames read as a letter: {r['frames_with_a_letter']}")
