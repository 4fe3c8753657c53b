"""Paper 000's strategies for generated data (eq. 1-5 on scripted values), the experiment grid's pieces, a short
real run of each strategy, and the image classifier in the runtime (export, manifest checks, fusion)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import manifest_rows, need_dataset, small_copy
from test_gan_metrics import blobs
from training.image_classifier import ClassifierConfig, to_input, train_with_strategy
from training.splits import limit_per_class
from training.strategies import (
    StrategyConfig,
    mixup_batch,
    regularized_loss,
    regularizer_weight,
    soft_cross_entropy,
)
from training.strategy_experiments import Row, gain_table, grid, results_table


# -- eq. 1-3 -------------------------------------------------------------------------------------------
def test_regularizer_schedules_eq2_eq3():
    dec = [regularizer_weight(t, 0.5, 0.1, "decreasing") for t in range(4)]
    inc = [regularizer_weight(t, 0.5, 0.1, "increasing") for t in range(4)]
    assert dec == pytest.approx([0.5, 0.45, 0.405, 0.3645])
    assert inc == pytest.approx([0.5, 0.55, 0.595, 0.6355])
    assert regularizer_weight(500, 0.2, 0.1, "increasing") == pytest.approx(1.0)
    assert regularizer_weight(500, 0.2, 0.1, "decreasing") == pytest.approx(0.0)
    assert regularizer_weight(7, 0.3, 0.0, "decreasing") == pytest.approx(0.3)  # rate 0: constant
    with pytest.raises(ValueError, match="schedule"):
        regularizer_weight(1, 0.5, 0.1, "sideways")


def test_regularized_loss_eq1_on_hand_computed_values():
    lr = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    lg = torch.tensor([[0.0, 3.0]])
    yr, yg = torch.tensor([0, 1]), torch.tensor([0])
    ce_r = (np.log(1 + np.exp(-2.0)) + np.log(1 + np.exp(-1.0))) / 2
    ce_g = np.log(1 + np.exp(3.0))
    assert float(regularized_loss(lr, yr, lg, yg, 0.25)) == pytest.approx(ce_r + 0.25 * ce_g, rel=1e-6)
    assert float(regularized_loss(lr, yr, lg, yg, 0.0)) == pytest.approx(ce_r, rel=1e-6)


# -- eq. 4-5 -------------------------------------------------------------------------------------------
def _mix_inputs(n=64):
    x_real = torch.rand(n, 3, 4, 4)
    x_gen = -torch.rand(n, 3, 4, 4)  # negative: a partner from the generated set is recognisable
    y_real = torch.zeros(n, dtype=torch.long)  # class 0 real, class 2 generated
    y_gen = torch.full((n,), 2)
    return x_real, y_real, x_gen, y_gen


def test_mixup_with_synthetic_probability_one_mixes_each_real_sample_with_its_generated_partner():
    torch.manual_seed(0)
    x_real, y_real, x_gen, y_gen = _mix_inputs()
    x, y, synthetic = mixup_batch(x_real, y_real, x_gen, y_gen, 3, synthetic_prob=1.0, alpha=0.4)
    assert synthetic.all()
    a = y[:, 0]  # the real sample's weight is its class's share of the soft target (eq. 4)
    assert torch.allclose(y.sum(1), torch.ones(len(y)))
    assert torch.allclose(y[:, 2], 1 - a) and (y[:, 1] == 0).all()
    assert torch.allclose(x, a[:, None, None, None] * x_real + (1 - a[:, None, None, None]) * x_gen, atol=1e-6)
    assert 0 < a.min() and a.max() < 1 and a.std() > 0.1  # Beta draws, not a constant


def test_mixup_with_synthetic_probability_zero_mixes_real_with_real():
    torch.manual_seed(1)
    x_real, y_real, x_gen, y_gen = _mix_inputs()
    x, y, synthetic = mixup_batch(x_real, y_real, x_gen, y_gen, 3, synthetic_prob=0.0, alpha=0.4)
    assert not synthetic.any()
    assert (x >= 0).all() and torch.allclose(y[:, 0], torch.ones(len(y)))  # only real images, only real labels


def test_mixup_pairs_each_image_with_its_own_label():
    """Every image carries its class in its pixel values, so a mixed image must equal the mix its soft label says."""
    torch.manual_seed(3)
    n = 32
    x_real = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 3, 2, 2).clone()
    x_gen = x_real + n  # generated image i shows class n + i
    y_real, y_gen = torch.arange(n), torch.arange(n) + n
    x, y, synthetic = mixup_batch(x_real, y_real, x_gen, y_gen, 2 * n, synthetic_prob=0.5, alpha=0.4)
    assert torch.allclose(x[:, 0, 0, 0], y @ torch.arange(2 * n, dtype=torch.float32), atol=1e-4)
    partner = y.clone()
    partner[torch.arange(n), y_real] = 0  # what is left is the partner's share
    mixed = partner.sum(1) > 0  # (a real sample drawn as its own partner leaves nothing)
    j = partner.argmax(1)
    assert mixed[synthetic].all() and (j[synthetic] == y_gen[synthetic]).all()  # its own generated candidate
    assert (j[mixed & ~synthetic] < n).all()  # real partners are real classes
    assert synthetic.any() and (~synthetic).any()


def test_mixup_lambda_is_the_fraction_of_synthetic_partners():
    torch.manual_seed(2)
    x_real, y_real, x_gen, y_gen = _mix_inputs(4000)
    _, _, synthetic = mixup_batch(x_real, y_real, x_gen, y_gen, 3, synthetic_prob=0.3, alpha=0.4)
    assert synthetic.float().mean().item() == pytest.approx(0.3, abs=0.03)
    with pytest.raises(ValueError, match="generated candidate"):
        mixup_batch(x_real, y_real, x_gen[:10], y_gen[:10], 3, 0.5, 0.4)


def test_soft_cross_entropy_of_one_hot_targets_is_cross_entropy():
    logits = torch.randn(5, 4)
    y = torch.tensor([0, 3, 1, 1, 2])
    assert float(soft_cross_entropy(logits, F.one_hot(y, 4).float())) == pytest.approx(float(F.cross_entropy(logits, y)))


def test_strategy_config_rejects_nonsense():
    with pytest.raises(ValueError, match="strategy"):
        StrategyConfig("pretrain-twice")
    with pytest.raises(ValueError, match="lambda0"):
        StrategyConfig("regularizer", lambda0=1.5)
    with pytest.raises(ValueError, match="mixup_alpha"):
        StrategyConfig("mixup", mixup_alpha=0)


# -- reductions, filtering and the grid ----------------------------------------------------------------
def test_stratified_reduction_keeps_k_per_class_and_is_reproducible():
    labels = np.array(list("A" * 30 + "B" * 7 + "C" * 12))
    keep = limit_per_class(labels, np.arange(len(labels)), 5, seed=0)
    assert {c: int((labels[keep] == c).sum()) for c in "ABC"} == {"A": 5, "B": 5, "C": 5}
    assert keep.tolist() == limit_per_class(labels, np.arange(len(labels)), 5, seed=0).tolist()
    few = limit_per_class(labels, np.arange(len(labels)), 10, seed=0)
    assert int((labels[few] == "B").sum()) == 7  # a class with fewer keeps all of them


def test_grid_rows_and_table():
    rows = grid(["lis"], [5, None], ["reacgan"], ["pretrain", "mixup"], (False, True), seeds=(0, 1))
    assert len(rows) == 2 * 2 * (1 + 4)  # regimes x seeds x (real + 2 strategies x 2 filters)
    assert Row("lis", 5).method == "real" and Row("lis", 5, "reacgan", "pretrain", True).method == "reacgan filtered pretrain"
    assert Row("lis", None, "spade@massey", "mixup").folder == "lis/full/spade-at-massey-mixup/seed0"
    with pytest.raises(ValueError, match="REAL rows"):
        Row("lis", 5, "reacgan", "real")
    with pytest.raises(ValueError, match="source"):
        Row("lis", 5, "stylegan", "pretrain")
    fake = [{"row": {"dataset": "lis"}, "method": m, "regime": "k5", "test_acc": a, "test_signers": ["GIULIA"]}
            for m, a in [("real", 0.2), ("real", 0.3), ("reacgan pretrain", 0.5)]]
    table = results_table(fake)
    assert "| real | 25.0 ± 7.1 (2) |" in table and "| reacgan pretrain | 50.0 (1) |" in table


def test_gain_table_pairs_each_method_with_real_of_the_same_seed():
    """Seed 0: real 0.20, pretrain 0.25 (+5); seed 1: real 0.30, pretrain 0.29 (-1) -> +2.0 ± 4.2, won 1 of 2.
    A method's row without a REAL row of the same seed is left out rather than compared with another seed."""
    def r(m, seed, acc, regime="k5"):
        return {"row": {"dataset": "lis", "seed": seed}, "method": m, "regime": regime, "test_acc": acc}

    fake = [r("real", 0, 0.20), r("real", 1, 0.30), r("spade pretrain", 0, 0.25), r("spade pretrain", 1, 0.29),
            r("spade pretrain", 2, 0.90)]
    table = gain_table(fake)
    assert "| spade pretrain | +2.0 ± 4.2 (1/2) | +2.0 ± 4.2 (1/2) |" in table
    assert "real |" not in table.replace("minus real", "")


# -- a short run of each strategy -----------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["real", "pretrain", "regularizer", "mixup"])
def test_each_strategy_trains_on_blobs(tmp_path, strategy):
    x, y = blobs(20)
    xg, yg = blobs(10, seed=5)
    cfg = ClassifierConfig(arch="cnn", epochs=4, batch_size=8, lr=1e-3, flip=False)
    clf = train_with_strategy(x, y, x[::3], y[::3], ["A", "B", "C"], tmp_path, cfg,
                              StrategyConfig(strategy, pretrain_epochs=2), (xg, yg), progress=False)
    hist = json.loads((tmp_path / "history.json").read_text())
    assert len(hist) == 4 and all(np.isfinite(h["train_loss"]) for h in hist)
    assert (np.asarray(clf.labels)[clf.probabilities(to_input(x)).argmax(1)] == y).mean() > 0.8
    assert (tmp_path / "pretrain" / "best.pt").exists() == (strategy == "pretrain")
    if strategy == "regularizer":
        assert [round(h["lambda"], 4) for h in hist] == [0.5, 0.45, 0.405, 0.3645]
    if strategy != "real":
        with pytest.raises(ValueError, match="generated"):
            train_with_strategy(x, y, x, y, ["A", "B", "C"], tmp_path / "none", cfg, StrategyConfig(strategy), None,
                                progress=False)


def test_pretraining_gives_the_fine_tuning_a_head_start(tmp_path):
    """PRETRAIN starts fine-tuning from the weights learnt on generated data: its first real epoch already fits."""
    x, y = blobs(20)
    xg, yg = blobs(40, seed=7)
    cfg = ClassifierConfig(arch="cnn", epochs=1, batch_size=16, lr=1e-3, flip=False)
    first = {}
    for strategy in ("real", "pretrain"):
        train_with_strategy(x, y, x[::3], y[::3], ["A", "B", "C"], tmp_path / strategy, cfg,
                            StrategyConfig(strategy, pretrain_epochs=5), (xg, yg), progress=False)
        first[strategy] = json.loads((tmp_path / strategy / "history.json").read_text())[0]["val_loss"]
    assert first["pretrain"] < 0.5 * first["real"]


def test_a_last_batch_of_one_does_not_break_batchnorm(tmp_path):
    x, y = blobs(11, size=32)  # 33 images, batch 16: the last batch holds one image
    cfg = ClassifierConfig(arch="efficientnet_v2_t", epochs=1, batch_size=16)
    train_with_strategy(x, y, x[:6], y[:6], ["A", "B", "C"], tmp_path, cfg, StrategyConfig("real"), progress=False)
    assert (tmp_path / "best.pt").exists()


def test_resume_refuses_other_data(tmp_path):
    x, y = blobs(10)
    cfg = ClassifierConfig(arch="cnn", epochs=1, batch_size=8, flip=False, extra={"data": "lis", "per_class": None})
    train_with_strategy(x, y, x, y, ["A", "B", "C"], tmp_path, cfg, StrategyConfig("real"), progress=False)
    other = ClassifierConfig(arch="cnn", epochs=2, batch_size=8, flip=False, extra={"data": "lis", "per_class": 5})
    with pytest.raises(ValueError, match="different recipe"):
        train_with_strategy(x, y, x, y, ["A", "B", "C"], tmp_path, other, StrategyConfig("real"), progress=False)
    with pytest.raises(ValueError, match="no validation images"):
        train_with_strategy(x, y, x[:0], y[:0], ["A", "B", "C"], tmp_path / "v", cfg, StrategyConfig("real"),
                            progress=False)


def test_experiment_configs_for_sources_and_presets(tmp_path):
    from training.strategy_experiments import PRESETS, Experiment

    exp = Experiment(PRESETS["cpu"], None, tmp_path)
    assert exp.out == tmp_path / "cpu"  # a preset's rows never mix with another's
    kaggle = exp.gan_config("kaggle_asl", "spade", None)  # a source-only dataset (multi-source row)
    assert kaggle.exclude_signers == [] and kaggle.size == 32
    massey = exp.gan_config("massey", "spade", None)
    assert massey.exclude_signers == ["hand5"]
    limited = exp.gan_config("lis", "reacgan", 5)
    assert (limited.per_class, limited.steps, limited.exclude_signers) == (5, 800, ["GIULIA"])
    assert limited.name == "lis-reacgan-cpu-k5"


def test_hgan_sources_are_full_data_only_and_need_their_run(tmp_path, monkeypatch):
    from training.strategy_experiments import PRESETS, Experiment

    assert Row("lis", None, "hgan", "pretrain").folder == "lis/full/hgan-pretrain/seed0"
    with pytest.raises(ValueError, match="full-data and unfiltered only"):
        Row("lis", 5, "rendered", "mixup")
    with pytest.raises(ValueError, match="full-data and unfiltered only"):
        Row("lis", None, "hgan", "pretrain", filtered=True)
    monkeypatch.chdir(tmp_path)  # no runs/hgan here
    exp = Experiment(PRESETS["shipped"], None, tmp_path)
    with pytest.raises(FileNotFoundError, match="fingerspell train hgan --config lis-hgan-cpu"):
        exp.rendered("lis", True, ["A"], 2, 0)


def test_an_unfinished_hgan_is_refused_and_translations_of_another_step_are_made_again(tmp_path, monkeypatch):
    """The grid's H-GAN rows must not translate with a generator still training beside them, nor reuse hands an
    earlier checkpoint translated."""

    from training.hgan.config import load_config
    from training.hgan.networks import ResnetGenerator
    from training.strategy_experiments import PRESETS, Experiment

    monkeypatch.chdir(tmp_path)
    cfg = load_config("lis-c-hgan-cpu")
    run = tmp_path / "runs" / "hgan" / "lis-c-hgan-cpu"
    run.mkdir(parents=True)

    def checkpoint(step):
        g = ResnetGenerator(cfg.ngf, cfg.blocks)
        torch.save({"kind": "hgan", "config": cfg.to_dict(), "G_ema": g.state_dict(), "step": step},
                   run / "checkpoint.pt")

    exp = Experiment(PRESETS["shipped"], tmp_path / "no-datasets", tmp_path)
    checkpoint(cfg.steps - 200)
    with pytest.raises(ValueError, match=f"stopped at step {cfg.steps - 200} of {cfg.steps}"):
        exp.rendered("lis-c", True, ["A"], 2, 0)
    with pytest.raises(ValueError, match="finish it first"):
        exp.generated(Row("lis-c", None, "hgan", "regularizer"))
    checkpoint(cfg.steps)
    assert exp.finished_hgan("lis-c").step == cfg.steps
    # a cached set translated at another step is not taken: generated() goes on to make it again (here, with no
    # datasets, it fails there rather than return the stale hands)
    from training.strategy_experiments import generated_path

    stale = generated_path(exp.out, "lis-c", "full", "hgan", PRESETS["shipped"].generated_per_class, False, 0)
    stale.parent.mkdir(parents=True)
    np.savez_compressed(stale, images=np.zeros((1, 32, 32, 3), np.uint8), labels=np.array(["A"]),
                        hgan_step=np.int64(cfg.steps - 200))
    with pytest.raises(FileNotFoundError, match="dataset 'lis' not found"):
        exp.generated(Row("lis-c", None, "hgan", "regularizer"))
    np.savez_compressed(stale, images=np.zeros((1, 32, 32, 3), np.uint8), labels=np.array(["A"]),
                        hgan_step=np.int64(cfg.steps))
    images, labels = exp.generated(Row("lis-c", None, "hgan", "regularizer"))
    assert images.shape == (1, 32, 32, 3) and list(labels) == ["A"]


def test_resume_refuses_another_recipe(tmp_path):
    x, y = blobs(10)
    cfg = ClassifierConfig(arch="cnn", epochs=1, batch_size=8, flip=False)
    train_with_strategy(x, y, x, y, ["A", "B", "C"], tmp_path, cfg, StrategyConfig("real"), progress=False)
    with pytest.raises(ValueError, match="different recipe"):
        train_with_strategy(x, y, x, y, ["A", "B", "C"], tmp_path, cfg, StrategyConfig("mixup"), (x, y),
                            progress=False)


@pytest.mark.data
@pytest.mark.parametrize("strategy", ["real", "pretrain", "regularizer", "mixup"])
def test_each_strategy_on_real_lis_crops(tmp_path, strategy):
    """A short real run: EfficientNetV2 (the CPU preset) on lis hand crops, generated data from a fresh ReACGAN."""
    from training.gan.config import GANConfig
    from training.gan.sampling import generate, load_generator, to_uint8
    from training.gan.trainer import GANTrainer
    from training.hand_crops import load_hand_crops

    src = need_dataset("lis")
    rows = [r for r in manifest_rows(src) if r["label"] in ("A", "B", "C")][::50][:30]
    small_copy(src, tmp_path / "lis", rows)
    crops = load_hand_crops(tmp_path / "lis", 32, cache_dir=tmp_path / "cache", progress=False)
    gan = GANConfig(dataset=str(tmp_path / "lis"), steps=2, size=32, g_ch=8, d_ch=8, batch_size=8, embed_dim=16)
    GANTrainer(gan, tmp_path / "gan", data=crops, progress=False).train()
    g = load_generator(tmp_path / "gan")
    xg = np.concatenate([to_uint8(generate(g, c, 6, seed=i)) for i, c in enumerate("ABC")])
    yg = np.repeat(list("ABC"), 6)
    cfg = ClassifierConfig(arch="efficientnet_v2_t", epochs=2, batch_size=8)
    clf = train_with_strategy(crops.images, crops.labels, crops.images[::4], crops.labels[::4], ["A", "B", "C"],
                              tmp_path / "clf", cfg, StrategyConfig(strategy, pretrain_epochs=1), (xg, yg),
                              progress=False)
    hist = json.loads((tmp_path / "clf" / "history.json").read_text())
    assert len(hist) == 2 and all(np.isfinite(h["val_loss"]) for h in hist)
    assert clf.probabilities(to_input(crops.images[:3])).shape == (3, 3)


def test_sign_flip_p_is_exact_for_small_samples():
    from training.strategy_experiments import sign_flip_p

    assert sign_flip_p([1.0, 2.0, 3.0]) == 0.25  # only all-plus and all-minus reach |mean| 2: 2 of 8 flips
    assert sign_flip_p([1.0, -1.0]) == 1.0
    assert sign_flip_p([2.0] * 10) == pytest.approx(2 / 1024)
    # past 16 pairs it samples flips, and counts the observed pattern too: never 0
    p = sign_flip_p([2.0] * 20)
    assert 0 < p <= 3 / 100_001


def test_pooled_gain_table_pairs_by_protocol_and_seed():
    from training.strategy_experiments import pooled_gain_table

    def result(ds, method, seed, acc):
        return {"row": {"dataset": ds, "seed": seed}, "method": method, "regime": "full", "test_acc": acc}

    results = [result("lis", "real", 0, 0.60), result("lis", "hgan regularizer", 0, 0.63),
               result("massey", "real", 0, 0.70), result("massey", "hgan regularizer", 0, 0.71),
               result("massey", "hgan regularizer", 1, 0.99)]  # no real run of seed 1: not paired, left out
    row = next(l for l in pooled_gain_table(results).splitlines() if l.startswith("| hgan regularizer |"))
    assert "| lis, massey | 2 | +2.0 ± 1.4 | 2/2 | 0.500 |" in row


def test_fused_scores_reorder_the_image_columns_and_count_missing_hands_as_wrong():
    from training.fused_seeds import fused_scores, fused_seeds_table, per_signer_table

    kp_labels, im_labels = ["A", "B"], ["B", "A"]  # the image model's columns in another order
    truth = np.array(["A", "B", "B"])
    found = np.array([True, True, False])
    p_kp = np.array([[0.6, 0.4], [0.6, 0.4], [0.0, 1.0]])  # keypoints: A right, B wrong
    p_im = np.array([[0.1, 0.9], [0.9, 0.1], [0.9, 0.1]])  # image (B, A order): A right, B right
    s = fused_scores(p_kp, found, truth, kp_labels, p_im, im_labels, weight=0.5)
    assert s == {"keypoints": pytest.approx(1 / 3), "image": pytest.approx(2 / 3), "fused": pytest.approx(2 / 3)}
    assert fused_scores(p_kp, found, truth, kp_labels, p_im, im_labels, weight=0.0)["fused"] == pytest.approx(1 / 3)
    rows = [{"protocol": "lis", "test_signers": ["X"], "method": m, "seed": 0, "image_weight": 0.3, "images": 3,
             "keypoints": 0.5, "image": a, "fused": f} for m, a, f in (("real", 0.4, 0.6), ("hgan-regularizer", 0.5, 0.7))]
    line = next(l for l in fused_seeds_table(rows).splitlines() if "hgan-regularizer" in l)
    assert "| +10.0 (1/1) | +10.0 (1/1) |" in line
    assert per_signer_table(rows) == ""  # results written before the per-signer split
    for r, (x, y) in zip(rows, ((0.2, 0.8), (0.5, 0.6))):
        r["test_signers"] = ["X", "Y"]
        r["per_signer"] = {"X": {"image": x, "fused": x}, "Y": {"image": y, "fused": y}}
    lines = [l for l in per_signer_table(rows).splitlines() if "hgan-regularizer" in l]
    assert "| X | hgan-regularizer | 50.0% | 50.0% | +30.0 (1/1) | +30.0 (1/1) |" in lines[0]
    assert "| Y | hgan-regularizer | 60.0% | 60.0% | -20.0 (0/1) | -20.0 (0/1) |" in lines[1]


def test_fused_scores_keep_the_keypoint_models_no_letter_class():
    """A keypoint model with 'none' (which the image model lacks) fuses as the live FusedClassifier does."""
    from training.fused_seeds import fused_scores

    kp_labels, im_labels = ["A", "B", "none"], ["B", "A"]
    truth = np.array(["A", "none"])
    found = np.array([True, True])
    p_kp = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    p_im = np.array([[0.1, 0.9], [0.9, 0.1]])
    s = fused_scores(p_kp, found, truth, kp_labels, p_im, im_labels, weight=0.3)
    assert s == {"keypoints": 1.0, "image": 0.5, "fused": 1.0}  # the image model can never say 'none'


def test_fused_seeds_refuses_an_unknown_protocol():
    from training.fused_seeds import run_fused_seeds

    with pytest.raises(ValueError, match="unknown protocol.*lis, lis-b, lis-c"):
        run_fused_seeds("/nonexistent", protocols=("massey",))
