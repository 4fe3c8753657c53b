"""The keypoint trainer: learns, checkpoints, resumes to the same weights, balances its sampling.

These use synthetic hands (three made-up handshapes with noise): they test the training
mechanics. Accuracy on real data is measured by 'fingerspell train results' and the
integration tests.
"""
import json

import numpy as np
import pytest
import torch

from training.io import CheckpointError
from training.keypoints import KeypointSet
from training.train_keypoints import PreparedData, TrainConfig, augment_landmarks, balanced_weights, train


def synthetic(n_per=60, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 60, (3, 21, 3))
    base[:, 0] = 0
    lms, labels, signers = [], [], []
    for c in range(3):
        for i in range(n_per):
            lms.append(base[c] + rng.normal(0, 6, (21, 3)) + (320, 240, 0))
            labels.append("ABC"[c])
            signers.append(f"s{i % 3}")
    n = len(labels)
    kp = KeypointSet(dataset=np.array(["toy"] * n), rel=np.array([f"{i}.png" for i in range(n)]), labels=np.array(labels),
                     signers=np.array(signers), source_splits=np.array([""] * n),
                     landmarks=np.array(lms, np.float32), is_left=np.zeros(n, bool), hand_score=np.ones(n, np.float32),
                     detected=np.ones(n, bool), readable=np.ones(n, bool), image_size=np.tile([640, 480], (n, 1)))
    idx = np.arange(n)
    test = idx[np.array(signers) == "s2"]
    rest = idx[np.array(signers) != "s2"]
    return PreparedData(kp, rest[::2], rest[1::2], test, np.array(["ABC".index(l) for l in labels]), "toy: s2 held out")


def cfg(tmp_path, name, epochs):
    return TrainConfig(data=[], labels=list("ABC"), out=str(tmp_path / name), epochs=epochs, batch_size=32, seed=1)


def test_training_learns_and_writes_outputs(tmp_path):
    s = train(cfg(tmp_path, "run", 8), progress=False, data=synthetic())
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert s["test"]["accuracy"] > 0.9
    for f in ("model.pt", "metrics.json", "loss_curves.png", "confusion_matrix.png", "per_class_accuracy.png"):
        assert (tmp_path / "run" / f).stat().st_size > 0


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    data = synthetic()
    train(cfg(tmp_path, "straight", 6), progress=False, data=data)

    def kill_after_third(epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg(tmp_path, "resumed", 6), progress=False, data=data, on_epoch_end=kill_after_third)
    assert len(torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["history"]) == 3
    train(cfg(tmp_path, "resumed", 6), progress=False, data=data)  # the same command again resumes
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert len(b["history"]) == 6
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k])


def test_resume_refuses_a_different_configuration(tmp_path):
    data = synthetic()
    train(cfg(tmp_path, "run", 2), progress=False, data=data)
    other = cfg(tmp_path, "run", 2)
    other.lr = 0.5
    with pytest.raises(CheckpointError, match="different configuration"):
        train(other, progress=False, data=data)


def test_balanced_weights_equalise_datasets_and_signers():
    n = 100
    kp = synthetic().kp
    ds = np.array(["big"] * 90 + ["small"] * 10)
    signers = np.array(["one"] * 90 + ["a", "b"] * 5)
    labels = np.array(list("AB" * 50))
    kp = KeypointSet(**{**{f: getattr(kp, f)[:n] for f in KeypointSet.FIELDS}, "dataset": ds, "signers": signers,
                        "labels": labels})
    w = balanced_weights(kp, np.arange(n))
    assert w[ds == "big"].sum() == pytest.approx(0.5) and w[ds == "small"].sum() == pytest.approx(0.5)
    assert w[signers == "a"].sum() == pytest.approx(0.25)
    assert w[(ds == "big") & (labels == "A")].sum() == pytest.approx(0.25)


def test_augmentation_keeps_the_wrist_and_the_hand_shape_roughly():
    kp = synthetic().kp
    lm = kp.landmarks[:16]
    out = augment_landmarks(lm, np.random.default_rng(0), rotate_deg=15, scale=0.1, jitter=0.0)
    np.testing.assert_allclose(out[:, 0, :2], lm[:, 0, :2], atol=1e-3)
    assert not np.allclose(out, lm)
    d_in = np.linalg.norm(lm[:, 8, :2] - lm[:, 0, :2], axis=-1)
    d_out = np.linalg.norm(out[:, 8, :2] - out[:, 0, :2], axis=-1)
    assert np.all(np.abs(d_out / d_in - 1) <= 0.1 + 1e-6)


def test_resume_refuses_changed_data(tmp_path):
    data = synthetic()
    data.data_hashes = {"toy": "one"}
    train(cfg(tmp_path, "run", 2), progress=False, data=data)
    data.data_hashes = {"toy": "two"}
    with pytest.raises(CheckpointError, match="different data"):
        train(cfg(tmp_path, "run", 2), progress=False, data=data)


def test_recipes_take_a_seed_and_world_points(tmp_path):
    from dataclasses import replace

    from training.experiments import recipe_config, recipe_points, split_seed
    from training.train_keypoints import load_trained

    root = tmp_path / "datasets"
    for d in ("massey", "roboflow", "kaggle_asl", "digits", "asl_webcam_landmarks"):
        (root / d).mkdir(parents=True)
    assert recipe_config("asl-v3", root, tmp_path).seed == 0 and recipe_config("asl-v3@2", root, tmp_path).seed == 2
    assert split_seed("asl-v3@2") == ("asl-v3", 2) and split_seed("asl-v3") == ("asl-v3", None)
    assert recipe_points("asl-v3-world@1") == "world" and recipe_points("asl-v3") == "image"
    with pytest.raises(ValueError, match="unknown recipe"):
        split_seed("asl-v9@1")
    for bad in ("asl-v3@x", "asl-v3@", "asl-v3@0"):
        with pytest.raises(ValueError, match="whole number above 0"):
            split_seed(bad)
    # a checkpoint of the image points resumes as before the option existed (the fingerprint of a config without the
    # field); world points are another config
    import hashlib
    from dataclasses import asdict

    c = cfg(tmp_path, "run", 2)
    before = {k: v for k, v in asdict(c).items() if k not in ("out", "cache_dir", "workers", "points", "mixup",
                                                               "group_adversary", "free_views", "oriented_letters",
                                                               "balance_classes", "hand_models")}
    assert c.fingerprint() == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]
    assert c.fingerprint() != replace(c, points="world").fingerprint()
    data = synthetic()
    data.kp.world = data.kp.landmarks / 1000.0  # metres, as MediaPipe gives them
    data = replace(data, kp=data.kp.with_points("world"))
    train(replace(c, points="world"), progress=False, data=data)
    assert load_trained(tmp_path / "run" / "model.pt")[2].points == "world"


def test_mirrored_hands_for_test_time_flips():
    from training.ensembles import mirrored

    kp = synthetic().kp
    m = mirrored(kp)
    assert np.array_equal(m.is_left, ~kp.is_left) and np.allclose(m.landmarks[:, 0], kp.landmarks[:, 0])
    assert np.allclose(m.landmarks[..., 1:], kp.landmarks[..., 1:])
    assert np.allclose(mirrored(m).landmarks, kp.landmarks, atol=1e-3)
    kp.world = kp.landmarks / 1000.0
    assert np.allclose(mirrored(kp).world, mirrored(kp).landmarks / 1000.0, atol=1e-6)  # world points mirrored too
    from realtime.features import FeatureSpec

    def features(spec, k):
        return spec.compute(k.landmarks, k.is_left, k.image_size.astype(np.float64))
    free, canonical = FeatureSpec(canonical=False), FeatureSpec(canonical=True)
    assert not np.allclose(features(free, m), features(free, kp), atol=1e-3)  # a real second view for the model
    assert np.allclose(features(canonical, m), features(canonical, kp), atol=1e-4)  # ... but not for a canonical one


def test_feature_mixup_blends_pairs_and_keeps_the_larger_share_on_the_rows_own_label():
    from training.train_keypoints import mix_feature_pairs

    rng = np.random.default_rng(0)
    feats = np.eye(8, dtype=np.float32)  # row i is one-hot at i: the blend weights can be read back
    y = np.arange(8)
    mixed, y_own, y_partner, lam = mix_feature_pairs(feats, y, 0.4, rng)
    assert (y_own == y).all() and (lam >= 0.5).all() and (lam <= 1).all()
    for i in range(8):
        if y_partner[i] != i:
            assert mixed[i, i] == pytest.approx(lam[i], abs=1e-6)
            assert mixed[i, y_partner[i]] == pytest.approx(1 - lam[i], abs=1e-6)
        assert mixed[i].sum() == pytest.approx(1.0)


def test_reversed_gradient_flips_the_sign_and_ramps_up():
    from training.train_keypoints import _ReverseGradient, dann_scale

    x = torch.ones(3, requires_grad=True)
    _ReverseGradient.apply(x, 0.5).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -0.5))
    assert dann_scale(0.0) == 0.0 and 0.99 < dann_scale(1.0) <= 1.0 and dann_scale(0.2) < dann_scale(0.5)


def test_regularisers_train_resume_and_leave_older_checkpoints_resumable(tmp_path):
    import hashlib
    from dataclasses import asdict

    data = synthetic()
    # two groups among the training rows for the adversary to tell apart
    data.kp.dataset = np.where(np.arange(len(data.kp)) % 2 == 0, "toy2", data.kp.dataset)

    plain = asdict(cfg(tmp_path, "plain", 2))  # off: the fingerprint is what checkpoints made before them recorded
    older = {k: v for k, v in plain.items() if k not in ("out", "cache_dir", "workers", "points", "mixup",
                                                          "group_adversary", "free_views", "oriented_letters",
                                                          "balance_classes", "hand_models")}
    assert cfg(tmp_path, "plain", 2).fingerprint() == hashlib.sha256(
        json.dumps(older, sort_keys=True).encode()).hexdigest()[:16]
    reg = cfg(tmp_path, "reg", 4)
    reg.mixup, reg.group_adversary = 0.4, 0.3
    assert reg.fingerprint() != cfg(tmp_path, "reg", 4).fingerprint()
    turned = cfg(tmp_path, "turned", 4)
    turned.free_views, turned.oriented_letters = [45.0, 45.0, 45.0], []
    assert turned.fingerprint() != cfg(tmp_path, "turned", 4).fingerprint()

    def kill_after_second(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(reg, progress=False, data=data, on_epoch_end=kill_after_second)
    assert "group_head" in torch.load(tmp_path / "reg" / "checkpoint.pt", weights_only=False)
    s = train(reg, progress=False, data=data)  # resumes with the group head and its optimizer state
    assert s["test"]["accuracy"] > 0.9


def test_unlabelled_adaptation_split_and_input_statistics():
    import torch

    from training.adaptation_experiments import adaptation_split, probabilities, restandardised
    from training.keypoint_model import KeypointClassifier

    labels = np.array(list("AAAABBBBBC"))
    adapt, test = adaptation_split(labels, video=True)
    assert list(adapt) == [0, 1, 4, 5] and list(test) == [2, 3, 6, 7, 8, 9]  # each letter's first half adapts
    adapt, test = adaptation_split(labels, video=False)
    assert len(adapt) == 5 and not set(adapt) & set(test) and sorted([*adapt, *test]) == list(range(10))

    torch.manual_seed(0)
    model = KeypointClassifier(6, 3).eval()
    x = np.random.default_rng(0).normal(5.0, 3.0, (200, 6)).astype(np.float32)
    assert np.allclose(probabilities(restandardised(model, x, 0.0), x), probabilities(model, x), atol=1e-6)
    whole = restandardised(model, x, 1.0)
    with torch.no_grad():
        normed = ((torch.from_numpy(x) - whole.norm.running_mean) / (whole.norm.running_var + whole.norm.eps).sqrt())
    assert np.allclose(normed.mean(0).numpy(), 0, atol=1e-4) and np.allclose(normed.std(0).numpy(), 1, atol=1e-2)
    assert np.allclose(model.norm.running_mean.numpy(), 0)  # the shipped model itself is untouched


def test_test_time_views_and_self_training_samples():
    from training.adaptation_experiments import (SELF_CONFIDENCE, SELF_PER_LETTER, probabilities, self_training_samples,
                                                 view_probabilities)
    from training.new_people import TorchModel

    data = synthetic()
    tm = TorchModel.__new__(TorchModel)  # a TorchModel around a freshly made network: no run folder needed
    from realtime.features import FeatureSpec
    from training.keypoint_model import KeypointClassifier

    tm.spec, tm.labels = FeatureSpec(), list("ABC")
    tm.model = KeypointClassifier(tm.spec.dim, 3).eval()
    kp = data.kp.subset(np.arange(20))
    x = kp.features(tm.spec)
    assert np.allclose(view_probabilities(tm, kp, views=((0, 0, 0),)), probabilities(tm.model, x), atol=1e-5)
    turned = view_probabilities(tm, kp)
    assert turned.shape == (20, 3) and np.allclose(turned.sum(1), 1, atol=1e-5)

    probs = np.zeros((50, 4))
    probs[:40, 0] = np.linspace(0.5, 1.0, 40)  # rows 0..39: letter A, confidence rising (0.9 from row 32 on)
    probs[:40, 1] = 1 - probs[:40, 0]
    probs[40:, 3] = 1.0  # rows 40..49: read as the no-letter class, surely
    probs[24:32, 0], probs[24:32, 1] = 0.05, 0.95  # rows 24..31: B, sure
    chosen = self_training_samples(probs, ["A", "B", "C", "none"], np.arange(50))
    sure_a = np.flatnonzero(probs[:, 0] >= SELF_CONFIDENCE)
    assert len(sure_a) < SELF_PER_LETTER and set(sure_a) <= set(chosen)  # every sure A (fewer than the cap)
    b = [r for r in chosen if probs[r, 1] >= 0.9]
    assert len(b) == 8 and len(chosen) == len(sure_a) + 8  # the sure Bs; no unsure row, no no-letter row
    many = np.tile(probs[24:25], (30, 1))  # thirty sure Bs: at most the cap of them
    assert len(self_training_samples(many, ["A", "B", "C", "none"], np.arange(30))) == SELF_PER_LETTER
    assert self_training_samples(probs, ["A", "B", "C", "none"], np.arange(40, 50)).size == 0  # no-letter is never a sample


def test_class_balance_gives_every_class_the_same_share_and_keeps_the_rows_relative_weights_within_it():
    from training.train_keypoints import balanced_weights

    kp = synthetic().kp
    # two datasets: 'toy' teaches A, B and C; 'big' (twice the rows) teaches A only
    big = kp.subset(np.flatnonzero(kp.labels == "A"))
    big = KeypointSet.concat([big, big])
    big.dataset = np.full(len(big), "big")
    both = KeypointSet.concat([kp, big])
    idx = np.arange(len(both))
    share = lambda w, m: float(w[m].sum())  # noqa: E731
    plain = balanced_weights(both, idx)
    assert share(plain, both.labels == "A") > 0.6  # datasets equal: A gets half of one and all of the other
    even = balanced_weights(both, idx, classes_equal=True)
    for letter in "ABC":
        assert abs(share(even, both.labels == letter) - 1 / 3) < 1e-9
    a = both.labels == "A"
    ratio = lambda w: share(w, a & (both.dataset == "big")) / share(w, a & (both.dataset == "toy"))  # noqa: E731
    assert abs(ratio(even) - ratio(plain)) < 1e-9
