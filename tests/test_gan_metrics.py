"""The pieces behind the GAN metrics and the real-data evaluator: square hand crops, the classifier
(train, resume, load), FID/KID/PRDC in its feature space, and a whole evaluation of a tiny generator."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from realtime.crops import SquareBox, crop_square
from training.image_classifier import ClassifierConfig, ImageClassifier, build_classifier, to_input, train_classifier


def test_square_box_maps_landmarks_to_where_the_crop_shows_them():
    img = np.zeros((240, 320, 3), np.uint8)
    pts = np.array([[100, 60], [180, 60], [140, 150]], np.float32)
    for x, y in pts.astype(int):
        img[y - 2:y + 3, x - 2:x + 3] = 255
    box = SquareBox.around(pts, scale=1.5)
    assert box.side == pytest.approx(90 * 1.5)
    crop = crop_square(img, box, 64)
    frac = box.to_crop(pts)
    for (fx, fy) in frac:  # each bright dot lands where to_crop says
        y, x = int(fy * 64), int(fx * 64)
        assert crop[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].max() > 100
    assert crop.shape == (64, 64, 3)


def blobs(n_per: int = 30, size: int = 16, seed: int = 0):
    """Three classes a classifier can learn in a few epochs: a bright square in a class-specific corner."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for k, label in enumerate("ABC"):
        for _ in range(n_per):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            y, x = [(2, 2), (2, 9), (9, 5)][k]
            img[y:y + 5, x:x + 5] = 230
            images.append(img)
            labels.append(label)
    return np.stack(images), np.array(labels)


def test_classifier_trains_resumes_and_loads(tmp_path):
    x, y = blobs()
    cfg = ClassifierConfig(arch="cnn", epochs=3, batch_size=8, lr=1e-3, flip=False)
    clf = train_classifier(x, y, x[::3], y[::3], ["A", "B", "C"], tmp_path, cfg, progress=False)
    assert (tmp_path / "best.pt").exists() and (tmp_path / "last.pt").exists()
    cfg7 = ClassifierConfig(arch="cnn", epochs=7, batch_size=8, lr=1e-3, flip=False)
    clf = train_classifier(x, y, x[::3], y[::3], ["A", "B", "C"], tmp_path, cfg7, progress=False)
    hist = __import__("json").loads((tmp_path / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4, 5, 6, 7]  # resumed at epoch 4, did not start over
    p = clf.probabilities(to_input(x))
    assert p.shape == (90, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert (np.asarray(clf.labels)[p.argmax(1)] == y).mean() > 0.9
    assert clf.features(to_input(x[:5])).shape == (5, clf.model.feature_dim)
    # any input size is resized to the classifier's
    assert clf.probabilities(to_input(np.repeat(np.repeat(x[:4], 2, 1), 2, 2))).shape == (4, 3)
    with pytest.raises(ValueError, match="not in the classifier's labels"):
        train_classifier(x, np.array(["Q"] * 90), x[:3], y[:3], ["A", "B", "C"], tmp_path / "q", cfg, progress=False)


def test_classifier_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no classifier"):
        ImageClassifier.load(tmp_path)
    torch.save({"something": 1}, tmp_path / "best.pt")
    with pytest.raises(ValueError, match="not an image-classifier checkpoint"):
        ImageClassifier.load(tmp_path)


def test_efficientnet_v2_builds_from_scratch_on_small_crops():
    net = build_classifier("efficientnet_v2_s", 7).eval()
    with torch.no_grad():
        assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 7)
    with pytest.raises(ValueError, match="arch must be"):
        build_classifier("resnet50", 3)


def test_fid_kid_prdc_in_the_classifier_feature_space(tmp_path):
    from training.gan.metrics import ClassifierFeatures, fid_kid, prdc_scores

    x, y = blobs(40)
    clf = train_classifier(x, y, x[::4], y[::4], ["A", "B", "C"], tmp_path,
                           ClassifierConfig(epochs=6, batch_size=16, lr=1e-3),
                           progress=False)
    real = to_input(x)
    same = fid_kid(real[::2], real[1::2], ClassifierFeatures(clf))
    noise = to_input(np.random.default_rng(1).integers(0, 255, x.shape, dtype=np.uint8))
    other = fid_kid(real[::2], noise[1::2], ClassifierFeatures(clf))
    assert other["fid"] > 3 * same["fid"] and other["kid"] > same["kid"]
    f_real = clf.features(real[::2])
    near = prdc_scores(f_real, clf.features(real[1::2]))
    far = prdc_scores(f_real, clf.features(noise[1::2]))
    assert near["coverage"] > far["coverage"] and near["precision"] > far["precision"]


def test_evaluate_generator_end_to_end(tmp_path):
    """A tiny generator after two steps: every metric is computed and written, the grid is drawn."""
    import json

    from tests.test_gan import TINY, synthetic_crops
    from training.gan.config import GANConfig
    from training.gan.metrics import evaluate_generator, format_metrics
    from training.gan.sampling import load_generator
    from training.gan.trainer import GANTrainer

    data = synthetic_crops(30)
    GANTrainer(GANConfig(steps=2, **TINY), tmp_path / "gan", data=data, progress=False).train()
    clf = train_classifier(data.images, data.labels, data.images[::3], data.labels[::3], ["A", "B", "C"],
                           tmp_path / "clf", ClassifierConfig(epochs=1), progress=False)
    m = evaluate_generator(load_generator(tmp_path / "gan"), clf, data, n=30, out=tmp_path / "m")
    for key in ("fid", "kid", "precision", "recall", "density", "coverage", "accuracy", "fid_real_vs_real"):
        assert np.isfinite(m[key]), key
    assert set(m["per_class_accuracy"]) == {"A", "B", "C"}
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["images"] == 30
    assert (tmp_path / "m" / "samples_per_class.png").exists()
    assert "FID" in format_metrics(m)
