"""The J2S keypoint backend at run time: palm box -> crop -> shipped lis-j2s ONNX model, against MediaPipe."""
import json

import numpy as np
import pytest

from helpers import manifest_rows, need_dataset, place_on_canvas, run_cli


def test_cropper_maps_the_crop_back_to_the_frame():
    """A blob far from the box centre lands where the crop's affine says, to a tenth of a pixel, when the
    crop shrinks 4x (the live case); and the crop is area-averaged, not aliased."""
    from realtime.j2s import HandCropper
    from realtime.hands.mediapipe import HandBox

    frame = np.zeros((480, 640, 3), np.uint8)
    frame[196:205, 396:405] = 255  # a 9x9 blob centred at continuous (400.5, 200.5)
    box = HandBox((350.0, 240.0), 250.0, 0.0, 0.9, (640, 480))
    crop = HandCropper(64, scale=1.0, mean=(0, 0, 0), std=(1, 1, 1))(box, frame)
    s = 64 / 250
    want = np.array([(400.5 - 350) * s + 32, (200.5 - 240) * s + 32])
    img = crop.image[0, 0].astype(np.float64)
    ys, xs = np.mgrid[0:64, 0:64] + 0.5
    centroid = np.array([(img * xs).sum(), (img * ys).sum()]) / img.sum()
    np.testing.assert_allclose(centroid, want, atol=0.1)
    assert img.sum() == pytest.approx(81 * s * s, rel=0.05)  # the blob's light is kept, spread by averaging
    back = crop.to_frame[:, :2] @ want + crop.to_frame[:, 2]
    np.testing.assert_allclose(back, (400.5, 200.5), atol=1e-9)


def test_a_keypoint_model_is_refused_as_j2s_and_left_hand_is_refused():
    r = run_cli("eval", "--keypoints", "j2s", "--model", "lis-letters", "--data", ".", "--limit", "1")
    assert r.returncode == 2 and "keypoint-classifier model" in r.stderr
    r = run_cli("live", "--keypoints", "j2s", "--hand", "left", "--source", "nonexistent.mp4", "--no-window")
    assert r.returncode == 2 and "left from right" in r.stderr


@pytest.mark.data
def test_palm_detector_and_j2s_find_the_hand_mediapipe_finds():
    """On a real photo of an unseen signer: the regressed keypoints sit on MediaPipe's landmarks."""
    from realtime.hands import HandTracker
    from realtime.pipeline import Recognizer
    from realtime.images import read_image

    lis = need_dataset("lis")
    rows = [r for r in manifest_rows(lis) if r["signer"] == "GIULIA" and r["path"].endswith("front.JPG")][::25][:6]
    tracker = HandTracker("full")
    rec = Recognizer.build(keypoints="j2s", hand_model="full")
    distances = []
    for r in rows:
        frame = place_on_canvas(read_image(lis / r["path"]))
        mp_hands = tracker(frame)
        res = rec.process(frame, t=0.0)
        assert res.hand is not None and res.hand.landmarks.shape == (21, 3) and res.letter in rec.labels
        assert {"hands", "features", "classifier"} <= set(res.ms)
        if mp_hands:
            ref = mp_hands[0].landmarks[:, :2]
            size = np.linalg.norm(ref[0] - ref[9])  # wrist to middle-finger base
            distances.append(np.linalg.norm(res.hand.landmarks[:, :2] - ref, axis=1).mean() / size)
        rec = Recognizer.build(keypoints="j2s", hand_model="full")  # independent photos: a fresh smoother each
    tracker.close()
    assert len(distances) >= 4
    assert np.median(distances) < 0.35, distances  # within about a third of a palm length on average


@pytest.mark.data
def test_eval_j2s_on_an_unseen_signer(tmp_path):
    lis = need_dataset("lis")
    out = tmp_path / "eval.json"
    r = run_cli("eval", "--keypoints", "j2s", "--data", str(lis), "--signers", "GIULIA", "--limit", "60",
                "--json", str(out), "--plot", str(tmp_path / "cm.png"))
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert rep["model"] == "lis-j2s" and rep["keypoints"] == "j2s" and rep["images"] == 60
    assert rep["detected"] >= 50  # the palm detector alone, on upscaled 64-px crops
    assert rep["accuracy"] > 0.3  # chance is 1/22; the full-set figure is in the README


@pytest.mark.data
def test_bench_runs_the_j2s_path(tmp_path):
    lis = need_dataset("lis")
    folder = tmp_path / "frames"
    folder.mkdir()
    import shutil

    for r in [r for r in manifest_rows(lis) if r["signer"] == "GIULIA"][:5]:
        shutil.copy(lis / r["path"], folder / r["path"].replace("/", "_"))
    out = tmp_path / "bench.json"
    r = run_cli("bench", "--keypoints", "j2s", "--source", str(folder), "--frames", "20", "--json", str(out))
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert rep["model"] == "lis-j2s" and rep["keypoints"] == "j2s" and rep["fps"] > 0
    assert rep["stages"]["classifier"]["median_ms"] > 0


def test_j2s_model_whose_manifest_lists_other_labels_is_refused(tmp_path):
    """A manifest with one label fewer than the ONNX file's outputs fails to load, naming the mismatch, rather
    than reading letters off the wrong columns (the wrong input size: tests/test_shipped_models.py)."""
    import shutil

    from realtime.manifest import ModelError
    from realtime.j2s import J2SClassifier

    folder = tmp_path / "lis-j2s"
    shutil.copytree("weights/lis-j2s", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["labels"] = manifest["labels"][:-1]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="labels"):
        J2SClassifier(folder, device="cpu")
