"""The feature equations on hand-computed cases, and their invariances."""
import numpy as np
import pytest

from realtime.features import (FINGERS, FeatureSpec, canonicalize, cart_scaled, hand_geometry, hand_size, j2s_polar,
                               polar_scaled, wrist_relative)


def a_hand(seed=0):
    """A plausible right hand: palm bases above the wrist, fingers above them, with some noise."""
    rng = np.random.default_rng(seed)
    lm = np.zeros((21, 3))
    lm[0] = (300, 400, 0)
    bases = {1: (-60, -30), 5: (-40, -100), 9: (-10, -110), 13: (20, -105), 17: (45, -90)}
    for j, (dx, dy) in bases.items():
        for k in range(4):
            lm[j + k] = lm[0] + (dx * (1 + 0.15 * k), dy * (1 + 0.4 * k), -5.0 * k)
    return lm + rng.normal(0, 2, lm.shape)


def test_j2s_polar_hand_computed():
    lm = np.zeros((21, 3))
    lm[0] = (10, 10, 0)   # wrist
    lm[1] = (13, 14, 0)   # dx=3, dy=4: r = 5 / diag, theta = arctan(4/3)/2pi
    lm[2] = (10, 20, 0)   # dx=0, dy=10: theta = (pi/2)/2pi = 0.25
    lm[3] = (7, 14, 0)    # dx=-3, dy=4: arctan(-4/3) -> folds into the 4th quadrant, as eq. 2 writes it
    lm[4:] = lm[0]
    out = j2s_polar(lm, (30, 40))  # diagonal 50
    assert out.shape == (21, 2)
    np.testing.assert_allclose(out[1], [5 / 50, np.arctan(4 / 3) / (2 * np.pi)])
    np.testing.assert_allclose(out[2], [10 / 50, 0.25])
    np.testing.assert_allclose(out[3], [5 / 50, np.arctan(-4 / 3) / (2 * np.pi)])
    np.testing.assert_allclose(out[0], [0, 0])  # the wrist itself


def test_j2s_polar_missing_wrist_uses_training_mean():
    lm = np.zeros((21, 3))
    lm[1] = (20, 30, 0)
    # wrist not detected: the mean wrist (as a fraction of W, H) = (0.5, 0.5) -> (20, 20) in a 40x40 image
    out = j2s_polar(lm, (40, 40), wrist_present=False, mean_wrist=(0.5, 0.5))
    np.testing.assert_allclose(out[1], [10 / np.hypot(40, 40), 0.25])
    present = j2s_polar(lm, (40, 40), wrist_present=True, mean_wrist=(0.5, 0.5))
    np.testing.assert_allclose(present[1, 0], np.hypot(20, 30) / np.hypot(40, 40))


def test_polar_scaled_and_hand_size_hand_computed():
    lm = np.zeros((21, 3))
    for j in (5, 9, 13, 17):
        lm[j] = (0, -2, 0)  # every palm base 2 px above the wrist -> hand size 2
    lm[8] = (-2, 0, 0)      # index tip to the left: r = 1, atan2(0, -2) = pi -> 0.5
    assert hand_size(lm) == pytest.approx(2.0)
    out = polar_scaled(lm)
    np.testing.assert_allclose(out[8], [1.0, 0.5])
    np.testing.assert_allclose(out[5], [1.0, -0.25])  # straight up in image coordinates (y down)
    np.testing.assert_allclose(cart_scaled(lm)[8], [-1, 0, 0])


def test_translation_invariance():
    lm = a_hand()
    moved = lm + np.array([123.0, -45.0, 7.0])
    for f in (wrist_relative, polar_scaled, cart_scaled, hand_geometry):
        np.testing.assert_allclose(f(lm), f(moved), atol=1e-9)
    # eq. 1-2 is translation invariant too, in the same image
    np.testing.assert_allclose(j2s_polar(lm, (640, 480)), j2s_polar(moved, (640, 480)), atol=1e-12)


def test_scale_invariance():
    lm = a_hand()
    big = lm * 2.5
    for f in (polar_scaled, cart_scaled, hand_geometry):
        np.testing.assert_allclose(f(lm), f(big), atol=1e-9)
    # eq. 1 divides by the image diagonal: scaling the image with the hand leaves it unchanged
    np.testing.assert_allclose(j2s_polar(lm, (640, 480)), j2s_polar(big, (1600, 1200)), atol=1e-12)
    # ... but not when only the hand grows (the paper's version is not scale invariant)
    assert not np.allclose(j2s_polar(lm, (640, 480))[:, 0], j2s_polar(big, (640, 480))[:, 0])


def test_mirror_canonicalisation():
    right = a_hand()
    width = 640.0
    left = right.copy()
    left[:, 0] = width - left[:, 0]  # the same handshape seen as a left hand
    spec = FeatureSpec(("polar_scaled", "cart_scaled", "geometry", "j2s_polar"))
    f_right = spec.compute(right, is_left=False, image_size=(width, 480))
    f_left = spec.compute(left, is_left=True, image_size=(width, 480))
    np.testing.assert_allclose(f_left, f_right, atol=1e-5)
    # without canonicalisation the mirrored hand looks different
    raw = FeatureSpec(("cart_scaled",), canonical=False)
    assert not np.allclose(raw.compute(left, True, (width, 480)), raw.compute(right, False, (width, 480)))
    np.testing.assert_allclose(canonicalize(left, True, width), right)


def test_rotation_is_not_ignored():
    """Orientation matters for some letters (ASL H vs U, K vs P): the features must change when the hand turns."""
    lm = a_hand()
    c, s = np.cos(np.pi / 2), np.sin(np.pi / 2)
    rel = lm[:, :2] - lm[0, :2]
    turned = lm.copy()
    turned[:, :2] = lm[0, :2] + rel @ np.array([[c, s], [-s, c]])
    spec = FeatureSpec()
    assert np.abs(spec.compute(lm) - spec.compute(turned)).max() > 0.1
    # while the bend angles and tip distances do not change
    np.testing.assert_allclose(hand_geometry(lm)[:25], hand_geometry(turned)[:25], atol=1e-9)


def test_batched_equals_single_and_dims():
    hands = np.stack([a_hand(i) for i in range(5)])
    spec = FeatureSpec(("j2s_polar", "polar_scaled", "cart_scaled", "geometry"), mean_wrist=(0.5, 0.5))
    sizes = np.array([[640, 480]] * 5, float)
    left = np.array([0, 1, 0, 1, 0], bool)
    batch = spec.compute(hands, left, sizes)
    assert batch.shape == (5, spec.dim) and spec.dim == 42 + 42 + 63 + 28 and batch.dtype == np.float32
    for i in range(5):
        np.testing.assert_allclose(batch[i], spec.compute(hands[i], left[i], sizes[i]), atol=1e-6)


def test_columns_for_joints_and_spec_roundtrip():
    spec = FeatureSpec(("polar_scaled", "cart_scaled", "geometry"))
    cols = spec.columns_for_joints(FINGERS["index"])
    assert len(cols) == 4 * 2 + 4 * 3 and cols.max() < spec.dim
    assert list(cols[:2]) == [10, 11]  # joint 5, part polar_scaled
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        FeatureSpec(("no_such_part",))
    with pytest.raises(ValueError):
        FeatureSpec.from_dict({**spec.to_dict(), "dim": 3})
    with pytest.raises(ValueError):
        spec.compute(np.zeros((20, 3)))


def test_world_points_are_recorded_only_when_used_and_need_world_landmarks():
    from realtime.features import FeatureExtractor
    from realtime.hands.hand import Hand

    image = FeatureSpec(("polar_scaled", "cart_scaled"))
    world = FeatureSpec(("polar_scaled", "cart_scaled"), points="world")
    assert "points" not in image.to_dict()  # older manifests and checkpoints read the same
    assert FeatureSpec.from_dict(world.to_dict()) == world and FeatureSpec.from_dict(image.to_dict()) == image
    with pytest.raises(ValueError, match="points"):
        FeatureSpec(("polar_scaled",), points="pixels")
    lm = np.random.default_rng(0).uniform(100, 200, (21, 3)).astype(np.float32)
    hand = Hand(lm, "Right", 0.9, (640, 480))
    with pytest.raises(ValueError, match="world landmarks"):
        FeatureExtractor(world)(hand)
    metres = (lm - lm.mean(0)) / 1000.0
    hand.world = metres
    # the world features are the image features of the world points: both are wrist-relative and scale-free
    assert np.allclose(FeatureExtractor(world)(hand), image.compute(metres[None] * 1000.0, False, (1.0, 1.0)),
                       atol=1e-5)


def test_keypoint_set_with_world_points():
    from training.keypoint_set import KeypointSet

    n = 3
    kp = KeypointSet(dataset=np.array(["a"] * n), rel=np.array(["0", "1", "2"]), labels=np.array(["A", "B", "C"]),
                     signers=np.array([""] * n), source_splits=np.array([""] * n),
                     landmarks=np.ones((n, 21, 3), np.float32), is_left=np.zeros(n, bool),
                     hand_score=np.ones(n, np.float32), detected=np.array([True, True, False]),
                     readable=np.ones(n, bool), image_size=np.full((n, 2), 64, np.int32))
    assert np.isnan(kp.world).all()  # a landmark-only dataset has no world landmarks
    assert not kp.with_points("world").detected.any()  # ... so a world-landmark model finds no hand there
    kp.world[0] = 0.01
    w = kp.with_points("world")
    assert list(w.detected) == [True, False, False] and (w.image_size == 1).all()
    assert np.array_equal(w.landmarks[0], kp.world[0]) and kp.with_points("image") is kp
    assert np.isnan(KeypointSet.concat([kp, kp.subset(np.array([2]))]).world[3]).all()
    with pytest.raises(ValueError):
        kp.with_points("pixels")


def test_empty_batch_and_missing_wrist_through_the_spec():
    spec = FeatureSpec(("j2s_polar", "cart_scaled"), mean_wrist=(0.5, 0.5))
    assert spec.compute(np.zeros((0, 21, 3)), np.zeros(0, bool), np.zeros((0, 2))).shape == (0, spec.dim)
    lm = a_hand()
    with_wrist = spec.compute(lm, False, (640, 480), wrist_present=True)
    without = spec.compute(lm, False, (640, 480), wrist_present=False)  # uses the mean wrist (320, 240)
    assert not np.allclose(with_wrist[:42], without[:42])
    np.testing.assert_allclose(without[:42].reshape(21, 2), j2s_polar(lm, (640, 480), False, (0.5, 0.5)), atol=1e-6)


def test_a_world_landmark_model_is_refused_up_front_by_pipelines_that_give_none():
    from types import SimpleNamespace

    from realtime.pipeline import PipelineOptions, Recognizer

    world = SimpleNamespace(spec=FeatureSpec(("polar_scaled",), points="world"), labels=["A"])
    with pytest.raises(ValueError, match="only --hands mediapipe"):
        Recognizer.from_options(PipelineOptions(hands="onnx"), classifier=world)


def test_many_hands_at_once_give_what_one_at_a_time_gives():
    """The many-camera step computes every stream's features in one call (FeatureExtractor.many)."""
    from realtime.features import FeatureExtractor
    from realtime.hands import Hand

    rng = np.random.default_rng(4)
    hands = [Hand(rng.uniform(50, 400, (21, 3)).astype(np.float32), side, 0.9, size)
             for side, size in (("Right", (640, 480)), ("Left", (1280, 720)), ("Left", (640, 480)))]
    for spec in (FeatureSpec(), FeatureSpec(("j2s_polar", "polar_scaled", "geometry"))):
        ex = FeatureExtractor(spec)
        one = np.concatenate([ex(h) for h in hands])
        assert np.allclose(ex.many(hands), one, atol=1e-6) and ex.many(hands).dtype == np.float32
        assert ex.many([]).shape == (0, spec.dim)
    world = FeatureExtractor(FeatureSpec(points="world"))
    with pytest.raises(ValueError, match="world landmarks"):
        world.many(hands)
    for h in hands:
        h.world = (h.landmarks - h.landmarks.mean(0)) / 1000.0
    assert np.allclose(world.many(hands), np.concatenate([world(h) for h in hands]), atol=1e-6)
