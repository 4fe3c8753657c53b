"""Every shipped model loads and matches its manifest; a mismatched or corrupt one is refused."""
import json
import shutil

import numpy as np
import pytest

from realtime.classifier import OnnxClassifier
from realtime.manifest import ModelError, available_models, sha256_file, weights_dir
from realtime.features import FeatureSpec

SHIPPED = available_models()


def kind(name):
    return json.loads((weights_dir() / name / "manifest.json").read_text()).get("kind", "keypoint-classifier")


KEYPOINT_MODELS = [n for n in SHIPPED if kind(n) == "keypoint-classifier"]
J2S_MODELS = [n for n in SHIPPED if kind(n) == "j2s"]


def test_the_letter_models_are_shipped():
    assert {"asl-letters", "lis-letters"} <= set(KEYPOINT_MODELS) and "lis-j2s" in J2S_MODELS


@pytest.mark.parametrize("name", J2S_MODELS)
def test_shipped_j2s_model_matches_its_manifest(name):
    from realtime.j2s import J2SClassifier

    folder = weights_dir() / name
    m = json.loads((folder / "manifest.json").read_text())
    clf = J2SClassifier(name, device="cpu")
    s = clf.input_size
    kp, probs = clf.run(np.random.default_rng(0).normal(size=(2, 3, s, s)).astype(np.float32))
    assert kp.shape == (2, 21, 2) and probs.shape == (2, len(m["labels"]))
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert m["crop"]["scale"] > 0 and m["crop"]["palms_found"] > 0.5 * m["crop"]["images"]
    for key in ("data", "split", "command"):
        assert m["training"].get(key), f"manifest of {name} lacks training.{key}"
    assert m["metrics"]["onnx_parity_max_abs"] < 1e-4
    with pytest.raises(ModelError, match="j2s model"):  # a J2S model is not a keypoint classifier
        OnnxClassifier(name)


def test_a_j2s_model_with_the_wrong_input_size_is_refused(tmp_path):
    from realtime.j2s import J2SClassifier

    folder = copy_model(tmp_path, "lis-j2s")
    edit_manifest(folder, lambda m: m["input"].update(shape=["batch", 3, 96, 96]))
    with pytest.raises(ModelError, match="input shape"):
        J2SClassifier(folder)


@pytest.mark.parametrize("name", KEYPOINT_MODELS)
def test_shipped_model_matches_its_manifest(name):
    folder = weights_dir() / name
    m = json.loads((folder / "manifest.json").read_text())
    assert sha256_file(folder / m["file"]) == m["sha256"]
    clf = OnnxClassifier(name, device="cpu")
    spec = FeatureSpec.from_dict(m["features"])
    assert clf.spec == spec and clf.labels == m["labels"] and len(set(clf.labels)) == len(clf.labels)
    inp = clf.session.get_inputs()[0]
    assert inp.name == m["input"]["name"] and inp.shape[-1] == spec.dim
    probs = clf(np.random.default_rng(0).normal(size=(1, spec.dim)).astype(np.float32))
    assert probs.shape == (len(m["labels"]),) and probs.sum() == pytest.approx(1.0, abs=1e-5)
    for key in ("data", "split", "command"):
        assert m["training"].get(key), f"manifest of {name} lacks training.{key}"
    assert "lsa16" not in m["training"]["data"]  # CC BY-NC-SA: never in shipped weights
    assert m["metrics"]["onnx_parity_max_abs"] < 1e-4


def test_asl_labels_are_the_24_static_letters_and_no_letter():
    m = json.loads((weights_dir() / "asl-letters" / "manifest.json").read_text())
    assert m["labels"] == list("ABCDEFGHIKLMNOPQRSTUVWXY") + ["none"]  # none: a hand that spells nothing
    lis = json.loads((weights_dir() / "lis-letters" / "manifest.json").read_text())
    assert lis["labels"] == list("ABCDEFHIKLMNOPQRTUVWXY") and "GIULIA" in " ".join(lis["training"]["config"]["test_signers"])


def copy_model(tmp_path, name="asl-letters"):
    dst = tmp_path / name
    shutil.copytree(weights_dir() / name, dst)
    return dst


def edit_manifest(folder, change):
    """Apply change(manifest_dict) to a copied model's manifest.json."""
    m = json.loads((folder / "manifest.json").read_text())
    change(m)
    (folder / "manifest.json").write_text(json.dumps(m))


def test_corrupt_file_is_refused(tmp_path):
    folder = copy_model(tmp_path)
    data = bytearray((folder / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        OnnxClassifier(folder)


def test_a_hash_mismatch_shows_both_hashes_in_full(tmp_path):
    folder = copy_model(tmp_path)
    actual = sha256_file(folder / "model.onnx")
    recorded = actual[:12] + "0" * 52  # the same first 12 characters: prefixes alone would look identical
    edit_manifest(folder, lambda m: m.update(sha256=recorded))
    with pytest.raises(ModelError) as e:
        OnnxClassifier(folder)
    assert f"sha256 {actual} does not match the manifest's {recorded};" in str(e.value)


def drop_last_label(m):
    m["labels"] = m["labels"][:-1]


def swap_first_labels(m):
    m["labels"][0], m["labels"][1] = m["labels"][1], m["labels"][0]  # same count, wrong order


def fewer_features(m):
    m["features"] = FeatureSpec(("cart_scaled",)).to_dict()


def reordered_features(m):
    parts = m["features"]["parts"]
    m["features"] = FeatureSpec(tuple(reversed(parts)), canonical=False).to_dict()  # as many values, other order


@pytest.mark.parametrize("change, message", [
    (drop_last_label, "labels"),
    (fewer_features, "features"),
    (swap_first_labels, "labels inside the ONNX file"),
    (reordered_features, "feature spec inside"),
], ids=lambda v: getattr(v, "__name__", ""))
def test_a_manifest_that_disagrees_with_its_file_is_refused(tmp_path, change, message):
    folder = copy_model(tmp_path)
    edit_manifest(folder, change)
    with pytest.raises(ModelError, match=message):
        OnnxClassifier(folder)


def test_a_file_other_than_the_manifests_is_refused(tmp_path):
    folder = copy_model(tmp_path)
    shutil.copy(folder / "model.onnx", folder / "other.onnx")
    with pytest.raises(ModelError, match="not the model"):
        OnnxClassifier(folder / "other.onnx")
    assert OnnxClassifier(folder / "model.onnx").labels  # the manifest's own file is fine


def test_not_an_onnx_file_is_refused(tmp_path):
    folder = copy_model(tmp_path)
    (folder / "model.onnx").write_bytes(b"garbage")
    edit_manifest(folder, lambda m: m.update(sha256=sha256_file(folder / "model.onnx")))
    with pytest.raises(ModelError, match="cannot load"):
        OnnxClassifier(folder)


def test_unknown_model_name():
    with pytest.raises(ModelError, match="shipped"):
        OnnxClassifier("klingon-letters")
