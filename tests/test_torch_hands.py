"""``--hands torch``: MediaPipe's palm and hand-landmark nets as PyTorch modules (realtime/hands/torch_nets.py),
against ONNX Runtime on the same files: each net, the whole pipeline on real photos (same hands, landmarks
within 0.5 px), and the letters read through the recognizer. The CUDA checks skip without a GPU."""
from pathlib import Path

import numpy as np
import pytest

from helpers import HAND_FRAME, manifest_rows, need_dataset

torch = pytest.importorskip("torch", reason="the torch hand nets need PyTorch: pip install -e '.[train]'")

NETS = ("palm_detection_lite", "palm_detection_full", "hand_landmark_lite", "hand_landmark_full")


def net_and_session(name):
    import onnxruntime as ort

    from realtime.hands.onnx import hand_model_file
    from realtime.hands.torch_nets import hand_net

    path, _ = hand_model_file(name)
    return hand_net(path).eval(), ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def photo_input(size: int) -> np.ndarray:
    """A hand-like real input without the datasets: the shipped overlay screenshot, resized, RGB in 0..1."""
    import cv2

    from realtime.images import read_image

    img = read_image("docs/overlay.png")
    assert img is not None
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)[..., ::-1]
    return (img.astype(np.float32) / 255.0)[None]


@pytest.mark.parametrize("name", NETS)
def test_each_net_matches_onnxruntime(name):
    net, sess = net_and_session(name)
    size = 192 if name.startswith("palm") else 224
    x = np.concatenate([photo_input(size), np.random.default_rng(0).uniform(0, 1, (1, size, size, 3))]).astype(np.float32)
    want = sess.run(None, {"input": x})
    with torch.no_grad():
        got = net(torch.from_numpy(x))
    assert [o.name for o in sess.get_outputs()] == net.output_names
    for g, w in zip(got, want):
        assert g.shape == w.shape
        # landmarks are in pixels of the 224 crop: 1e-3 of a pixel is far below the 0.5 px asked of the pipeline
        assert float(np.abs(g.numpy() - w).max()) < 1e-3 * max(1.0, float(np.abs(w).max()))


def test_the_nets_keep_no_host_tensor_and_take_any_batch():
    """What CUDA-graph capture needs: every weight a buffer (moved by .to()), shapes folded, batch free."""
    net, _ = net_and_session("hand_landmark_lite")
    assert not list(net.parameters()) and len(list(net.buffers())) > 50
    assert all(op != "shape" for op, *_ in net.steps)
    with torch.no_grad():
        for b in (1, 3):
            out = net(torch.rand(b, 224, 224, 3))
            assert all(o.shape[0] == b for o in out)


def test_the_torch_pipeline_is_a_row_of_the_table():
    from realtime.cli import build_parser
    from realtime.hands import HAND_PIPELINES

    assert "torch" in HAND_PIPELINES and "torch-fp16" in HAND_PIPELINES
    args = build_parser().parse_args(["live", "--hands", "torch", "--device", "cpu"])
    assert args.hands == "torch"


def test_fp16_hands_on_the_cpu_are_refused_with_the_way_out():
    from realtime.backends import BackendError
    from realtime.hands import make_hands_stage

    with pytest.raises(BackendError, match="CUDA GPU only.*--hands torch on the CPU"):
        make_hands_stage("torch-fp16", device="cpu")


def test_fp16_nets_on_cuda_stay_near_onnxruntime():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to PyTorch: the fp16 hand nets run on the lent GPU")
    for name, size in (("palm_detection_lite", 192), ("hand_landmark_lite", 224)):
        net, sess = net_and_session(name)
        x = photo_input(size)
        with torch.no_grad():
            got = [g.float().cpu().numpy() for g in net.cuda().half()(torch.from_numpy(x).cuda().half())]
        for n, g, w in zip(net.output_names, got, sess.run(None, {"input": x})):
            # fp16 keeps about 3 significant digits: within 1% of each output's largest value, or 0.5
            assert float(np.abs(g - w).max()) < max(0.5, 0.01 * float(np.abs(w).max())), (name, n)


@pytest.mark.data
def test_torch_pipeline_matches_onnxruntime_on_photos():
    from realtime.hands_check import check_hands

    r = check_hands(need_dataset("massey"), limit=8, model="full", seed=3, device="cpu", candidate="torch",
                    reference="onnx", progress=False)
    assert r["images"] == 8 and r["only_reference"] == 0 and r["only_candidate"] == 0 and r["both"] >= 6
    assert r["landmark_worst_px"] < 0.5 and r["handedness_agreement"] == 1.0


@pytest.mark.data
def test_torch_hands_read_the_same_letters_as_onnx_hands():
    from realtime.images import read_image
    from realtime.pipeline import Recognizer

    root = need_dataset("massey")
    rows = [r for r in manifest_rows(root) if r["label"] in ("A", "B", "L", "V", "Y")][::7][:6]
    letters = {}
    for hands in ("onnx", "torch"):
        rec = Recognizer.build("asl-letters", static=True, hands=hands, device="cpu")
        try:
            letters[hands] = []
            for r in rows:
                _, hand, probs = rec.read(read_image(root / r["path"]))
                letters[hands].append(None if hand is None else rec.labels[int(np.argmax(probs))])
        finally:
            rec.close()
    assert letters["torch"] == letters["onnx"] and sum(x is not None for x in letters["torch"]) >= 5


def test_cuda_graph_capture_of_the_nets_matches_eager():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to PyTorch: the CUDA-graph check runs on the lent GPU")
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    net, sess = net_and_session("palm_detection_lite")
    net = net.cuda()
    x = torch.from_numpy(photo_input(192)).cuda()
    static = x.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(3):
            net(static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        out = net(static)
    static.copy_(x)
    graph.replay()
    want = sess.run(None, {"input": x.cpu().numpy()})
    for g, w in zip(out, want):
        assert float(np.abs(g.cpu().numpy() - w).max()) < 1e-3 * max(1.0, float(np.abs(w).max()))


def test_the_gpu_report_tables_come_from_the_saved_run(tmp_path):
    """docs/bench-gpu.md's tables are the table command's output on the JSON the lent GPU wrote; rewriting the page
    replaces what lies between its markers and keeps the prose around them."""
    from realtime.gpu_report import BEGIN, END, tables, write_between_markers

    text = tables("docs/bench-gpu-nvidia-h200.json")
    assert "**NVIDIA H200**" in text and "| `torch` | 16 |" in text and "| `torch-fp16` |" in text
    page = tmp_path / "page.md"
    page.write_text("# head\n\nprose\n")
    write_between_markers(page, "old")
    write_between_markers(page, text)
    body = page.read_text()
    assert body.startswith("# head\n\nprose\n") and body.count(BEGIN) == body.count(END) == 1 and "old" not in body
    assert text in Path("docs/bench-gpu.md").read_text()  # the committed page is what the command writes


def test_the_gpu_report_saves_every_finished_step(tmp_path, monkeypatch):
    """A device command cut short by its time limit still brings back the steps it finished."""
    import json

    from realtime import gpu_report

    (tmp_path / "clip.mp4").write_bytes(b"")
    seen = []

    def first(clip, device):
        return {"value": 1}

    def second(clip, device):
        seen.append(json.loads(next((tmp_path / "out").glob("bench-gpu-*.json")).read_text()))
        raise RuntimeError("the GPU went away")

    monkeypatch.setattr(gpu_report, "STEPS", (("first", first), ("second", second)))
    path = gpu_report.run(tmp_path, tmp_path / "out", device="cpu")
    assert seen[0]["steps"]["first"] == {"status": "ok", "seconds": 0.0, "result": {"value": 1}}
    report = json.loads(path.read_text())
    assert report["steps"]["second"]["status"] == "failed" and "GPU went away" in report["steps"]["second"]["result"]["error"]


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_the_palm_step_decodes_on_the_device_what_the_host_decodes(monkeypatch, device):
    """The torch engine decodes the palm detector's anchors and runs weighted NMS on the device, bringing back only
    each image's first detections: ONNX Runtime's outputs decoded on the host give the same ones, on a real hand, at
    MediaPipe's threshold and at a low one that keeps hundreds of anchors, for each number of detections kept."""
    import realtime.hands.onnx as onnx_hands
    from realtime.images import read_image

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to PyTorch: the palm step on CUDA is checked on the lent GPU")
    if device == "cuda":
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # parity: TF32 would cost more than 1e-3
    frame = read_image(HAND_FRAME)  # a real hand (W), as the demo's test camera showed it
    ref = onnx_hands.PalmModel("lite")
    for keep in (1, 4):
        mine = onnx_hands.PalmModel("lite", engine="torch", device=device, preprocess="numpy", detections=keep)
        for min_score in (0.5, 0.05):
            want, got = ref(frame, rgb=False, min_score=min_score), mine(frame, rgb=False, min_score=min_score)
            assert want and len(got) == min(keep, len(want))
            for a, b in zip(want, got):
                assert abs(a.score - b.score) < 1e-4
                np.testing.assert_allclose(a.box, b.box, atol=1e-3)
                np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)


def test_the_device_decoder_is_the_host_decoder_on_scripted_outputs():
    """Ties (saturated scores), boxes of negative size, an image with nothing above the threshold and one where
    hundreds of anchors pass: the device's weighted NMS gives the host's detections, in the host's order."""
    from realtime.hands.ssd import detections, remove_letterbox, ssd_anchors, weighted_nms
    from realtime.hands.torch_ssd import palm_decoder

    anchors = ssd_anchors()
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 8, (3, len(anchors), 18)).astype(np.float32)
    raw[:, :, 2:4] = np.abs(raw[:, :, 2:4]) + 20  # boxes 20-40 px
    raw[0, :40, 2] = -5  # negative widths: never a detection
    logits = rng.normal(-4, 3, (3, len(anchors), 1)).astype(np.float32)
    logits[0, 100:110] = 60.0  # saturated: ties at score 1.0, broken by the lowest anchor
    logits[1] = -50.0  # nothing passes
    logits[2] = rng.normal(2, 1, (len(anchors), 1))  # hundreds pass
    padding = np.array([[0.0, 0.125], [0.1, 0.0], [0.0, 0.0]])
    rows = np.concatenate([padding, np.full((3, 1), 0.5)], 1).astype(np.float32)
    with torch.no_grad():
        got = palm_decoder(4, 0.3)(torch.from_numpy(raw), torch.from_numpy(logits), torch.from_numpy(rows)).numpy()
    for b in range(3):
        want = [remove_letterbox(d, tuple(padding[b])) for d in weighted_nms(detections(raw[b], logits[b], anchors,
                                                                                       0.5), 0.3)][:4]
        found = [r for r in got[b] if r[0] > 0.5]
        assert len(found) == len(want), b
        for w, r in zip(want, found):
            assert abs(w.score - r[1]) < 1e-6
            np.testing.assert_allclose(r[2:6], w.box, atol=1e-5)
            np.testing.assert_allclose(r[6:].reshape(-1, 2), w.keypoints, atol=1e-5)


def test_crops_net_and_head_in_one_torch_step_find_what_onnx_finds():
    """The GPU path's step (crops made inside the torch module, from a canvas of every camera's frame, one copy
    back per net), run here on the CPU: the same hands as ONNX Runtime with host crops, landmarks within a pixel
    (the crops differ by OpenCV's fixed-point rounding), for two cameras of different sizes in one step."""
    from realtime.hands.onnx import OnnxHandTracker
    from realtime.images import read_image

    big = read_image(HAND_FRAME)  # a real hand (W), as the demo's test camera showed it
    small = np.ascontiguousarray(big[::2, ::2])
    ref = OnnxHandTracker("lite", max_hands=1, providers=["CPUExecutionProvider"])
    mine = OnnxHandTracker("lite", max_hands=1, engine="torch", preprocess="torch", device="cpu")
    assert mine.palm.fused and mine.landmarks.fused and mine.preprocessing == "torch on cpu"
    got, nxt = mine.step([big, small], [[], []])
    for image, hands in zip((big, small), got):
        want = ref.step([image], [[]])[0][0]
        assert len(want) == len(hands) == 1 and hands[0].image_size == (image.shape[1], image.shape[0])
        assert float(np.median(np.abs(want[0].landmarks[:, :2] - hands[0].landmarks[:, :2]))) < 1.0
    # tracking: the next step's crops come from these landmarks, with the palm detector skipped
    palm_calls = mine.palm.calls
    again, _ = mine.step([big, small], nxt)
    assert mine.palm.calls == palm_calls and [len(h) for h in again] == [1, 1]
