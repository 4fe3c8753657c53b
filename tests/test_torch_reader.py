"""The letter read inside the torch hands stage's landmark step (realtime/torch_reader.py): the features in torch
equal the numpy ones, the landmarks projected on the device equal the host's, and a recognizer or several streams
that read on the device give the same probabilities as the host path (features and classifier as their own
stages). The CUDA check skips without a GPU."""
import numpy as np
import pytest

from helpers import manifest_rows, need_dataset

torch = pytest.importorskip("torch", reason="the device reader is a torch module: pip install -e '.[train]'")


def random_hands(n: int, seed: int = 0) -> np.ndarray:
    """Hand-like landmarks in pixels: a wrist, 20 joints around it, and a few awkward cases (a joint straight above
    the wrist: dx = 0; a joint on the wrist)."""
    rng = np.random.default_rng(seed)
    lm = rng.uniform(100, 500, (n, 1, 3)) + rng.normal(0, 60, (n, 21, 3))
    lm[:, :, 2] = rng.normal(0, 20, (n, 21))
    lm[0, 8, 0] = lm[0, 0, 0]  # dx = 0 for the index tip
    lm[1, 4] = lm[1, 0]  # the thumb tip on the wrist
    return lm.astype(np.float32)


@pytest.mark.parametrize("parts", [("polar_scaled", "cart_scaled"), ("polar_scaled", "cart_scaled", "geometry"),
                                   ("j2s_polar",), ("geometry", "j2s_polar", "cart_scaled")])
@pytest.mark.parametrize("canonical", [True, False])
def test_torch_features_equal_the_numpy_features(parts, canonical):
    from realtime.features import FeatureSpec
    from realtime.torch_features import torch_features

    spec = FeatureSpec(parts=parts, canonical=canonical, mean_wrist=(0.5, 0.6) if "j2s_polar" in parts else None)
    lm = random_hands(64)
    left = np.arange(64) % 3 == 0
    sizes = np.where(np.arange(64)[:, None] % 2 == 0, [640.0, 480.0], [1280.0, 720.0])
    want = spec.compute(lm, left, sizes)
    with torch.no_grad():
        got = torch_features(spec)(torch.from_numpy(lm), torch.from_numpy(left), torch.from_numpy(sizes)).numpy()
    assert got.shape == want.shape == (64, spec.dim)
    assert np.abs(got - want).max() < 1e-5


def test_a_left_hands_joint_a_hair_from_the_wrist_keeps_its_side():
    """Mirroring a left hand (x -> W - x) in float32 would round a joint 1e-5 px right of the wrist onto it and turn
    its j2s_polar angle from -1/4 to +1/4; the device mirrors the wrist-relative x instead, as exact as the host."""
    from realtime.features import FeatureSpec
    from realtime.torch_features import torch_features

    spec = FeatureSpec(parts=("j2s_polar", "polar_scaled"))
    lm = random_hands(2, seed=3)
    lm[:, 0, 0] = 1500.0
    lm[:, 8, 0] = np.float32(1500.0) + np.float32(1.2e-4)  # the next float32 above 1500, right of the wrist
    lm[:, 8, 1] = lm[:, 0, 1] - 50.0
    left, sizes = np.array([True, False]), np.full((2, 2), [1920.0, 1080.0])
    want = spec.compute(lm, left, sizes)
    with torch.no_grad():
        got = torch_features(spec)(torch.from_numpy(lm), torch.from_numpy(left), torch.from_numpy(sizes)).numpy()
    assert np.abs(got - want).max() < 1e-5


def test_the_shipped_models_features_on_the_device():
    from realtime.manifest import Manifest, resolve_model
    from realtime.torch_features import torch_features

    for model in ("asl-letters", "lis-letters"):
        spec = Manifest.load(resolve_model(model)).features
        lm, left, sizes = random_hands(8, seed=1), np.array([True, False] * 4), np.full((8, 2), [640.0, 480.0])
        with torch.no_grad():
            got = torch_features(spec)(torch.from_numpy(lm), torch.from_numpy(left), torch.from_numpy(sizes))
        assert np.abs(got.numpy() - spec.compute(lm, left, sizes)).max() < 1e-5, model


def test_world_landmark_features_stay_on_the_host():
    from realtime.features import FeatureSpec
    from realtime.torch_features import torch_features

    with pytest.raises(ValueError, match="world landmarks are computed on the host"):
        torch_features(FeatureSpec(points="world"))


def test_landmarks_projected_on_the_device_equal_the_host_projection():
    from realtime.hands.roi import keep_aspects, project_landmarks_many
    from realtime.torch_crops import place_rows, project_on_device

    rng = np.random.default_rng(2)
    rois = np.column_stack([rng.uniform(100, 1800, 16), rng.uniform(100, 1000, 16), rng.uniform(50, 400, 16),
                            rng.uniform(50, 400, 16), rng.uniform(-np.pi, np.pi, 16)])
    padded, padding = keep_aspects(rois, (224, 224))
    raw = rng.uniform(0, 224, (16, 21, 3)).astype(np.float32)
    want = project_landmarks_many(raw, rois, (224, 224), padding)
    got = project_on_device(torch.from_numpy(raw), torch.from_numpy(place_rows(rois, padding, np.full((16, 2), 1920.0))),
                            224).numpy()
    assert np.abs(got - want).max() < 2e-3  # float32 on frames 1920 pixels wide: a few 1e-4 of a pixel


def test_what_keeps_the_classifier_on_the_host_is_said():
    from realtime.classifier import OnnxClassifier
    from realtime.pipeline import PipelineOptions
    from realtime.torch_reader import device_reader, why_not_fused

    torch_cls = OnnxClassifier("asl-letters", device="cpu", backend="torch")
    ort_cls = OnnxClassifier("asl-letters", device="cpu")
    assert why_not_fused(PipelineOptions(hands="torch", backend="torch", device="cpu"), torch_cls) is None
    assert device_reader(PipelineOptions(hands="torch", backend="torch", device="cpu"), torch_cls) is not None
    assert device_reader(PipelineOptions(hands="torch", backend="torch", device="cpu", fuse=False), torch_cls) is None
    assert "--no-fuse" in why_not_fused(PipelineOptions(hands="torch", backend="torch", fuse=False), torch_cls)
    assert "--hands onnx" in why_not_fused(PipelineOptions(hands="onnx", device="cpu"), torch_cls)
    assert "--backend torch" in why_not_fused(PipelineOptions(hands="torch", device="cpu"), ort_cls)
    assert "photos" in why_not_fused(PipelineOptions(hands="torch", backend="torch", static=True), torch_cls)
    assert "fp16" in why_not_fused(PipelineOptions(hands="torch-fp16", backend="torch"), torch_cls)


def test_a_classifier_swapped_in_later_reads_on_the_host():
    """A demo session swaps a calibrated classifier into a running recognizer: the hands' device readings, made with
    the classifier it was built with, must then be ignored."""
    from realtime.classifier import OnnxClassifier
    from realtime.pipeline import Recognizer

    rec = Recognizer.build("asl-letters", hands="torch", backend="torch", device="cpu")
    try:
        assert rec.reads_in_hands_step
        rec.classifier = OnnxClassifier("asl-letters", device="cpu")
        assert not rec.reads_in_hands_step
    finally:
        rec.close()


def test_a_reader_is_refused_where_it_cannot_run():
    from realtime.hands import make_hands_stage

    with pytest.raises(ValueError, match="video tracker of --hands torch only"):
        make_hands_stage("onnx", device="cpu", reader=object())
    with pytest.raises(ValueError, match="video tracker of --hands torch only"):
        make_hands_stage("torch", static=True, device="cpu", reader=object())


def spelling_frames(n_letters: int = 4, per_letter: int = 6) -> list[np.ndarray]:
    """Massey photos of a few letters on webcam-sized frames, each held for a few frames, with an empty frame
    after each letter (the tracker loses the hand and finds it again)."""
    from helpers import place_on_canvas
    from realtime.images import read_image

    root = need_dataset("massey")
    rows = [r for r in manifest_rows(root) if r["label"] in ("A", "L", "V", "Y") and r["signer"] == "hand1"][::5]
    frames = []
    for r in rows[:n_letters]:
        frames += [place_on_canvas(read_image(root / r["path"]))] * per_letter + [np.zeros((480, 640, 3), np.uint8)]
    return frames


def read_frames(frames, fuse: bool, device: str = "cpu"):
    from realtime.pipeline import Recognizer

    rec = Recognizer.build("asl-letters", hands="torch", backend="torch", device=device, fuse=fuse, redetect_after=0)
    try:
        assert rec.reads_in_hands_step == fuse
        out = []
        for f in frames:
            hands, hand, probs = rec.read(f)
            assert hand is None or (hand.reading is not None) == fuse
            out.append(None if hand is None else (hand.landmarks.copy(), np.array(probs)))
        return out
    finally:
        rec.close()


@pytest.mark.data
def test_the_letter_read_in_the_landmark_step_equals_the_host_path():
    frames = spelling_frames()
    fused, host = read_frames(frames, True), read_frames(frames, False)
    assert [x is None for x in fused] == [x is None for x in host]
    both = [(a, b) for a, b in zip(fused, host) if a is not None]
    assert len(both) >= 16
    for (lm_a, p_a), (lm_b, p_b) in both:
        assert np.abs(lm_a - lm_b).max() < 1e-3
        assert np.abs(p_a - p_b).max() < 1e-5 and p_a.argmax() == p_b.argmax()


@pytest.mark.data
def test_streams_read_in_the_landmark_step_as_on_the_host():
    from realtime.pipeline import PipelineOptions
    from realtime.streams import MultiStreamRecognizer

    frames = spelling_frames(3, 3)
    results = {}
    for fuse in (True, False):
        multi = MultiStreamRecognizer(2, PipelineOptions(hands="torch", backend="torch", device="cpu", fuse=fuse))
        try:
            assert getattr(multi.tracker, "reads") == fuse
            results[fuse] = [multi.process([f, frames[-1 - i]], t=i / 15) for i, f in enumerate(frames)]
        finally:
            multi.close()
    read = 0
    for a_step, b_step in zip(results[True], results[False]):
        for a, b in zip(a_step, b_step):
            assert a.letter == b.letter and abs(a.confidence - b.confidence) < 1e-5
            read += a.hand is not None and a.hand.reading is not None
    assert read >= 10


@pytest.mark.data
def test_the_fused_step_on_cuda_reads_as_the_host_path_on_the_cpu(monkeypatch):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to PyTorch: the fused step's CUDA graph runs on the lent GPU")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    frames = spelling_frames()
    gpu, cpu = read_frames(frames, True, "cuda"), read_frames(frames, False, "cpu")
    assert [x is None for x in gpu] == [x is None for x in cpu]
    for a, b in zip(gpu, cpu):
        if a is not None:
            assert np.abs(a[0] - b[0]).max() < 0.5 and np.abs(a[1] - b[1]).max() < 1e-3
