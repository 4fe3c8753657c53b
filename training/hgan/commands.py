"""The H-GAN subcommands of ``fingerspell``: ``train hgan``, ``translate`` and ``hgan-metrics``.

Registered by ``realtime.cli``; every heavy import happens inside the command, so ``--help`` stays instant.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from realtime.cli_common import HelpFormatter, add_data_args, comma_list, fail, int_range

_positive = int_range(1)
COMMAND_FILE = "command.txt"  # in an H-GAN run folder: the 'train hgan' command that made it


def generator_command(run: Path, config_name: str) -> str:
    """The command that trained the H-GAN in ``run``: as recorded there, or (runs made before it was recorded) the
    shipped config's command, marked as inferred."""
    recorded = run / COMMAND_FILE
    if recorded.exists():
        return recorded.read_text().strip()
    return f"fingerspell train hgan --config {config_name} (inferred from the run's config name)"


def cmd_train_hgan(args) -> int:
    from training.hgan.config import load_config
    from training.hgan.trainer import HGANTrainer
    from training.io import command_line

    if args.datasets:
        os.environ["FINGERSPELL_DATASETS"] = args.datasets
    try:
        config = load_config(args.config, {"steps": args.steps, "device": args.device, "seed": args.seed,
                                           "threads": args.threads, "discriminator": args.discriminator,
                                           "blocks": args.blocks, "vgg16_weights": args.vgg16_weights})
        out = Path(args.out or f"runs/hgan/{config.name}")
        t0 = time.perf_counter()
        trainer = HGANTrainer(config, out, cache_dir=args.cache_dir)
        (out / COMMAND_FILE).write_text(command_line() + "\n")  # 'translate' records it as the generator's command
        if trainer.resumed:
            print(f"resuming {out / 'checkpoint.pt'} at step {trainer.step}/{config.steps}")
        trainer.train()
        print(f"trained {trainer.step} of {config.steps} steps in {(time.perf_counter() - t0) / 60:.1f} min -> {out} "
              f"(samples.png: rendered / translated / nearest real; losses.png)")
        if not trainer.finished:
            print("stopped on max_minutes: rerun the same command to continue; no metrics of a part-trained H-GAN")
        elif not args.no_metrics:
            from training.hgan.metrics import hgan_metrics, format_hgan_metrics

            m = hgan_metrics(out, datasets=args.datasets, cache_dir=args.cache_dir, images=args.metrics_images)
            print(format_hgan_metrics(m))
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        return fail(str(e))
    return 0


def cmd_translate(args) -> int:
    from training.gan.trainer import resolve_dataset
    from training.hgan.data import pose_pool
    from training.hgan.translate import balanced_poses, load_hgan, write_translated
    from training.io import command_line
    from training.train_j2s import resolve_device

    try:
        hgan = load_hgan(args.hgan, resolve_device(args.device))
        config = hgan.config
        if args.poses:
            config.pose_datasets = comma_list(args.poses)
            for name in config.pose_datasets:
                resolve_dataset(name, args.datasets)  # a clear error before any work
        if args.exclude_signers is not None:
            config.exclude_signers = comma_list(args.exclude_signers) or []
        lm, labels = pose_pool(config, args.datasets, args.cache_dir)
        classes = comma_list(args.labels)
        unknown = sorted(set(classes or []) - set(labels.tolist()))
        if unknown:
            raise ValueError(f"no poses of classes {unknown}; the pose data has {sorted(set(labels.tolist()))}")
        lm, labels = balanced_poses(lm, labels, args.per_class, config, args.seed, classes)
        info = write_translated(hgan, lm, labels, args.out, args.seed, args.keep_synthetic,
                                extra={"pose_datasets": config.pose_datasets or [config.dataset],
                                       "exclude_signers": config.exclude_signers,
                                       "command": command_line(),
                                       "generator_command": generator_command(Path(args.hgan), config.name)})
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        return fail(str(e))
    print(f"wrote {info['images']} translated hands ({len(info['classes'])} classes x {info['per_class']}) to "
          f"{args.out} (manifest.csv, generated.json, poses.npz)")
    return 0


def cmd_hgan_metrics(args) -> int:
    from training.hgan.metrics import format_hgan_metrics, hgan_metrics

    try:
        m = hgan_metrics(args.hgan, datasets=args.datasets, cache_dir=args.cache_dir, images=args.images,
                         doc=args.doc, evaluator=args.evaluator, classifier=args.classifier)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        return fail(str(e))
    print(format_hgan_metrics(m))
    return 0


def register(sub, tsub) -> None:
    fmt = HelpFormatter
    g = tsub.add_parser("hgan", help="train H-GAN (paper 001): rendered hands -> real-looking hands",
                        description="CycleGAN with multi-scale perceptual discriminators between hands rendered from "
                                    "the datasets' keypoints (turned in 3-D, mirrored) and the real hand crops. "
                                    "Checkpoints every few hundred steps; rerun the same command to resume. Writes "
                                    "RUN/checkpoint.pt, samples.png, losses.png and, unless --no-metrics, "
                                    "RUN/metrics.json.", formatter_class=fmt)
    g.add_argument("--config", default="lis-hgan-cpu",
                   help="a YAML file or a shipped config: lis-hgan-cpu (2 CPU cores, under an hour), "
                        "massey-hgan-cpu (about 15 minutes), lis-b-hgan-cpu (lis-hgan-cpu with the grid's second lis "
                        "protocol held out), lis-c-hgan-cpu (the third, for the confirmatory test), lis-hgan-gpu")
    g.add_argument("--out", help="run folder (default: runs/hgan/CONFIG)")
    g.add_argument("--steps", type=_positive, help="override the config's steps")
    g.add_argument("--discriminator", choices=("perceptual", "patch", "pixel"), help="override the discriminator")
    g.add_argument("--blocks", type=_positive, help="override the generators' residual blocks (paper: 4, 6, 9)")
    g.add_argument("--vgg16-weights", metavar="FILE",
                   help="torchvision VGG-16 state dict for the perceptual discriminator, as in the paper (default: "
                        "a hand CNN trained on the real crops, since ImageNet weights cannot be downloaded here)")
    g.add_argument("--seed", type=int, help="override the config's seed")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (default: the config's, auto)")
    g.add_argument("--threads", type=_positive, help="torch CPU threads (default: all cores)")
    add_data_args(g)
    g.add_argument("--metrics-images", type=_positive, default=2000, help="translated hands scored at the end")
    g.add_argument("--no-metrics", action="store_true", help="skip the end-of-run metrics")
    g.set_defaults(func=cmd_train_hgan)

    t = sub.add_parser("translate", help="render hands from dataset poses and translate them with a trained H-GAN",
                       description="Draws --per-class poses of every class from the datasets' cached keypoints "
                                   "(turned in 3-D and mirrored as the H-GAN config says), renders them, translates "
                                   "them to the real domain and writes OUT/LABEL/NNNNNN.png, manifest.csv, "
                                   "generated.json and poses.npz: a folder 'train classifier --generated' reads.",
                       formatter_class=fmt)
    t.add_argument("--hgan", required=True, help="an H-GAN run folder or its checkpoint.pt")
    t.add_argument("--out", required=True, help="folder to write")
    t.add_argument("--poses", help="comma-separated datasets whose keypoints give the poses (default: the run's)")
    t.add_argument("--exclude-signers", help="comma-separated signers whose poses are not used (default: the run's "
                                             "held-out signers; '' for none)")
    t.add_argument("--labels", help="comma-separated classes (default: every class of the pose data)")
    t.add_argument("--per-class", type=_positive, default=500, help="hands per class")
    t.add_argument("--keep-synthetic", action="store_true", help="also write the rendered inputs to OUT/synthetic/")
    t.add_argument("--seed", type=int, default=0, help="random seed for poses and rendering")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the generator runs")
    add_data_args(t)
    t.set_defaults(func=cmd_translate)

    m = sub.add_parser("hgan-metrics", help="FID/KID, realism test, pose and letter kept, for an H-GAN run",
                       description="Paper 001's evaluation in this project's feature space: FID and KID of real vs "
                                   "rendered vs translated hands; a classifier trained to tell real / rendered / "
                                   "translated and how often it takes translated hands for real; MediaPipe landmarks "
                                   "of the translated hands against the rendered keypoints (mean distance, PCK); the "
                                   "letter read by an image classifier. Writes RUN/metrics.json.", formatter_class=fmt)
    m.add_argument("--hgan", required=True, help="an H-GAN run folder")
    m.add_argument("--images", type=_positive, default=2000, help="hands per domain to score")
    m.add_argument("--evaluator", help="'cnn' classifier folder whose features FID/KID use (default: the real-data "
                                       "evaluator of runs/evaluators, trained once)")
    m.add_argument("--classifier", default="weights/lis-letters-image",
                   help="shipped image classifier that reads the letters (a weights folder)")
    m.add_argument("--doc", metavar="MD", help="also write the tables and grid into this markdown page")
    add_data_args(m)
    m.set_defaults(func=cmd_hgan_metrics)
