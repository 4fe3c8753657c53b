"""The overlay (realtime/overlay.py): each landmark a red joint, each bone a line between its two joints, mirrored
with the image in the selfie view."""
import numpy as np

from realtime.features import HAND_CONNECTIONS
from realtime.hands import Hand


def a_hand() -> Hand:
    rng = np.random.default_rng(0)
    xy = np.column_stack([rng.uniform(100, 300, 21), rng.uniform(100, 380, 21), np.zeros(21)])
    return Hand(xy.astype(np.float32), "Right", 0.9, (640, 480))


def test_joints_and_bones_are_drawn_where_the_landmarks_are():
    from realtime.overlay import draw_hand

    hand = a_hand()
    img = np.zeros((480, 640, 3), np.uint8)
    draw_hand(img, hand, color=(0, 220, 0))
    pts = hand.landmarks[:, :2].astype(int)
    assert all(tuple(img[y, x]) == (0, 0, 255) for x, y in pts)  # joints: red, drawn over the bones
    drawn = 0
    for a, b in HAND_CONNECTIONS:  # a bone's middle is on its line (unless a joint's dot covers it)
        (xa, ya), (xb, yb) = pts[a], pts[b]
        drawn += img[(ya + yb) // 2, (xa + xb) // 2].any()
    assert drawn == len(HAND_CONNECTIONS)
    assert img[:, 320:].max() == 0  # nothing where no landmark or bone is


def test_the_selfie_view_mirrors_the_hand():
    from realtime.overlay import draw_hand

    hand = a_hand()
    plain, mirrored = np.zeros((480, 640, 3), np.uint8), np.zeros((480, 640, 3), np.uint8)
    draw_hand(plain, hand)
    draw_hand(mirrored, hand, mirror=True)
    pts = hand.landmarks[:, :2].astype(int)
    assert all(tuple(mirrored[y, 639 - x]) == (0, 0, 255) for x, y in pts)
    # the same drawing, flipped (anti-aliasing rounds a pixel differently here and there)
    a, b = plain[:, ::-1].any(2), mirrored.any(2)
    assert (a & b).sum() / (a | b).sum() > 0.9
