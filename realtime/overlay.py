"""Draw a frame's result: landmarks, the reading and its confidence, the spelled text, FPS and stage times."""
from __future__ import annotations

import cv2
import numpy as np

from realtime.features import HAND_CONNECTIONS

FONT = cv2.FONT_HERSHEY_SIMPLEX
# Text sits on solid panels and is drawn one pixel thick: outlined or thick text costs ~0.1 ms a string,
# which alone would break the 1 ms budget for everything after the landmarks.


def _text(img, s, org, scale=0.5, color=(255, 255, 255), thick=1):
    cv2.putText(img, s, org, FONT, scale, color, thick, cv2.LINE_AA)


KEYS_HINT = "c: clear  backspace: delete  q: quit"


def fit_tail(s: str, width: int, scale: float, thick: int = 1) -> str:
    """The end of ``s`` that fits ``width`` pixels at this font scale, with '...' in front when it was cut: long
    text never runs off the frame (40 characters did at 640 pixels)."""
    def wide(x: str) -> int:
        return cv2.getTextSize(x, FONT, scale, thick)[0][0]

    if wide(s) <= width:
        return s
    lo, hi = 1, len(s)  # the fewest characters to drop so that '...' + the rest fits
    while lo < hi:
        mid = (lo + hi) // 2
        if wide("..." + s[mid:]) <= width:
            hi = mid
        else:
            lo = mid + 1
    return "..." + s[lo:]


_BONES = np.array(HAND_CONNECTIONS)  # (21, 2): each bone's two landmarks, so all bones are one indexing


def draw_hand(img: np.ndarray, hand, color=(0, 220, 0), mirror: bool = False) -> None:
    """A hand's landmarks and bones, drawn on ``img`` in place (``mirror``: the image is already flipped)."""
    w = img.shape[1]
    pts = hand.landmarks[:, :2].astype(np.int32)
    if mirror:
        pts[:, 0] = w - 1 - pts[:, 0]
    cv2.polylines(img, pts[_BONES], False, color, 2, cv2.LINE_AA)  # (21, 2, 2): one two-point line per bone
    for x, y in pts.tolist():
        cv2.circle(img, (x, y), 3, (0, 0, 255), -1, cv2.LINE_AA)


def draw(frame: np.ndarray, result, fps: float = 0.0, mirror: bool = False, show_timing: bool = True,
         hint: str | None = KEYS_HINT) -> np.ndarray:
    """A new image (the frame is not modified). ``mirror`` flips it to a selfie view before the text.
    ``hint`` is the key help of the OpenCV window; the browser demo, which has buttons instead, passes None."""
    img = cv2.flip(frame, 1) if mirror else frame.copy()
    h, w = img.shape[:2]
    for hand in result.hands:
        draw_hand(img, hand, (0, 220, 0) if hand is result.hand else (160, 160, 160), mirror)
    cv2.rectangle(img, (0, 0), (250, 104), (0, 0, 0), -1)
    if result.letter is not None:
        _text(img, result.letter, (14, 66), 2.2, (0, 255, 255), 4)
        bar = int(150 * result.confidence)
        cv2.rectangle(img, (14, 82), (164, 94), (80, 80, 80), -1)
        cv2.rectangle(img, (14, 82), (14 + bar, 94), (0, 200, 255), -1)
        _text(img, f"{result.confidence:.0%}", (172, 94))
    else:
        _text(img, "no hand" if result.hand is None else "?", (14, 56), 0.9, (180, 180, 180))
    cv2.rectangle(img, (0, h - 44), (w, h), (0, 0, 0), -1)
    _text(img, fit_tail(result.text + "_", w - 24, 0.9), (12, h - 14), 0.9)
    if hint:
        _text(img, hint, (w - 300, h - 50), 0.45, (200, 200, 200))
    if show_timing:
        cv2.rectangle(img, (w - 180, 0), (w, 28 + 18 * len(result.ms)), (0, 0, 0), -1)
        _text(img, f"{fps:5.1f} FPS", (w - 170, 20), 0.55, (0, 255, 0))
        y = 40
        for k, v in result.ms.items():
            _text(img, f"{k:<11}{v:6.2f} ms", (w - 170, y), 0.42)
            y += 18
    return img
