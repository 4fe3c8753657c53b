"""Landmark-only datasets: each recording convention read back into the keypoint cache's, and one trained end to end."""
import os
from pathlib import Path

import numpy as np
import pytest

from training.landmark_sets import FORMATS, RECOVERED_SIZE, REFERENCE, read_landmark_set, recover_aspect

HEADER = "label,signer,source_split," + ",".join(f"x{j},y{j},z{j}" for j in range(21))


def write_set(folder: Path, rows: list[tuple[str, np.ndarray]]) -> Path:
    folder.mkdir(parents=True)
    lines = [HEADER] + [f"{label},s1,," + ",".join(f"{v:.6f}" for v in lm.reshape(-1)) for label, lm in rows]
    (folder / "landmarks.csv").write_text("\n".join(lines) + "\n")
    return folder


def a_hand():
    lm = np.zeros((21, 3))
    for f in range(5):
        for k in range(4):
            lm[1 + 4 * f + k] = (0.02 * (f - 2), -0.03 * (k + 1), -0.001 * k)
    return lm + np.array([0.6, 0.8, 0.0])


def landmark_root(name: str) -> Path:
    root = os.environ.get("FINGERSPELL_DATASETS")
    if not root or not (Path(root) / name / "landmarks.csv").is_file():
        pytest.skip(f"needs the real dataset {name}: set FINGERSPELL_DATASETS to the folder holding it")
    return Path(root) / name


def test_mirrored_webcam_set_is_unmirrored_into_frame_pixels(tmp_path):
    lm = a_hand()
    folder = write_set(tmp_path / "asl_webcam_landmarks", [("A", lm), ("B", lm)])
    kp = read_landmark_set(folder)
    w, h = FORMATS["asl_webcam_landmarks"].frame
    assert kp.detected.all() and kp.readable.all() and not kp.is_left.any()
    assert np.allclose(kp.landmarks[0, :, 0], (1 - lm[:, 0]) * w, atol=1e-2)  # x -> 1 - x: the selfie view undone
    assert np.allclose(kp.landmarks[0, :, 1], lm[:, 1] * h, atol=1e-2)
    assert np.allclose(kp.landmarks[0, :, 2], lm[:, 2] * w, atol=1e-2)
    assert list(kp.labels) == ["A", "B"] and (kp.image_size == (w, h)).all()


def test_unknown_landmark_format_is_refused(tmp_path):
    folder = write_set(tmp_path / "my_landmarks", [("A", a_hand())])
    with pytest.raises(ValueError, match="unknown format"):
        read_landmark_set(folder)


def test_excluded_take_is_left_out_and_mislabelled_on_the_real_file():
    """The lis_webcam_landmarks pilot take is excluded because its labels point at other letters of the main take;
    the main take itself points at its own labels (so the check can tell the two apart)."""
    from training.landmark_sets import take_agreement

    root = landmark_root("lis_webcam_landmarks")
    kept, everything = read_landmark_set(root), read_landmark_set(root, keep_excluded=True)
    assert set(kept.source_splits) == {"train"} and len(everything) - len(kept) == 300
    pilot = take_agreement(everything, "test")
    assert pilot["A"].get("B", 0) > 0.8 and pilot["B"].get("A", 0) > 0.8 and pilot["C"].get("C", 0) < 0.2
    main = everything.subset(np.flatnonzero(everything.source_splits == "train"))
    half = main.subset(np.arange(0, len(main), 2))  # even rows against odd rows of the same take
    half.source_splits = np.array(["even"] * len(half))
    both = type(main).concat([half, main.subset(np.arange(1, len(main), 2))])
    own = take_agreement(both, "train", main="even")
    assert all(own[label].get(label, 0) > 0.9 for label in "ABC")


def test_excluded_rows_of_a_declared_take_are_dropped(tmp_path):
    folder = tmp_path / "lis_webcam_landmarks"
    write_set(folder, [("A", a_hand()), ("B", a_hand())])
    text = (folder / "landmarks.csv").read_text().splitlines()
    text[2] = text[2].replace("B,s1,,", "B,s1,test,")
    (folder / "landmarks.csv").write_text("\n".join(text) + "\n")
    assert list(read_landmark_set(folder).labels) == ["A"]
    assert list(read_landmark_set(folder, keep_excluded=True).labels) == ["A", "B"]


def test_landmark_rows_form_blocks_in_splits():
    from training.data import FRAME_BLOCK, source_photo_id

    assert source_photo_id("landmarks.csv#3") == source_photo_id(f"landmarks.csv#{FRAME_BLOCK - 1}")
    assert source_photo_id("landmarks.csv#3") != source_photo_id(f"landmarks.csv#{FRAME_BLOCK}")


def test_recovered_aspect_of_real_hands_min_max_normalised():
    """Real webcam hands (raw coordinates, so their true aspect is known) put through the per-hand min-max of
    lis_webcam_landmarks: the recovered aspect is much closer to the truth than a square box's."""
    kp = read_landmark_set(landmark_root("asl_webcam_landmarks"))
    lm = kp.landmarks[::40].astype(np.float64)
    w = kp.image_size[0, 0]
    x, y = lm[..., 0], lm[..., 1]
    norm = np.stack([(x - x.min(1, keepdims=True)) / np.ptp(x, 1, keepdims=True),
                     (y - y.min(1, keepdims=True)) / np.ptp(y, 1, keepdims=True), lm[..., 2] / w], -1)
    rec = recover_aspect(norm, REFERENCE)
    truth = np.log(np.ptp(y, 1) / np.ptp(x, 1))
    err = np.abs(np.log(np.ptp(rec[..., 1], 1) / np.ptp(rec[..., 0], 1)) - truth)
    square = np.abs(truth)
    assert np.median(err) < 0.3, np.median(err)
    assert np.median(err) < 0.6 * np.median(square)
    assert rec.max() <= RECOVERED_SIZE


@pytest.mark.data
def test_a_landmark_only_dataset_end_to_end(tmp_path):
    """asl_webcam_landmarks -> keypoint cache format -> training -> ONNX export -> the runtime classifier."""
    from export.keypoint_export import export_keypoint_model
    from realtime.classifier import OnnxClassifier
    from training.keypoints import load_keypoints
    from training.train_keypoints import TrainConfig, train

    root = landmark_root("asl_webcam_landmarks")
    letters = ["A", "B", "L", "V", "Y"]
    kp = load_keypoints(root, labels=letters)
    assert len(kp) > 1500 and set(kp.labels) == set(letters)
    cfg = TrainConfig(data=[str(root)], labels=letters, out=str(tmp_path / "run"), random_test=0.3, epochs=4,
                      yaw_deg=30, pitch_deg=20, flip=0.5, canonical=False)
    summary = train(cfg, progress=False)
    assert summary["test"]["accuracy"] > 0.8, summary["test"]["accuracy"]  # five distinct shapes, one person
    export_keypoint_model(tmp_path / "run" / "model.pt", tmp_path / "model", name="webcam-test")
    clf = OnnxClassifier(tmp_path / "model")
    rows = np.flatnonzero(kp.labels == "L")[:20]
    x = clf.spec.compute(kp.landmarks[rows], kp.is_left[rows], kp.image_size[rows].astype(np.float64))
    probs = clf(x)
    assert (np.array(clf.labels)[probs.argmax(1)] == "L").mean() > 0.8
