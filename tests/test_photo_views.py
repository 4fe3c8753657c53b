"""The photo cascade's views: the wider views find hands in tight crops the first four miss, the keypoint cache records
which view found each hand, and training learns only from the first four (realtime.hands.base says why).

The data-backed tests use real lis photos of GIULIA (the lis_giulia fixture) and skip without the datasets."""
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


def test_the_held_out_person_is_read_with_every_view(lis_giulia, monkeypatch):
    root, _ = giulia_keypoints(lis_giulia, monkeypatch)
    labels = Manifest.load(weights_dir() / "lis-letters").labels
    cfg = TrainConfig(data=[str(root / "lis")], labels=[l for l in labels if l != "none"], out="unused",
                      test_signers=["GIULIA"])
    data = prepare_data(cfg, progress=False)
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


def toy_views(monkeypatch, views):
    """prepare_data over a made-up photo set whose hands were found by ``views`` (two signers, A and B)."""
    import training.landmark_sets as landmark_sets
    import training.train_keypoints as train_keypoints
    from training.keypoint_set import KeypointSet

    n = len(views)
    rng = np.random.default_rng(0)
    kp = KeypointSet(dataset=np.array(["toy"] * n), rel=np.array([f"{i}.png" for i in range(n)]),
                     labels=np.array(list("AB" * (n // 2))), signers=np.array(["s1"] * (n - 4) + ["s2"] * 4),
                     source_splits=np.array([""] * n), landmarks=rng.normal(100, 20, (n, 21, 3)).astype(np.float32),
                     is_left=np.zeros(n, bool), hand_score=np.ones(n, np.float32), detected=np.array(views) >= 0,
                     readable=np.ones(n, bool), image_size=np.tile([64, 64], (n, 1)), view=np.array(views, np.int8))
    monkeypatch.setattr(train_keypoints, "load_keypoints", lambda *a, **k: kp)
    monkeypatch.setattr(landmark_sets, "is_landmark_set", lambda d: True)
    monkeypatch.setattr(landmark_sets, "content_hash", lambda d: "toy")


def test_prepare_data_learns_from_the_training_views_and_tests_on_every_view(monkeypatch, tmp_path):
    views = [0, 1, 5, 4, 0, 2, 3, 0, 0, 0, 0, 0] + [0, 5, -1, 4]  # the last four rows are the held-out signer s2
    toy_views(monkeypatch, views)
    cfg = TrainConfig(data=["toy"], labels=["A", "B"], out=str(tmp_path), test_signers=["s2"], val_fraction=0.25)
    data = prepare_data(cfg, progress=False)
    learned = set(np.concatenate([data.train, data.val]).tolist())
    assert learned == {0, 1, 4, 5, 6, 7, 8, 9, 10, 11}, "rows 2 and 3 were found by the wide views only"
    assert sorted(data.test.tolist()) == [12, 13, 14, 15] and data.kp.detected[data.test].sum() == 3

    six = prepare_data(TrainConfig(**{**cfg.__dict__, "training_views": 6}), progress=False)
    assert set(np.concatenate([six.train, six.val]).tolist()) == learned | {2, 3}

    four = prepare_data(TrainConfig(**{**cfg.__dict__, "read_views": 4}), progress=False)
    assert four.kp.detected[four.test].sum() == 1 and not four.kp.detected[[2, 3]].any()


def test_a_new_people_cell_of_another_cascade_is_made_again(tmp_path):
    import json

    from training.keypoints import extraction_record
    from training.new_people import cached_cell

    assert cached_cell(tmp_path) is None
    (tmp_path / "new_people.json").write_text(json.dumps({"accuracy": 0.9}))  # before the cascade was recorded
    assert cached_cell(tmp_path) is None
    (tmp_path / "new_people.json").write_text(json.dumps({"accuracy": 0.9, "photo_cascade": extraction_record()}))
    assert cached_cell(tmp_path)["accuracy"] == 0.9


def test_learning_from_both_hand_models_reads_each_photo_twice_in_one_split(asl_small, monkeypatch):
    """TrainConfig.hand_models (docs/results-hand-model.md): each photo's landmarks from the full and the lite hand
    models, both copies of a photo on the same side of the train/validation split; a landmark-only set once."""
    from dataclasses import replace

    root, cache = asl_small
    monkeypatch.setenv("FINGERSPELL_CACHE", str(cache))
    webcam = root / "asl_webcam_landmarks"
    full = TrainConfig(data=[str(root / "massey"), str(webcam)], labels=["A", "B", "C", "L", "V", "W", "Y"],
                       out="unused")
    both = replace(full, hand_models=["full", "lite"])
    one, two = prepare_data(full, progress=False), prepare_data(both, progress=False)
    photos = lambda d, rows: set(zip(d.kp.dataset[rows], d.kp.rel[rows]))  # noqa: E731
    is_massey = lambda d: d.kp.dataset == "massey"  # noqa: E731
    assert is_massey(two).sum() == 2 * is_massey(one).sum() > 0
    assert (~is_massey(two)).sum() == (~is_massey(one)).sum() > 0  # the webcam rows are not read again
    assert not photos(two, two.train) & photos(two, two.val)
    m = np.flatnonzero(is_massey(two))
    first, second = m[:len(m) // 2], m[len(m) // 2:]
    assert two.kp.rel[first].tolist() == two.kp.rel[second].tolist()  # the same photos, read by the two models
    found = two.kp.detected[first] & two.kp.detected[second]
    assert found.any() and not np.allclose(two.kp.landmarks[first[found]], two.kp.landmarks[second[found]], atol=1e-3)
    assert full.fingerprint() != both.fingerprint()
