"""One image classifier on several datasets: labels mapped as the ASL keypoint recipe maps them, batches balanced by
dataset and class, whole datasets held out; and the augmentation of crops."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import manifest_rows, need_dataset, small_copy

from training.hand_crops import HandCrops
from training.image_classifier import ClassifierConfig, augment_batch, train_classifier
from training.image_sets import CropSets, balanced_weights, map_crop_labels, split_sets


def fake_sets():
    """Two datasets: `a` with 2 classes x 10 rows, one photo copied 3 times (roboflow-style names); `b`, 2 x 5."""
    labels = np.array(["A"] * 10 + ["B"] * 10 + ["A"] * 5 + ["O"] * 5)
    datasets = np.array(["a"] * 20 + ["b"] * 10)
    rel = [f"{l}/p{i}.jpg" for i, l in enumerate(labels)]
    rel[0:3] = [f"A/x_jpg.rf.{h}.jpg" for h in ("aa", "bb", "cc")]  # three augmented copies of one photo
    n = len(labels)
    crops = HandCrops(np.zeros((n, 8, 8, 3), np.uint8), np.zeros((n, 21, 2), np.float32), np.ones(n, bool), labels,
                      np.char.add(np.char.add(datasets, "/"), "s1"), np.array(rel), "a+b", "")
    return CropSets(crops, datasets, {"a": "h1", "b": "h2"})


def test_balanced_weights_give_each_dataset_then_each_class_an_equal_share():
    s = fake_sets()
    w = balanced_weights(s.datasets, s.crops.labels)
    assert w.sum() == pytest.approx(1)
    for d in ("a", "b"):
        assert w[s.datasets == d].sum() == pytest.approx(0.5)
    assert w[(s.datasets == "b") & (s.crops.labels == "O")].sum() == pytest.approx(0.25)


def test_split_holds_a_dataset_out_and_keeps_a_photos_copies_together():
    s = fake_sets()
    tr, va, te = split_sets(s, test_datasets=["b"], val_fraction=0.3)
    assert set(s.datasets[te]) == {"b"} and len(te) == 10
    assert not set(tr) & set(va) and set(tr) | set(va) == set(range(20))
    copies = {0, 1, 2}
    assert copies <= set(tr) or copies <= set(va)
    with pytest.raises(ValueError, match="not among"):
        split_sets(s, test_datasets=["c"])
    with pytest.raises(ValueError, match="DATASET/SIGNER"):
        split_sets(s, test_signers=["s1"])
    _, _, te = split_sets(s, test_signers=["a/s1"])
    assert len(te) == 20


def test_asl_label_map_renames_digit_shapes_and_drops_the_rest():
    s = fake_sets().crops
    s.labels = np.array(["0", "2", "3", "del", "A"] * 6)
    out = map_crop_labels(s, {"0": "O", "2": "V", "3": "none"}, list("AOV"))
    assert sorted(set(out.labels)) == ["A", "O", "V"] and len(out) == 18


def test_sample_weights_steer_the_batches(tmp_path):
    from test_gan_metrics import blobs

    x, y = blobs(10)
    with pytest.raises(ValueError, match="sample_weights"):
        train_classifier(x, y, x, y, ["A", "B", "C"], tmp_path / "r", ClassifierConfig(epochs=1), progress=False,
                         sample_weights=np.ones(3))
    w = (y == "A").astype(float)  # only A is ever drawn: the model learns to say A
    clf = train_classifier(x, y, x, y, ["A", "B", "C"], tmp_path / "r", ClassifierConfig(arch="cnn", epochs=2,
                           batch_size=8, lr=1e-2, flip=False), progress=False, sample_weights=w)
    from training.image_classifier import to_input

    assert (clf.probabilities(to_input(x)).argmax(1) == 0).mean() > 0.9


def test_augment_batch_keeps_shape_and_range():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    out = augment_batch(x)
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1
    assert not torch.allclose(out, x)


@pytest.mark.data
def test_train_classifier_on_several_datasets_holds_one_out(tmp_path):
    """`fingerspell train classifier --data massey,digits,kaggle_asl --test-datasets kaggle_asl` on a few real photos:
    digits 0/2 become O/V, digits 3 and kaggle_asl's del are dropped, kaggle_asl is only tested on; exported."""
    keep = {"massey": ("A", "B", "O", "V"), "digits": ("0", "2", "3"), "kaggle_asl": ("A", "B", "del")}
    root = tmp_path / "data"
    for name, labels in keep.items():
        src = need_dataset(name)
        seen, rows = {}, []
        for r in manifest_rows(src):
            if r["label"] in labels and seen.get(r["label"], 0) < (2 if name == "kaggle_asl" else 5):  # 5: one for val
                seen[r["label"]] = seen.get(r["label"], 0) + 1
                rows.append(r)
        small_copy(src, root / name, rows)
    env = {**os.environ, "FINGERSPELL_DATASETS": str(root), "FINGERSPELL_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "realtime.cli", "train", "classifier", "--data",
                        "massey,digits,kaggle_asl", "--test-datasets", "kaggle_asl", "--arch", "cnn", "--size", "16",
                        "--epochs", "1", "--batch-size", "4", "--augment", "--threads", "1", "--out", str(out),
                        "--export", str(tmp_path / "model")], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "held out: ['kaggle_asl']" in p.stdout and "balanced by dataset" in p.stdout
    ck = torch.load(out / "best.pt", weights_only=False)
    assert ck["labels"] == ["A", "B", "O", "V"]  # digits 0/2 mapped, 3 and del dropped, no `none`
    extra = ck["config"]["extra"]
    assert extra["data"] == ["massey", "digits", "kaggle_asl"] and extra["test_datasets"] == ["kaggle_asl"]
    assert extra["alphabet"] == "asl" and set(extra["data_sha256"]) == set(keep)
    report = json.loads((out / "report.json").read_text())
    assert report["test_datasets"] == ["kaggle_asl"] and report["accuracy"] is not None
    assert "4 test images" in p.stdout or "3 test images" in p.stdout  # kaggle_asl's A and B (del dropped)
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["training"]["data"] == ["massey", "digits", "kaggle_asl"]
    assert manifest["training"]["config"]["test_datasets"] == ["kaggle_asl"]
    assert "--test-datasets kaggle_asl" in manifest["training"]["command"]
