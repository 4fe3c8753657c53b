"""J2S (paper 003): model shapes, the polar layer against the feature code, the losses, training, export."""
import numpy as np
import pytest
import torch

from helpers import need_dataset
from realtime.features import j2s_polar
from training.io import CheckpointError
from training.j2s_loss import DynamicWeighting, StaticWeighting, masked_l2
from training.j2s_model import BACKBONES, J2S, J2SConfig, PolarConversion


@pytest.mark.parametrize("backbone", ["tiny", "small", "paper64", "paper"])
def test_shapes(backbone):
    s = BACKBONES[backbone].input_size
    model = J2S(J2SConfig(22, backbone)).eval()
    with torch.no_grad():
        kp, logits = model(torch.zeros(2, 3, s, s))
    assert kp.shape == (2, 21, 2) and logits.shape == (2, 22)
    if backbone == "paper":  # section 4.1: FC6's input is 256 x 6 x 6 for a 256 x 256 image
        assert model.regressor.head[1].in_features == 256 * 6 * 6
    if backbone == "small":
        assert isinstance(model.classifier.norm, torch.nn.BatchNorm1d)  # BatchNorm between polar and classifier


def test_polar_layer_equals_the_feature_code():
    rng = np.random.default_rng(0)
    size = 64
    kp = rng.uniform(0, 1, (50, 21, 2)).astype(np.float32)
    kp[3, 7, 0] = kp[3, 0, 0]  # dx == 0: +-pi/2 exactly
    present = rng.random(50) > 0.3
    mean_wrist = (0.47, 0.71)
    want = j2s_polar(np.concatenate([kp * size, np.zeros((50, 21, 1))], -1), (size, size), present, mean_wrist)
    got = PolarConversion(mean_wrist)(torch.from_numpy(kp), torch.from_numpy(present)).numpy()
    assert got.shape == (50, 42)
    np.testing.assert_allclose(got, want.reshape(50, 42), atol=2e-6)
    # with every wrist present the mean wrist plays no part
    all_in = j2s_polar(np.concatenate([kp * size, np.zeros((50, 21, 1))], -1), (size, size))
    np.testing.assert_allclose(PolarConversion((0.1, 0.1))(torch.from_numpy(kp)).numpy(), all_in.reshape(50, 42),
                               atol=2e-6)


def test_polar_layer_gradient_is_finite_at_the_wrist():
    kp = torch.rand(4, 21, 2, requires_grad=True)
    PolarConversion()(kp).sum().backward()
    assert torch.isfinite(kp.grad).all()


def test_masked_loss_ignores_missing_points():
    pred = torch.tensor([[[0.5, 0.5]] * 21, [[0.2, 0.2]] * 21])
    target = torch.tensor([[[0.5, 0.7]] * 21, [[0.0, 0.0]] * 21])
    mask = torch.zeros(2, 21, dtype=torch.bool)
    mask[0, :3] = True  # image 0: three points present; image 1: no hand found
    loss = masked_l2(pred, target, mask)
    assert loss.item() == pytest.approx(3 * 0.2 ** 2)  # summed over present points, averaged over images with any
    target[1] = float("nan")
    target[0, 3:] = 123.0  # whatever sits in the missing points changes nothing
    assert masked_l2(pred, target, mask).item() == pytest.approx(loss.item())
    pred.requires_grad_(True)
    masked_l2(pred, target, mask).backward()
    assert torch.all(pred.grad[1] == 0) and torch.all(pred.grad[0, 3:] == 0) and torch.any(pred.grad[0, :3] != 0)


def test_static_weighting_is_eq_4():
    w = StaticWeighting(0.3)
    assert w(torch.tensor(2.0), torch.tensor(10.0)).item() == pytest.approx(0.3 * 2 + 0.7 * 10)


def test_dynamic_weights_follow_eq_6():
    alpha = 0.8
    w = DynamicWeighting(alpha)
    w.start_epoch()
    script = [(2.0, 4.0), (1.0, 2.0), (0.5, 6.0)]
    got = [w.weights(torch.tensor(r), torch.tensor(c)) for r, c in script]
    want = [((r / 2.0) ** alpha, (c / 4.0) ** alpha) for r, c in script]  # ratios to the epoch's first batch
    np.testing.assert_allclose(got, want)
    w.start_epoch()  # a new epoch takes a new first batch
    assert w.weights(torch.tensor(3.0), torch.tensor(3.0)) == (1.0, 1.0)
    assert w.weights(torch.tensor(1.5), torch.tensor(6.0)) == pytest.approx((0.5 ** alpha, 2.0 ** alpha))
    total = w(torch.tensor(1.5), torch.tensor(6.0))
    assert total.item() == pytest.approx(0.5 ** alpha * 1.5 + 2.0 ** alpha * 6.0)


def test_dynamic_weights_are_capped():
    from training.j2s_loss import MAX_DYNAMIC_WEIGHT

    w = DynamicWeighting(1.0)
    w.start_epoch()
    w.weights(torch.tensor(0.01), torch.tensor(0.1))
    assert w.weights(torch.tensor(1.0), torch.tensor(0.2)) == (MAX_DYNAMIC_WEIGHT, 2.0)  # 100x spike -> capped


def test_augmentation_moves_keypoints_with_the_image():
    from training.j2s_data import CropAugment

    img = np.zeros((1, 64, 64, 3), np.uint8)
    img[0, 20, 40] = 255  # a bright dot at x=40, y=20
    kp = np.tile(np.array([[40.5 / 64, 20.5 / 64]], np.float32), (1, 21, 1))
    aug = CropAugment(scale=0.2, shift=0.1, rotate_deg=30, hflip=0.5)
    rng = np.random.default_rng(3)
    for _ in range(10):
        out, kp2 = aug(img, kp, rng)
        y, x = np.unravel_index(out[0, :, :, 0].argmax(), (64, 64))
        assert abs(x + 0.5 - kp2[0, 0, 0] * 64) <= 1.0 and abs(y + 0.5 - kp2[0, 0, 1] * 64) <= 1.0


def test_export_matches_pytorch(tmp_path):
    from export.j2s_export import export_j2s_onnx

    torch.manual_seed(0)
    model = J2S(J2SConfig(5, "tiny")).eval()
    x = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    err = export_j2s_onnx(model, tmp_path / "j2s.onnx", list("ABCDE"), {"kind": "j2s"}, x)
    assert err < 1e-4
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "j2s.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["keypoints", "probs"]
    kp, probs = sess.run(None, {"image": x[:1]})  # batch size is dynamic
    assert kp.shape == (1, 21, 2) and probs.shape == (1, 5)


def _small_data(tmp_path):
    """About 500 real lis images of four signers (GIULIA held out) in a folder of their own, so the test
    extracts their keypoints itself (a few seconds) instead of needing the whole dataset's cache."""
    from helpers import manifest_rows, small_copy
    from training.train_j2s import J2STrainConfig, prepare

    lis = need_dataset("lis")
    rows = [r for r in manifest_rows(lis) if r["signer"] in ("ANTONIA", "FATIMA", "MIKE", "GIULIA")][::9]
    root = small_copy(lis, tmp_path / "lis", rows)
    cfg = J2STrainConfig(data=str(root), out=str(tmp_path / "run"), split="signer", backbone="tiny", epochs=4,
                         step_size=3, batch_size=64, threads=1, lr=0.01, alpha=0.5, cache_dir=str(tmp_path / "cache"))
    return cfg, prepare(cfg, progress=False)


@pytest.mark.data
def test_real_training_lowers_the_loss_and_resumes_exactly(tmp_path):
    from dataclasses import replace

    from training.train_j2s import train_j2s

    cfg, data = _small_data(tmp_path)
    assert data.crops.mask[data.train].any(1).mean() > 0.9  # MediaPipe ground truth for most training images
    full = train_j2s(cfg, progress=False, data=data)
    hist = full["final_val"]
    import json

    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[-1]["train_reg"] < history[0]["train_reg"]
    assert history[-1]["train_cls"] < history[0]["train_cls"]
    assert np.isfinite(hist["val_epe_median"])
    for f in ("model.pt", "metrics.json", "loss_curves.png", "confusion_matrix.png", "pck.png"):
        assert (tmp_path / "run" / f).is_file()

    class Killed(Exception):
        pass

    def kill(epoch):
        if epoch == 1:
            raise Killed

    cfg2 = replace(cfg, out=str(tmp_path / "killed"))
    with pytest.raises(Killed):
        train_j2s(cfg2, progress=False, data=data, on_epoch_end=kill)
    train_j2s(cfg2, progress=False, data=data)  # resumes from epoch 2
    a = torch.load(tmp_path / "run" / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "killed" / "model.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(CheckpointError, match="different configuration"):
        train_j2s(replace(cfg2, lr=0.5), progress=False, data=data)
