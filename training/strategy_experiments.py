"""Paper 000's experiments on our data: do GAN-generated hands help an image classifier, and how best to use them?

One *row* is one classifier run: a dataset, a training-set size (K real images per class, or all), a source of
generated images (none, ReACGAN, SPADE, or SPADE trained on another dataset and fed this one's poses; or hands
rendered from turned and mirrored poses, translated by H-GAN or not), one of
the four strategies, filtered or not, and a seed. ``fingerspell train classifier-grid`` runs a grid of rows
(each resumable, skipped when its ``result.json`` exists) and writes the tables and figures of
``docs/strategies.md``.

Protocol (what the paper did, where our data allows):
- test: whole signers held out (signer-independent), the same for every row of a dataset;
- limited data: K images per class drawn once (stratified, seed 0) from the other signers; the GANs are
  retrained on exactly those images, and SPADE draws its poses from them; validation (early stopping only) is
  another 10 per class of the same signers;
- seeds change the classifier's initialisation, batches and generated samples, not the K images: the spread
  over seeds is the training noise, not the luck of the draw of K;
- filtering keeps the top-K of twice as many generated images, scored by the REAL row's classifier of the
  same data and seed (a classifier trained on real data, as §3.1.4; in the limited rows it saw only K images).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from training.image_classifier import ClassifierConfig, ImageClassifier, held_out_report, train_with_strategy
from training.splits import limit_per_class, stratified_indices
from training.strategies import STRATEGIES, StrategyConfig


@dataclass(frozen=True)
class Preset:
    """How big everything is. ``cpu`` fits the limited-data grid into a session on 2 cores."""

    name: str
    size: int  # crop side, pixels
    arch: str
    batch_size: int
    limited_steps: int  # optimizer steps of a limited-data run (its epochs follow from K)
    full_epochs: int
    pretrain_epochs: int
    generated_per_class: int
    gan_steps: int  # steps of a GAN retrained on a limited set
    val_per_class: int = 10
    lr: float = 1e-4  # Adam's learning rate (the paper's, constant)
    cosine: bool = False  # decay it to zero over the epochs
    gan_preset: str | None = None  # whose full-data GANs to use (default: this preset's own)


PRESETS = {
    "cpu": Preset("cpu", 32, "efficientnet_v2_t", 32, limited_steps=600, full_epochs=12, pretrain_epochs=10,
                  generated_per_class=50, gan_steps=800),
    "gpu": Preset("gpu", 64, "efficientnet_v2_s", 64, limited_steps=3000, full_epochs=40, pretrain_epochs=20,
                  generated_per_class=500, gan_steps=10000),
    # the recipe of the shipped lis-letters-image (lr 1e-3 decayed by cosine: converged in 12 epochs), with the
    # cpu preset's full-data GANs (weights/lis-reacgan-cpu): paper 000's question on the model users get
    "shipped": Preset("shipped", 32, "efficientnet_v2_t", 32, limited_steps=600, full_epochs=12, pretrain_epochs=10,
                      generated_per_class=50, gan_steps=800, lr=1e-3, cosine=True, gan_preset="cpu"),
}


@dataclass(frozen=True)
class DatasetSpec:
    crop: str  # hand: framed by the landmarks; whole: the photo (gloved lsa16, where detection often fails)
    test_signers: tuple[str, ...]
    folder: str | None = None  # the dataset's folder when the protocol's name differs (default: the name)


DATASETS = {
    "lis": DatasetSpec("hand", ("GIULIA",)),
    # a second lis protocol, so that a choice made on lis rests on more than one person: three signers drawn
    # by sorted(np.random.default_rng(0).choice(the ten signers but GIULIA, sorted, 3, replace=False))
    "lis-b": DatasetSpec("hand", ("IBRAHIM", "KENZA", "NOOR"), folder="lis"),
    # a third, for the confirmatory H-GAN test written down before it ran (docs/hgan-confirmatory.md): three of the
    # seven signers neither lis nor lis-b holds out: sorted(np.random.default_rng(0).choice(those seven, sorted, 3,
    # replace=False))
    "lis-c": DatasetSpec("hand", ("GIANLUCA", "HUZAIFA", "MIKE"), folder="lis"),
    "lsa16": DatasetSpec("whole", ("subject9", "subject10")),
    "massey": DatasetSpec("hand", ("hand5",)),
}
SOURCE_ONLY = {"kaggle_asl": DatasetSpec("hand", ())}  # GAN sources only: one signer, no test split of its own
SOURCES = ("none", "reacgan", "spade", "spade@massey", "spade@kaggle_asl", "hgan", "rendered")
RENDERED_SOURCES = ("hgan", "rendered")  # paper 001: hands rendered from turned poses, translated by H-GAN or not


@dataclass(frozen=True)
class Row:
    dataset: str
    per_class: int | None  # None: all training images
    source: str = "none"  # see SOURCES; "spade@X": SPADE trained on dataset X, fed this dataset's poses
    strategy: str = "real"
    filtered: bool = False
    seed: int = 0
    schedule: str = "decreasing"  # lambda(t) of REGULARIZER and MIXUP

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {self.dataset!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if (self.strategy == "real") != (self.source == "none") or (self.filtered and self.strategy == "real"):
            raise ValueError(f"{self}: REAL rows have no generated source; other strategies need one")
        if self.source in RENDERED_SOURCES and (self.per_class is not None or self.filtered):
            raise ValueError(f"{self}: the H-GAN sources are full-data and unfiltered only (the H-GAN learned from "
                             f"every real training crop)")

    @property
    def regime(self) -> str:
        return "full" if self.per_class is None else f"k{self.per_class}"

    @property
    def method(self) -> str:
        if self.strategy == "real":
            return "real"
        schedule = f" ({self.schedule})" if self.strategy in ("regularizer", "mixup") and self.schedule != "decreasing" else ""
        return f"{self.source} {'filtered ' if self.filtered else ''}{self.strategy}{schedule}"

    @property
    def folder(self) -> str:
        name = self.method.replace(" (", "-").replace(")", "").replace(" ", "-").replace("@", "-at-")
        return f"{self.dataset}/{self.regime}/{name}/seed{self.seed}"


def grid(datasets, regimes, sources, strategies, filtered=(False,), seeds=(0, 1, 2), schedule="decreasing") -> list[Row]:
    """Every combination, with one REAL row per dataset, regime and seed. ``regimes``: K values or None."""
    rows = []
    for ds in datasets:
        for k in regimes:
            for seed in seeds:
                rows.append(Row(ds, k, seed=seed))
                for src in sources:
                    for strat in strategies:
                        for f in filtered:
                            if src != "none" and strat != "real":
                                rows.append(Row(ds, k, src, strat, f, seed, schedule))
    return rows


def held_out_split(crops, test_signers, per_class: int | None = None, val_per_class: int = 10):
    """(train, val, test) indices: the test signers held out; from the others, all images (90/10 stratified) or
    K per class (seed 0, the draw the limited-data GANs train on) plus ``val_per_class`` more for validation."""
    test = np.flatnonzero(np.isin(crops.signers, list(test_signers)))
    pool = np.flatnonzero(~np.isin(crops.signers, list(test_signers)))
    if per_class is None:
        tr, va = stratified_indices(crops.labels[pool], (0.9, 0.1), seed=0)
        return pool[tr], pool[va], test
    train = limit_per_class(crops.labels, pool, per_class, seed=0)
    return train, limit_per_class(crops.labels, np.setdiff1d(pool, train), val_per_class, seed=1), test


def generated_path(out, dataset: str, regime: str, source: str, n: int, filtered: bool, seed: int) -> Path:
    """Where the grid caches a row's generated set (one per GAN, count, filter and seed)."""
    return Path(out, "generated", f"{dataset}-{regime}-{source}-n{n}{'-top' if filtered else ''}-seed{seed}.npz")


def _same_data(a, b) -> bool:
    """Two GAN configs that train on the same images (held-out signers included) with the same model."""
    keys = ("model", "dataset", "crop", "size", "labels", "exclude_signers", "per_class", "seed")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


class Experiment:
    """Runs rows, sharing data, GANs and generated sets between them; everything lands under ``out``."""

    def __init__(self, preset: Preset, datasets_root, out="runs/strategies", cache_dir=None, device="cpu",
                 strategy_defaults: StrategyConfig | None = None, progress: bool = True, rate_per_run: bool = True):
        self.preset, self.root, self.out = preset, datasets_root, Path(out) / preset.name
        self.rate_per_run = rate_per_run  # lambda's rate = 2 / epochs: it moves as far in every regime
        self.cache_dir, self.device, self.progress = cache_dir, device, progress
        self.strategy_defaults = strategy_defaults or StrategyConfig()
        self._crops: dict = {}

    # -- data -----------------------------------------------------------------------------------------
    def crops(self, dataset: str):
        if dataset not in self._crops:
            from training.gan.trainer import resolve_dataset
            from training.hand_crops import load_hand_crops

            folder = DATASETS[dataset].folder or dataset
            self._crops[dataset] = load_hand_crops(resolve_dataset(folder, self.root), self.preset.size,
                                                   DATASETS[dataset].crop, cache_dir=self.cache_dir,
                                                   progress=self.progress)
        return self._crops[dataset]

    def split(self, dataset: str, per_class: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(train, val, test) indices into ``crops(dataset)``; the K-per-class draw is the GAN's own."""
        test_signers = DATASETS[dataset].test_signers
        train, val, test = held_out_split(self.crops(dataset), test_signers, per_class, self.preset.val_per_class)
        if not len(test):
            raise ValueError(f"{dataset}: none of the test signers {test_signers} is in the data")
        return train, val, test

    # -- generators -----------------------------------------------------------------------------------
    def gan_config(self, dataset: str, model: str, per_class: int | None):
        from training.gan.config import CONFIG_DIR, GANConfig, load_config

        spec = {**DATASETS, **SOURCE_ONLY}[dataset]
        shipped = f"{dataset}-{model}-{self.preset.gan_preset or self.preset.name}"
        if (CONFIG_DIR / f"{shipped}.yaml").exists():
            cfg = load_config(shipped)
        else:
            cfg = GANConfig(name=shipped, model=model, dataset=spec.folder or dataset, crop=spec.crop,
                            size=self.preset.size)
        cfg = replace(cfg, exclude_signers=list(spec.test_signers), size=self.preset.size)
        if per_class is not None:
            cfg = replace(cfg, name=f"{cfg.name}-k{per_class}", per_class=per_class, steps=self.preset.gan_steps,
                          seed=0)
        return cfg

    def generator(self, dataset: str, model: str, per_class: int | None):
        """The GAN of this data: trained on first use (resumable), full-data GANs shared with ``train gan``."""
        from training.gan.sampling import load_generator
        from training.gan.trainer import GANTrainer

        cfg = self.gan_config(dataset, model, per_class)
        out = self.out / "gans" / cfg.name
        if per_class is None:  # a full-data run of 'fingerspell train gan', or its shipped generator, when it matches
            from realtime.manifest import weights_dir

            shipped = weights_dir() / cfg.name
            if (shipped / "generator.pt").exists() and _same_data(load_generator(shipped).config, cfg) \
                    and load_generator(shipped).step >= cfg.steps:
                return load_generator(shipped, self.device)
            shared = Path("runs/gan") / cfg.name
            if (shared / "checkpoint.pt").exists() and _same_data(load_generator(shared).config, cfg):
                out = shared
        if not (out / "checkpoint.pt").exists() or load_generator(out).step < cfg.steps:
            GANTrainer(cfg, out, datasets=self.root, cache_dir=self.cache_dir, progress=self.progress).train()
        return load_generator(out, self.device)

    def generated(self, row: Row) -> tuple[np.ndarray, np.ndarray]:
        """The row's generated images (uint8) and labels, cached per GAN, count, filter and seed."""
        from training.gan.sampling import PoseSource, generate, to_uint8, top_k_per_class

        n = self.preset.generated_per_class
        model, _, source_ds = row.source.partition("@")
        path = generated_path(self.out, row.dataset, row.regime, row.source, n, row.filtered, row.seed)
        hgan = self.finished_hgan(row.dataset) if model == "hgan" else None  # translations depend on its step
        if path.exists():
            with np.load(path) as z:
                if hgan is None or ("hgan_step" in z.files and int(z["hgan_step"]) == hgan.step):
                    return z["images"], z["labels"]
        crops = self.crops(row.dataset)
        train, _, _ = self.split(row.dataset, row.per_class)
        labels = sorted(set(crops.labels[train].tolist()))
        if model in RENDERED_SOURCES:
            images, names = self.rendered(row.dataset, model == "hgan", labels, n, row.seed, hgan)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, images=images, labels=names,
                                **({"hgan_step": np.int64(hgan.step)} if hgan is not None else {}))
            return images, names
        gen = self.generator(source_ds or row.dataset, model, None if source_ds else row.per_class)
        poses = (PoseSource(crops.keypoints[train], crops.labels[train], f"{row.dataset}-{row.regime}")
                 if model == "spade" else None)
        scorer = self.classifier(replace(row, source="none", strategy="real", filtered=False)) if row.filtered else None
        images, names = [], []
        for ci, label in enumerate(labels):
            x = generate(gen, label, 2 * n if row.filtered else n, None, poses, seed=row.seed * 100003 + ci)
            if scorer is not None:
                p = scorer.probabilities(x)[:, scorer.labels.index(label)]
                x = x[top_k_per_class(p, np.full(len(p), label), n)]
            images.append(to_uint8(x))
            names += [label] * len(x)
        images, names = np.concatenate(images), np.asarray(names)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, images=images, labels=names)
        return images, names

    def hgan_folder(self, dataset: str) -> Path:
        """The preset's H-GAN run folder for ``dataset`` (``runs/hgan/DATASET-hgan-PRESET``); refuses a missing one."""
        run = Path("runs/hgan") / f"{dataset}-hgan-{self.preset.gan_preset or self.preset.name}"
        if not (run / "checkpoint.pt").exists():
            raise FileNotFoundError(f"no H-GAN at {run}: train it first with 'fingerspell train hgan --config "
                                    f"{run.name}'")
        return run

    def finished_hgan(self, dataset: str):
        """The preset's H-GAN for ``dataset`` (a :class:`training.hgan.translate.LoadedHGAN`); refuses an unfinished
        one, which would translate with a part-trained generator (for instance one still training beside the grid)."""
        from training.hgan.translate import load_hgan

        run = self.hgan_folder(dataset)
        hgan = load_hgan(run, self.device)
        if hgan.step < hgan.config.steps:
            raise ValueError(f"the H-GAN at {run} stopped at step {hgan.step} of {hgan.config.steps}: finish it first "
                             f"('fingerspell train hgan --config {run.name}' resumes)")
        return hgan

    def rendered(self, dataset: str, translate: bool, labels: list[str], n: int, seed: int, hgan=None):
        """``n`` hands per class rendered from the dataset's turned, mirrored training poses (never the test
        signers'), translated by the preset's finished H-GAN (``hgan``, loaded here if not given) or left as rendered
        (the H-GAN's config still says which poses and renderer settings)."""
        from training.hgan.data import pose_pool, render_settings
        from training.hgan.render import render_hands
        from training.hgan.translate import balanced_poses, load_hgan

        run = self.hgan_folder(dataset)
        if hgan is None:
            hgan = self.finished_hgan(dataset) if translate else load_hgan(run, self.device)
        held_out = set(DATASETS[dataset].test_signers)
        if hgan.config.size != self.preset.size or not held_out <= set(hgan.config.exclude_signers):
            raise ValueError(f"{run} was trained at {hgan.config.size} px without holding out {sorted(held_out)}; "
                             f"the grid needs {self.preset.size} px and those signers left out")
        lm, lab = pose_pool(hgan.config, self.root, self.cache_dir, self.progress)
        lm, lab = balanced_poses(lm, lab, n, hgan.config, seed, labels)
        r = render_hands(lm, seed, render_settings(hgan.config))
        return (hgan.translate(r["images"], r["masks"]) if translate else r["images"]), lab

    # -- classifiers ----------------------------------------------------------------------------------
    def classifier_config(self, row: Row, n_train: int) -> ClassifierConfig:
        p = self.preset
        if row.per_class is None:
            epochs = p.full_epochs
        else:
            epochs = max(10, math.ceil(p.limited_steps / math.ceil(n_train / p.batch_size)))
        return ClassifierConfig(arch=p.arch, epochs=epochs, batch_size=p.batch_size, lr=p.lr, cosine=p.cosine,
                                seed=row.seed, extra={"row": asdict(row), "preset": p.name})

    def classifier(self, row: Row) -> ImageClassifier:
        """Train the row's classifier (or resume it) and return it."""
        crops = self.crops(row.dataset)
        train, val, _ = self.split(row.dataset, row.per_class)
        labels = sorted(set(crops.labels.tolist()))
        config = self.classifier_config(row, len(train))
        rate = min(1.0, 2.0 / config.epochs) if self.rate_per_run else self.strategy_defaults.rate
        strategy = replace(self.strategy_defaults, strategy=row.strategy, schedule=row.schedule, rate=rate,
                           pretrain_epochs=self.preset.pretrain_epochs)
        out = self.out / "runs" / row.folder
        if (out / "history.json").exists() and (out / "best.pt").exists():
            return ImageClassifier.load(out, self.device)
        generated = self.generated(row) if row.strategy != "real" else None
        return train_with_strategy(crops.images[train], crops.labels[train], crops.images[val], crops.labels[val],
                                   labels, out, config, strategy, generated, self.device, self.progress)

    def run(self, row: Row) -> dict:
        """The row's result (test accuracy on the held-out signers, per class, convergence), cached."""
        out = self.out / "runs" / row.folder
        if (out / "result.json").exists():
            return json.loads((out / "result.json").read_text())
        clf = self.classifier(row)
        crops = self.crops(row.dataset)
        train, val, test = self.split(row.dataset, row.per_class)
        report = held_out_report(clf, crops.images[test], crops.labels[test])
        per_class = {c: v["accuracy"] for c, v in report["per_class"].items() if v["accuracy"] is not None}
        history = json.loads((out / "history.json").read_text())
        pre = out / "pretrain" / "history.json"
        result = {"row": asdict(row), "method": row.method, "regime": row.regime, "preset": self.preset.name,
                  "arch": self.preset.arch, "size": self.preset.size, "train_images": int(len(train)),
                  "val_images": int(len(val)), "test_images": int(len(test)),
                  "test_signers": list(DATASETS[row.dataset].test_signers),
                  "test_acc": report["accuracy"], "per_class": per_class,
                  "best_epoch": int(clf.info["epoch"]), "epochs": len(history), "history": history,
                  "pretrain_history": json.loads(pre.read_text()) if pre.exists() else None}
        (out / "result.json").write_text(json.dumps(result, indent=1))
        return result


# -- reporting ------------------------------------------------------------------------------------------
def _regime_order(regime: str) -> float:
    """k5, k10, k20, ... in K order, full data last."""
    return math.inf if regime == "full" else int(regime[1:])


def _mean_spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values, ddof=1):.1f}"


def results_table(results: list[dict]) -> str:
    """Markdown, one table per dataset: methods down, regimes across, test accuracy mean ± std over seeds."""
    lines = []
    for ds in sorted({r["row"]["dataset"] for r in results}):
        rs = [r for r in results if r["row"]["dataset"] == ds]
        regimes = sorted({r["regime"] for r in rs}, key=_regime_order)
        methods = sorted({r["method"] for r in rs}, key=lambda m: (m != "real", m))
        lines += [f"### {ds} (test: {', '.join(rs[0]['test_signers'])})", "",
                  "| method | " + " | ".join(f"{g} (n seeds)" for g in regimes) + " |",
                  "|---|" + "---:|" * len(regimes)]
        for m in methods:
            cells = []
            for g in regimes:
                acc = [r["test_acc"] for r in rs if r["method"] == m and r["regime"] == g]
                cells.append(f"{_mean_spread(acc)} ({len(acc)})" if acc else "–")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def gain_table(results: list[dict]) -> str:
    """Markdown: each method minus REAL, paired by seed (same data, initialisation and batches), in points:
    mean ± std of the differences and how many seeds it won. The spread of a paired difference is the honest
    yardstick: two methods' own spreads overlap even where one wins on every seed."""
    real = {(r["row"]["dataset"], r["regime"], r["row"]["seed"]): r["test_acc"] for r in results if r["method"] == "real"}
    lines = []
    for ds in sorted({r["row"]["dataset"] for r in results}):
        rs = [r for r in results if r["row"]["dataset"] == ds and r["method"] != "real"
              and (ds, r["regime"], r["row"]["seed"]) in real]
        if not rs:
            continue
        regimes = sorted({r["regime"] for r in rs}, key=_regime_order)
        lines += [f"### {ds}: minus real, paired by seed (points; wins/seeds)", "",
                  "| method | " + " | ".join(regimes) + " | all limited |", "|---|" + "---:|" * (len(regimes) + 1)]
        for m in sorted({r["method"] for r in rs}):
            diffs = {g: [100 * (r["test_acc"] - real[(ds, g, r["row"]["seed"])]) for r in rs
                         if r["method"] == m and r["regime"] == g] for g in regimes}
            pooled = [d for g in regimes if g != "full" for d in diffs[g]]
            cells = [_paired(diffs[g]) for g in regimes] + [_paired(pooled)]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def sign_flip_p(d) -> float:
    """Two-sided p of an exact paired sign-flip (randomisation) test: how often flipping the signs of the paired
    differences at random gives a mean at least as far from 0. No normality assumed; exact up to 16 pairs, then
    100,000 random flips, (hits + 1) / (flips + 1)."""
    d = np.asarray(d, float)
    if len(d) == 0:
        return 1.0
    if len(d) <= 16:  # every sign pattern, the observed one among them
        signs = 1 - 2 * ((np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1)
        return float(np.mean(np.abs((signs * d).mean(1)) >= abs(d.mean()) - 1e-12))
    signs = np.random.default_rng(0).choice([-1, 1], size=(100_000, len(d)))
    hits = int(np.sum(np.abs((signs * d).mean(1)) >= abs(d.mean()) - 1e-12))
    return (hits + 1) / (len(signs) + 1)  # the observed pattern counts too: a sampled p is never 0


def pooled_gain_table(results: list[dict], regime: str = "full") -> str:
    """Markdown: each method minus REAL in ``regime``, paired by seed and pooled over every protocol (dataset and
    its test signers) that ran it, with the sign-flip test's p: one choice judged on several people at once."""
    real = {(r["row"]["dataset"], r["row"]["seed"]): r["test_acc"] for r in results
            if r["method"] == "real" and r["regime"] == regime}
    rs = [r for r in results if r["method"] != "real" and r["regime"] == regime
          and (r["row"]["dataset"], r["row"]["seed"]) in real]
    lines = [f"| method ({regime}) | protocols | pairs | gain over real (points) | seeds better | p (sign-flip) |",
             "|---|---|---:|---:|---:|---:|"]
    for m in sorted({r["method"] for r in rs}):
        mine = [r for r in rs if r["method"] == m]
        d = [100 * (r["test_acc"] - real[(r["row"]["dataset"], r["row"]["seed"])]) for r in mine]
        protocols = sorted({r["row"]["dataset"] for r in mine})
        spread = f" ± {np.std(d, ddof=1):.1f}" if len(d) > 1 else ""
        lines.append(f"| {m} | {', '.join(protocols)} | {len(d)} | {np.mean(d):+.1f}{spread} | "
                     f"{sum(x > 0 for x in d)}/{len(d)} | {sign_flip_p(d):.3f} |")
    return "\n".join(lines) if rs else ""


def _paired(d: list[float]) -> str:
    if not d:
        return "–"
    spread = f" ± {np.std(d, ddof=1):.1f}" if len(d) > 1 else ""
    return f"{np.mean(d):+.1f}{spread} ({sum(x > 0 for x in d)}/{len(d)})"


def convergence_table(results: list[dict]) -> str:
    """Epochs to the best validation loss (fine-tuning epochs for PRETRAIN), mean over seeds."""
    lines = ["| dataset | regime | method | epochs to best val loss | of epochs |", "|---|---|---|---:|---:|"]
    keys = sorted({(r["row"]["dataset"], r["regime"], r["method"]) for r in results})
    for ds, g, m in keys:
        rs = [r for r in results if (r["row"]["dataset"], r["regime"], r["method"]) == (ds, g, m)]
        lines.append(f"| {ds} | {g} | {m} | {np.mean([r['best_epoch'] for r in rs]):.1f} | {rs[0]['epochs']} |")
    return "\n".join(lines)


def plot_per_class_difference(results: list[dict], dataset: str, regime: str, method: str, path) -> bool:
    """The paper's Figure 7: per-class test accuracy of ``method`` minus REAL, averaged over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def mean_per_class(m):
        rs = [r for r in results if (r["row"]["dataset"], r["regime"], r["method"]) == (dataset, regime, m)]
        if not rs:
            return None
        return {c: np.mean([r["per_class"][c] for r in rs if c in r["per_class"]]) for c in rs[0]["per_class"]}

    a, b = mean_per_class(method), mean_per_class("real")
    if a is None or b is None:
        return False
    classes = sorted(set(a) & set(b))
    diff = [100 * (a[c] - b[c]) for c in classes]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(classes)), 3.2))
    ax.bar(classes, diff, color=["tab:green" if d >= 0 else "tab:red" for d in diff])
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel("accuracy difference (points)")
    ax.set_title(f"{dataset} {regime}: {method} minus real, per class (mean over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_convergence(results: list[dict], dataset: str, regime: str, methods: list[str], path) -> bool:
    """Validation loss per epoch on real data: REAL against the fine-tuning phase of the others."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    drawn = False
    for m in methods:
        rs = [r for r in results if (r["row"]["dataset"], r["regime"], r["method"]) == (dataset, regime, m)]
        if not rs:
            continue
        n = min(len(r["history"]) for r in rs)
        curve = np.mean([[h["val_loss"] for h in r["history"][:n]] for r in rs], axis=0)
        ax.plot(np.arange(1, n + 1), curve, label=m)
        drawn = True
    if drawn:
        ax.set_xlabel("epoch (on real data)")
        ax.set_ylabel("validation loss")
        ax.set_yscale("log")
        ax.set_title(f"{dataset} {regime}: convergence (mean over seeds)")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn


def plot_generated_samples(out, dataset: str, regime: str, n: int, path) -> bool:
    """One generated image per class (seed 0, unfiltered), a row per source: what each strategy was fed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = {}
    for source in SOURCES[1:]:
        f = generated_path(out, dataset, regime, source, n, False, 0)
        if f.exists():
            with np.load(f) as z:
                found[source] = (z["images"], z["labels"])
    if not found:
        return False
    classes = sorted(set().union(*(set(lab.tolist()) for _, lab in found.values())))
    fig, axes = plt.subplots(len(found), len(classes), figsize=(0.6 * len(classes), 0.75 * len(found) + 0.4),
                             squeeze=False)
    for i, (source, (images, labels)) in enumerate(found.items()):
        for j, c in enumerate(classes):
            ax = axes[i, j]
            ax.set_xticks([]), ax.set_yticks([])
            idx = np.flatnonzero(labels == c)
            if len(idx):
                ax.imshow(images[idx[0]])
            if i == 0:
                ax.set_title(c, fontsize=8)
            if j == 0:
                ax.set_ylabel(source, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(f"{dataset} {regime}: generated images, one per class (seed 0)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def collect(out) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(out, "runs").rglob("result.json"))]
