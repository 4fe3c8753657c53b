"""The ONNX port of MediaPipe Hands: SSD maths, ROI geometry, the shipped models, and the whole pipeline
against MediaPipe's own on real photos (those skip without $FINGERSPELL_DATASETS)."""
import json
import math
import shutil

import numpy as np
import pytest

from helpers import HAND_FRAME, manifest_rows, need_dataset, place_on_canvas, run_cli

# -- SSD anchors, decoding, NMS -----------------------------------------------------------------------------------


def test_palm_anchors_are_mediapipes_2016():
    from realtime.hands.ssd import ssd_anchors

    a = ssd_anchors()
    assert a.shape == (2016, 4)
    # stride 8: a 24x24 grid, 2 anchors per cell (aspect 1.0 and the interpolated scale), then stride 16 x 3 layers
    # merged: a 12x12 grid with 6 anchors per cell; fixed_anchor_size makes every w, h 1
    np.testing.assert_allclose(a[0], [0.5 / 24, 0.5 / 24, 1, 1])
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2], [1.5 / 24, 0.5 / 24, 1, 1])
    np.testing.assert_allclose(a[24 * 24 * 2 - 1], [23.5 / 24, 23.5 / 24, 1, 1])
    np.testing.assert_allclose(a[24 * 24 * 2], [0.5 / 12, 0.5 / 12, 1, 1])
    np.testing.assert_allclose(a[24 * 24 * 2 + 6], [1.5 / 12, 0.5 / 12, 1, 1])
    np.testing.assert_allclose(a[-1], [11.5 / 12, 11.5 / 12, 1, 1])
    assert np.all(a[:, 2:] == 1.0)


def test_anchor_sizes_without_fixed_size_follow_the_scales():
    from realtime.hands.ssd import AnchorOptions, ssd_anchors

    a = ssd_anchors(AnchorOptions(fixed_anchor_size=False))
    s0, s1 = 0.1484375, 0.1484375 + (0.75 - 0.1484375) / 3  # layers 0 and 1 of 4
    np.testing.assert_allclose(a[0, 2:], [s0, s0], rtol=1e-6)
    np.testing.assert_allclose(a[1, 2:], [math.sqrt(s0 * s1)] * 2, rtol=1e-6)  # interpolated scale
    np.testing.assert_allclose(a[-1, 2:], [math.sqrt(0.75 * 1.0)] * 2, rtol=1e-6)  # last layer: next scale is 1


def test_decoding_a_scripted_raw_box():
    from realtime.hands.ssd import decode_boxes

    anchors = np.array([[0.25, 0.75, 1.0, 1.0]], np.float32)
    raw = np.zeros((1, 18), np.float32)
    raw[0, :4] = [19.2, -9.6, 38.4, 57.6]  # x, y offsets and w, h in 192-px units
    raw[0, 4:6] = [96.0, 0.0]  # keypoint 0
    raw[0, 16:18] = [-48.0, 192.0]  # keypoint 6
    boxes, kp = decode_boxes(raw, anchors)
    np.testing.assert_allclose(boxes[0], [0.25, 0.55, 0.45, 0.85], atol=1e-6)  # centre (0.35, 0.70), 0.2 x 0.3
    np.testing.assert_allclose(kp[0, 0], [0.75, 0.75], atol=1e-6)
    np.testing.assert_allclose(kp[0, 6], [0.0, 1.75], atol=1e-6)
    np.testing.assert_allclose(kp[0, 1:6], np.tile([0.25, 0.75], (5, 1)), atol=1e-6)


def test_scores_are_clipped_before_the_sigmoid_and_thresholded():
    from realtime.hands.ssd import detections, sigmoid_scores

    s = sigmoid_scores(np.array([-1e4, -100.0, 0.0, 1e4]))
    assert s[0] == s[1] and s[0] < 1e-30 and s[2] == 0.5 and s[3] == pytest.approx(1.0) and not np.isnan(s).any()
    anchors = np.array([[0.5, 0.5, 1, 1]] * 3, np.float32)
    raw = np.zeros((3, 18), np.float32)
    raw[:, 2:4] = 19.2
    raw[2, 2] = -19.2  # a negative width is dropped, as MediaPipe does
    dets = detections(raw, np.array([-2.0, 3.0, 3.0]), anchors, min_score=0.5)
    assert len(dets) == 1 and dets[0].score == pytest.approx(1 / (1 + math.exp(-3.0)))


def _det(score, box, kp):
    from realtime.hands.ssd import Detection

    return Detection(score, np.array(box, np.float32), np.array(kp, np.float32).reshape(-1, 2))


def test_weighted_nms_merges_overlaps_by_score_and_keeps_the_rest():
    from realtime.hands.ssd import iou, weighted_nms

    a = _det(0.9, [0.0, 0.0, 0.4, 0.4], [0.1, 0.1])
    b = _det(0.6, [0.1, 0.0, 0.5, 0.4], [0.2, 0.3])  # IoU with a: 0.12 / 0.20 = 0.6 -> merged into a
    c = _det(0.8, [0.6, 0.6, 0.9, 0.9], [0.7, 0.7])  # disjoint
    d = _det(0.7, [0.3, 0.0, 0.7, 0.4], [0.5, 0.2])  # IoU with a 0.04 / 0.28 = 0.14: its own detection
    assert iou(a.box, b.box) == pytest.approx(0.6) and iou(a.box, d.box) == pytest.approx(1 / 7)
    out = weighted_nms([d, b, c, a], threshold=0.3)
    assert [o.score for o in out] == pytest.approx([0.9, 0.8, 0.7])
    np.testing.assert_allclose(out[0].box, [0.04, 0.0, 0.44, 0.4], atol=1e-6)  # (0.9 a + 0.6 b) / 1.5
    np.testing.assert_allclose(out[0].keypoints, [[0.14, 0.18]], atol=1e-6)
    np.testing.assert_allclose(out[1].box, c.box)
    np.testing.assert_allclose(out[2].box, d.box)
    assert weighted_nms([]) == []


def test_letterbox_removal_maps_the_padded_input_back_to_the_frame():
    from realtime.hands.roi import Roi, keep_aspect
    from realtime.hands.ssd import remove_letterbox

    roi, pad = keep_aspect(Roi(320, 240, 640, 480), (192, 192))  # landscape: bands above and below
    assert pad == (0.0, pytest.approx(0.125)) and roi.width == roi.height == 640
    det = remove_letterbox(_det(0.9, [0.25, 0.125, 0.75, 0.875], [0.5, 0.5]), pad)
    np.testing.assert_allclose(det.box, [0.25, 0.0, 0.75, 1.0], atol=1e-6)
    np.testing.assert_allclose(det.keypoints, [[0.5, 0.5]], atol=1e-6)


# -- ROI geometry -------------------------------------------------------------------------------------------------


def test_palm_roi_from_scripted_keypoints():
    from realtime.hands.roi import palm_roi

    size = (400, 300)
    kp = np.zeros((7, 2))
    # upright hand: wrist (100, 200) below the middle finger's MCP (100, 100); palm box 50 x 50 px around (100, 150)
    kp[0], kp[2] = (100 / 400, 200 / 300), (100 / 400, 100 / 300)
    box = np.array([75 / 400, 125 / 300, 125 / 400, 175 / 300])
    r = palm_roi(box, kp, size)
    assert r.rotation == pytest.approx(0.0, abs=1e-9)
    assert (r.cx, r.cy) == pytest.approx((100, 125))  # shifted half the box towards the fingers
    assert r.width == r.height == pytest.approx(130)  # 2.6 x the box
    # the same hand pointing right (fingers at +x): rotation 90 degrees, the shift goes right
    kp[2] = (200 / 400, 200 / 300)
    box = np.array([125 / 400, 175 / 300, 175 / 400, 225 / 300])  # centre (150, 200)
    r = palm_roi(box, kp, size)
    assert r.rotation == pytest.approx(math.pi / 2)
    assert (r.cx, r.cy) == pytest.approx((175, 200))
    # a non-square box becomes a square on its long side
    box = np.array([80 / 400, 120 / 300, 120 / 400, 180 / 300])  # 40 x 60 px
    assert palm_roi(box, kp, size).width == pytest.approx(60 * 2.6)


def _hand(angle=0.0, centre=(300.0, 250.0), scale=1.0):
    """A hand-shaped set of 21 points (wrist at the bottom, fingers up), rotated by ``angle`` (radians)."""
    base = np.array([[0, 60], [-25, 45], [-40, 25], [-50, 5], [-55, -10], [-20, 0], [-22, -30], [-23, -50],
                     [-24, -65], [0, -2], [0, -35], [0, -57], [0, -75], [18, 0], [20, -30], [21, -50], [22, -64],
                     [34, 5], [37, -20], [39, -36], [40, -48]], np.float64) * scale
    c, s = math.cos(angle), math.sin(angle)
    xy = base @ np.array([[c, s], [-s, c]]) + centre
    return np.concatenate([xy, np.zeros((21, 1))], 1)


def test_landmarks_roi_turns_with_the_hand():
    from realtime.hands.roi import landmarks_rect, landmarks_roi, normalize_radians

    size = (640, 480)
    up = landmarks_roi(_hand(0.0), size)
    assert abs(up.rotation) < 0.05  # upright hand: (nearly) no rotation
    tight = landmarks_rect(_hand(0.0), size)  # the box of the wrist, thumb and finger bases, before scaling
    assert tight.height < 130 and tight.width < 110  # the fingertips are left out
    assert up.width == pytest.approx(2 * max(tight.width, tight.height))
    assert up.cy == pytest.approx(tight.cy - 0.1 * tight.height, abs=0.1)  # shifted towards the fingers
    for angle in (0.4, -1.2, 2.5):
        r = landmarks_roi(_hand(angle), size)
        assert normalize_radians(r.rotation - up.rotation - angle) == pytest.approx(0.0, abs=1e-6)
        assert r.width == pytest.approx(up.width, rel=1e-6) and r.width == r.height
        c, s = math.cos(angle), math.sin(angle)  # the centre turns about the hand's own centre with it
        d = np.array([up.cx - 300, up.cy - 250])
        assert (r.cx, r.cy) == pytest.approx((300 + c * d[0] - s * d[1], 250 + s * d[0] + c * d[1]), abs=1e-6)
    assert landmarks_roi(_hand(0.0, scale=2.0), size).width == pytest.approx(2 * up.width, rel=1e-6)


def test_crop_then_project_back_is_the_identity():
    import cv2

    from realtime.hands.roi import Roi, crop_affine, project_landmarks, unproject_landmarks

    roi = Roi(300.0, 200.0, 180.0, 180.0, 0.7)
    pts = np.random.default_rng(0).uniform(0, 224, (21, 3))
    back = unproject_landmarks(project_landmarks(pts, roi), roi)
    np.testing.assert_allclose(back, pts, atol=1e-3)
    # and the image itself: a dot in the frame, found in the 224x224 crop and projected back, lands where it was
    frame = np.zeros((480, 640), np.float32)
    frame[229:232, 340:343] = 1.0  # a 3x3 dot centred on pixel (341, 230)
    crop = cv2.warpAffine(frame, crop_affine(roi, (224, 224)), (224, 224), flags=cv2.INTER_LINEAR)
    ys, xs = np.mgrid[0:224, 0:224]
    centroid = np.array([(crop * xs).sum(), (crop * ys).sum(), 0.0]) / crop.sum()
    np.testing.assert_allclose(project_landmarks(centroid[None], roi)[0, :2], (341, 230), atol=0.05)


def test_association_keeps_the_tracked_hand_over_an_overlapping_palm():
    from realtime.hands.roi import Roi, associate

    palm_a, palm_b = Roi(100, 100, 80, 80), Roi(400, 100, 80, 80)
    tracked = Roi(110, 105, 80, 80)  # IoU with palm_a ~0.66 > 0.5
    assert associate([palm_a, palm_b], [tracked]) == [palm_b, tracked]
    assert associate([palm_a, Roi(102, 100, 80, 80)], []) == [Roi(102, 100, 80, 80)]  # palms dedupe too
    assert associate([], [tracked]) == [tracked]


def test_handedness_follows_realtime_hands_convention():
    from realtime.hands.onnx import handedness

    # the landmark model says 'Left' with p = 0.9 in MediaPipe's selfie convention
    assert handedness(0.9, mirrored_input=True) == ("Left", 0.9)
    assert handedness(0.9, mirrored_input=False) == ("Right", 0.9)  # an unmirrored frame: the physical hand
    assert handedness(0.2, mirrored_input=False) == ("Left", pytest.approx(0.8))


# -- the shipped models -----------------------------------------------------------------------------------------


def hand_weights():
    from realtime.hands.onnx import hand_models_folder

    return hand_models_folder()


def test_shipped_hand_models_match_their_manifest():
    from realtime.manifest import available_models, sha256_file

    folder = hand_weights()
    m = json.loads((folder / "manifest.json").read_text())
    assert m["kind"] == "hand-pipeline" and m["source"]["version"] == "0.10.21"
    assert set(m["models"]) == {"palm_detection_lite", "palm_detection_full", "hand_landmark_lite",
                                "hand_landmark_full"}
    total = 0
    for entry in m["models"].values():
        path = folder / entry["file"]
        assert sha256_file(path) == entry["sha256"] and path.stat().st_size == entry["bytes"]
        assert len(entry["source_sha256"]) == 64 and entry["source"].endswith(".tflite")
        assert entry["parity"]["checked"] and max(entry["parity"]["max_abs"].values()) < 1e-3
        total += entry["bytes"]
    assert total < 20e6
    assert "python -m export.mediapipe_hands" in m["command"]
    assert "Apache" in (folder / "LICENSE.md").read_text() and "Google" in (folder / "PROVENANCE.md").read_text()
    assert "mediapipe-hands" not in available_models()  # not a letter model: 'fingerspell models' skips it


def test_the_source_tflite_files_are_the_ones_converted():
    """The mediapipe wheel installed here holds the very .tflite files the manifest names (same sha256)."""
    import mediapipe

    from realtime.manifest import sha256_file

    m = json.loads((hand_weights() / "manifest.json").read_text())
    root = __import__("pathlib").Path(mediapipe.__file__).parent.parent
    for entry in m["models"].values():
        assert sha256_file(root / entry["source"]) == entry["source_sha256"]


@pytest.mark.parametrize("name, inputs, outputs", [
    ("palm_detection_lite", 192, {"boxes": (2016, 18), "scores": (2016, 1)}),
    ("hand_landmark_full", 224, {"landmarks": (63,), "presence": (1,), "handedness": (1,), "world_landmarks": (63,)}),
])
def test_models_run_batched(name, inputs, outputs):
    from realtime.hands.onnx import open_hand_model

    session, _ = open_hand_model(name, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((2, inputs, inputs, 3), dtype=np.float32)
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x})))
    one = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x[1:]})))
    for k, shape in outputs.items():
        assert got[k].shape == (2, *shape)
        np.testing.assert_allclose(got[k][1], one[k][0], atol=1e-4)  # the batch does not mix images


def test_conversion_reproduces_the_shipped_file(tmp_path):
    """Re-running the converter on the wheel's .tflite gives the shipped ONNX file byte for byte (needs the
    'convert' extra's tflite parser)."""
    pytest.importorskip("tflite", reason="the converter needs the 'tflite' package (pip install -e '.[convert]')")
    from export.mediapipe_hands import convert_one
    from realtime.manifest import sha256_file

    m = json.loads((hand_weights() / "manifest.json").read_text())
    entry = m["models"]["palm_detection_lite"]
    model, ops, _ = convert_one("palm_detection_lite")
    (tmp_path / "p.onnx").write_bytes(model.SerializeToString())
    assert ops == entry["tflite_ops"]
    assert sha256_file(tmp_path / "p.onnx") == entry["sha256"]


def copy_weights(tmp_path):
    dst = tmp_path / "mediapipe-hands"
    shutil.copytree(hand_weights(), dst)
    return dst


def test_a_corrupt_model_file_is_refused(tmp_path):
    from realtime.manifest import ModelError
    from realtime.hands.onnx import OnnxHandTracker

    folder = copy_weights(tmp_path)
    data = bytearray((folder / "hand_landmark_lite.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "hand_landmark_lite.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256.*corrupt or was replaced"):
        OnnxHandTracker("lite", folder=folder)
    OnnxHandTracker("full", folder=folder).close()  # the other size's files are intact


def test_a_model_that_disagrees_with_its_manifest_is_refused(tmp_path):
    from realtime.manifest import ModelError, sha256_file
    from realtime.hands.onnx import OnnxHandTracker

    folder = copy_weights(tmp_path)
    path = folder / "manifest.json"
    m = json.loads(path.read_text())
    # the lite landmark file swapped for the palm detector, with a sha256 that matches: wrong input size
    shutil.copy(folder / "palm_detection_lite.onnx", folder / "hand_landmark_lite.onnx")
    m["models"]["hand_landmark_lite"]["sha256"] = sha256_file(folder / "hand_landmark_lite.onnx")
    path.write_text(json.dumps(m))
    with pytest.raises(ModelError, match="input"):
        OnnxHandTracker("lite", folder=folder)
    (folder / "palm_detection_full.onnx").unlink()
    with pytest.raises(ModelError, match="missing"):
        OnnxHandTracker("full", folder=folder)
    path.write_text("{}")
    with pytest.raises(ModelError, match="not a hand-model manifest"):
        OnnxHandTracker("lite", folder=folder)


def test_no_hand_in_a_blank_frame_and_bad_arguments():
    from realtime.hands.onnx import OnnxHandTracker

    t = OnnxHandTracker("lite", providers=["CPUExecutionProvider"])
    assert t(np.zeros((480, 640, 3), np.uint8)) == [] and t.palm.calls == 1 and t.landmarks.calls == 0
    with pytest.raises(ValueError, match="lite"):
        OnnxHandTracker("medium")


def test_cli_offers_the_onnx_hands():
    from realtime.cli import build_parser

    p = build_parser()
    for cmd in (["live"], ["eval", "--data", "x"], ["bench", "--source", "x"], ["demo"]):
        assert p.parse_args([*cmd, "--hands", "onnx"]).hands == "onnx"
        assert p.parse_args(cmd).hands == "mediapipe"
    args = p.parse_args(["hands-check", "--data", "x"])
    assert args.limit == 200 and args.hands_model == "full"
    assert p.parse_args(["hands-check", "--data", "x", "--hands-model", "lite"]).hands_model == "lite"
    assert p.parse_args(["hands-check", "--data", "x", "--model", "lite"]).hands_model == "lite"  # the old spelling
    r = run_cli("live", "--hands", "tflite", "--no-window")
    assert r.returncode == 2 and "invalid choice" in r.stderr


# -- the preprocessing on a torch device (the GPU path; run on the CPU here) -------------------------------------------


def test_torch_crops_sample_where_opencv_does():
    """The geometry alone: on a float ramp (which bilinear interpolation reproduces exactly) the grid_sample crop
    equals cv2.warpAffine's within OpenCV's 1/32-pixel coordinate steps, for a rotated ROI leaving the frame."""
    import cv2
    torch = pytest.importorskip("torch")

    from realtime.hands.roi import Roi, crop_affine, keep_aspect, rois_array
    from realtime.torch_crops import DeviceFrames, TorchCrops, sample_crops

    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    ramp = np.stack([xx * 0.1, yy * 0.1, (xx + yy) * 0.05], -1)  # 0.1 per pixel
    frames = DeviceFrames(torch.from_numpy(ramp)[None], [(640, 480)], rgb=True)  # a float canvas: no uint8 steps
    for roi, replicate in ((Roi(300, 200, 150, 150, 0.4), True), (Roi(600.5, 40.25, 200, 180, -2.5), True),
                           (Roi(320, 240, 640, 480), False)):
        padded, _ = keep_aspect(roi, (224, 224))
        a = crop_affine(padded, (224, 224))
        want = cv2.warpAffine(ramp, a, (224, 224), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT)
        maps = TorchCrops("cpu").maps(frames, [0], rois_array([padded]), 224)
        got = sample_crops(frames.canvas, maps, 224, replicate)[0].numpy() * 255.0  # it scales uint8 to [0, 1]
        assert np.abs(got - want).max() < 0.1 / 16  # 1/16 pixel


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_torch_crops_match_the_host_crops(device):
    """What the models get: the palm letterbox (zero border) and rotated hand crops (replicated border), from BGR
    and RGB frames of two cameras at once (each crop from its own frame), within a few 1/255 of OpenCV's uint8
    crops (its fixed point and rounding). On CUDA: through the pinned buffer, reused from step to step."""
    import cv2
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to PyTorch: the CUDA crops are checked on the lent GPU")

    from realtime.hands.roi import Roi, keep_aspects, rois_array
    from realtime.hands.onnx import NumpyCrops
    from realtime.torch_crops import TorchCrops

    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 3)
    img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)
    img[100:300, 200:260] = 255  # a sharp edge
    img[..., 0] //= 3  # the channels differ, so a BGR / RGB mix-up would show
    other = np.ascontiguousarray(img[::-1, ::-1])  # a second camera: a crop taken from the wrong frame would show
    host, dev = NumpyCrops(), TorchCrops(device)
    letterbox, _ = keep_aspects(rois_array([Roi(320, 240, 640.0, 480.0)] * 2), (192, 192))
    hands, _ = keep_aspects(rois_array([Roi(300, 200, 150, 150, 0.4), Roi(620, 30, 200, 180, -2.5),
                                        Roi(100, 400, 120, 120, 1.0)]), (224, 224))
    for rgb in (False, True):
        for rois, which, size, replicate in ((letterbox, [0, 1], 192, False), (hands, [1, 0, 1], 224, True)):
            want = host.crops(host.frames([img, other], rgb), which, rois, size, replicate)
            got = dev.crops(dev.frames([img, other], rgb), which, rois, size, replicate).cpu().numpy()
            assert got.shape == want.shape == (len(rois), size, size, 3) and got.dtype == np.float32
            diff = np.abs(got - want) * 255
            assert diff.mean() < 0.5 and diff.max() < 5, (rgb, size, diff.mean(), diff.max())
    # cameras of different sizes share the canvas: each crop on its own frame, its border its own (the small
    # frame's slot held a whole frame a step ago: none of it may show around the small one)
    small = np.ascontiguousarray(img[:240, :320])
    for rois, which, size, replicate in ((hands, [1, 0, 1], 224, True), (letterbox, [1, 0], 192, False)):
        rois = rois.copy()
        if not replicate:  # the small frame's own letterbox
            rois[0] = keep_aspects(rois_array([Roi(160, 120, 320.0, 240.0)]), (192, 192))[0][0]
        want = host.crops(host.frames([img, small], False), which, rois, size, replicate)
        got = dev.crops(dev.frames([img, small], False), which, rois, size, replicate).cpu().numpy()
        assert np.abs(got - want).max() * 255 < 5, (size, np.abs(got - want).max() * 255)


def test_the_crop_maps_are_opencvs():
    """crop_affines (all ROIs at once, no OpenCV) gives the maps of cv2.boxPoints + cv2.getAffineTransform, the
    calls MediaPipe's ImageToTensorCalculator makes, for ROIs anywhere, of any size and rotation."""
    import math

    import cv2

    from realtime.hands.roi import Roi, crop_affines, rois_array

    rng = np.random.default_rng(1)
    rois = [Roi(*rng.uniform([-50, -50, 5, 5], [700, 500, 900, 900]), float(rng.uniform(-4, 4))) for _ in range(300)]
    got = crop_affines(rois_array(rois), (224, 192))
    for r, g in zip(rois, got):
        corners = cv2.boxPoints(((r.cx, r.cy), (r.width, r.height), r.rotation * 180.0 / math.pi))
        want = cv2.getAffineTransform(corners[:3].astype(np.float32),
                                      np.array([[0, 192], [0, 0], [224, 0]], np.float32))
        np.testing.assert_allclose(g, want, atol=1e-6)


def test_the_grid_sample_map_is_the_opencv_map_backwards():
    """crop_to_frame (what the GPU crops sample with) is the inverse of crop_affines (what cv2.warpAffine takes)."""
    from realtime.hands.roi import Roi, crop_affines, crop_to_frame, rois_array

    rng = np.random.default_rng(3)
    rois = rois_array([Roi(*rng.uniform([-50, -50, 5, 5], [700, 500, 900, 900]), float(rng.uniform(-4, 4)))
                       for _ in range(100)])
    forward = np.concatenate([crop_affines(rois, (224, 192)), np.tile([[[0.0, 0.0, 1.0]]], (100, 1, 1))], 1)
    np.testing.assert_allclose(crop_to_frame(rois, (224, 192)) @ forward, np.tile(np.eye(3), (100, 1, 1)), atol=1e-9)


def test_the_many_hands_maths_is_the_one_hand_maths():
    """The tracker computes every hand's next ROI, padding and landmark projection in one call: the same numbers
    as hand by hand (each hand its own ROI, image size and padding)."""
    from realtime.hands.roi import (Roi, keep_aspect, keep_aspects, landmarks_roi, landmarks_rois, project_landmarks,
                                    project_landmarks_many, rois_array, to_rois)

    rng = np.random.default_rng(2)
    rois = [Roi(*rng.uniform([0, 0, 50, 40], [640, 480, 300, 320]), float(rng.uniform(-3, 3))) for _ in range(7)]
    sizes = [(640, 480), (1280, 720), (640, 480), (320, 240), (640, 480), (800, 600), (640, 480)]
    padded, padding = keep_aspects(rois_array(rois), (224, 224))
    for r, p, q in zip(rois, to_rois(padded), padding):
        one, pad = keep_aspect(r, (224, 224))
        assert one == p and pad == tuple(q)
    raw = rng.uniform(0, 224, (7, 21, 3))
    points = project_landmarks_many(raw, rois_array(rois), (224, 224), padding)
    for k, r in enumerate(rois):
        np.testing.assert_array_equal(points[k], project_landmarks(raw[k], r, (224, 224), tuple(padding[k])))
    nxt = to_rois(landmarks_rois(points, sizes))
    for k, size in enumerate(sizes):
        assert nxt[k] == landmarks_roi(points[k], size)


def test_preprocessing_stays_on_the_host_unless_the_models_run_on_a_gpu():
    from realtime.hands.onnx import NumpyCrops, OnnxHandTracker

    t = OnnxHandTracker("lite", providers=["CPUExecutionProvider"])
    assert isinstance(t.palm.crops, NumpyCrops) and t.landmarks.crops is t.palm.crops  # one frame upload for both
    with pytest.raises(ValueError, match="preprocess must be"):
        OnnxHandTracker("lite", providers=["CPUExecutionProvider"], preprocess="cupy")
    pytest.importorskip("torch")
    t = OnnxHandTracker("lite", providers=["CPUExecutionProvider"], preprocess="torch")
    assert t.preprocessing == "torch on cpu" and t(np.zeros((480, 640, 3), np.uint8)) == []


@pytest.mark.data
def test_landmarks_with_torch_preprocessing_agree_with_the_host_path():
    """The whole pipeline with each preprocessing on real photos. The landmark model is about as sensitive to
    OpenCV's uint8 rounding of the crop as to anything here, so they agree to a fraction of the hand's size,
    not exactly (the same as between OpenCV on uint8 and on float crops)."""
    pytest.importorskip("torch")
    from realtime.hands_check import compare_hands
    from realtime.hands.onnx import OnnxHandTracker
    from realtime.images import read_image

    massey = need_dataset("massey")
    cpu = ["CPUExecutionProvider"]
    host = OnnxHandTracker("lite", max_hands=1, static=True, providers=cpu, preprocess="numpy")
    dev = OnnxHandTracker("lite", max_hands=1, static=True, providers=cpu, preprocess="torch")
    fracs = []
    for row in manifest_rows(massey)[::300][:6]:
        frame = place_on_canvas(read_image(massey / row["path"]))
        a, b = host(frame), dev(frame)
        assert len(a) == len(b) == 1
        pair = compare_hands(a, b)
        assert pair["same_handedness"] and pair["max_px"] / pair["size_px"] < 0.03
        fracs.append(pair["mean_frac"])
    assert max(fracs) < 0.015 and np.median(fracs) < 0.005


# -- against MediaPipe on real photos -------------------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.parametrize("dataset", ["massey", "lis"])
def test_onnx_pipeline_matches_mediapipe_on_photos(dataset):
    from realtime.hands_check import check_hands

    root = need_dataset(dataset)
    r = check_hands(root, limit=30, model="full", seed=1, progress=False)
    assert r["images"] == 30 and r["both"] >= 20
    assert r["detection_agreement"] > 0.9
    assert r["landmark_mean_frac"] < 0.03 and r["landmark_median_frac"] < 0.01
    assert r["handedness_agreement"] >= 0.95


@pytest.mark.data
def test_rois_equal_mediapipes_own():
    """The palm ROI and the landmarks' next-frame ROI, computed here, are the rects MediaPipe's graph gives."""
    import cv2
    from mediapipe.python.solution_base import SolutionBase

    from realtime.hands.roi import landmarks_roi, palm_roi
    from realtime.hands.onnx import PalmModel
    from realtime.images import read_image

    massey = need_dataset("massey")
    graph = SolutionBase(binary_graph_path="mediapipe/modules/hand_landmark/hand_landmark_tracking_cpu.binarypb",
                         side_inputs={"model_complexity": 0, "num_hands": 1, "use_prev_landmarks": False},
                         outputs=["multi_hand_landmarks", "hand_rects_from_landmarks", "hand_rects_from_palm_detections"])
    palm = PalmModel("lite")
    checked = 0
    for k, row in enumerate(manifest_rows(massey)[::400][:5]):
        frame = place_on_canvas(read_image(massey / row["path"]))
        frame = cv2.warpAffine(frame, cv2.getRotationMatrix2D((320, 240), 30 * k - 60, 1.0), (640, 480))
        res = graph.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        if not res.multi_hand_landmarks:
            continue
        lm = np.array([(p.x * 640, p.y * 480, p.z * 640) for p in res.multi_hand_landmarks[0].landmark])
        ref = res.hand_rects_from_landmarks[0]
        mine = landmarks_roi(lm, (640, 480))
        np.testing.assert_allclose([mine.cx, mine.cy, mine.width, mine.height],
                                   [ref.x_center * 640, ref.y_center * 480, ref.width * 640, ref.height * 480], atol=0.01)
        assert mine.rotation == pytest.approx(ref.rotation, abs=1e-5)
        det = palm(frame, rgb=False, min_score=0.5)[0]
        p, q = palm_roi(det.box, det.keypoints, (640, 480)), res.hand_rects_from_palm_detections[0]
        np.testing.assert_allclose([p.cx, p.cy, p.width], [q.x_center * 640, q.y_center * 480, q.width * 640],
                                   atol=0.05)  # the detector's own outputs differ from TFLite's by ~1e-4
        assert p.rotation == pytest.approx(q.rotation, abs=1e-3)
        checked += 1
    graph.close()
    assert checked >= 4


def _still_frames(n=3):
    from realtime.images import read_image

    massey = need_dataset("massey")
    row = next(r for r in manifest_rows(massey) if r["label"] == "B")
    frame = place_on_canvas(read_image(massey / row["path"]))
    return [frame] * n


@pytest.mark.data
def test_tracking_reuses_the_roi_and_matches_mediapipe():
    from realtime.hands import HandTracker
    from realtime.hands.onnx import OnnxHandTracker

    frames = _still_frames(3)
    ox, mp = OnnxHandTracker("lite", max_hands=1), HandTracker("lite", max_hands=1)
    for i, f in enumerate(frames):
        got, ref = ox(f), mp(f)
        assert len(got) == len(ref) == 1
        assert np.abs(got[0].landmarks[:, :2] - ref[0].landmarks[:, :2]).max() < 2.0  # pixels
        assert np.abs(got[0].landmarks[:, 2] - ref[0].landmarks[:, 2]).max() < 4.0
        assert got[0].handedness == ref[0].handedness and got[0].score == pytest.approx(ref[0].score, abs=0.01)
        assert ox.landmarks.calls == i + 1
    assert ox.palm.calls == 1  # frames 2 and 3 were tracked from the landmarks: no palm detection
    assert ox(np.zeros_like(frames[0])) == [] and ox.palm.calls == 1  # tracking lost on this frame...
    assert ox(frames[0]) and ox.palm.calls == 2  # ...so the next one searches again
    # with room for a second hand, MediaPipe looks for it on every frame, and so do we
    two = OnnxHandTracker("lite", max_hands=2)
    for f in frames:
        two(f)
    assert two.palm.calls == 3


@pytest.mark.data
def test_search_every_looks_for_a_second_hand_less_often_and_tracks_the_same():
    from realtime.hands.onnx import OnnxHandTracker

    frames = _still_frames(11)
    every, fifth = OnnxHandTracker("lite", max_hands=2), OnnxHandTracker("lite", max_hands=2, search_every=5)
    for f in frames:
        a, b = every(f), fifth(f)
        assert len(a) == len(b) == 1 and np.array_equal(a[0].landmarks, b[0].landmarks)
    assert every.palm.calls == 11 and fifth.palm.calls == 3  # frames 1, 6 and 11
    assert fifth(np.zeros_like(frames[0])) == [] and fifth.palm.calls == 3  # tracking lost on this frame...
    assert fifth(frames[0]) and fifth.palm.calls == 4  # ...and with no hand tracked it searches at once
    one = OnnxHandTracker("lite", max_hands=1, search_every=5)
    for f in frames:
        one(f)
    assert one.palm.calls == 1  # max_hands reached: no search at all, whatever search_every says
    with pytest.raises(ValueError, match="search_every"):
        OnnxHandTracker("lite", search_every=0)


@pytest.mark.data
def test_onnx_hands_through_the_recognizer_and_the_j2s_palm_path():
    from realtime.hands.mediapipe import PalmDetector
    from realtime.pipeline import Recognizer

    frame = _still_frames(1)[0]
    rec = Recognizer.build(hands="onnx")
    res = rec.process(frame, t=0.0)
    assert res.hand is not None and res.letter in rec.labels and rec.hands.backend == "onnx"
    ref = Recognizer.build(hands="mediapipe").process(frame, t=0.0)
    assert res.letter == ref.letter
    j2s = Recognizer.build(keypoints="j2s", hands="onnx")
    boxes, want = j2s.hands(frame), PalmDetector("lite")(frame)
    assert len(boxes) == len(want) == 1
    assert boxes[0].center == pytest.approx(want[0].center, abs=0.5) and boxes[0].side == pytest.approx(want[0].side, abs=0.5)
    assert j2s.process(frame, t=0.0).letter in j2s.labels


@pytest.mark.data
def test_hands_check_command(tmp_path):
    massey = need_dataset("massey")
    out = tmp_path / "check.json"
    r = run_cli("hands-check", "--data", str(massey), "--limit", "6", "--hands-model", "lite", "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "detection agreement" in r.stdout and "landmark distance" in r.stdout and "same handedness" in r.stdout
    rep = json.loads(out.read_text())
    assert rep["images"] == 6 and len(rep["rows"]) == 6 and rep["model"] == "lite"


@pytest.mark.data
def test_tracking_check_open_loop_is_exact():
    """Given MediaPipe's own ROI, one frame's crop + landmark model + projection gives MediaPipe's landmarks."""
    from realtime.hands_check import check_tracking

    massey = need_dataset("massey")
    r = check_tracking(massey, limit=2, model="lite", progress=False)
    assert r["frames"] == 40 and r["same_hand_count"] >= 36
    assert r["open_loop_px"]["frames"] >= 20 and r["open_loop_px"]["max"] < 0.5
    assert r["closed_loop_px"]["median"] < 2.0 and r["handedness_agreement"] >= 0.95
    assert r["palm_detector_runs"] < r["frames"] / 2  # tracked frames skip the palm detector


@pytest.mark.data
def test_live_spells_the_same_word_with_either_hand_pipeline(tmp_path):
    """The README's live path on a video of real photos (massey signer hand1), headless: same text both ways."""
    from helpers import write_spelling_video
    from realtime.images import read_image

    massey = need_dataset("massey")
    rows = [r for r in manifest_rows(massey) if r["signer"] == "hand1"]
    word = "HELLO"
    write_spelling_video(tmp_path / "hello.mp4", [read_image(massey / next(r["path"] for r in rows if r["label"] == c))
                                                  for c in word])
    texts = {}
    for hands in ("mediapipe", "onnx"):
        jsonl = tmp_path / f"{hands}.jsonl"
        r = run_cli("live", "--source", str(tmp_path / "hello.mp4"), "--no-window", "--hands", hands, "--jsonl",
                    str(jsonl))
        assert r.returncode == 0, r.stderr
        texts[hands] = r.stdout.strip().splitlines()[-1]
        frames = [json.loads(line) for line in jsonl.read_text().splitlines()]
        assert sum(1 for f in frames if f["hand"]) >= 0.8 * len(word) * 18
    assert texts["onnx"] == texts["mediapipe"] == word


def test_the_demo_builds_its_recognizers_with_the_chosen_hand_pipeline():
    pytest.importorskip("gradio", reason="the browser demo needs the 'demo' extra")
    from realtime import demo, demo_session

    def tracker(rec):  # live tracking is wrapped in Redetect (the full model looks again when the hand is lost)
        return type(getattr(rec.hands, "tracker", rec.hands)).__name__

    onnx_live = demo_session.make_recognizer(demo_session.Settings("asl-letters", hands="onnx"))
    assert tracker(onnx_live) == "OnnxHandTracker" and type(onnx_live.hands.fallback).__name__ == "OnnxStaticHandDetector"
    static_j2s = demo_session.make_recognizer(demo_session.Settings("lis-j2s", hands="onnx"), static=True)
    assert tracker(static_j2s) == "OnnxStaticPalmDetector"
    assert tracker(demo_session.make_recognizer(demo_session.Settings("asl-letters"))) == "HandTracker"
    with pytest.raises(ValueError, match="hands must be"):
        demo.build_app(hands="tflite")
    # the pipeline is bound into each app's handlers: an onnx app beside a mediapipe one changes nothing global
    demo.build_app(hands="onnx")
    demo.build_app(hands="mediapipe")
    session = demo_session.LiveSession()
    demo_session.live_frame(np.zeros((480, 640, 3), np.uint8), session, "asl-letters", "any", 0.5, 0.6, hands="onnx")
    assert tracker(session.rec) == "OnnxHandTracker"
    demo_session.live_frame(np.zeros((480, 640, 3), np.uint8), session, "asl-letters", "any", 0.5, 0.6)
    assert tracker(session.rec) == "HandTracker"  # another pipeline: a new recognizer
    session.close()


def test_the_static_detector_looks_at_several_photos_in_one_batch_as_one_at_a_time():
    """The full model looking again at several streams' frames at once (MultiStreamRecognizer.redetect) finds what
    it finds frame by frame, each frame's hands mapped back to that frame, through the upscale-and-pad cascade."""
    from realtime.hands.base import StaticSettings
    from realtime.hands.onnx import OnnxStaticHandDetector
    from realtime.images import read_image

    hand = read_image(HAND_FRAME)  # a real hand (W), as the demo's test camera showed it
    small = np.ascontiguousarray(hand[::3, ::3])  # upscaled by the cascade
    photos = [hand, np.zeros((480, 640, 3), np.uint8), small, hand[:, ::-1].copy()]
    det = OnnxStaticHandDetector(StaticSettings(model="lite", max_hands=1), providers=["CPUExecutionProvider"])
    many = det.detect_many(photos)
    one = [det(p) for p in photos]
    assert [len(h) for h in many] == [len(h) for h in one] and len(many[0]) == 1 and many[1] == []
    for a, b in zip(many, one):
        for x, y in zip(a, b):
            assert x.image_size == y.image_size and x.handedness == y.handedness
            np.testing.assert_allclose(x.landmarks, y.landmarks, atol=1e-3)


def test_a_degenerate_tracked_roi_is_dropped_not_cropped():
    """A ROI collapsed to a line or made of NaN (landmarks all on one point) is not cropped: no warning, no error,
    no hand from it; the frame is searched again."""
    import warnings

    from realtime.hands.onnx import OnnxHandTracker
    from realtime.hands.roi import Roi

    t = OnnxHandTracker("lite", max_hands=1, providers=["CPUExecutionProvider"])
    frame = np.zeros((480, 640, 3), np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hands, nxt = t.step([frame, frame], [[Roi(320, 240, 0.0, 0.0)], [Roi(float("nan"), 240, 100, 100)]])
    assert hands == [[], []] and nxt == [[], []] and t.landmarks.calls == 0
