"""Training and export when things go wrong (found by a review): an export that fails leaves the model that was
there, damaged checkpoints are named, runs never resume with other settings or data, bad options and labels are
said before the work, a model whose file and manifest disagree is not exported."""
import json
import shutil

import pytest
import torch

from helpers import need_landmark_set, run_cli
from realtime.features import FeatureSpec
from realtime.manifest import ModelError, staged_folder, weights_dir
from training.io import CheckpointError, load_checkpoint
from training.keypoint_model import KeypointClassifier


def tiny_model_pt(path, labels=("A", "B", "C")):
    spec = FeatureSpec()
    model = KeypointClassifier(spec.dim, len(labels), (16, 8)).eval()
    torch.save({"config": model.config(), "state_dict": model.state_dict(), "labels": list(labels),
                "features": spec.to_dict()}, path)
    return path


def test_a_failed_export_leaves_the_model_that_was_there(tmp_path, monkeypatch):
    import export.keypoint_export as kx

    out = tmp_path / "model"
    kx.export_keypoint_model(tiny_model_pt(tmp_path / "a.pt"), out)
    before = {f.name: f.read_bytes() for f in out.iterdir()}

    def killed(*_, **__):  # the run is stopped after the new ONNX file was written, before its manifest
        raise KeyboardInterrupt

    monkeypatch.setattr(kx, "keypoint_manifest", killed)
    with pytest.raises(KeyboardInterrupt):
        kx.export_keypoint_model(tiny_model_pt(tmp_path / "b.pt", ("X", "Y")), out)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def test_a_staged_folder_replaces_the_files_only_when_all_succeeded(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "model.onnx").write_text("old")
    with staged_folder(out) as stage:
        (stage / "model.onnx").write_text("new")
        (stage / "manifest.json").write_text("{}")
    assert (out / "model.onnx").read_text() == "new" and (out / "manifest.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_a_damaged_or_foreign_checkpoint_is_named_with_the_way_out(tmp_path):
    good = tmp_path / "checkpoint.pt"
    torch.save({"fingerprint": "x", "model": {}}, good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:40])
    with pytest.raises(CheckpointError, match=r"cut\.pt cannot be read.*--no-resume"):
        load_checkpoint(cut)
    with pytest.raises(CheckpointError, match="lacks optimizer"):
        load_checkpoint(good, needs=("fingerprint", "optimizer"))


def test_an_image_classifier_resumes_only_with_the_epochs_its_schedule_was_made_for():
    from dataclasses import asdict

    from training.image_classifier import ClassifierConfig, _check_resumable

    def meta(**kw):
        return {"arch": "cnn", "labels": ["A"], "size": 32, "config": asdict(ClassifierConfig(**kw)), "strategy": {}}

    _check_resumable(meta(epochs=12), meta(epochs=12), "last.pt")
    _check_resumable(meta(epochs=12), meta(epochs=20), "last.pt")  # a constant rate goes on as it was
    with pytest.raises(ValueError, match="12 epochs, not 8"):
        _check_resumable(meta(epochs=12), meta(epochs=8), "last.pt")
    with pytest.raises(ValueError, match="cosine schedule spans 12 epochs, not 20"):
        _check_resumable(meta(epochs=12, cosine=True), meta(epochs=20, cosine=True), "last.pt")


def test_a_new_people_cell_trained_with_other_settings_is_not_reused(tmp_path):
    from training.keypoints import extraction_record
    from training.new_people import cached_cell

    (tmp_path / "new_people.json").write_text(json.dumps({"accuracy": 0.5, "photo_cascade": extraction_record(),
                                                          "fingerprint": "quick"}))
    assert cached_cell(tmp_path, "quick")["accuracy"] == 0.5
    assert cached_cell(tmp_path, "full") is None


def test_export_refuses_a_model_whose_file_and_manifest_disagree_on_labels(tmp_path):
    from realtime.torch_from_onnx import rebuild

    src = tmp_path / "asl-letters"
    shutil.copytree(weights_dir() / "asl-letters", src)
    m = json.loads((src / "manifest.json").read_text())
    m["labels"] = m["labels"][::-1]
    (src / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelError, match="labels inside the ONNX file differ"):
        rebuild(src)
    with pytest.raises(ModelError, match="sequence reader cannot be rebuilt"):
        rebuild("asl-sequence")


def test_export_names_a_checkpoint_that_is_not_a_model(tmp_path):
    torch.save({"fingerprint": "x", "model": {}}, tmp_path / "checkpoint.pt")
    r = run_cli("export", "--checkpoint", str(tmp_path / "checkpoint.pt"), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "is not the model.pt of a keypoint or J2S training run" in r.stderr, r.stderr


def test_train_keypoints_says_what_is_wrong_before_the_work(tmp_path):
    r = run_cli("train", "keypoints", "--preset", "lis-letters", "--data", str(tmp_path), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "not both" in r.stderr
    for bad in (["--epochs", "0"], ["--lr", "0"], ["--batch-size", "0"], ["--random-test", "1"]):
        r = run_cli("train", "keypoints", "--data", str(tmp_path), "--labels", "A", *bad)
        assert r.returncode == 2 and f"argument {bad[0]}" in r.stderr, (bad, r.stderr)
    r = run_cli("train", "keypoints", "--data", str(tmp_path / "nope"), "--labels", "A,B", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.data
def test_train_keypoints_refuses_labels_no_dataset_has(tmp_path):
    d = need_landmark_set("asl_webcam_landmarks")
    r = run_cli("train", "keypoints", "--data", str(d), "--labels", "QQ,RR", "--out", str(tmp_path / "o"),
                "--epochs", "1")
    assert r.returncode == 2 and "none of the labels QQ, RR" in r.stderr and "Traceback" not in r.stderr


def test_models_lists_a_broken_or_mismatched_folder_as_such(tmp_path, monkeypatch, capsys):
    import realtime.manifest as manifest
    from realtime.cli import cmd_models

    for name in ("asl-letters", "lis-letters"):
        shutil.copytree(weights_dir() / name, tmp_path / name)
    (tmp_path / "lis-letters" / "manifest.json").write_text('{"name": "lis-le')  # cut off
    (tmp_path / "asl-letters" / "model.onnx").write_bytes(b"replaced")
    (tmp_path / "fine").mkdir()
    shutil.copytree(weights_dir() / "lis-j2s", tmp_path / "lis-j2s")
    monkeypatch.setattr(manifest, "weights_dir", lambda: tmp_path)
    assert cmd_models(None) == 0
    out = capsys.readouterr().out
    assert "asl-letters" in out and "does not match its manifest's sha256" in out
    assert "lis-letters" in out and "unreadable manifest" in out
    assert "lis-j2s            22 labels" in out  # the good one is listed as before


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_export_refuses_a_workspace_that_is_not_a_positive_size(value, capsys):
    from realtime.cli import build_parser

    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["export", "--format", "engine", "--workspace", value])
    assert e.value.code == 2 and "argument --workspace" in capsys.readouterr().err


def test_an_image_classifier_refuses_another_kind_of_runs_folder_and_writes_its_history_whole(tmp_path, monkeypatch,
                                                                                             capsys):
    """--out at a keypoint run's folder overwrote that run's history.json: refused before anything is written."""
    import numpy as np

    import training.image_classifier as ic
    from realtime.cli import main

    run = tmp_path / "keypoints"
    run.mkdir()
    tiny_model_pt(run / "model.pt")
    (run / "history.json").write_text('[{"epoch": 0, "val_loss": 1.0}]')
    (run / "metrics.json").write_text("{}")
    before = {f.name: f.read_bytes() for f in run.iterdir()}
    x = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    y = np.array(list("AB") * 6)
    cfg = ic.ClassifierConfig(epochs=1, batch_size=4)
    with pytest.raises(ValueError, match="another kind of training run"):
        ic.train_classifier(x, y, x[:4], y[:4], ["A", "B"], run, cfg, progress=False)
    with pytest.raises(ValueError, match="another kind of training run"):
        ic.train_with_strategy(x, y, x[:4], y[:4], ["A", "B"], run, cfg, ic.StrategyConfig("pretrain"), (x, y),
                               progress=False)
    assert main(["train", "classifier", "--data", str(tmp_path / "none"), "--out", str(run)]) == 2
    assert "another kind of training run" in capsys.readouterr().err  # before the crops would be loaded
    assert {f.name: f.read_bytes() for f in run.iterdir()} == before
    written = []
    monkeypatch.setattr(ic, "atomic_write_text", lambda path, text: written.append(path.name) or path.write_text(text))
    ic.train_classifier(x, y, x[:4], y[:4], ["A", "B"], tmp_path / "image", cfg, progress=False)
    assert written == ["history.json"] and len(json.loads((tmp_path / "image" / "history.json").read_text())) == 1
