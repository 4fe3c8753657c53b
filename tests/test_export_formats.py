"""fingerspell export --format onnx | engine: one self-contained ONNX file (opset >= 17, dynamic batch, named
outputs, labels in metadata) with its parity printed; option errors; INT8 calibration inputs; TensorRT engines
where TensorRT and a GPU exist."""
import json
import re
import sys

import numpy as np
import pytest

from realtime.classifier import OnnxClassifier
from realtime.manifest import Manifest, ModelError, available_models, resolve_model, weights_dir
from realtime.cli import main

SHIPPED = available_models()
# models PyTorch can be rebuilt from (image classifiers fold their BatchNorms into the ONNX convolutions: their
# parity with PyTorch is measured at export, on real crops, and held by tests/test_image_runtime.py)
REBUILDABLE = [m for m in SHIPPED if Manifest.load(weights_dir() / m).kind != "image-classifier"]
PARITY = re.compile(r"ONNX parity on (\d+) (\w+ )?inputs: max \|onnxruntime - torch\| = ([0-9.e+-]+)")


def parities(text):
    return [(int(n), (what or "").strip(), float(err)) for n, what, err in PARITY.findall(text)]


def check_file(path, labels, outputs):
    """Independent of export.onnx_export.check_onnx_file: what the issue asks of every exported file."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    for v in list(proto.graph.input) + list(proto.graph.output):
        assert v.type.tensor_type.shape.dim[0].dim_param, f"{v.name}: batch is not dynamic"
    assert [o.name for o in proto.graph.output] == outputs
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["labels"]) == labels
    return proto


@pytest.mark.parametrize("name", REBUILDABLE)
def test_export_onnx_of_a_shipped_model(tmp_path, capsys, name):
    import onnxruntime as ort

    src = Manifest.load(weights_dir() / name)
    out = tmp_path / "exported"
    assert main(["export", "--model", name, "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # personal tuning's file and the letter distance travel with the model
    companions = [src.raw[k]["file"] for k in ("tuning", "distance") if k in src.raw]
    assert sorted(p.name for p in out.iterdir()) == sorted(["manifest.json", "model.onnx", *companions])  # no
    # external data
    outputs = ["keypoints", "probs"] if src.kind == "j2s" else ["probs"] + (["embedding"] if "embedding" in src.raw
                                                                             else [])
    check_file(out / "model.onnx", src.labels, outputs)
    found = parities(printed)
    assert any(what == "random" for _, what, _ in found), printed
    assert all(err < 1e-4 for _, _, err in found)
    m = json.loads((out / "manifest.json").read_text())
    assert m["metrics"]["onnx_parity_max_abs"] == pytest.approx(max(e for *_, e in found), rel=0.02)
    assert m["exported_from"]["sha256"] == src.sha256 and m["opset"] >= 17
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    ref = ort.InferenceSession(str(weights_dir() / name / "model.onnx"), providers=["CPUExecutionProvider"])
    shape = [int(d) for d in src.raw["input"]["shape"][1:]]
    for n in (1, 7):  # the batch really is dynamic
        x = np.random.default_rng(n).normal(size=[n] + shape).astype(np.float32)
        a, b = sess.run(None, {src.input_name: x}), ref.run(None, {src.input_name: x})
        assert all(p.shape[0] == n and np.abs(p - q).max() < 1e-5 for p, q in zip(a, b))


def test_exported_folder_is_a_model_the_runtime_and_the_rebuild_accept(tmp_path, capsys):
    from realtime.torch_from_onnx import rebuild

    out = tmp_path / "asl-again"
    assert main(["export", "--model", "asl-letters", "--out", str(out), "--opset", "18"]) == 0
    clf = OnnxClassifier(out, device="cpu")  # sha256, labels, inputs checked against the new manifest
    assert clf.manifest.name == "asl-again" and rebuild(out).opset == 18
    x = np.random.default_rng(0).normal(size=(3, clf.spec.dim)).astype(np.float32)
    assert np.abs(clf(x) - OnnxClassifier("asl-letters", device="cpu")(x)).max() < 1e-5


@pytest.mark.data
def test_export_parity_is_also_measured_on_real_inputs(tmp_path, capsys, monkeypatch, lis_giulia):
    from helpers import use_small_datasets

    use_small_datasets(monkeypatch, *lis_giulia)  # GIULIA's photos: lis-letters' held-out set, keypoints extracted
    assert main(["export", "--model", "lis-letters", "--out", str(tmp_path / "o")]) == 0
    found = parities(capsys.readouterr().out)
    assert [w for _, w, _ in found] == ["real", "random"] and found[0][0] > 100


def test_simplify_keeps_a_smaller_graph_only(tmp_path, capsys):
    onnxsim = pytest.importorskip("onnxsim")
    import onnx

    assert main(["export", "--model", "lis-j2s", "--out", str(tmp_path / "s"), "--simplify"]) == 0
    printed = capsys.readouterr().out
    before = len(onnx.load(str(weights_dir() / "lis-j2s" / "model.onnx")).graph.node)
    proto = check_file(tmp_path / "s" / "model.onnx", Manifest.load(weights_dir() / "lis-j2s").labels,
                       ["keypoints", "probs"])
    meta = {p.key: p.value for p in proto.metadata_props}
    if len(proto.graph.node) < before:
        assert meta["simplified"].startswith(f"onnxsim {onnxsim.__version__}") and "onnxsim.removed_nodes" not in meta
    else:
        assert "no gain" in printed and "simplified" not in meta
    assert all(err < 1e-4 for *_, err in parities(printed))


def test_export_onnx_from_a_checkpoint(tmp_path, capsys):
    import torch

    from realtime.features import FeatureSpec
    from training.keypoint_model import KeypointClassifier

    torch.manual_seed(0)
    spec, labels = FeatureSpec(), list("ABCDE")
    model = KeypointClassifier(spec.dim, len(labels), (32, 16)).eval()
    torch.save({"config": model.config(), "state_dict": model.state_dict(), "labels": labels,
                "features": spec.to_dict()}, tmp_path / "model.pt")
    out = tmp_path / "tiny"
    assert main(["export", "--checkpoint", str(tmp_path / "model.pt"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    check_file(out / "model.onnx", labels, ["probs", "embedding"])  # the embedding serves personal calibration
    assert parities(printed) and all(err < 1e-4 for *_, err in parities(printed))
    clf = OnnxClassifier(out, device="cpu")
    assert clf.labels == labels and clf.has_embedding
    probs, emb = clf.probs_and_embedding(np.zeros((2, spec.dim), np.float32))
    assert probs.shape == (2, 5) and emb.shape == (2, 16)


def test_export_option_errors(tmp_path, capsys, monkeypatch):
    cases = [
        ["export", "--model", "asl-letters"],  # onnx needs --out
        ["export", "--model", "asl-letters", "--checkpoint", "x.pt", "--out", str(tmp_path)],
        ["export", "--out", str(tmp_path / "a")],  # neither
        ["export", "--model", "asl-letters", "--out", str(tmp_path / "b"), "--half"],
        ["export", "--model", "asl-letters", "--format", "engine", "--int8"],  # no --calib
        ["export", "--model", "no-such-model", "--out", str(tmp_path / "c")],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        assert "fingerspell: error:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "--model", "asl-letters", "--out", str(tmp_path / "d"), "--opset", "16"])
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as on a machine without TensorRT
    assert main(["export", "--model", "asl-letters", "--format", "engine", "--half"]) == 2
    assert "TensorRT is not installed" in capsys.readouterr().err


def test_check_onnx_file_refuses_what_the_runtime_should_not_get(tmp_path):
    import onnx
    import torch

    from export.onnx_export import check_onnx_file

    lin = torch.nn.Linear(4, 3)

    def export(path, opset=17, dynamic=True, labels=True, external=False):
        torch.onnx.export(lin, (torch.zeros(2, 4),), str(path), input_names=["x"], output_names=["probs"],
                          dynamic_axes={"x": {0: "batch"}, "probs": {0: "batch"}} if dynamic else None,
                          opset_version=opset, dynamo=False)
        proto = onnx.load(str(path))
        if labels:
            e = proto.metadata_props.add()
            e.key, e.value = "labels", json.dumps(["a", "b", "c"])
        onnx.save(proto, str(path), save_as_external_data=external, all_tensors_to_one_file=True,
                  location=path.name + ".data", size_threshold=0)
        return path

    assert check_onnx_file(export(tmp_path / "ok.onnx"), ["a", "b", "c"])["opset"] == 17
    for kwargs, msg in [(dict(external=True), "external data"), (dict(dynamic=False), "dynamic"),
                        (dict(opset=16), "opset 16"), (dict(labels=False), "labels")]:
        with pytest.raises(ModelError, match=msg):
            check_onnx_file(export(tmp_path / f"bad{len(msg)}.onnx", **kwargs))
    with pytest.raises(ModelError, match="differ"):
        check_onnx_file(tmp_path / "ok.onnx", ["a", "b"])


# --- calibration inputs -----------------------------------------------------------------------------------------------
def test_calibration_inputs_from_arrays(tmp_path):
    from export.real_inputs import NoData, calibration_inputs

    dim = Manifest.load(resolve_model("asl-letters")).features.dim
    x = np.random.default_rng(0).normal(size=(600, dim)).astype(np.float32)
    np.save(tmp_path / "f.npy", x)
    np.savez(tmp_path / "f.npz", features=x[:10])
    got = calibration_inputs("asl-letters", tmp_path / "f.npy", limit=100)
    assert got.shape == (100, dim) and got.dtype == np.float32
    assert (calibration_inputs("asl-letters", tmp_path / "f.npy", limit=100) == got).all()  # reproducible
    assert {tuple(r) for r in got} <= {tuple(r) for r in x}
    both = calibration_inputs("asl-letters", [tmp_path / "f.npy", tmp_path / "f.npz"], limit=10_000)
    assert len(both) == 610
    np.save(tmp_path / "bad.npy", x[:, :42])
    with pytest.raises(NoData, match="shape"):
        calibration_inputs("asl-letters", tmp_path / "bad.npy")
    with pytest.raises(NoData, match="not a dataset folder"):
        calibration_inputs("asl-letters", tmp_path)


@pytest.mark.data
def test_calibration_inputs_from_a_dataset_leave_the_test_signers_out(monkeypatch, lis_giulia):
    from helpers import use_small_datasets

    from export.real_inputs import calibration_inputs
    from training.keypoints import load_keypoints

    use_small_datasets(monkeypatch, *lis_giulia)
    lis = lis_giulia[0] / "lis"
    kp = load_keypoints(lis, progress=False)
    want = int((kp.detected & (kp.signers != "GIULIA")).sum())
    x = calibration_inputs("lis-letters", lis, limit=10**6)
    assert want > 20 and x.shape == (want, Manifest.load(resolve_model("lis-letters")).features.dim)
    assert np.isfinite(x).all()
    crops = calibration_inputs("lis-j2s", lis, limit=16)
    assert crops.shape == (16, 3, 64, 64) and abs(float(crops.mean())) < 2  # normalised as in training


def test_calibration_rows_leave_out_held_out_signers_and_evaluation_images():
    from types import SimpleNamespace

    from export.real_inputs import calibration_rows, image_keys

    kp = SimpleNamespace(dataset=np.array(["asl", "asl", "asl", "asl", "lis"]),
                         rel=np.array(["A/1", "A/2", "B/1", "B/2", "A/1"]),
                         signers=np.array(["s1", "s2", "s1", "s1", "GIULIA"]), detected=np.array([1, 1, 0, 1, 1], bool))
    assert list(image_keys(kp)) == ["asl/A/1", "asl/A/2", "asl/B/1", "asl/B/2", "lis/A/1"]
    assert list(calibration_rows(kp, [], np.array([], str))) == [0, 1, 3, 4]
    assert list(calibration_rows(kp, ["GIULIA"], np.array(["asl/A/2", "lis/A/1"]))) == [0, 3]


@pytest.mark.data
def test_calibration_never_sees_the_evaluation_images(monkeypatch, lis_giulia):
    """The held-out set the bench measures INT8 accuracy on and the calibration samples are disjoint: for a recipe
    with test signers (lis-letters) by signer, and in general by image (asl-letters: its validation part)."""
    from helpers import use_small_datasets

    from export import real_inputs
    from realtime.manifest import Manifest
    from training.keypoints import load_keypoints

    use_small_datasets(monkeypatch, *lis_giulia)  # all of GIULIA: the whole held-out set
    lis = lis_giulia[0] / "lis"
    kp = load_keypoints(lis, progress=False)
    held = real_inputs.evaluation_images(Manifest.load(weights_dir() / "lis-letters"))
    giulia = set(real_inputs.image_keys(kp)[kp.signers == "GIULIA"])
    assert len(held) == 772 and set(held) <= giulia  # GIULIA's photos with a hand found (six-view cascade)
    usable = real_inputs.image_keys(kp)[kp.detected & (kp.signers != "GIULIA")]
    monkeypatch.setattr(real_inputs, "evaluation_images", lambda manifest, root=None: usable[:10])  # as a val part
    x = real_inputs.calibration_inputs("lis-letters", lis, limit=10**6)
    assert len(x) == len(usable) - 10


@pytest.mark.data
def test_asl_letters_calibration_leaves_its_validation_part_out(monkeypatch, asl_small):
    """asl-letters has no test split: the bench measures it on its validation part, which calibration skips
    (here the validation part of its recipe on cut-down copies of its datasets; calibration reads the photo ones)."""
    from helpers import use_small_datasets

    from export.real_inputs import calibration_inputs, eval_set, image_keys
    from training.keypoints import KeypointSet, load_keypoints

    use_small_datasets(monkeypatch, *asl_small)
    folders = [asl_small[0] / name for name in ("massey", "roboflow", "kaggle_asl", "digits")]
    held = eval_set("asl-letters").images
    photos_held = held[~np.char.startswith(held.astype(str), "asl_webcam_landmarks/")]
    kp = KeypointSet.concat([load_keypoints(f, progress=False) for f in folders])
    in_val = np.isin(image_keys(kp), held)
    assert len(photos_held) and in_val.sum() == len(photos_held)
    x = calibration_inputs("asl-letters", folders, limit=10**6)
    assert len(x) == int((kp.detected & ~in_val).sum())


# --- TensorRT engines, where TensorRT and a GPU exist -------------------------------------------------------------
def test_engine_export_is_cached_and_described(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorrt")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from export.tensorrt_engine import export_engine

    monkeypatch.setenv("FINGERSPELL_ENGINES", str(tmp_path))
    path = export_engine("asl-letters", half=True)
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["precision"] == "fp16" and info["gpu"] == torch.cuda.get_device_name(0)
    assert info["model_sha256"] == Manifest.load(weights_dir() / "asl-letters").sha256 and info["key"] in path.name
    mtime = path.stat().st_mtime_ns
    assert export_engine("asl-letters", half=True) == path and path.stat().st_mtime_ns == mtime
    assert "engine cached" in capsys.readouterr().out


@pytest.mark.data
def test_int8_engine_calibrated_on_real_data(tmp_path, monkeypatch):
    pytest.importorskip("tensorrt")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from helpers import need_dataset

    from export.real_inputs import eval_set
    from realtime.backends import make_backend

    lis = need_dataset("lis")
    monkeypatch.setenv("FINGERSPELL_ENGINES", str(tmp_path))
    assert main(["export", "--model", "lis-letters", "--format", "engine", "--int8", "--calib", str(lis)]) == 0
    backend = make_backend("tensorrt", "lis-letters", device="cuda", precision="int8")
    es = eval_set("lis-letters")
    probs = np.concatenate([backend.run(es.batch(np.arange(i, min(i + 32, len(es)))))["probs"]
                            for i in range(0, len(es), 32)])
    ref = make_backend("onnxruntime", "lis-letters", device="cpu").run(es.inputs)["probs"]
    assert (probs.argmax(1) == ref.argmax(1)).mean() > 0.9  # INT8 keeps most decisions
