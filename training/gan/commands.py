"""The GAN subcommands of ``fingerspell``: ``train gan``, ``generate`` and ``gan-metrics``.

Registered by ``realtime.cli``; every heavy import happens inside the command, so ``--help`` stays instant.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path


from realtime.cli_common import HelpFormatter, add_data_args, comma_list, fail, int_range

_positive = int_range(1)


def cmd_train_gan(args) -> int:
    from training.gan.config import load_config
    from training.gan.metrics import ensure_evaluator, evaluate_generator, format_metrics
    from training.gan.sampling import load_generator
    from training.gan.trainer import GANTrainer

    if args.datasets:
        os.environ["FINGERSPELL_DATASETS"] = args.datasets
    try:
        config = load_config(args.config, {"steps": args.steps, "device": args.device, "seed": args.seed,
                                           "per_class": args.per_class, "threads": args.threads,
                                           "evaluator": args.evaluator})
        out = Path(args.out or f"runs/gan/{config.name}")
        t0 = time.perf_counter()
        trainer = GANTrainer(config, out, cache_dir=args.cache_dir)
        if trainer.resumed and trainer.rank == 0:
            print(f"resuming {out / 'checkpoint.pt'} at step {trainer.step}/{config.steps}")
        trainer.train()
        if trainer.rank != 0:
            return 0
        print(f"trained {trainer.step} of {config.steps} steps in {(time.perf_counter() - t0) / 60:.1f} min -> {out}")
        if not trainer.finished:
            print("stopped on max_minutes: rerun the same command to continue; no metrics of a part-trained GAN")
            return 0
        if args.no_metrics:
            return 0
        evaluator = ensure_evaluator(config, cache_dir=args.cache_dir)
        gen = load_generator(out, trainer.device)
        m = evaluate_generator(gen, evaluator, trainer.data, config.metrics_samples, out=out / "metrics",
                               inception_weights=args.inception_weights)
        print(format_metrics(m))
        print(f"total {(time.perf_counter() - t0) / 60:.1f} min; metrics and per-class grid in {out / 'metrics'}")
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        return fail(str(e))
    return 0


def _pose_source(args, gen):
    from training.gan.sampling import PoseSource
    from training.gan.trainer import resolve_dataset

    if gen.config.model != "spade":
        if args.poses:
            raise ValueError("--poses applies to SPADE generators only (this one is label-conditioned)")
        return None
    name = args.poses or gen.config.dataset
    return PoseSource.from_dataset(resolve_dataset(name, args.datasets), gen.config.size, gen.config.crop,
                                   cache_dir=args.cache_dir)


def cmd_generate(args) -> int:
    from training.gan.metrics import ensure_evaluator
    from training.gan.sampling import generate_dataset, load_generator
    from training.image_classifier import ImageClassifier
    from training.io import command_line

    try:
        from training.train_j2s import resolve_device

        gen = load_generator(args.gan, resolve_device(args.device))
        poses = _pose_source(args, gen)
        scorer = None
        if args.filter_top_k:
            scorer = (ImageClassifier.load(args.evaluator) if args.evaluator
                      else ensure_evaluator(gen.config, args.datasets, args.cache_dir))
        info = generate_dataset(gen, args.out, args.per_class, comma_list(args.labels), args.truncation, poses,
                                args.seed, args.filter_top_k, scorer,
                                extra={"command": command_line()})
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        return fail(str(e))
    print(f"wrote {info['per_class']} images for each of {len(info['classes'])} classes to {args.out} "
          f"(manifest.csv, generated.json)")
    return 0


def cmd_gan_metrics(args) -> int:
    from dataclasses import replace

    from training.gan.metrics import ensure_evaluator, evaluate_generator, format_metrics
    from training.gan.sampling import load_generator
    from training.gan.trainer import training_set
    from training.image_classifier import ImageClassifier

    try:
        gen = load_generator(args.gan)
        evaluator = (ImageClassifier.load(args.evaluator) if args.evaluator
                     else ensure_evaluator(gen.config, args.datasets, args.cache_dir))
        real = training_set(replace(gen.config, model="reacgan"), args.datasets, args.cache_dir)
        poses = _pose_source(args, gen)
        out = args.out or str(Path(gen.path).parent / "metrics")
        m = evaluate_generator(gen, evaluator, real, args.images, args.truncation, poses, out=out,
                               inception_weights=args.inception_weights)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        return fail(str(e))
    print(format_metrics(m))
    print(f"written to {out}/metrics.json and {out}/samples_per_class.png")
    if args.doc:
        write_doc_section(m, args, Path(out) / "samples_per_class.png")
    return 0


def cmd_gan_export(args) -> int:
    import json

    from training.gan.sampling import export_generator, read_checkpoint

    try:
        run = Path(args.gan)
        ck_path = run / "checkpoint.pt" if run.is_dir() else run
        metrics_file = ck_path.parent / "metrics" / "metrics.json"
        metrics = {}
        if metrics_file.exists():
            m = json.loads(metrics_file.read_text())
            metrics = {k: m[k] for k in ("fid", "fid_real_vs_real", "kid", "density", "coverage", "precision",
                                         "recall", "accuracy", "images", "step") if k in m}
        name = read_checkpoint(ck_path)["config"]["name"]
        manifest = export_generator(ck_path, args.out, metrics,
                                    command=f"fingerspell train gan --config {name}")
    except (FileNotFoundError, ValueError, RuntimeError, KeyError) as e:
        return fail(str(e))
    print(f"wrote {args.out}/generator.pt ({manifest['bytes'] / 1e6:.1f} MB, fp16, step {manifest['step']}) "
          f"and manifest.json")
    return 0


def write_doc_section(m: dict, args, grid: Path) -> None:
    """Put the figures and grid into a docs page: one section per GAN, replaced when rerun."""
    import shutil

    from training.gan.metrics import metrics_markdown
    from training.io import command_line

    doc = Path(args.doc)
    doc.parent.mkdir(parents=True, exist_ok=True)
    name = Path(args.gan).resolve()
    name = name.parent.name if name.is_file() else name.name
    img_dir = doc.parent / doc.stem
    img_dir.mkdir(exist_ok=True)
    shutil.copy(grid, img_dir / f"{name}-samples.png")
    cmd = command_line() if Path(sys.argv[0]).name in ("fingerspell", "cli.py") else \
        f"fingerspell gan-metrics --gan {args.gan} --images {args.images} --doc {args.doc}"
    section = metrics_markdown(m, name, cmd, f"{img_dir.name}/{name}-samples.png")
    text = doc.read_text() if doc.exists() else "# GAN metrics\n\nWritten by `fingerspell gan-metrics --doc`.\n\n"
    start = text.find(f"## {name}\n")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text)
    print(f"section {name!r} written to {doc}")



def register(sub, tsub) -> None:
    """Add ``train gan`` under ``tsub`` and ``generate``, ``gan-metrics`` under ``sub``."""
    fmt = HelpFormatter
    g = tsub.add_parser(
        "gan", help="train a ReACGAN (label) or SPADE (pose) hand generator from a config (paper 000)",
        description="Trains from a YAML config: a file or a shipped name (lis-reacgan-cpu, the default, trains in "
                    "under an hour on 2 CPU cores; lis-reacgan-gpu, lis-spade-cpu, lis-spade-gpu, massey-spade-cpu). "
                    "Checkpoints atomically every checkpoint_every steps; the same command resumes. Writes sample "
                    "grids, a loss plot and, at the end, FID/KID/PRDC and label accuracy in the feature space of a "
                    "real-data classifier (trained once if missing). Under torchrun it trains with "
                    "DistributedDataParallel (NCCL on GPUs, gloo on CPUs).", formatter_class=fmt)
    g.add_argument("--config", default="lis-reacgan-cpu", help="YAML file or shipped config name")
    g.add_argument("--out", help="run folder (default: runs/gan/CONFIG_NAME)")
    g.add_argument("--steps", type=_positive, help="override the config's generator steps")
    g.add_argument("--per-class", type=_positive, help="limited data: keep this many real images per class")
    g.add_argument("--seed", type=int, help="override the config's seed")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (default: the config's, auto)")
    g.add_argument("--threads", type=_positive, help="torch CPU threads (default: all cores)")
    add_data_args(g)
    g.add_argument("--evaluator", help="real-data classifier folder for the metrics (default: trained once into "
                                       "runs/evaluators/)")
    g.add_argument("--inception-weights", metavar="FILE",
                   help="also report the standard Inception FID from this weight file (needs torch-fidelity)")
    g.add_argument("--no-metrics", action="store_true", help="skip the end-of-run metrics")
    g.set_defaults(func=cmd_train_gan)

    def pose_args(q):
        q.add_argument("--poses", help="SPADE: dataset (name or folder) whose hand poses to draw from; may differ "
                                       "from the training data (multi-source). Default: the GAN's own dataset")
        add_data_args(q)
        q.add_argument("--truncation", type=float, help="truncation trick: redraw latent entries beyond +-T "
                                                         "(e.g. 1.0; default: none)")

    ge = sub.add_parser("generate", help="write a balanced, labelled dataset of generated hand images",
                        description="Writes OUT/LABEL/NNNNNN.png, manifest.csv and generated.json. With "
                                    "--filter-top-k, --per-class images are generated per class and the K that a "
                                    "classifier trained on real data finds most likely to show their class are "
                                    "kept (paper 000, section 3.1.4).", formatter_class=fmt)
    ge.add_argument("--gan", required=True, help="checkpoint.pt (or its run folder) from 'fingerspell train gan'")
    ge.add_argument("--per-class", type=_positive, default=1000, help="images generated per class")
    ge.add_argument("--out", required=True, help="folder to write")
    ge.add_argument("--labels", help="comma-separated subset of the classes (default: all)")
    ge.add_argument("--filter-top-k", type=_positive, metavar="K", help="keep the K best-scored images per class")
    ge.add_argument("--evaluator", help="classifier folder that scores the images for --filter-top-k (default: "
                                        "the GAN's real-data evaluator)")
    ge.add_argument("--seed", type=int, default=0, help="random seed")
    ge.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the generator runs")
    pose_args(ge)
    ge.set_defaults(func=cmd_generate)

    gm = sub.add_parser("gan-metrics", help="FID, KID, precision/recall/density/coverage and label accuracy of a GAN",
                        description="Generates --images images balanced over the classes and compares them with the "
                                    "GAN's real training crops in the feature space of a real-data hand classifier "
                                    "(Inception weights cannot be downloaded here). Writes metrics.json and a sample "
                                    "grid per class.", formatter_class=fmt)
    gm.add_argument("--gan", required=True, help="checkpoint.pt (or its run folder)")
    gm.add_argument("--images", type=_positive, default=2000, help="generated images to score")
    gm.add_argument("--evaluator", help="real-data classifier folder (default: the GAN's, trained once if missing)")
    gm.add_argument("--inception-weights", metavar="FILE", help="also the standard Inception FID (needs torch-fidelity)")
    gm.add_argument("--out", help="folder for metrics.json and the grid (default: RUN/metrics)")
    gm.add_argument("--doc", metavar="MD", help="also write the figures and grid as a section of this markdown page "
                                                "(e.g. docs/gan.md)")
    pose_args(gm)
    gm.set_defaults(func=cmd_gan_metrics)

    gx = sub.add_parser("gan-export", help="ship a trained generator: fp16 EMA weights + manifest in a folder",
                        description="Writes OUT/generator.pt (the EMA generator in fp16, its config and classes) and "
                                    "OUT/manifest.json (sha256, data, step, the run's metrics if gan-metrics or "
                                    "train gan wrote them, the command). 'fingerspell generate --gan OUT' reads it.",
                        formatter_class=fmt)
    gx.add_argument("--gan", required=True, help="checkpoint.pt (or its run folder)")
    gx.add_argument("--out", required=True, help="folder to write, e.g. weights/lis-reacgan-cpu")
    gx.set_defaults(func=cmd_gan_export)
