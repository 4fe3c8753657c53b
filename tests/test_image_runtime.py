"""The image classifier in the product: export to ONNX with its manifest, the runtime's checks, the hand crop,
fusion with the keypoint classifier, and --classifier image|fused on real photos."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from helpers import manifest_rows, need_dataset
from test_gan_metrics import blobs
from training.image_classifier import ClassifierConfig, to_input, train_classifier


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small classifier trained on blobs, exported as a model folder."""
    from export.image_export import export_image_classifier

    tmp = tmp_path_factory.mktemp("img")
    x, y = blobs(20)
    clf = train_classifier(x, y, x[::3], y[::3], ["A", "B", "C"], tmp / "run",
                           ClassifierConfig(arch="cnn", epochs=3, batch_size=8, lr=1e-3, flip=False), progress=False)
    manifest = export_image_classifier(tmp / "run", tmp / "model", "blobs-image", x)
    return tmp / "model", clf, x, y, manifest


def test_export_writes_a_checked_manifest_and_matches_torch(exported):
    from realtime.crop_classifier import OnnxImageClassifier

    folder, clf, x, _, manifest = exported
    assert manifest["kind"] == "image-classifier" and manifest["input"]["shape"] == ["batch", 3, 16, 16]
    assert max(manifest["metrics"]["onnx_parity_max_abs"].values()) < 1e-4
    onnx_clf = OnnxImageClassifier(folder, device="cpu")
    p_onnx = onnx_clf(to_input(x).numpy())
    assert np.abs(p_onnx - clf.probabilities(to_input(x))).max() < 1e-4
    assert onnx_clf.labels == ["A", "B", "C"] and p_onnx.shape == (60, 3)


def test_a_replaced_model_file_is_refused(exported, tmp_path):
    from realtime.manifest import ModelError
    from realtime.crop_classifier import OnnxImageClassifier

    folder = shutil.copytree(exported[0], tmp_path / "m")
    data = bytearray((folder / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        OnnxImageClassifier(folder, device="cpu")
    m = json.loads((exported[0] / "manifest.json").read_text())
    m["input"]["shape"] = ["batch", 3, 32, 32]
    shutil.copy(exported[0] / "model.onnx", folder / "model.onnx")
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelError, match="input shape"):
        OnnxImageClassifier(folder, device="cpu")


def test_hand_crop_frames_the_landmarks():
    from realtime.crop_classifier import HandCrop
    from realtime.hands import Hand

    frame = np.zeros((240, 320, 3), np.uint8)
    frame[100:140, 150:190] = (0, 0, 255)  # a red square (BGR) where the "hand" is
    lm = np.zeros((21, 3), np.float32)
    lm[:, 0] = np.linspace(150, 190, 21)
    lm[:, 1] = np.linspace(100, 140, 21)
    x = HandCrop(32)(Hand(lm, "Right", 0.9, (320, 240)), frame)
    assert x.shape == (1, 3, 32, 32) and x.dtype == np.float32
    assert x[0, 0, 16, 16] == pytest.approx(1.0) and x[0, 2, 16, 16] == pytest.approx(-1.0)  # red, RGB order
    assert x[0, 0, 1, 1] == pytest.approx(-1.0)  # the border beyond the 1.5x box is black


def test_fusion_averages_probabilities_in_the_keypoint_models_label_order():
    from realtime.manifest import ModelError
    from realtime.crop_classifier import FusedClassifier

    class Stub:
        def __init__(self, labels, probs):
            self.labels, self.probs = labels, np.asarray(probs, np.float32)
            self.spec = None
            self.manifest = type("M", (), {"name": "stub"})()

        def __call__(self, x):
            return self.probs

    kp = Stub(["A", "B", "C"], [0.6, 0.3, 0.1])
    im = Stub(["C", "A", "B"], [0.5, 0.2, 0.3])  # C, A, B order
    fused = FusedClassifier(kp, im, weight=0.25)
    assert fused((None, None)) == pytest.approx([0.75 * 0.6 + 0.25 * 0.2, 0.75 * 0.3 + 0.25 * 0.3,
                                                 0.75 * 0.1 + 0.25 * 0.5])
    with pytest.raises(ModelError, match="different labels"):
        FusedClassifier(kp, Stub(["A", "B", "Z"], [1, 0, 0]))


@pytest.mark.data
def test_image_and_fused_classifiers_read_real_lis_photos(exported, tmp_path):
    """--classifier image and fused on real photos: hands found, probabilities over the model's labels."""
    from realtime.pipeline import Recognizer
    from realtime.images import read_image

    src = need_dataset("lis")
    rows = [r for r in manifest_rows(src) if r["signer"] == "GIULIA"][::80][:4]
    from realtime.manifest import weights_dir

    have = (weights_dir() / "lis-letters-image" / "manifest.json").is_file()
    image_model = "lis-letters-image" if have else exported[0]
    for kind in ("image", "fused"):
        if kind == "fused" and not have:
            continue  # the blobs model's labels are not lis-letters' labels
        rec = Recognizer.build(static=True, classifier_kind=kind, image_model=image_model, device="cpu")
        try:
            found = 0
            for r in rows:
                _, hand, probs = rec.read(read_image(src / r["path"]))
                if hand is not None:
                    found += 1
                    assert probs.shape == (len(rec.labels),) and probs.sum() == pytest.approx(1, abs=1e-4)
            assert found >= 3
        finally:
            rec.close()


def test_the_shipped_image_classifier_loads_and_matches_its_manifest():
    from realtime.manifest import weights_dir
    from realtime.crop_classifier import OnnxImageClassifier

    folder = weights_dir() / "lis-letters-image"
    m = json.loads((folder / "manifest.json").read_text())
    assert m["kind"] == "image-classifier" and len(m["labels"]) == 22
    assert max(m["metrics"]["onnx_parity_max_abs"].values()) < 1e-4  # measured at export, on real crops too
    clf = OnnxImageClassifier("lis-letters-image", device="cpu")  # checks sha256, shapes and embedded labels
    p = clf(np.random.default_rng(0).uniform(-1, 1, (3, 3, clf.size, clf.size)).astype(np.float32))
    assert p.shape == (3, 22) and np.allclose(p.sum(1), 1, atol=1e-4)


def test_image_classifiers_are_refused_by_the_torch_rebuild_with_a_clear_message():
    from realtime.manifest import ModelError
    from realtime.torch_from_onnx import rebuild

    with pytest.raises(ModelError, match="only keypoint and J2S models"):
        rebuild("lis-letters-image")
