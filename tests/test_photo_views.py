"""The photo cascade's views: the wider views find hands in tight crops the first four miss, the keypoint cache records
which view found each hand, and training learns only from the first four (realtime.hands.base says why).

Real lis photos of GIULIA (the lis_giulia fixture); skipped without the datasets."""
import numpy as np

from realtime.hands import DEFAULT_VIEWS, TRAINING_VIEWS, StaticHandDetector, StaticSettings
from realtime.hands.base import FOUR_VIEWS
from realtime.images import read_image
from realtime.manifest import Manifest, weights_dir
from training.keypoints import load_keypoints
from training.train_keypoints import TrainConfig, prepare_data


def test_the_cascade_keeps_the_four_views_first():
    assert DEFAULT_VIEWS[:TRAINING_VIEWS] == FOUR_VIEWS and len(DEFAULT_VIEWS) > TRAINING_VIEWS


def giulia_keypoints(lis_giulia, monkeypatch):
    root, cache = lis_giulia
    monkeypatch.setenv("FINGERSPELL_CACHE", str(cache))
    return root, load_keypoints(root / "lis", progress=False)


def test_wider_views_find_hands_the_first_four_miss(lis_giulia, monkeypatch):
    root, kp = giulia_keypoints(lis_giulia, monkeypatch)
    wide = np.flatnonzero(kp.detected & (kp.view >= TRAINING_VIEWS))
    assert len(wide) >= 5, "GIULIA's tight crops: some hands only the wider views find"
    assert np.all(kp.view[~kp.detected] == -1) and np.all(kp.view[kp.detected] >= 0)
    image = read_image(root / "lis" / kp.rel[wide[0]])
    four, six = StaticHandDetector(StaticSettings(views=FOUR_VIEWS)), StaticHandDetector(StaticSettings())
    try:
        assert four(image) == []
        hands, view = six.detect_with_view(image)
        assert len(hands) == 1 and view == kp.view[wide[0]]
        np.testing.assert_allclose(hands[0].landmarks, kp.landmarks[wide[0]], atol=1e-3)
    finally:
        four.close(), six.close()


def test_training_learns_only_from_the_first_views_and_tests_on_all(lis_giulia, monkeypatch):
    root, _ = giulia_keypoints(lis_giulia, monkeypatch)
    labels = Manifest.load(weights_dir() / "lis-letters").labels
    cfg = TrainConfig(data=[str(root / "lis")], labels=[l for l in labels if l != "none"], out="unused",
                      test_signers=["GIULIA"])
    data = prepare_data(cfg, progress=False)
    learn = np.concatenate([data.train, data.val])
    assert np.all(data.kp.detected[learn]) and np.all(data.kp.view[learn] < TRAINING_VIEWS)
    test_wide = data.kp.detected[data.test] & (data.kp.view[data.test] >= TRAINING_VIEWS)
    assert test_wide.sum() >= 5, "the held-out person is read with every view"


def test_reading_with_fewer_views_loses_only_the_later_views_hands():
    from training.keypoint_set import KeypointSet

    n = 4
    kp = KeypointSet(dataset=np.array(["toy"] * n), rel=np.array(list("abcd")), labels=np.array(list("ABAB")),
                     signers=np.array(["s"] * n), source_splits=np.array([""] * n),
                     landmarks=np.ones((n, 21, 3), np.float32), is_left=np.zeros(n, bool),
                     hand_score=np.ones(n, np.float32), detected=np.array([True, True, True, False]),
                     readable=np.ones(n, bool), image_size=np.tile([64, 64], (n, 1)),
                     view=np.array([0, 3, 5, -1], np.int8))
    four = kp.found_by_first(4)
    assert four.detected.tolist() == [True, True, False, False] and four.view.tolist() == [0, 3, -1, -1]
    assert np.isnan(four.landmarks[2]).all() and np.array_equal(four.landmarks[:2], kp.landmarks[:2])
    assert kp.detected.tolist() == [True, True, True, False], "the set itself is unchanged"
    no_view = KeypointSet(**{f: getattr(kp, f) for f in KeypointSet.FIELDS if f != "view"})
    assert no_view.view.tolist() == [0, 0, 0, -1], "landmark-only rows count as found by the first view"
