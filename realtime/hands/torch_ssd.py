"""The palm detector's SSD post-processing of :mod:`realtime.hands.ssd` in torch, on the device: decoding, weighted
NMS and letterbox removal inside the palm step, so that one small copy brings back each image's few detections
instead of its candidate anchors for the host to decode.

:class:`PalmDecoder` follows the numpy functions step by step (their docstrings name MediaPipe's calculators) and
gives their first ``count`` detections, best first, which is every detection a caller uses (the trackers keep
``max_hands``, at most 4). Weighted NMS is greedy, one detection after the other: here its ``count`` rounds are
unrolled, each a few tensor operations over all 2,016 anchors of every image, with no host synchronisation and no
shape that depends on the data, so that a CUDA graph captures it. Ties are broken as the host's stable sort breaks
them (the lowest anchor index first); overlaps are compared in float64 as the host compares its float32 IoU with
0.3, and the weighted means are float64 as on the host. It is the host's arithmetic, not its bits: ``exp`` rounds
differently in 1 value of 6 (one ulp), and the letterbox is removed in float32 (the host: float64), so a score on
the threshold or two near-equal scores may come out the other way, and coordinates agree to about 1e-6.
``tests/test_torch_hands.py`` holds it to the host's detections and order on scripted outputs (saturated ties,
negative boxes, none or hundreds passing) and on a real hand, at MediaPipe's threshold and at a low one.
"""
from __future__ import annotations

from realtime.hands.ssd import PALM_DECODE, DecodeOptions, ssd_anchors

DETECTION_COLUMNS = 20  # a detection's row: found (1 or 0), score, box (xmin, ymin, xmax, ymax), 7 keypoints (x, y)
LETTERBOX_COLUMNS = 3  # an image's row of the palm head's input: letterbox padding (horizontal, vertical), min score


def _module_class():
    import torch

    class PalmDecoder(torch.nn.Module):
        """(raw boxes (B, N, 4 + 2K), logits (B, N, 1), letterbox rows (B, :data:`LETTERBOX_COLUMNS`)) -> (B, count,
        :data:`DETECTION_COLUMNS`) float32: each image's first ``count`` detections of weighted NMS, as fractions
        of its frame; rows past its last detection have found = 0."""

        def __init__(self, count: int, threshold: float, o: DecodeOptions = PALM_DECODE):
            super().__init__()
            self.count, self.threshold, self.o = count, threshold, o
            self.register_buffer("anchors", torch.from_numpy(ssd_anchors()), persistent=False)

        def forward(self, raw_boxes, logits, letterbox):
            o = self.o
            raw = raw_boxes.float().reshape(len(raw_boxes), len(self.anchors), -1)
            clipped = logits.float().reshape(len(raw), -1).clamp(-o.score_clipping_thresh, o.score_clipping_thresh)
            scores = 1.0 / (1.0 + torch.exp(-clipped))  # sigmoid_scores' formula (exp itself may differ by an ulp)
            boxes, keypoints = self._decode(raw)
            w, h = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
            # detections(): the score threshold, and no box of negative or NaN size (NaN compares False)
            remaining = (scores >= letterbox[:, 2:3]) & (w >= 0) & (h >= 0)
            area = w * h
            values = torch.cat([boxes, keypoints.flatten(2)], -1).double()  # what the weighted means average
            index = torch.arange(raw.shape[1], device=raw.device)
            rows, going = [], torch.ones(len(raw), dtype=torch.bool, device=raw.device)
            for _ in range(self.count):
                found = remaining.any(1) & going
                masked = torch.where(remaining, scores, torch.full_like(scores, -1.0))
                top = masked.max(1, keepdim=True).values
                best = torch.argmax(((masked == top) & remaining).to(torch.uint8), 1)  # first: the lowest index
                pick = best[:, None]
                best_box = boxes.gather(1, pick[..., None].expand(-1, 1, 4))  # (B, 1, 4)
                candidates = remaining & (self._iou(best_box, boxes, area) > self.threshold)
                weights = torch.where(candidates, scores.double(), torch.zeros_like(scores, dtype=torch.float64))
                total = weights.sum(1, keepdim=True)
                merged = (values * weights[..., None]).sum(1) / total.clamp_min(1e-300)
                alone = values.gather(1, pick[..., None].expand(-1, 1, values.shape[2]))[:, 0]
                none = (total <= 0)  # a degenerate best box overlaps nothing, not even itself: kept alone, then stop
                merged = torch.where(none, alone, merged).float()
                score = scores.gather(1, pick)
                rows.append(torch.cat([found[:, None].float(), torch.where(found[:, None], score, 0.0),
                                       self._unletterbox(merged, letterbox)], 1))
                remaining = remaining & ~candidates & (index[None] != pick)
                going = going & ~none[:, 0]
            return torch.stack(rows, 1)

        def _decode(self, raw):
            """:func:`realtime.hands.ssd.decode_boxes` on every anchor of every image."""
            o, a = self.o, self.anchors
            ax, ay, aw, ah = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
            xc, yc = raw[..., 0] / o.x_scale * aw + ax, raw[..., 1] / o.y_scale * ah + ay
            w, h = raw[..., 2] / o.w_scale * aw, raw[..., 3] / o.h_scale * ah
            boxes = torch.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], -1)
            kp = raw[..., 4:4 + 2 * o.num_keypoints].reshape(*raw.shape[:2], o.num_keypoints, 2)
            keypoints = torch.stack([kp[..., 0] / o.x_scale * aw[:, None] + ax[:, None],
                                     kp[..., 1] / o.y_scale * ah[:, None] + ay[:, None]], -1)
            return boxes, keypoints

        @staticmethod
        def _iou(best, boxes, area):
            """:func:`realtime.hands.ssd.iou` of each image's best box with all its boxes, in float64."""
            ix = torch.minimum(best[..., 2], boxes[..., 2]) - torch.maximum(best[..., 0], boxes[..., 0])
            iy = torch.minimum(best[..., 3], boxes[..., 3]) - torch.maximum(best[..., 1], boxes[..., 1])
            inter = ix * iy
            union = (best[..., 2] - best[..., 0]) * (best[..., 3] - best[..., 1]) + area - inter
            ok = (ix > 0) & (iy > 0) & (union > 0)
            return torch.where(ok, (inter / torch.where(ok, union, torch.ones_like(union))).double(),
                               torch.zeros_like(inter, dtype=torch.float64))

        @staticmethod
        def _unletterbox(merged, letterbox):
            """:func:`realtime.hands.ssd.remove_letterbox`: box then keypoints, x and y alternating."""
            px, py = letterbox[:, 0:1], letterbox[:, 1:2]
            x = (merged[:, 0::2] - px) / (1 - 2 * px)
            y = (merged[:, 1::2] - py) / (1 - 2 * py)
            return torch.stack([x, y], -1).flatten(1)

    return PalmDecoder


def palm_decoder(count: int, threshold: float):
    """A :class:`PalmDecoder` keeping ``count`` detections (NMS overlap ``threshold``); imports torch when called."""
    return _module_class()(count, threshold)
