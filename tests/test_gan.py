"""GANs (paper 000): shapes, conditioning, D2D-CE by hand, pose maps, exact resume, DDP on gloo, real steps,
generation and filtering. Image quality is measured by ``fingerspell gan-metrics``, not here."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import manifest_rows, need_dataset, run_cli, small_copy
from training.gan.config import CONFIG_DIR, GANConfig, load_config
from training.gan.diffaug import diff_augment
from training.gan.discriminator import Discriminator
from training.gan.generator import Generator
from training.gan.losses import d2d_ce, d_hinge, g_hinge
from training.gan.pose_maps import BONES, bones, heatmaps, pose_maps
from training.gan.sampling import load_generator, top_k_per_class, truncated_normal
from training.gan.trainer import GANTrainer
from training.hand_crops import HandCrops

TINY = dict(size=16, z_dim=8, g_ch=4, d_ch=4, embed_dim=8, spade_hidden=4, batch_size=4, d_steps=1,
            checkpoint_every=2, sample_every=1000, log_every=1, ema_start=1, device="cpu")


def synthetic_crops(n: int = 24, size: int = 16, classes=("A", "B", "C")) -> HandCrops:
    """Stand-in data for the mechanics tests (resume, DDP): coloured squares with random 'poses'."""
    rng = np.random.default_rng(0)
    labels = np.array([classes[i % len(classes)] for i in range(n)])
    images = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
    keypoints = rng.uniform(0.2, 0.8, (n, 21, 2)).astype(np.float32)
    return HandCrops(images, keypoints, np.ones(n, bool), labels, np.array(["s"] * n), np.array([""] * n),
                     "synthetic", "0" * 64)


# -- models ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [32, 64])
def test_shapes(size):
    g = Generator(size, 16, 4, "label", num_classes=5)
    d = Discriminator(size, 4, 3, num_classes=5, embed_dim=8)
    x = g(torch.randn(3, 16), torch.tensor([0, 1, 4]))
    assert x.shape == (3, 3, size, size) and x.abs().max() <= 1
    out = d(x, torch.tensor([0, 1, 4]))
    assert out["adv"].shape == (3,) and out["embed"].shape == (3, 8) and out["proxy"].shape == (3, 8)
    gp = Generator(size, 16, 4, "pose", pose_channels=20)
    dp = Discriminator(size, 4, 3 + 20)
    xp = gp(torch.randn(2, 16), torch.rand(2, 20, size, size))
    assert xp.shape == (2, 3, size, size)
    assert dp(torch.cat([xp, torch.rand(2, 20, size, size)], 1))["adv"].shape == (2,)


def test_label_conditioning_changes_the_output():
    torch.manual_seed(0)
    g = Generator(32, 16, 4, "label", num_classes=3)
    for m in g.modules():  # trained-like class embeddings (they start at zero: plain BatchNorm)
        if isinstance(m, torch.nn.Embedding):
            torch.nn.init.normal_(m.weight, std=0.5)
    g.eval()
    z = torch.randn(1, 16).repeat(2, 1)
    x = g(z, torch.tensor([0, 2]))
    assert (x[0] - x[1]).abs().mean() > 1e-3
    x_same = g(z, torch.tensor([1, 1]))
    assert torch.allclose(x_same[0], x_same[1])


def test_pose_conditioning_changes_the_output():
    torch.manual_seed(0)
    g = Generator(32, 16, 4, "pose", pose_channels=20).eval()
    z = torch.randn(1, 16).repeat(2, 1)
    kp = torch.rand(2, 21, 2) * 0.6 + 0.2
    x = g(z, pose_maps(kp, 32, "bones"))
    assert (x[0] - x[1]).abs().mean() > 1e-3
    same = pose_maps(kp[:1].repeat(2, 1, 1), 32, "bones")
    y = g(z, same)
    assert torch.allclose(y[0], y[1], atol=1e-6)


# -- losses ---------------------------------------------------------------------------------------

def test_d2d_ce_on_a_hand_computed_case():
    """Three unit embeddings, labels (0, 0, 1); tau 0.5, m_p 0.98, m_n 0.02, computed term by term."""
    s = math.sqrt(0.5)
    f = torch.tensor([[1.0, 0.0], [s, s], [0.0, 1.0]])
    v = torch.tensor([[1.0, 0.0], [1.0, 0.0], [s, s]])  # each sample's class proxy
    y = torch.tensor([0, 0, 1])
    tau, mp, mn = 0.5, 0.98, 0.02

    def term(i, negatives):
        a = min(float(f[i] @ v[i]) - mp, 0) / tau
        bs = [max(float(f[i] @ f[j]) - mn, 0) / tau for j in negatives]
        return -math.log(math.exp(a) / (math.exp(a) + sum(math.exp(b) for b in bs)))

    # sample 0 and 1 share a class, so each has only sample 2 as a negative; sample 2 has both
    expected = (term(0, [2]) + term(1, [2]) + term(2, [0, 1])) / 3
    got = float(d2d_ce(f, v, y, tau, mp, mn))
    assert got == pytest.approx(expected, rel=1e-6)
    # by hand for sample 0: a = 0 (1.0 is past the margin), b = 0 (orthogonal to sample 2): log 2
    assert term(0, [2]) == pytest.approx(math.log(2))
    # unnormalised inputs are projected onto the sphere first
    assert float(d2d_ce(3 * f, 5 * v, y, tau, mp, mn)) == pytest.approx(expected, rel=1e-6)


def test_hinge_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert float(d_hinge(real, fake)) == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert float(g_hinge(fake)) == pytest.approx(1.0)


# -- pose maps ------------------------------------------------------------------------------------

def test_heatmaps_peak_at_the_keypoints():
    size = 32
    kp = torch.rand(1, 21, 2) * 0.8 + 0.1
    maps = heatmaps(kp, size, sigma=1.0)
    assert maps.shape == (1, 21, size, size)
    for k in range(21):
        r, c = divmod(int(maps[0, k].argmax()), size)
        assert abs(c + 0.5 - kp[0, k, 0] * size) <= 0.5 and abs(r + 0.5 - kp[0, k, 1] * size) <= 0.5
        assert float(maps[0, k].max()) > 0.6


def open_hand() -> torch.Tensor:
    """An open hand: the wrist low in the middle, five fingers fanned out, four joints each."""
    kp = torch.zeros(1, 21, 2)
    kp[0, 0] = torch.tensor([0.5, 0.9])
    for f in range(5):
        angle = math.radians(-150 + 30 * f)  # thumb to the left, little finger to the right
        for j in range(4):
            r = 0.2 + 0.12 * j
            kp[0, 1 + 4 * f + j] = kp[0, 0] + r * torch.tensor([math.cos(angle), math.sin(angle)])
    return kp


def test_bones_are_drawn_between_the_right_joints():
    size = 64
    kp = open_hand()
    maps = bones(kp, size, sigma=1.0)
    assert maps.shape == (1, 20, size, size)
    for k, (i, j) in enumerate(BONES):
        mid = (kp[0, i] + kp[0, j]) / 2
        c, r = int(mid[0] * size), int(mid[1] * size)
        assert float(maps[0, k, r, c]) > 0.5, f"bone {k} ({i}-{j}) not drawn at its midpoint"
        assert int(maps[0, :, r, c].argmax()) == k, f"another bone is brighter at bone {k}'s midpoint"
        # and the bone does not reach past its joints: dark beyond its far end
        beyond = kp[0, j] + (kp[0, j] - kp[0, i]) * 0.5
        c2, r2 = int(beyond[0] * size), int(beyond[1] * size)
        if 0 <= c2 < size and 0 <= r2 < size:
            assert float(maps[0, k, r2, c2]) < 0.05
    with pytest.raises(ValueError, match="pose kind"):
        pose_maps(kp, size, "skeleton")


def test_diffaug_moves_pose_with_the_image_and_recolours_only_the_image():
    torch.manual_seed(0)
    img = torch.rand(4, 3, 16, 16)
    pose = img[:, :1].clone()  # a 'pose' channel equal to the first image channel
    torch.manual_seed(1)
    out = diff_augment(torch.cat([img, pose], 1), ("translation",))
    assert torch.equal(out[:, 0], out[:, 3])  # translated together
    torch.manual_seed(1)
    out = diff_augment(torch.cat([img, pose], 1), ("color",))
    assert torch.equal(out[:, 3:], pose) and not torch.equal(out[:, :3], img)


# -- trainer --------------------------------------------------------------------------------------

def _same_state(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("model", ["reacgan", "spade"])
def test_resume_restores_the_exact_state(tmp_path, model):
    data = synthetic_crops()
    cfg = GANConfig(model=model, steps=4, **TINY)
    straight = GANTrainer(cfg, tmp_path / "straight", data=data, progress=False)
    straight.train()
    half = GANTrainer(GANConfig(model=model, steps=2, **TINY), tmp_path / "split", data=data, progress=False)
    half.train()
    resumed = GANTrainer(cfg, tmp_path / "split", data=data, progress=False)
    assert resumed.resumed and resumed.step == 2
    resumed.train()
    for net in ("G", "D", "G_ema"):
        assert _same_state(straight.state()[net], resumed.state()[net]), net
    assert [h["d_adv"] for h in straight.history] == [h["d_adv"] for h in resumed.history]


def test_resume_refuses_a_different_model(tmp_path):
    data = synthetic_crops()
    GANTrainer(GANConfig(steps=2, **TINY), tmp_path, data=data, progress=False).train()
    with pytest.raises(ValueError, match="g_ch"):
        GANTrainer(GANConfig(steps=4, **{**TINY, "g_ch": 8}), tmp_path, data=data, progress=False)


def test_configs_load_and_reject_unknown_keys(tmp_path):
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert "lis-reacgan-cpu" in names and "lis-spade-cpu" in names
    for name in names:
        assert load_config(name).name == name
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: reacgan\nlearning_rate: 1\n")
    with pytest.raises(ValueError, match="unknown GAN config keys"):
        load_config(str(bad))
    with pytest.raises(ValueError, match="model must be"):
        GANConfig(model="stylegan")


DDP_SCRIPT = textwrap.dedent("""
    import hashlib, sys, torch, torch.distributed as dist
    from tests.test_gan import TINY, synthetic_crops
    from training.gan.config import GANConfig
    from training.gan.trainer import GANTrainer
    t = GANTrainer(GANConfig(steps=3, **TINY), sys.argv[1], data=synthetic_crops(), progress=False)
    assert t.distributed and t.world == 2
    t.train()
    h = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in t.G.module.parameters())).hexdigest()
    open(f"{sys.argv[1]}/rank{t.rank}.sha", "w").write(h)
    dist.destroy_process_group()
""")


def test_ddp_two_processes_on_gloo(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                        "29517", str(script), str(tmp_path / "run")], capture_output=True, text=True, timeout=300,
                       env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    hashes = [(tmp_path / "run" / f"rank{i}.sha").read_text() for i in (0, 1)]
    assert hashes[0] == hashes[1]  # DDP kept the replicas identical
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert ck["step"] == 3


# -- real data ------------------------------------------------------------------------------------

@pytest.mark.data
@pytest.mark.parametrize("model", ["reacgan", "spade"])
def test_real_training_steps_stay_finite_and_change_the_weights(tmp_path, model):
    src = need_dataset("lis")
    rows = [r for r in manifest_rows(src) if r["label"] in ("A", "B", "C")][::60][:24]
    small_copy(src, tmp_path / "lis", rows)
    cfg = GANConfig(model=model, dataset=str(tmp_path / "lis"), steps=3,
                    **{**TINY, "size": 32, "batch_size": 8})
    t = GANTrainer(cfg, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    assert len(t.data) >= 12 and t.classes == ["A", "B", "C"]
    before = {k: v.clone() for k, v in t.state()["G"].items()}
    t.train()
    after = t.state()["G"]
    assert all(np.isfinite(list(h.values())).all() for h in t.history)
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    assert (tmp_path / "run" / "samples.png").exists() and (tmp_path / "run" / "losses.png").exists()


# -- generation -----------------------------------------------------------------------------------

def test_truncation_bounds_the_latents():
    z = truncated_normal(500, 16, 0.5, torch.Generator().manual_seed(0))
    assert z.abs().max() <= 0.5 and z.std() > 0.2


def test_top_k_per_class_keeps_the_best_k_of_each_class():
    scores = np.array([0.1, 0.9, 0.5, 0.3, 0.8, 0.2, 0.7])
    labels = np.array(["A", "A", "A", "B", "B", "B", "C"])
    assert top_k_per_class(scores, labels, 2).tolist() == [1, 2, 3, 4, 6]


def test_generate_writes_a_balanced_labelled_folder(tmp_path):
    data = synthetic_crops()
    GANTrainer(GANConfig(steps=2, **TINY), tmp_path / "gan", data=data, progress=False).train()
    r = run_cli("generate", "--gan", str(tmp_path / "gan"), "--per-class", "5", "--labels", "A,C",
                "--truncation", "1.0", "--out", str(tmp_path / "gen"))
    assert r.returncode == 0, r.stderr
    rows = manifest_rows(tmp_path / "gen")
    assert sorted({x["label"] for x in rows}) == ["A", "C"]
    assert all(sum(x["label"] == c for x in rows) == 5 for c in "AC")
    assert all((tmp_path / "gen" / x["path"]).is_file() for x in rows)
    gen = load_generator(tmp_path / "gan")
    assert gen.classes == ["A", "B", "C"] and gen.step == 2
    r = run_cli("generate", "--gan", str(tmp_path / "gan"), "--per-class", "2", "--labels", "Q",
                "--out", str(tmp_path / "bad"))
    assert r.returncode == 2 and "unknown to this generator" in r.stderr


def test_a_corrupt_checkpoint_gives_a_clear_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    r = run_cli("generate", "--gan", str(tmp_path), "--per-class", "2", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "is not a readable checkpoint" in r.stderr


@pytest.mark.data
def test_spade_generates_from_another_datasets_poses(tmp_path):
    """Multi-source: a SPADE generator fed the hand poses of a dataset it never saw, labelled by that dataset."""
    src = need_dataset("massey")
    rows = [r for r in manifest_rows(src) if r["label"] in ("A", "B")][::20][:6]
    small_copy(src, tmp_path / "massey", rows)
    GANTrainer(GANConfig(model="spade", steps=2, **TINY), tmp_path / "gan", data=synthetic_crops(),
               progress=False).train()
    r = run_cli("generate", "--gan", str(tmp_path / "gan"), "--poses", str(tmp_path / "massey"), "--per-class", "3",
                "--out", str(tmp_path / "gen"), "--cache-dir", str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr
    out = manifest_rows(tmp_path / "gen")
    assert sorted({x["label"] for x in out}) == ["A", "B"] and len(out) == 6
    info = __import__("json").loads((tmp_path / "gen" / "generated.json").read_text())
    assert info["pose_source"] == "massey" and info["model"] == "spade"


def test_shipped_generator_round_trip_and_sha_check(tmp_path):
    """gan-export writes fp16 EMA weights + manifest; load_generator reads them back and refuses a changed file."""
    from realtime.manifest import ModelError
    from training.gan.sampling import export_generator, generate

    data = synthetic_crops(12)
    GANTrainer(GANConfig(steps=2, **TINY), tmp_path / "run", data=data, progress=False).train()
    manifest = export_generator(tmp_path / "run", tmp_path / "ship", {"fid": 1.0}, "fingerspell train gan")
    assert manifest["kind"] == "gan-generator" and manifest["labels"] == ["A", "B", "C"]
    full, shipped = load_generator(tmp_path / "run"), load_generator(tmp_path / "ship")
    a, b = generate(full, "B", 4, seed=3), generate(shipped, "B", 4, seed=3)
    assert (a - b).abs().max() < 0.05  # fp16 weights: nearly the same images
    raw = bytearray((tmp_path / "ship" / "generator.pt").read_bytes())
    raw[-100] ^= 0xFF
    (tmp_path / "ship" / "generator.pt").write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="sha256"):
        load_generator(tmp_path / "ship")
