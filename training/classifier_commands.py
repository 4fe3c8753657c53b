"""``fingerspell train classifier`` (one image classifier, one strategy) and ``train classifier-grid`` (paper 000's
experiments, ``training.strategy_experiments``). Registered by ``realtime.cli``; heavy imports stay inside.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from realtime.cli_common import HelpFormatter, comma_list, datasets_root, fail, int_range

_positive = int_range(1)


# Said above the pooled table: its p values are per row and uncorrected, and a protocol a method was chosen on cannot
# confirm that method.
POOLED_CAVEAT = ("Each p is for one row on its own, not corrected for the number of rows, and a protocol on which a "
                 "method was chosen cannot confirm it: read them as exploratory.")


def _unit(text: str) -> float:
    """A number within [0, 1]; the error names the value (argparse shows it, and so does fused-seeds)."""
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"expected a number within [0, 1], got {text!r}")
    return v


def read_generated(folder: str | os.PathLike, size: int, labels: list[str]):
    """A generated image folder (``fingerspell generate``: LABEL/NNNNNN.png + manifest.csv) at ``size``."""
    import cv2
    import numpy as np

    from realtime.images import ImageFolder, read_image

    ds = ImageFolder(folder)
    unknown = sorted(set(ds.labels) - set(labels))
    if unknown:
        raise ValueError(f"{folder}: generated classes {unknown} are not classes of the real data ({labels})")
    images, names, bad = [], [], 0
    for s in ds.samples:
        img = read_image(s.path)
        if img is None:
            bad += 1
            continue
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
        images.append(cv2.cvtColor(cv2.resize(img, (size, size), interpolation=interp), cv2.COLOR_BGR2RGB))
        names.append(s.label)
    if bad:
        print(f"warning: {bad} unreadable images in {folder} skipped", file=sys.stderr)
    if not images:
        raise ValueError(f"{folder}: no readable generated images")
    return np.stack(images), np.asarray(names)


def cmd_train_classifier(args) -> int:
    import numpy as np

    from training.gan.sampling import top_k_per_class
    from training.gan.trainer import resolve_dataset
    from training.hand_crops import load_hand_crops
    from training.image_classifier import (
        ClassifierConfig,
        ImageClassifier,
        check_run_folder,
        held_out_report,
        to_input,
        train_with_strategy,
    )
    from training.io import atomic_write_text
    from training.strategies import StrategyConfig
    from training.strategy_experiments import DATASETS, held_out_split
    from training.train_j2s import resolve_device

    try:
        if args.out:  # another kind of run's folder is refused before the crops are loaded (minutes), not after
            check_run_folder(args.out)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        names = comma_list(args.data) or []
        multi = len(names) > 1 or bool(args.test_datasets)
        weights = None
        if multi:
            from training.image_sets import balanced_weights, load_crop_sets, split_sets

            if args.per_class:
                raise ValueError("--per-class applies to one dataset (--data NAME)")
            roots = [resolve_dataset(n, args.datasets) for n in names]
            crop = args.crop or "hand"
            alphabet = None if args.alphabet == "none" else (args.alphabet or "asl")
            sets = load_crop_sets(roots, args.size, crop, alphabet, comma_list(args.labels), args.cache_dir)
            crops = sets.crops
            test_signers, test_datasets = args.test_signers or [], args.test_datasets or []
            train, val, test = split_sets(sets, test_datasets, test_signers)
            weights = balanced_weights(sets.datasets[train], crops.labels[train])
            data_name, hashes, held = "+".join(sets.names), sets.hashes, test_signers + test_datasets
        else:
            root = resolve_dataset(args.data, args.datasets)
            spec = DATASETS.get(root.name)
            crop = args.crop or (spec.crop if spec else "hand")
            test_signers = args.test_signers if args.test_signers is not None else list(spec.test_signers if spec else [])
            test_datasets = []
            crops = load_hand_crops(root, args.size, crop, labels=comma_list(args.labels), cache_dir=args.cache_dir)
            alphabet = None if args.alphabet in (None, "none") else args.alphabet
            if alphabet:
                from training.image_sets import alphabet as alphabet_of
                from training.image_sets import map_crop_labels

                letters, label_map = alphabet_of(alphabet)
                crops = map_crop_labels(crops, label_map.get(root.name, {}), letters)
            unknown = sorted(set(test_signers) - set(crops.signers.tolist()))
            if unknown:
                raise ValueError(f"test signers {unknown} are not in {root.name} (it has {sorted(set(crops.signers))})")
            train, val, test = held_out_split(crops, test_signers, args.per_class)
            data_name, hashes, held = root.name, {root.name: crops.data_sha256}, test_signers
        labels = crops.classes
        strategy = StrategyConfig(args.strategy, args.pretrain_epochs, args.schedule, args.lambda0,
                                  0.1 if args.rate is None else args.rate, args.mixup_alpha)
        generated = None
        if strategy.uses_generated:
            if not args.generated:
                raise ValueError(f"--strategy {args.strategy} needs --generated DIR (from 'fingerspell generate')")
            generated = read_generated(args.generated, args.size, labels)
            if args.filter_top_k:
                if not args.scorer:
                    raise ValueError("--filter-top-k needs --scorer: a classifier trained on real data "
                                     "(e.g. this command's output with --strategy real)")
                scorer = ImageClassifier.load(args.scorer)
                p = scorer.probabilities(to_input(generated[0]))
                score = p[np.arange(len(p)), [scorer.labels.index(c) for c in generated[1]]]
                keep = top_k_per_class(score, generated[1], args.filter_top_k)
                generated = (generated[0][keep], generated[1][keep])
                print(f"filtered: kept the top {args.filter_top_k} of each class ({len(keep)} images), "
                      f"mean p(class) {score[keep].mean():.3f} against {score.mean():.3f} before")
        out = Path(args.out or f"runs/classifier/{data_name}-{args.strategy}")
        config = ClassifierConfig(arch=args.arch, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                  cosine=args.cosine, augment=args.augment, seed=args.seed, weights=args.weights,
                                  extra={"data": names if multi else data_name, "data_sha256": hashes,
                                         "crop": crop, "size": args.size,
                                         "test_signers": test_signers, "per_class": args.per_class,
                                         **({"alphabet": alphabet} if alphabet else {}),
                                         **({"test_datasets": test_datasets,
                                             "sampling": "balanced by dataset, then class"} if multi else {}),
                                         "generated": args.generated, "filter_top_k": args.filter_top_k,
                                         "command": " ".join(["fingerspell"] + sys.argv[1:])})
        print(f"{data_name}: {len(train)} training, {len(val)} validation, {len(test)} test images "
              f"(held out: {held or 'none'}); {len(labels)} classes; strategy {args.strategy}"
              + ("; batches balanced by dataset, then class" if multi else ""))
        t0 = time.perf_counter()
        clf = train_with_strategy(crops.images[train], crops.labels[train], crops.images[val], crops.labels[val],
                                  labels, out, config, strategy, generated, resolve_device(args.device),
                                  sample_weights=weights)
        seconds = time.perf_counter() - t0
        report = held_out_report(clf, crops.images[test], crops.labels[test], out)
        report.update(data=data_name, test_signers=test_signers, test_datasets=test_datasets,
                      train_images=int(len(train)), strategy=strategy.strategy, best_epoch=clf.info["epoch"],
                      train_seconds=round(seconds, 1))
        atomic_write_text(out / "report.json", json.dumps(report, indent=1))
        print(f"best epoch {clf.info['epoch']} (val loss {clf.info['val_loss']:.3f}); {seconds:.0f} s; "
              + (f"test accuracy {report['accuracy']:.1%} on {len(test)} hand crops of {held}" if len(test)
                 else "nothing held out: no test accuracy"))
        if args.export:
            from export.image_export import export_image_classifier

            export_image_classifier(out, args.export, args.name, crops.images[test] if len(test) else crops.images[val],
                                    {"test_accuracy": report.get("accuracy"), "test_signers": test_signers,
                                     **({"test_datasets": test_datasets} if multi else {})})
            print(f"exported {args.export}/model.onnx + manifest.json")
    except (OSError, ValueError, RuntimeError) as e:
        return fail(str(e))
    return 0


def cmd_classifier_grid(args) -> int:
    from training.strategy_experiments import (
        PRESETS,
        Experiment,
        collect,
        grid,
    )
    from training.strategies import StrategyConfig
    from training.train_j2s import resolve_device

    try:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        regimes = [None if r == "full" else int(r) for r in comma_list(args.regimes)]
        filtered = {"no": (False,), "yes": (True,), "both": (False, True)}[args.filtered]
        rows = grid(comma_list(args.data), regimes, comma_list(args.sources), comma_list(args.strategies), filtered,
                    tuple(range(args.seeds)), args.schedule)
        preset = PRESETS[args.preset]
        if args.epochs:
            preset = replace(preset, full_epochs=args.epochs)
        defaults = StrategyConfig(schedule=args.schedule, lambda0=args.lambda0, rate=args.rate or 0.1,
                                  mixup_alpha=args.mixup_alpha)
        exp = Experiment(preset, args.datasets, args.out, args.cache_dir, resolve_device(args.device), defaults,
                         rate_per_run=args.rate is None)
        for i, row in enumerate(rows, 1):
            print(f"[{i}/{len(rows)}] {row.dataset} {row.regime} {row.method} seed {row.seed}", flush=True)
            r = exp.run(row)
            print(f"    test accuracy {r['test_acc']:.1%} (best epoch {r['best_epoch']} of {r['epochs']})", flush=True)
        results = collect(exp.out)
        if args.doc:
            write_strategies_doc(results, args.doc, exp.out, exp.preset.generated_per_class)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        return fail(str(e))
    return 0


def fused_seeds_head(grid_out: str, protocols: list[str]) -> str:
    """The page's opening: what was fused, on which grid folder and which test people."""
    from training.strategy_experiments import DATASETS

    people = "; ".join(f"{', '.join(DATASETS[p].test_signers)} (protocol `{p}`)" for p in protocols)
    return ("# Image classifiers of the strategy grid, fused with the keypoint model\n\n"
            "Written by `fingerspell train fused-seeds`. Each `lis-letters-image` recipe run of the shipped-preset "
            f"grid (`{grid_out}`, every seed) fused with the shipped keypoint recipe `lis-v3` trained without the "
            "same person, as `--classifier fused` does; accuracy over every photo of the test signers (no hand found "
            "counts as wrong), mean over seeds; gains over real paired by seed (points, seeds better / seeds). Data: "
            f"`lis`; test signers {people}; keypoint models held out one signer at a time.\n\n")


def cmd_fused_seeds(args) -> int:
    from training.fused_seeds import fused_seeds_table, per_signer_table, run_fused_seeds

    try:
        root = datasets_root(args.datasets)
        weights = [_unit(w) for w in comma_list(args.image_weights)]
        protocols = comma_list(args.data)
        results = run_fused_seeds(root, args.grid_out, protocols, comma_list(args.methods), weights, args.cache_dir)
        if not results:
            raise FileNotFoundError(f"no grid runs of {args.methods} under {args.grid_out}: run "
                                    f"'fingerspell train classifier-grid --preset shipped' first")
        table = fused_seeds_table(results)
        signers = per_signer_table(results)
        page = fused_seeds_head(args.grid_out, protocols) + table + "\n" + (
            f"\nEach test signer on their own (the same runs):\n\n{signers}\n" if signers else "")
        for path, text in ((args.json, json.dumps(results, indent=1)), (args.doc, page)):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        print(table)
        print(f"wrote {args.doc} and {args.json}")
    except (FileNotFoundError, ValueError, RuntimeError, argparse.ArgumentTypeError) as e:
        return fail(str(e))
    return 0


def cmd_results_fused(args) -> int:
    from training.fused_results import FOLDS, run_fused_results

    try:
        folds = comma_list(args.folds) or list(FOLDS)
        unknown = sorted(set(folds) - set(FOLDS))
        if unknown:
            raise ValueError(f"unknown fold(s) {unknown}; choose from {', '.join(FOLDS)}")
        run_fused_results(datasets_root(args.datasets), args.out, args.doc, folds, args.keypoint_runs, args.cache_dir)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        return fail(str(e))
    return 0


def write_strategies_doc(results: list[dict], doc: str, out: str, generated_per_class: int) -> None:
    """The results tables and figures (docs/strategies.md keeps its hand-written text above the marker);
    ``out`` and ``generated_per_class`` locate the cached generated sets for the sample grids."""
    from training.strategy_experiments import (
        convergence_table,
        gain_table,
        plot_convergence,
        plot_generated_samples,
        plot_per_class_difference,
        pooled_gain_table,
        results_table,
    )

    doc = Path(doc)
    figdir = doc.parent / doc.stem  # docs/strategies.md -> docs/strategies/
    figdir.mkdir(parents=True, exist_ok=True)
    figures = []
    for ds in sorted({r["row"]["dataset"] for r in results}):
        for regime in sorted({r["regime"] for r in results if r["row"]["dataset"] == ds}):
            methods = sorted({r["method"] for r in results if (r["row"]["dataset"], r["regime"]) == (ds, regime)})
            pre = [m for m in methods if m.endswith("pretrain")]
            for m in [m for m in pre if "filtered" not in m]:
                name = f"{ds}-{regime}-{m.replace(' ', '-').replace('@', '-at-')}-minus-real.png"
                if plot_per_class_difference(results, ds, regime, m, figdir / name):
                    figures.append(f"![{ds} {regime} {m} minus real]({figdir.name}/{name})")
            name = f"{ds}-{regime}-generated.png"
            if plot_generated_samples(out, ds, regime, generated_per_class, figdir / name):
                figures.append(f"![{ds} {regime} generated samples]({figdir.name}/{name})")
            name = f"{ds}-{regime}-convergence.png"
            if plot_convergence(results, ds, regime, ["real"] + pre, figdir / name):
                figures.append(f"![{ds} {regime} convergence]({figdir.name}/{name})")
    marker = "<!-- results: written by fingerspell train classifier-grid --doc; do not edit below -->"
    head = doc.read_text().split(marker)[0] if doc.exists() else "# GAN-generated hands for image classifiers\n\n"
    body = ["## Test accuracy (%), held-out signers", "", results_table(results), "",
            "## Gain over real, paired by seed", "", gain_table(results), "",
            "## Gain over real on all data, pooled over the protocols", "", POOLED_CAVEAT, "", pooled_gain_table(results), "",
            "## Convergence", "", convergence_table(results), "", "## Figures", "", *figures, ""]
    doc.write_text(head.rstrip() + "\n\n" + marker + "\n\n" + "\n".join(body))
    print(f"wrote {doc} ({len(results)} runs from {out})")


def _lambda_args(q) -> None:
    q.add_argument("--schedule", choices=("increasing", "decreasing", "constant"), default="decreasing",
                   help="regularizer and mixup: lambda(t) grows to 1 (eq. 2), decays to 0 (eq. 3) or stays")
    q.add_argument("--lambda0", type=_unit, default=0.5,
                   help="lambda at epoch 0: the generated loss's weight (regularizer, eq. 1), the probability that a "
                        "real image's mixup partner is generated (mixup, eq. 5)")
    q.add_argument("--rate", type=_unit, help="lambda's change rate per epoch (default: 0.1; classifier-grid: "
                                              "2 / epochs, so lambda moves as far in every regime)")
    q.add_argument("--mixup-alpha", type=float, default=0.4, help="mixup: Beta(alpha, alpha) mixing weights (eq. 4)")


def _run_args(q) -> None:
    """Where the data is and where the work runs: the same for both commands."""
    q.add_argument("--datasets", help="folder holding the datasets (default: $FINGERSPELL_DATASETS)")
    q.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to train")
    q.add_argument("--threads", type=_positive, help="torch CPU threads (default: all cores)")
    q.add_argument("--cache-dir", help="keypoint and crop cache folder (default: ~/.cache/fingerspell)")


def register(tsub) -> None:
    fmt = HelpFormatter
    c = tsub.add_parser(
        "classifier", help="train an image classifier on hand crops, with or without generated data (paper 000)",
        description="EfficientNetV2 (or the small CNN) on square hand crops framed by the landmarks, Adam with the "
                    "paper's settings, the best epoch by validation loss; resumable (the same command continues). "
                    "Strategies (paper 000, section 3.1): real; pretrain (train on --generated, then fine-tune on the "
                    "real images); regularizer (real loss + lambda(t) x generated loss, eq. 1-3); mixup (each real "
                    "image mixed with a generated one with probability lambda(t), else with another real one, "
                    "eq. 4-5); lambda(t) starts at --lambda0 and follows --schedule. Test accuracy is on held-out "
                    "signers (GIULIA for lis).", formatter_class=fmt)
    c.add_argument("--data", default="lis", help="dataset name (under $FINGERSPELL_DATASETS) or folder; several, "
                                                 "comma-separated, train one classifier of an --alphabet on all")
    c.add_argument("--alphabet", choices=("asl", "lis", "none"),
                   help="map each dataset's labels as that alphabet's keypoint recipe does (asl: digits 0/2/6/9 -> "
                        "O/V/W/F) and keep only its letters (default: asl with several datasets, none with one)")
    c.add_argument("--test-datasets", nargs="*", metavar="NAME",
                   help="several datasets: hold these whole datasets out for the test accuracy (with several "
                        "datasets, --test-signers take DATASET/SIGNER and default to none)")
    c.add_argument("--strategy", choices=("real", "pretrain", "regularizer", "mixup"), default="real",
                   help="how generated images are used")
    c.add_argument("--generated", metavar="DIR", help="generated image folder from 'fingerspell generate'")
    c.add_argument("--filter-top-k", type=_positive, metavar="K",
                   help="keep the K generated images per class that --scorer finds most likely to show their class")
    c.add_argument("--scorer", help="classifier folder trained on real data, for --filter-top-k")
    c.add_argument("--arch", choices=("efficientnet_v2_t", "efficientnet_v2_s", "efficientnet_v2_m", "cnn"),
                   default="efficientnet_v2_s",
                   help="efficientnet_v2_s/_m as the paper; _t: the CPU preset (half width, a third of the depth)")
    c.add_argument("--weights", metavar="FILE", help="EfficientNetV2 state dict to start from (e.g. ImageNet weights "
                                                     "obtained elsewhere); default: from scratch")
    c.add_argument("--size", type=int_range(16, 512), default=64, help="crop side in pixels")
    c.add_argument("--crop", choices=("hand", "whole"), help="hand: framed by the landmarks; whole: the photo "
                                                             "(default: the dataset's, hand for unknown ones)")
    c.add_argument("--labels", help="comma-separated subset of the classes (default: all)")
    c.add_argument("--test-signers", nargs="*", help="signers held out for the test accuracy (default: the "
                                                     "dataset's: GIULIA for lis, subject9/10 for lsa16, hand5 for "
                                                     "massey); give none to use every signer")
    c.add_argument("--per-class", type=_positive, metavar="K", help="limited data: K real images per class")
    c.add_argument("--epochs", type=_positive, default=30, help="epochs on real data")
    c.add_argument("--pretrain-epochs", type=_positive, default=10, help="pretrain: epochs on generated data")
    c.add_argument("--batch-size", type=_positive, default=64, help="batch size")
    c.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (betas 0, 0.999, eps 1e-6)")
    c.add_argument("--cosine", action="store_true",
                   help="decay the learning rate to zero over the epochs (the paper keeps it constant; from scratch "
                        "and with few epochs, a higher rate decayed this way converges far sooner)")
    c.add_argument("--augment", action="store_true",
                   help="random rotation, scale and shift of the crop, and other light and colour (brightness, "
                        "contrast, saturation, white balance): for people and cameras the data lacks")
    _lambda_args(c)
    c.add_argument("--seed", type=int, default=0, help="random seed")
    c.add_argument("--out", help="run folder (default: runs/classifier/DATA-STRATEGY, DATA the datasets joined by +)")
    c.add_argument("--export", metavar="DIR", help="also export model.onnx + manifest.json to DIR "
                                                   "(e.g. weights/lis-letters-image)")
    c.add_argument("--name", help="model name in the exported manifest (default: the folder's name)")
    _run_args(c)
    c.set_defaults(func=cmd_train_classifier)

    f = tsub.add_parser(
        "results-fused", help="ASL: keypoints, the image classifier and fused, each photo dataset held out in turn",
        description="For each of roboflow, kaggle_asl, massey and digits held out: the shipped keypoint recipe "
                    "trained without it (the new-people cell, trained if missing), the ASL image classifier trained "
                    "on the other photo datasets (the CPU preset), and --classifier fused with image weights 0.3 and "
                    "0.5, scored on all of its photos (no hand found counts as wrong). Cached per fold in --out.",
        formatter_class=fmt)
    f.add_argument("--folds", help="comma-separated held-out datasets (default: roboflow,kaggle_asl,massey,digits)")
    f.add_argument("--out", default="runs/fused", help="per-fold results and image classifiers (resumable)")
    f.add_argument("--keypoint-runs", default="runs/new-people", help="the keypoint models ('train results' --out)")
    f.add_argument("--doc", default="docs/results-fused.md", help="markdown page for the table")
    f.add_argument("--datasets", help="folder holding the datasets (default: $FINGERSPELL_DATASETS)")
    f.add_argument("--cache-dir", help="keypoint and crop cache folder (default: ~/.cache/fingerspell)")
    f.set_defaults(func=cmd_results_fused)

    g = tsub.add_parser(
        "classifier-grid", help="paper 000's experiments: strategies x GAN sources x data sizes, tables and plots",
        description="Runs every row of the grid (each resumable and cached under --out; GANs for the limited-data "
                    "rows are retrained on exactly those K images per class), then writes the accuracy table "
                    "(mean and spread over seeds), the per-class difference plot (pretrain minus real, the paper's "
                    "Figure 7) and the convergence curves to --doc. The cpu preset (32x32, EfficientNetV2-t) fits "
                    "the limited-data rows on 2 cores; gpu is the paper's scale (64x64, EfficientNetV2-S).",
        formatter_class=fmt)
    g.add_argument("--preset", choices=("cpu", "gpu", "shipped"), default="cpu",
                   help="sizes, architecture, epochs, GAN steps; shipped: the recipe of lis-letters-image (lr 1e-3, cosine)")
    g.add_argument("--data", default="lis", help="comma-separated protocols: lis (GIULIA held out), lis-b (lis, IBRAHIM, KENZA and NOOR held out), lis-c (lis, GIANLUCA, HUZAIFA and MIKE held out), lsa16, massey")
    g.add_argument("--regimes", default="5,10,20", help="comma-separated K per class, or 'full'")
    g.add_argument("--sources", default="reacgan", help="comma-separated generated sources: reacgan, spade, "
                                                        "spade@massey, spade@kaggle_asl (multi-source), hgan, rendered "
                                                        "(paper 001; full regime only)")
    g.add_argument("--strategies", default="pretrain,regularizer,mixup", help="comma-separated strategies besides real")
    g.add_argument("--filtered", choices=("no", "yes", "both"), default="no", help="top-K filtered generated data")
    g.add_argument("--seeds", type=_positive, default=3, help="seeds per row")
    _lambda_args(g)
    g.add_argument("--epochs", type=_positive, help="override the preset's full-data epochs")
    g.add_argument("--out", default="runs/strategies", help="folder of runs, GANs and generated sets, one subfolder "
                                                            "per preset (resumable)")
    g.add_argument("--doc", default="docs/strategies.md", help="markdown page for the tables and figures")
    _run_args(g)
    g.set_defaults(func=cmd_classifier_grid)

    fs = tsub.add_parser(
        "fused-seeds", help="does an image-classifier change survive fusion? the grid's lis classifiers, fused",
        description="Fuses each image classifier of the shipped-preset strategy grid (lis protocols, every seed) with "
                    "the shipped keypoint recipe trained without the same person (new-people cells, trained if "
                    "missing), as --classifier fused does, and scores keypoints alone, image alone and fused on every "
                    "photo of the test signers (no hand found counts as wrong), with gains over real paired by seed.",
        formatter_class=fmt)
    fs.add_argument("--data", default="lis,lis-b,lis-c", help="comma-separated grid protocols (default: %(default)s)")
    fs.add_argument("--methods", default="real,hgan-regularizer,rendered-regularizer",
                    help="comma-separated grid run folders (default: %(default)s)")
    fs.add_argument("--image-weights", default="0.2,0.3,0.5",
                    help="comma-separated weights of the image model in the fused reading (default: %(default)s)")
    fs.add_argument("--grid-out", default="runs/strategies/shipped", help="the shipped-preset grid's folder")
    fs.add_argument("--json", default="docs/fused-seeds.json", help="per-seed results to write")
    fs.add_argument("--doc", default="docs/fused-seeds.md", help="markdown table to write")
    fs.add_argument("--datasets", help="folder holding the datasets (default: $FINGERSPELL_DATASETS)")
    fs.add_argument("--cache-dir", help="keypoint and crop cache folder (default: ~/.cache/fingerspell)")
    fs.set_defaults(func=cmd_fused_seeds)
