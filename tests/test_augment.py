"""Keypoint augmentation (new views and new hands): what it must keep and what it must change."""
import numpy as np

from realtime.features import FINGERS, FeatureSpec, hand_size
from training.train_keypoints import augment_landmarks, rotation_matrices


def hands(n=16, seed=0):
    rng = np.random.default_rng(seed)
    base = np.zeros((21, 3))
    for f, joints in enumerate(FINGERS.values()):
        for k, j in enumerate(joints):
            base[j] = (-40 + 20 * f, -30 - 25 * k, -3.0 * k)
    lm = base[None] + rng.normal(0, 4, (n, 21, 3))
    lm[:, 0] = 0.0
    return lm + np.array([320.0, 400.0, 0.0])  # wrist somewhere in a 640x480 frame


def bone_lengths(lm):
    from realtime.features import HAND_CONNECTIONS

    return np.stack([np.linalg.norm(lm[:, a] - lm[:, b], axis=-1) for a, b in HAND_CONNECTIONS], -1)


def test_rotation_matrices_are_rotations():
    rng = np.random.default_rng(1)
    r = rotation_matrices(*(rng.uniform(-1, 1, 8) for _ in range(3)))
    assert np.allclose(r @ r.transpose(0, 2, 1), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(r), 1.0)


def test_3d_rotation_keeps_the_wrist_and_every_bone_length():
    lm = hands()
    out = augment_landmarks(lm, np.random.default_rng(0), rotate_deg=30, scale=0.0, jitter=0.0, yaw_deg=30,
                            pitch_deg=20)
    assert np.allclose(out[:, 0], lm[:, 0])
    assert np.allclose(bone_lengths(out), bone_lengths(lm))
    assert not np.allclose(out, lm)  # it did turn the hands
    # yaw and pitch move points out of the image plane: depth changes, which a roll alone never does
    roll_only = augment_landmarks(lm, np.random.default_rng(0), rotate_deg=30, scale=0.0, jitter=0.0)
    assert np.allclose(roll_only[..., 2], lm[..., 2])
    assert not np.allclose(out[..., 2], lm[..., 2])


def test_zero_augmentation_is_the_identity():
    lm = hands()
    out = augment_landmarks(lm, np.random.default_rng(0), rotate_deg=0, scale=0, jitter=0)
    assert np.allclose(out, lm)


def test_flip_mirrors_the_hand_and_swaps_its_handedness():
    lm = hands()
    left = np.zeros(len(lm), bool)
    out, out_left = augment_landmarks(lm, np.random.default_rng(0), rotate_deg=0, scale=0, jitter=0, flip=1.0,
                                      is_left=left)
    assert out_left.all()
    assert np.allclose(out[..., 0] - out[:, :1, 0], -(lm[..., 0] - lm[:, :1, 0]))
    assert np.allclose(out[..., 1:], lm[..., 1:])
    # with handedness mirroring (canonical features) a flipped hand reads exactly as before; without it, it differs
    canon, raw = FeatureSpec(canonical=True), FeatureSpec(canonical=False)
    size = np.tile([640.0, 480.0], (len(lm), 1))
    assert np.allclose(canon.compute(out, out_left, size), canon.compute(lm, left, size), atol=1e-5)
    assert not np.allclose(raw.compute(out, out_left, size), raw.compute(lm, left, size), atol=1e-3)


def test_finger_scale_changes_fingers_not_the_palm():
    lm = hands()
    out = augment_landmarks(lm, np.random.default_rng(0), rotate_deg=0, scale=0, jitter=0, finger_scale=0.2)
    bases = [0] + [j[0] for j in FINGERS.values()]
    assert np.allclose(out[:, bases], lm[:, bases])  # wrist and finger bases stay: the hand size is unchanged
    assert np.allclose(hand_size(out), hand_size(lm))
    ratio = bone_lengths(out) / bone_lengths(lm)
    assert ratio.min() >= 0.8 - 1e-9 and ratio.max() <= 1.2 + 1e-9 and ratio.std() > 0.01


def test_augmentation_is_reproducible_from_the_seed():
    lm = hands()
    kw = dict(rotate_deg=15, scale=0.1, jitter=0.02, yaw_deg=30, pitch_deg=20, finger_scale=0.1, flip=0.5,
              is_left=np.zeros(len(lm), bool))
    a = augment_landmarks(lm, np.random.default_rng(3), **kw)
    b = augment_landmarks(lm, np.random.default_rng(3), **kw)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_half_formed_shapes_blend_two_letters_and_are_labelled_no_letter():
    from training.train_keypoints import half_formed_shapes

    lm = hands(40)
    y = np.arange(40) % 4  # letters 0..2, and 3 is the no-letter class
    out, out_y = half_formed_shapes(lm, np.zeros(40, bool), y, none=3, fraction=1.0, rng=np.random.default_rng(0))
    changed = np.flatnonzero(out_y != y)
    assert len(changed) > 10 and (out_y[changed] == 3).all()  # relabelled: never typed
    assert (y[changed] != 3).all()  # only letters are blended
    same = np.flatnonzero(out_y == y)
    assert np.allclose(out[same], lm[same])  # the rest of the batch is untouched
    assert np.allclose(out[changed, 0], lm[changed, 0])  # the blend stays at the hand's own wrist
    assert not np.allclose(out[changed], lm[changed])


def test_letter_aware_views_turn_only_the_letters_not_defined_by_orientation():
    from training.train_keypoints import TrainConfig, view_ranges

    cfg = TrainConfig(data=[], labels=["A", "H", "U", "M"], out="x", rotate_deg=15, yaw_deg=30, pitch_deg=20)
    y = np.array([0, 1, 2, 3])
    assert view_ranges(cfg, y) == (15, 30, 20)  # off: one range for all, as the shipped recipes were trained
    wide = TrainConfig(**{**cfg.__dict__, "free_views": [90.0, 60.0, 45.0], "oriented_letters": ["H", "U"]})
    roll, yaw, pitch = view_ranges(wide, y)
    assert roll.tolist() == [90, 15, 15, 90] and yaw.tolist() == [60, 30, 30, 60] and pitch.tolist() == [45, 20, 20, 45]

    lm = hands(4)  # a range of 0 leaves a hand as it was, a wide one turns it; bones keep their lengths
    out = augment_landmarks(lm, np.random.default_rng(0), np.array([0.0, 90.0, 0.0, 90.0]), 0.0, 0.0,
                            np.array([0.0, 60.0, 0.0, 60.0]), np.array([0.0, 45.0, 0.0, 45.0]))
    assert np.allclose(out[[0, 2]], lm[[0, 2]]) and not np.allclose(out[1], lm[1]) and not np.allclose(out[3], lm[3])
    assert np.allclose(bone_lengths(out), bone_lengths(lm))


def test_letter_aware_views_refuse_letters_the_model_does_not_learn():
    import pytest

    from training.train_keypoints import TrainConfig, view_ranges

    cfg = TrainConfig(data=[], labels=["A", "B"], out="x", free_views=[45.0, 45.0, 45.0], oriented_letters=["Z"])
    with pytest.raises(ValueError, match="oriented_letters"):
        view_ranges(cfg, np.array([0, 1]))
    with pytest.raises(ValueError, match="roll, yaw, pitch"):
        view_ranges(TrainConfig(data=[], labels=["A"], out="x", free_views=[45.0]), np.array([0]))
