"""H-GAN (paper 001): renderer geometry and mirroring, network shapes at every scale, the losses on scripted
tensors, mask refinement, exact resume, a short real run that lowers the losses, translate's labelled folder.
Image quality is measured by ``fingerspell hgan-metrics``, not here."""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import manifest_rows, need_dataset, run_cli, small_copy
from training.hgan.config import CONFIG_DIR, HGANConfig, load_config
from training.hgan.data import SyntheticHands
from training.hgan.losses import cycle_loss, identity_loss, lsgan_d, lsgan_g
from training.hgan.networks import (HandCNNFeatures, PatchDiscriminator, PerceptualDiscriminator,
                                    PixelDiscriminator, ResnetGenerator)
from training.hgan.render import RenderSettings, render_hand, render_hands, source_poses
from training.hgan.trainer import HGANTrainer, refine
from training.image_classifier import SmallCNN

TINY = dict(ngf=4, ndf=4, blocks=1, batch_size=4, synthetic=16, pool_size=4, checkpoint_every=2, sample_every=1000,
            log_every=1, ema_start=1, device="cpu", lr=2e-4)


def open_hand() -> np.ndarray:
    """A right hand seen from the front, fingers spread upwards, in pixels (z: the knuckles nearer the camera)."""
    lm = np.zeros((21, 3), np.float32)
    lm[0] = (100, 180, 0)
    bases = {1: (80, 165), 5: (85, 120), 9: (100, 115), 13: (115, 120), 17: (128, 128)}
    dirs = {1: (-1.0, -0.6), 5: (-0.25, -1), 9: (0, -1), 13: (0.25, -1), 17: (0.5, -1)}
    for base, (x, y) in bases.items():
        d = np.array(dirs[base]) / np.linalg.norm(dirs[base])
        for k in range(4):
            lm[base + k, :2] = np.array([x, y]) + d * 14 * k
            lm[base + k, 2] = -2.0 * k
    return lm


def tiny_domains(n: int = 16, size: int = 32):
    lm = np.stack([open_hand() + np.random.default_rng(i).normal(0, 2, (21, 3)).astype(np.float32) for i in range(n)])
    r = render_hands(lm, 0, RenderSettings(size=size))
    syn = SyntheticHands(r["images"], r["masks"], r["keypoints"], lm, np.array(["A", "B"] * (n // 2)))
    rng = np.random.default_rng(1)
    real = SimpleNamespace(images=rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8), dataset="noise",
                           data_sha256="0" * 64)
    return real, syn


def cli(args: list[str]) -> tuple[int, str]:
    r = run_cli(*args)
    return r.returncode, r.stdout + r.stderr


def tiny_features() -> HandCNNFeatures:
    torch.manual_seed(0)
    return HandCNNFeatures(SmallCNN(3, 4).body)


# -- renderer -------------------------------------------------------------------------------------

def test_keypoints_project_where_the_real_crops_put_them_and_lie_on_the_hand():
    from realtime.crops import SquareBox

    lm = open_hand()
    img, mask, kp = render_hand(lm, np.random.default_rng(0), RenderSettings(size=64, background="plain"))
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8 and mask.shape == (64, 64)
    np.testing.assert_allclose(kp, SquareBox.around(lm[:, :2]).to_crop(lm[:, :2]), atol=1e-6)
    px = np.clip(np.round(kp * 64 - 0.5).astype(int), 0, 63)
    assert (mask[px[:, 1], px[:, 0]] > 0.5).all()  # every joint is on the drawn hand
    assert mask[:4, :4].max() == 0 and mask[:4, -4:].max() == 0  # the top corners are background
    assert 0.1 < mask.mean() < 0.6


def test_a_mirrored_pose_renders_as_the_mirror_image():
    lm = open_hand()
    mirrored = lm.copy()
    mirrored[:, 0] = 200 - mirrored[:, 0]
    _, m1, k1 = render_hand(lm, np.random.default_rng(0), RenderSettings(size=64))
    _, m2, k2 = render_hand(mirrored, np.random.default_rng(0), RenderSettings(size=64))
    np.testing.assert_allclose(k2[:, 0], 1 - k1[:, 0], atol=1e-5)
    np.testing.assert_allclose(k2[:, 1], k1[:, 1], atol=1e-5)
    a, b = m1 > 0.5, m2[:, ::-1] > 0.5
    assert (a & b).sum() / (a | b).sum() > 0.9  # the same silhouette, flipped (up to anti-aliasing)


def test_rendering_is_reproducible_per_hand_and_source_poses_keep_labels():
    lm = np.stack([open_hand()] * 3)
    whole = render_hands(lm, seed=5)
    part = render_hands(lm[1:2], seed=5)
    assert not np.array_equal(whole["images"][0], whole["images"][1])  # each hand its own tone and background
    poses, labels = source_poses(np.stack([open_hand(), open_hand()]), np.array(["A", "B"]), 50, seed=0)
    assert poses.shape == (50, 21, 3) and set(labels) <= {"A", "B"}
    wrist_to_tip = np.linalg.norm(poses[:, 12] - poses[:, 0], axis=1)
    assert np.ptp(poses[:, 12, 0] - poses[:, 0, 0]) > 5 and wrist_to_tip.min() > 30  # turned, not squashed
    assert np.array_equal(part["images"][0], render_hands(lm[1:2], seed=5)["images"][0])


def test_rendering_in_worker_processes_draws_the_same_hands():
    poses, _ = source_poses(np.stack([open_hand()]), np.array(["A"]), 60, seed=1)  # two chunks of 50 and 10
    one = render_hands(poses, seed=3, settings=RenderSettings(size=32), workers=1)
    two = render_hands(poses, seed=3, settings=RenderSettings(size=32), workers=2)
    for key in ("images", "masks", "keypoints"):
        assert np.array_equal(one[key], two[key]), key
    assert not np.array_equal(one["images"][0], one["images"][50])


def test_bad_render_settings_are_refused():
    with pytest.raises(ValueError, match="background"):
        RenderSettings(background="jungle")
    with pytest.raises(ValueError, match="multiple of 8"):
        HGANConfig(size=30)
    with pytest.raises(ValueError, match="discriminator"):
        HGANConfig(discriminator="vit")


# -- networks -------------------------------------------------------------------------------------

@pytest.mark.parametrize("blocks", [4, 6, 9])
@pytest.mark.parametrize("size", [32, 64])
def test_generator_keeps_the_image_shape_and_range(blocks, size):
    g = ResnetGenerator(ngf=8, blocks=blocks)
    assert sum(isinstance(m, torch.nn.Module) and m.__class__.__name__ == "ResnetBlock" for m in g.modules()) == blocks
    y = g(torch.rand(2, 3, size, size) * 2 - 1)
    assert y.shape == (2, 3, size, size) and y.abs().max() <= 1


@pytest.mark.parametrize("size,scales", [(32, [16, 8, 4]), (64, [32, 16, 8])])
def test_discriminator_outputs_at_every_scale(size, scales):
    x = torch.rand(2, 3, size, size) * 2 - 1
    perceptual = PerceptualDiscriminator(tiny_features(), ndf=4)
    assert [o.shape[-1] for o in perceptual(x)] == scales  # the paper's 16/8/4 patches at 32 px
    assert all(o.shape[:2] == (2, 1) for o in perceptual(x))
    (patch,) = PatchDiscriminator(4, layers=2)(x)
    assert patch.shape == (2, 1, size // 4, size // 4)
    (pixel,) = PixelDiscriminator(4)(x)
    assert pixel.shape == (2, 1, size, size)


def test_the_perceptual_features_stay_frozen_and_pass_gradients_to_the_image():
    d = PerceptualDiscriminator(tiny_features(), ndf=4)
    frozen = {k: v.clone() for k, v in d.features.state_dict().items()}
    opt = torch.optim.Adam([p for p in d.parameters() if p.requires_grad], lr=0.1)
    d.train()
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    loss = lsgan_g(d(x))
    loss.backward()
    opt.step()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not d.features.training  # batch-norm statistics never move
    for k, v in d.features.state_dict().items():
        assert torch.equal(v, frozen[k]), k


# -- losses ---------------------------------------------------------------------------------------

def test_least_squares_losses_on_scripted_outputs():
    ones, zeros = [torch.ones(2, 1, 4, 4), torch.ones(2, 1, 2, 2)], [torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 2, 2)]
    assert lsgan_d(ones, zeros).item() == 0  # a perfect discriminator
    assert lsgan_d(zeros, ones).item() == pytest.approx(2.0)  # 1/2 + 1/2 at each of two scales
    assert lsgan_g(ones).item() == 0 and lsgan_g(zeros).item() == pytest.approx(1.0)
    half = [torch.full((1, 1, 3, 3), 0.5)]
    assert lsgan_d(half, half).item() == pytest.approx(0.5 * 0.25 + 0.5 * 0.25)


def test_cycle_and_identity_losses_are_mean_absolute_error():
    a = torch.zeros(2, 3, 8, 8)
    b = a.clone()
    b[:, :, :4] = 1.0  # half the pixels differ by 1
    assert cycle_loss(b, a).item() == pytest.approx(0.5)
    assert identity_loss(a, a).item() == 0


def test_the_generator_loss_weighs_cycle_and_identity_as_configured(tmp_path):
    real, syn = tiny_domains()
    cfg = HGANConfig(**{**TINY, "discriminator": "pixel", "lambda_cycle": 10.0, "lambda_identity": 0.5})
    t = HGANTrainer(cfg, tmp_path / "run", real=real, synthetic=syn, progress=False)
    seen = {}
    orig = t.opt_g.step

    def spy():
        seen["grad"] = sum(p.grad.abs().sum().item() for p in t.G_r.parameters() if p.grad is not None)
        return orig()
    t.opt_g.step = spy
    losses = t.train_step()
    assert seen["grad"] > 0 and losses["cycle"] > 0 and losses["identity"] > 0


def test_mask_refinement_keeps_the_rendered_background():
    src, out = torch.full((1, 3, 16, 16), -1.0), torch.full((1, 3, 16, 16), 1.0)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 6:10, 6:10] = 1
    y = refine(out, src, mask)
    assert torch.equal(y[..., 0:4, 0:4], src[..., 0:4, 0:4])  # far from the hand: the rendered background
    assert torch.equal(y[..., 6:10, 6:10], out[..., 6:10, 6:10])  # on the hand: the translation
    assert torch.equal(y[..., 5, 5], out[..., 5, 5])  # one pixel of margin for the outline
    assert torch.equal(refine(out, src, None), out)


# -- training -------------------------------------------------------------------------------------

@pytest.mark.parametrize("disc", ["perceptual", "patch"])
def test_resume_gives_identical_weights(tmp_path, disc):
    real, syn = tiny_domains()
    cfg = HGANConfig(**{**TINY, "discriminator": disc, "steps": 4, "patch_layers": 2})
    straight = HGANTrainer(cfg, tmp_path / "a", real=real, synthetic=syn, features=tiny_features(), progress=False)
    straight.train()
    half = HGANTrainer(HGANConfig(**{**cfg.to_dict(), "steps": 2}), tmp_path / "b", real=real, synthetic=syn,
                       features=tiny_features(), progress=False)
    half.train()
    resumed = HGANTrainer(cfg, tmp_path / "b", real=real, synthetic=syn, features=tiny_features(), progress=False)
    assert resumed.resumed and resumed.step == 2
    resumed.train()
    for name in ("G_r", "G_s", "D_r", "D_s", "G_ema"):
        a, b = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    assert [h["cycle"] for h in straight.history] == [h["cycle"] for h in resumed.history]


def test_resume_refuses_other_settings_and_a_corrupt_checkpoint(tmp_path):
    real, syn = tiny_domains()
    cfg = HGANConfig(**{**TINY, "discriminator": "pixel", "steps": 2})
    HGANTrainer(cfg, tmp_path / "run", real=real, synthetic=syn, progress=False).train()
    with pytest.raises(ValueError, match="blocks=1"):
        HGANTrainer(HGANConfig(**{**cfg.to_dict(), "blocks": 2}), tmp_path / "run", real=real, synthetic=syn,
                    progress=False)
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        HGANTrainer(cfg, tmp_path / "run", real=real, synthetic=syn, progress=False)


def test_shipped_configs_load_and_unknown_keys_are_refused(tmp_path):
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert {"lis-hgan-cpu", "lis-hgan-gpu"} <= set(names)
    for name in names:
        assert load_config(name).name == name
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: lis\ncycle_weight: 3\n")
    with pytest.raises(ValueError, match="cycle_weight"):
        load_config(str(bad))


@pytest.mark.data
def test_a_short_real_run_lowers_the_losses_and_translate_writes_a_labelled_folder(tmp_path):
    from training.classifier_commands import read_generated

    src = need_dataset("lis")
    rows = [r for r in manifest_rows(src) if r["label"] in ("A", "B", "C")][::40][:36]
    small_copy(src, tmp_path / "lis", rows)
    cfg = HGANConfig(**{**TINY, "ngf": 8, "ndf": 8, "blocks": 2, "dataset": str(tmp_path / "lis"), "steps": 60,
                        "synthetic": 64, "batch_size": 8, "discriminator": "perceptual", "log_every": 5})
    t = HGANTrainer(cfg, tmp_path / "run", features=tiny_features(), cache_dir=tmp_path / "cache", progress=False)
    assert len(t.real.images) >= 20 and set(t.synthetic.labels) <= {"A", "B", "C"}
    t.train()
    first, last = t.history[0], t.history[-1]
    assert all(np.isfinite(list(h.values())).all() for h in t.history)
    assert last["cycle"] < first["cycle"] and last["identity"] < first["identity"]
    assert (tmp_path / "run" / "samples.png").exists() and (tmp_path / "run" / "losses.png").exists()

    out = tmp_path / "translated"
    code, text = cli(["translate", "--hgan", str(tmp_path / "run"), "--out", str(out), "--per-class", "3",
                          "--datasets", str(tmp_path), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu",
                          "--poses", str(tmp_path / "lis")])
    assert code == 0, text
    written = manifest_rows(out)
    assert len(written) == 9 and sorted({r["label"] for r in written}) == ["A", "B", "C"]
    for r in written:
        img = cv2.imread(str(out / r["path"]))
        assert img is not None and img.shape == (32, 32, 3)
        assert r["path"].startswith(r["label"] + "/")
    images, labels = read_generated(out, 32, ["A", "B", "C"])
    assert images.shape == (9, 32, 32, 3) and sorted(set(labels)) == ["A", "B", "C"]

    code, text = cli(["translate", "--hgan", str(tmp_path / "run"), "--out", str(tmp_path / "x"),
                          "--labels", "Z", "--datasets", str(tmp_path), "--cache-dir", str(tmp_path / "cache"),
                          "--poses", str(tmp_path / "lis")])
    assert code != 0 and "no poses of classes ['Z']" in text


def test_translate_refuses_a_missing_or_foreign_checkpoint(tmp_path):
    code, text = cli(["translate", "--hgan", str(tmp_path), "--out", str(tmp_path / "o")])
    assert code != 0 and "no H-GAN checkpoint" in text
    torch.save({"kind": "something else"}, tmp_path / "checkpoint.pt")
    code, text = cli(["translate", "--hgan", str(tmp_path), "--out", str(tmp_path / "o")])
    assert code != 0 and "not an H-GAN checkpoint" in text


# -- metrics (the cheap parts; the whole evaluation is 'fingerspell hgan-metrics') -----------------------------------

def test_letter_kept_checks_the_classifier_and_fits_the_crop_size():
    from realtime.manifest import weights_dir
    from training.hgan.metrics import letter_kept

    crops = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    labels = np.array(["A", "B", "C", "A", "B", "?"])
    r = letter_kept(weights_dir() / "lis-letters-image", crops, labels)
    assert r["images"] == 5 and 0 <= r["accuracy"] <= 1 and r["classifier"] == "lis-letters-image"
    assert "resized" not in r
    # a 64x64 H-GAN's crops, read by the 32x32 classifier: each 2x2 block averaged, the same reading as 32x32 crops
    big = np.repeat(np.repeat(crops, 2, axis=1), 2, axis=2)
    r64 = letter_kept(weights_dir() / "lis-letters-image", big, labels)
    assert r64["accuracy"] == r["accuracy"] and r64["resized"] == "64x64 crops area-averaged to 32x32"
    with pytest.raises(ValueError, match="smaller crops are not enlarged"):
        letter_kept(weights_dir() / "lis-letters-image", crops[:, :16, :16], labels)
    with pytest.raises(ValueError, match="not an image classifier"):
        letter_kept(weights_dir() / "lis-letters", crops, np.array(["A"] * 6))


def test_the_doc_section_is_replaced_in_place(tmp_path):
    from training.hgan.metrics import write_doc_section

    fid = {"fid": 1.0, "kid": 0.1}
    conf = {t: {p: float(t == p) for p in ("real", "rendered", "translated")} for t in ("real", "rendered", "translated")}
    pose = {"detected": 0.5, "mean_distance": None, "pck_0.05": None, "pck_0.10": None}
    m = {"config": "run-x", "step": 10, "images": 4, "real_images": 4,
         "fid_kid": {"real_vs_real": fid, "rendered": fid, "translated": fid},
         "realism": {"two_way": {"real_called_real": 1.0, "rendered_called_real": 0.0, "translated_called_real": 0.5},
                     "three_way": {"confusion": conf}},
         "pose": {"rendered": pose, "translated": pose}}
    doc = tmp_path / "hgan.md"
    doc.write_text("# H-GAN\n\nintro\n\n## run-x\n\nold figures\n\n## Later\n\nkept\n")
    write_doc_section(m, str(doc), tmp_path)
    text = doc.read_text()
    assert "old figures" not in text and "intro" in text and "## Later\n\nkept" in text
    assert text.count("## run-x") == 1 and "| translated vs real | 1.00 | 0.1000 |" in text


def test_the_gpu_training_check_times_a_config_on_stand_in_data():
    """What the lent GPU will run (training.gpu_training_check), here on the CPU with one timed step."""
    from training.gpu_training_check import step_rate

    r = step_rate("hgan", "lis-hgan-cpu", "cpu", steps=1, warmup=0)
    assert r["s_per_step"] > 0 and r["steps"] == 6000 and r["size"] == 32 and r["peak_gpu_mib"] is None
    assert r["minutes_for_all_steps"] == pytest.approx(r["s_per_step"] * 6000 / 60, abs=0.1)


def test_the_letter_metric_needs_a_classifier_of_the_hgans_own_data():
    """An H-GAN of massey (ASL) is not scored by the LIS classifier: its letters are another alphabet's. And the
    shipped lis-letters-image learned from lis-hgan-cpu's own hands, so it must not grade that H-GAN."""
    from realtime.manifest import weights_dir
    from training.hgan.metrics import _classifier_training

    training = _classifier_training(weights_dir() / "lis-letters-image")
    assert training["data"] == ["lis"]
    assert training["generated"]["generator"] == "lis-hgan-cpu"


def test_translate_records_the_generator_command_the_run_wrote(tmp_path):
    from training.hgan.commands import COMMAND_FILE, generator_command

    assert "inferred" in generator_command(tmp_path, "lis-hgan-cpu")
    (tmp_path / COMMAND_FILE).write_text("fingerspell train hgan --config lis-hgan-cpu --steps 10\n")
    assert generator_command(tmp_path, "lis-hgan-cpu") == "fingerspell train hgan --config lis-hgan-cpu --steps 10"


def test_classifier_manifest_says_how_its_generated_images_were_made(tmp_path):
    import json

    from export.image_export import generated_summary

    assert generated_summary(None) is None
    assert generated_summary(tmp_path / "gone") == {"folder": str(tmp_path / "gone")}
    (tmp_path / "generated.json").write_text(json.dumps({
        "model": "hgan", "config": {"name": "lis-hgan-cpu", "exclude_signers": ["GIULIA"]}, "per_class": 50,
        "seed": 0, "images": 1100, "command": "fingerspell translate --hgan runs/hgan/lis-hgan-cpu --per-class 50",
        "generator_command": "fingerspell train hgan --config lis-hgan-cpu"}))
    s = generated_summary(tmp_path)
    assert s["generator"] == "lis-hgan-cpu" and s["generator_held_out"] == ["GIULIA"]
    assert s["command"].startswith("fingerspell translate") and s["generator_command"].endswith("lis-hgan-cpu")
