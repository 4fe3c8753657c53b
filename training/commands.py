"""``fingerspell train keypoints | results | ensembles | calibration | extract | j2s | j2s-grid | j2s-results | stitch | sequence |
sequence-compare``:
the keypoint, J2S and sequence training commands, registered beside the training code they run (as training/classifier_commands.py and
training/gan/commands.py register theirs). Heavy imports happen inside each command."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from realtime.cli_common import (ENV_DATASETS, RUN_ERRORS, HelpFormatter, add_verbose, comma_list, datasets_root,
                                 fail, float_range, int_range, writable)


def cmd_train_keypoints(args) -> int:
    from dataclasses import replace

    from training.experiments import preset
    from training.train_keypoints import TrainConfig, train

    overrides = {k: v for k, v in {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                                   "seed": args.seed, "cache_dir": args.cache_dir, "workers": args.workers,
                                   "features": args.features.split(",") if args.features else None,
                                   "test_signers": args.test_signers, "test_datasets": args.test_datasets,
                                   "random_test": args.random_test,
                                   "balance": False if args.no_balance else None}.items() if v is not None}
    from realtime.images import DatasetError

    if args.preset and (args.data or args.labels):  # a preset names its own datasets and labels
        return fail(f"--preset {args.preset} trains on its own datasets and labels: give --preset, or --data and "
                    "--labels, not both")
    try:
        if args.preset:
            cfg = preset(args.preset, datasets_root(args.datasets), args.out or f"runs/{args.preset}", **overrides)
        else:
            if not args.data or not args.labels:
                return fail("give --preset, or --data DIR [DIR ...] and --labels")
            cfg = replace(TrainConfig(data=args.data, labels=args.labels.split(","), out=args.out or "runs/keypoints"),
                          **overrides)
        summary = train(cfg, resume=not args.no_resume)
        print(f"outputs in {cfg.out}: model.pt, metrics.json, loss_curves.png"
              + (", confusion_matrix.png, per_class_accuracy.png" if "test" in summary else ""))
        if args.export:
            from export.keypoint_export import export_keypoint_model

            from training.experiments import EVALUATION, PRESETS
            from training.new_people import held_out_summary

            held_out = held_out_summary(PRESETS[args.preset]) if args.preset == "asl-letters" else None
            if args.preset == "asl-letters" and held_out is None:
                print("note: no new-people results for this recipe in runs/new-people: run 'fingerspell train "
                      "results' first to record its accuracy on people it never saw in the manifest", file=sys.stderr)
            export_keypoint_model(os.path.join(cfg.out, "model.pt"), args.export, name=args.preset,
                                  extra_training={"evaluation": EVALUATION[args.preset]} if args.preset else None,
                                  held_out=held_out)
            print(f"exported to {args.export}")
    except (DatasetError, *RUN_ERRORS) as e:
        return fail(str(e))
    return 0


def cmd_train_results(args) -> int:
    from training.experiments import BEFORE_AND_SHIPPED
    from training.new_people import run_new_people

    try:
        recipes = args.recipes.split(",") if args.recipes else list(BEFORE_AND_SHIPPED)
        run_new_people(recipes, datasets_root(args.datasets), args.out, doc=args.doc, jobs=args.jobs,
                       epochs=args.epochs, layout=args.layout)
    except ValueError as e:
        return fail(str(e))
    return 0


def cmd_train_ensembles(args) -> int:
    from training.ensembles import run_ensembles

    try:
        run_ensembles(args.recipes.split(","), datasets_root(args.datasets), args.seeds, args.out, doc=args.doc,
                      jobs=args.jobs)
    except ValueError as e:
        return fail(str(e))
    return 0


def _protocol_tables(module: str, function: str):
    """A command that judges the new-people cells another way (adaptation, rejection): ``module.function(recipes,
    datasets, out, doc=, jobs=)``, imported when the command runs."""
    def command(args) -> int:
        import importlib

        writable(args.doc)  # before minutes of work, not after
        run = getattr(importlib.import_module(module), function)
        try:
            run(comma_list(args.recipes), datasets_root(args.datasets), args.out, doc=args.doc, jobs=args.jobs)
        except ValueError as e:
            return fail(str(e))
        return 0
    return command


cmd_train_adaptation = _protocol_tables("training.adaptation_experiments", "run_adaptation")
cmd_train_rejection = _protocol_tables("training.rejection_experiments", "run_rejection")
cmd_train_hand_model = _protocol_tables("training.hand_model_experiments", "run_hand_model")


def _protocol_args(p, doc: str, func) -> None:
    """The options every command over the new-people cells takes."""
    p.add_argument("--recipes", default="asl-v3,lis-v3", help="comma-separated recipes (default: %(default)s)")
    p.add_argument("--datasets", help=f"folder holding the datasets (default: ${ENV_DATASETS})")
    p.add_argument("--out", default="runs/new-people", help="folder for each cell's run (resumable)")
    p.add_argument("--doc", default=doc, help="markdown table to write (default: %(default)s)")
    p.add_argument("--jobs", type=int_range(1), default=1, help="cells trained in parallel")
    p.set_defaults(func=func)


def cmd_train_letter_distance(args) -> int:
    from training.rejection_experiments import make_letter_distance

    try:
        entry = make_letter_distance(args.model, args.preset, datasets_root(args.datasets), args.quantile)
    except (ValueError, OSError) as e:
        return fail(str(e))
    print(f"wrote {entry['file']} beside {args.model} (threshold {entry['threshold']:.1f}, {entry['quantile']:.1%} of "
          f"its validation hands nearer) and its manifest entry")
    return 0


def cmd_train_calibration(args) -> int:
    from training.calibration_experiments import run_calibration

    writable(args.doc)  # before minutes of work, not after
    try:
        run_calibration(args.runs, datasets_root(args.datasets), args.out, doc=args.doc, jobs=args.jobs,
                        image_models=comma_list(args.image_models) or [], cache_dir=args.cache_dir)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        return fail(str(e))
    return 0


def cmd_train_extract(args) -> int:
    from realtime.images import DatasetError
    from training.keypoints import load_keypoints

    try:
        for d in args.data:
            kp = load_keypoints(d, cache_dir=args.cache_dir, workers=args.workers)
            print(f"{d}: {kp.summary()}")
    except DatasetError as e:
        return fail(str(e))
    return 0


def _lis_folder(args) -> str:
    if args.data:
        return args.data
    path = os.path.join(datasets_root(args.datasets), "lis")
    if not os.path.isdir(path):
        raise SystemExit(fail(f"no lis dataset in {os.path.dirname(path)}"))
    return path


def _j2s_overrides(args) -> dict:
    return {k: v for k, v in {"backbone": args.backbone, "threads": args.threads, "seed": args.seed,
                              "cache_dir": args.cache_dir, "device": args.device}.items() if v is not None}


def cmd_train_j2s(args) -> int:
    from dataclasses import replace

    from training.j2s_experiments import preset
    from training.train_j2s import train_j2s

    try:
        cfg = preset(args.preset, _lis_folder(args), args.out or f"runs/j2s-{args.preset}-{args.split}",
                     split=args.split, epochs=args.epochs, **_j2s_overrides(args))
        cfg = replace(cfg, **{k: v for k, v in {"lr": args.lr, "alpha": args.alpha, "batch_size": args.batch_size,
                                                "test_signers": args.test_signers}.items() if v is not None},
                      augment=args.augment)
        train_j2s(cfg, resume=not args.no_resume)
        print(f"outputs in {cfg.out}: model.pt, metrics.json, loss_curves.png, confusion_matrix.png, pck.png")
        if args.export:
            from export.j2s_export import export_j2s_model

            export_j2s_model(os.path.join(cfg.out, "model.pt"), args.export, data_dir=cfg.data)
            print(f"exported to {args.export}")
    except RUN_ERRORS as e:
        return fail(str(e))
    return 0


def _run_j2s_experiment(run, args) -> int:
    try:
        run(_lis_folder(args), args.out, epochs=args.epochs, doc=args.doc, **_j2s_overrides(args))
    except RUN_ERRORS as e:
        return fail(str(e))
    return 0


def cmd_train_j2s_grid(args) -> int:
    from training.j2s_experiments import run_grid

    return _run_j2s_experiment(run_grid, args)


def cmd_train_j2s_results(args) -> int:
    from training.j2s_experiments import run_results

    return _run_j2s_experiment(run_results, args)



def cmd_train_stitch(args) -> int:
    from training.experiments import RECIPES
    from training.keypoints import load_keypoints
    from training.stitching import LetterDictionary, write_set
    from training.train_keypoints import ASL_LETTERS, LIS_LETTERS

    sources = args.data.split(",") if args.data else list(RECIPES[f"{args.alphabet}-v3"][0])
    letters = ASL_LETTERS if args.alphabet == "asl" else LIS_LETTERS
    try:
        root = datasets_root(args.datasets)
        sets = [load_keypoints(os.path.join(root, d), cache_dir=args.cache_dir) for d in sources]
        dictionary = LetterDictionary.from_keypoints(args.alphabet, sets, letters)
        if args.exclude_signers:
            dictionary = dictionary.without(set(args.exclude_signers))
        if args.only_signers:  # e.g. a validation set of signers the training set's dictionary left out
            everyone = {str(s) for v in dictionary.signers.values() for s in v}
            dictionary = dictionary.without(everyone - set(args.only_signers))
        words = None
        if args.words:
            from realtime.lexicon import Lexicon

            words = Lexicon.load(args.words, letters).words
        m = write_set(args.out, args.alphabet, dictionary, args.count, seed=args.seed,
                      fps_range=(args.min_fps, args.max_fps), command=" ".join(["fingerspell"] + sys.argv[1:]),
                      words=words, held_photos=args.held_photos)
    except RUN_ERRORS as e:
        return fail(str(e))
    print(f"wrote {args.out}: {m['sequences']} sequences, {m['frames']} frames, letters {''.join(m['letters'])} "
          f"(motion: {''.join(m['motion_letters']) or 'none'}), from {', '.join(m['dictionary']['sources'])}")
    return 0


def cmd_eval_sequences(args) -> int:
    import json

    from training.sequence_eval import evaluate_sequences

    readers = args.readers.split(",")
    if args.lexicon is None:
        readers = [r for r in readers if not r.endswith("+lexicon")]
    try:
        m = evaluate_sequences(args.data, readers, args.model, args.sequence_model, args.lexicon, args.limit)
    except RUN_ERRORS as e:
        return fail(str(e))
    m["command"] = " ".join(["fingerspell"] + sys.argv[1:])
    print(f"{args.data} ({m['what']}): {m['readers'][readers[0]]['sequences']} sequences")
    print(f"{'reader':<18} {'CER':>7} {'word acc':>9}   first example")
    for name, r in m["readers"].items():
        ref, got = r["examples"][0] if r["examples"] else ("", "")
        print(f"{name:<18} {r['cer']:>7.1%} {r['word_accuracy']:>9.1%}   {ref!r} -> {got!r}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(m, f, indent=1)
    return 0


def cmd_train_sequence(args) -> int:
    from training.sequence_model import SequenceConfig, set_letters, train_sequence

    try:
        import torch

        if args.init:  # the pre-trained reader's own letters and layers; this run's epochs, seed and lr
            saved = torch.load(args.init, weights_only=False)["config"]
            config = SequenceConfig(**{**saved, "dilations": tuple(saved["dilations"]), "epochs": args.epochs,
                                       "seed": args.seed, **({"lr": args.lr} if args.lr is not None else {})})
        else:
            config = SequenceConfig(alphabet=set_letters(args.train), epochs=args.epochs, seed=args.seed,
                                    **({"lr": args.lr} if args.lr is not None else {}))
        m = train_sequence(args.train, args.val, args.out, config, init=args.init)
        b = m["best"]
        print(f"best epoch {b['epoch']}: character error rate {b['cer']:.1%}, word accuracy {b['word_accuracy']:.1%} "
              f"on {b['sequences']} validation sequences; model and metrics in {args.out}")
        if args.export:
            from export.sequence_export import export_sequence_model

            export_sequence_model(args.out, args.export, command=" ".join(["fingerspell"] + sys.argv[1:]))
            print(f"exported {args.export}/model.onnx + manifest.json")
    except (*RUN_ERRORS, KeyError) as e:
        return fail(str(e))
    return 0


def cmd_train_sequence_compare(args) -> int:
    from training.sequence_experiments import VARIANTS, run_compare, variant_folder

    if (args.export is None) != (args.export_variant is None):
        return fail("--export DIR and --export-variant NAME go together")
    if args.export_variant is not None and args.export_variant not in VARIANTS:
        return fail(f"unknown variant {args.export_variant!r}; choose from {', '.join(VARIANTS)}")
    try:
        run_compare(datasets_root(args.datasets), args.out, doc=args.doc)
    except (*RUN_ERRORS, KeyError) as e:
        return fail(str(e))
    if args.export:
        from export.sequence_export import export_sequence_model

        export_sequence_model(Path(args.out) / variant_folder(args.export_variant), args.export,
                              command=" ".join(["fingerspell"] + sys.argv[1:]))
        print(f"exported the {args.export_variant} reader to {args.export}/model.onnx + manifest.json")
    return 0


def register(tsub) -> None:
    fmt = HelpFormatter
    kp = tsub.add_parser("keypoints", help="train the keypoint classifier on cached MediaPipe landmarks",
                         description="Checkpoints every epoch into --out; running the same command again resumes.",
                         formatter_class=fmt)
    kp.add_argument("--preset", choices=("asl-letters", "lis-letters"),
                    help="the recipe of a shipped model (datasets, labels, split)")
    kp.add_argument("--datasets", help=f"folder holding the datasets a preset names (default: ${ENV_DATASETS})")
    kp.add_argument("--data", nargs="+", help="dataset folders, without --preset")
    kp.add_argument("--labels", help="comma-separated labels to learn, without --preset")
    kp.add_argument("--test-signers", nargs="+", help="hold out these signers for testing ('GIULIA' or 'massey/hand1')")
    kp.add_argument("--test-datasets", nargs="+", help="hold out whole datasets for testing (by folder name)")
    kp.add_argument("--random-test", type=float_range(0.0, 0.9), metavar="FRACTION",
                    help="also hold out a stratified random fraction for testing (to compare with papers that used "
                         "a random split; it says little about new signers)")
    kp.add_argument("--features", help="comma-separated feature parts: j2s_polar, polar_scaled, cart_scaled, geometry "
                                       "(default: polar_scaled,cart_scaled)")
    kp.add_argument("--epochs", type=int_range(1), help="epochs (preset: 60)")
    kp.add_argument("--batch-size", type=int_range(2), help="batch size (default 256)")
    kp.add_argument("--lr", type=float_range(0.0, above=True),
                    help="peak learning rate of the one-cycle schedule (default 2e-3)")
    kp.add_argument("--seed", type=int, help="random seed (default 0)")
    kp.add_argument("--no-balance", action="store_true", help="sample uniformly instead of balancing datasets, signers, classes")
    kp.add_argument("--out", help="output folder (default: runs/PRESET)")
    kp.add_argument("--no-resume", action="store_true", help="start from scratch even if --out holds a checkpoint")
    kp.add_argument("--export", metavar="DIR", help="also export model.onnx + manifest.json to this folder (e.g. weights/asl-letters)")
    kp.add_argument("--cache-dir", help="keypoint cache folder (default: ~/.cache/fingerspell/keypoints or $FINGERSPELL_CACHE)")
    kp.add_argument("--workers", type=int_range(1), help="processes for keypoint extraction (default: all cores)")
    kp.set_defaults(func=cmd_train_keypoints)

    rs = tsub.add_parser("results", help="the new-people table: each recipe trained without the people it is tested on",
                         description="ASL leave-one-signer-out on massey (5 folds), ASL leave-one-dataset-out for "
                                     "roboflow, kaggle_asl, massey, digits and asl_webcam_landmarks, LIS on the held-out "
                                     "signer GIULIA and on lis_webcam_landmarks; accuracy, macro-F1, worst letters and "
                                     "the false-letter rate on hands that spell nothing. Writes a markdown table.",
                         formatter_class=fmt)
    rs.add_argument("--datasets", help=f"folder holding the datasets (default: ${ENV_DATASETS})")
    rs.add_argument("--recipes",
                    help="comma-separated recipes to compare (training/experiments.py RECIPES) (default: the recipe "
                         "before issue 14 and the shipped one of each alphabet: asl-v1,asl-v3,lis-v1,lis-v3)")
    rs.add_argument("--out", default="runs/new-people", help="folder for each cell's run (resumable)")
    rs.add_argument("--doc", default="docs/results.md", help="markdown table to write")
    rs.add_argument("--jobs", type=int_range(1), default=1, help="cells trained in parallel")
    rs.add_argument("--layout", choices=("protocols", "recipes"), default="protocols",
                    help="a row per protocol with the recipes side by side (before / after), or a row per recipe "
                         "with each protocol's summary (ablations) (default: %(default)s)")
    rs.add_argument("--epochs", type=int, help="override the recipes' epochs (quick checks)")
    rs.set_defaults(func=cmd_train_results)

    en = tsub.add_parser("ensembles", help="seed ensembles and test-time mirror images on the new-people protocols",
                         description="Trains each recipe with seeds 0..N-1 on every new-people protocol (cached cells, "
                                     "as 'train results'), then reads the held-out people with the seed-0 model, "
                                     "ensembles of 2..N seeds and the seed-0 model plus its mirror image.",
                         formatter_class=fmt)
    en.add_argument("--seeds", type=int_range(2, 10), default=3, help="ensemble members (default: %(default)s)")
    _protocol_args(en, "docs/results-ensembles.md", cmd_train_ensembles)

    ad = tsub.add_parser("adaptation", help="adapting to a new person from their unlabelled frames: input statistics, "
                                            "test-time views, self-training",
                         description="For each new-people protocol of the recipes (the model trained without those "
                                     "people, as 'train results'), half of the held-out rows serve as unlabelled "
                                     "frames to adapt on and the other half is tested, against the model as it is.",
                         formatter_class=fmt)
    _protocol_args(ad, "docs/results-adaptation.md", cmd_train_adaptation)

    rj = tsub.add_parser("rejection", help="not typing hands that spell nothing: a higher confidence threshold or "
                                           "the distance to the learned letters",
                         description="For each new-people protocol of the recipes (the model trained without those "
                                     "people, as 'train results'): letters typed right and false letters on hands "
                                     "that spell nothing, as shipped, with confidence thresholds 0.8 and 0.9, and "
                                     "with hands far from every learned letter (Mahalanobis distance in the "
                                     "classifier's penultimate features) not read.",
                         formatter_class=fmt)
    _protocol_args(rj, "docs/results-rejection.md", cmd_train_rejection)

    hm = tsub.add_parser("hand-model", help="new people read with MediaPipe's lite hand model (live's default) against "
                                            "the full one (training and the tables)",
                         description="For each new-people protocol of the recipes (the model trained without those "
                                     "people, as 'train results'): its held-out photos read with landmarks from the "
                                     "full hand models, as every table, and from the lite ones, as 'fingerspell live' "
                                     "tracks by default (the lite keypoints are extracted once and cached apart).",
                         formatter_class=fmt)
    _protocol_args(hm, "docs/results-hand-model.md", cmd_train_hand_model)

    ld = tsub.add_parser("letter-distance", help="the letter distance --reject-far-hands reads, beside a shipped "
                                                 "keypoint model",
                         description="Class means and shared covariance of the model's own embeddings of its "
                                     "training hands, and the distance beyond which a hand is read as no letter "
                                     "(--quantile of its validation hands are nearer); written as distance.npz beside "
                                     "the model, with its sha256 in the manifest.",
                         formatter_class=fmt)
    ld.add_argument("--model", default="weights/asl-letters", help="the model folder (default: %(default)s)")
    ld.add_argument("--preset", default="asl-letters", choices=("asl-letters", "lis-letters"),
                    help="the recipe the model was trained with: its training and validation split (default: "
                         "%(default)s)")
    ld.add_argument("--quantile", type=float_range(0.5, 1.0), default=0.99,
                    help="share of the validation hands that stay readable (default: %(default)s)")
    ld.add_argument("--datasets", help=f"folder holding the datasets (default: ${ENV_DATASETS})")
    ld.set_defaults(func=cmd_train_letter_distance)

    ca = tsub.add_parser("calibration", help="the calibration table: K = 1, 3, 5 samples per letter of each person",
                         description="For each massey and lis signer and each webcam landmark set: the shipped recipe "
                                     "trained without that person, calibrated on K samples per letter of theirs, "
                                     "tested on the rest; also a person's own variant of a letter. Trains the missing "
                                     "held-out models first (as 'train results' does).",
                         formatter_class=fmt)
    ca.add_argument("--datasets", help=f"folder holding the datasets (default: ${ENV_DATASETS})")
    ca.add_argument("--runs", default="runs/new-people", help="the held-out models ('train results' --out)")
    ca.add_argument("--out", default="runs/calibration", help="folder for the per-run JSON")
    ca.add_argument("--doc", default="docs/calibration.md", help="markdown table to write")
    ca.add_argument("--jobs", type=int_range(1), default=1, help="held-out models trained in parallel")
    ca.add_argument("--image-models", default="",
                    help="comma-separated lis image classifiers (names or folders, exported with the 'embedding' "
                         "output): also calibrate --classifier fused for the signers each was trained without")
    ca.add_argument("--cache-dir", help="keypoint and crop cache folder (default: ~/.cache/fingerspell)")
    ca.set_defaults(func=cmd_train_calibration)

    def j2s_common(q, out_default):
        q.add_argument("--data", help="the lis dataset folder (default: $FINGERSPELL_DATASETS/lis)")
        q.add_argument("--datasets", help=f"folder holding lis (default: ${ENV_DATASETS})")
        q.add_argument("--backbone", choices=("small", "paper64", "paper", "tiny"),
                       help="regression backbone: small (CPU, real time), paper64 (the paper's widths on 64-px "
                            "crops), paper (the paper's 256-px geometry), tiny (tests) (default: small)")
        q.add_argument("--out", default=out_default, help="output folder (resumable)")
        q.add_argument("--seed", type=int, help="random seed (default 0)")
        q.add_argument("--threads", type=int_range(1), help="torch CPU threads (default: all cores)")
        q.add_argument("--cache-dir", help="keypoint and image cache folder (default: ~/.cache/fingerspell/keypoints)")
        q.add_argument("--device", choices=("auto", "cpu", "cuda"),
                       help="where torch trains: auto takes CUDA when there is a GPU (default: auto)")

    j2 = tsub.add_parser("j2s", help="train J2S end to end: image -> keypoints -> polar -> letter (paper 003)",
                         description="SGD with momentum 0.9, weight decay 5e-5, batch 128, lr / 10 at 60% of the "
                                     "epochs. Presets: static (lr 0.01, alpha 0.5) and dynamic loss weighting "
                                     "(lr 0.005, alpha 0.8). Checkpoints every epoch; the same command resumes.",
                         formatter_class=fmt)
    j2.add_argument("--preset", choices=("static", "dynamic"), default="dynamic", help="loss weighting and its lr, alpha")
    j2.add_argument("--split", choices=("random", "signer"), default="signer",
                    help="random: the paper's stratified 66/17/17; signer: hold out --test-signers")
    j2.add_argument("--test-signers", nargs="+", help="signers held out with --split signer (default: GIULIA)")
    j2.add_argument("--epochs", type=int_range(1), help="epochs; the lr step moves with it (default: 150, the paper's)")
    j2.add_argument("--lr", type=float_range(0.0, above=True), help="override the preset's learning rate")
    j2.add_argument("--alpha", type=float, help="override the preset's alpha")
    j2.add_argument("--batch-size", type=int_range(1), help="batch size (default 128)")
    j2.add_argument("--augment", action="store_true",
                    help="random zoom, shift, rotation, flip, brightness and contrast (not in the paper; used for the "
                         "shipped real-time model, whose crops come from a webcam)")
    j2.add_argument("--no-resume", action="store_true", help="start from scratch even if --out holds a checkpoint")
    j2.add_argument("--export", metavar="DIR", help="also export model.onnx + manifest.json (e.g. weights/lis-j2s)")
    j2s_common(j2, None)
    j2.set_defaults(func=cmd_train_j2s)

    jg = tsub.add_parser("j2s-grid", help="J2S grid search over learning rate and alpha (paper 003 section 4.6)",
                         description="Static: lr in {1e-2, 1e-3, 1e-4} x alpha in {0.3, 0.4, 0.5}; dynamic: lr in "
                                     "{5e-3, 1e-3} x alpha in {0.5, 0.8, 1.0}; a few epochs each on the random split, "
                                     "scored on validation; writes a markdown table.", formatter_class=fmt)
    jg.add_argument("--epochs", type=int_range(1), default=5, help="epochs per cell")
    jg.add_argument("--doc", default="docs/j2s-grid.md", help="markdown table to write")
    j2s_common(jg, "runs/j2s-grid")
    jg.set_defaults(func=cmd_train_j2s_grid)

    jr = tsub.add_parser("j2s-results", help="reproduce the J2S paper's tables: static and dynamic, random and "
                                             "signer-independent splits", formatter_class=fmt)
    jr.add_argument("--epochs", type=int_range(1), help="epochs per run (default: the paper's 150)")
    jr.add_argument("--doc", default="docs/j2s.md", help="markdown file for the tables (plots go to docs/j2s/)")
    j2s_common(jr, "runs/j2s-results")
    jr.set_defaults(func=cmd_train_j2s_results)

    et = tsub.add_parser("extract", help="run MediaPipe over datasets once and cache the landmarks (resumable)",
                         formatter_class=fmt)
    et.add_argument("data", nargs="+", help="dataset folders")
    et.add_argument("--cache-dir", help="keypoint cache folder (default: ~/.cache/fingerspell/keypoints)")
    et.add_argument("--workers", type=int, help="processes (default: all cores)")
    add_verbose(et)
    et.set_defaults(func=cmd_train_extract)

    st = tsub.add_parser("stitch", help="synthetic fingerspelling sequences by sign stitching (paper 002)",
                         description="Generated words spelled as keypoint sequences from the cached hands of real "
                                     "people: holds with jitter, bone-wise interpolated transitions, low-pass "
                                     "filtering, drift, view rotation, repeated-letter bounces, gaps, dropped frames "
                                     "and missed detections; ASL J and Z as motions. Writes OUT (.npz) and a .json "
                                     "manifest beside it; the same --seed gives the same set.", formatter_class=fmt)
    st.add_argument("--alphabet", choices=("asl", "lis"), default="asl", help="whose letters (default: %(default)s)")
    st.add_argument("--data", help="comma-separated datasets for the dictionary (default: the shipped recipe's)")
    st.add_argument("--datasets", help=f"folder holding the datasets (default: ${ENV_DATASETS})")
    st.add_argument("--exclude-signers", nargs="+", help="keep these signers' hands out ('massey/hand1', 'lis/GIULIA')")
    st.add_argument("--only-signers", nargs="+", help="only these signers' hands (a held-out validation set)")
    st.add_argument("--count", type=int_range(1), default=1000, help="sequences (default: %(default)s)")
    st.add_argument("--min-fps", type=float, default=15.0, help="lowest frame rate (default: %(default)s)")
    st.add_argument("--max-fps", type=float, default=60.0, help="highest frame rate (default: %(default)s)")
    st.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    st.add_argument("--words", metavar="FILE", help="spell words of this list (one a line, e.g. "
                                                    "realtime/wordlists/en.txt) instead of generated strings")
    st.add_argument("--held-photos", action="store_true",
                    help="a test set as a video made from photos shows it: each letter one real photo's hand held "
                         "still for about a second, cut to the next (no motion, no transitions; static letters only)")
    st.add_argument("--out", required=True, help="the .npz to write")
    st.add_argument("--cache-dir", help="keypoint cache folder (default: ~/.cache/fingerspell/keypoints)")
    st.set_defaults(func=cmd_train_stitch)

    sq = tsub.add_parser("sequence", help="train the continuous-spelling sequence reader on stitched sets (CTC)",
                         description="A causal temporal convolution over per-frame hand features and velocities, "
                                     "CTC over the letters, a space and a blank; the best epoch by the validation "
                                     "set's character error rate is kept. Both sets come from 'train stitch' (build "
                                     "the validation set from signers kept out of the training set's dictionary).",
                         formatter_class=fmt)
    sq.add_argument("--train", required=True, nargs="+",
                    help="stitched training set(s) (.npz with its .json); several: trained on jointly")
    sq.add_argument("--val", required=True, nargs="+", help="validation set(s)")
    sq.add_argument("--init", metavar="MODEL_PT", help="start from this model.pt (pre-trained; fine-tune on --train)")
    sq.add_argument("--lr", type=float_range(0.0, above=True),
                    help="peak learning rate (default: 2e-3; with --init, the pre-trained run's)")
    sq.add_argument("--epochs", type=int_range(1), default=12, help="epochs (default: %(default)s)")
    sq.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    sq.add_argument("--out", default="runs/sequence", help="output folder (default: %(default)s)")
    sq.add_argument("--export", metavar="DIR", help="also export model.onnx + manifest.json (e.g. weights/asl-sequence)")
    sq.set_defaults(func=cmd_train_sequence)

    sc = tsub.add_parser("sequence-compare",
                         help="paper 002's comparison: synthetic only, held photos only, joint, pre-trained + fine-tuned",
                         description="Builds stitched and held-photo sets without massey hand1 and hand2, trains the "
                                     "sequence reader four ways (resumable), chooses each one's best epoch on hand2 "
                                     "and scores it on hand1's stitched and held-photo sequences. Held photos stand "
                                     "in for real data: real hands held still, no real motion.", formatter_class=fmt)
    sc.add_argument("--datasets", help=f"folder holding the datasets (default: ${ENV_DATASETS})")
    sc.add_argument("--out", default="runs/sequence-compare", help="sets and runs (default: %(default)s)")
    sc.add_argument("--doc", default="docs/sequence-compare.md", help="markdown table to write (default: %(default)s)")
    sc.add_argument("--export-variant", metavar="NAME", help="with --export: the variant to export (e.g. 'joint')")
    sc.add_argument("--export", metavar="DIR", help="export that variant's reader (e.g. weights/asl-sequence)")
    sc.set_defaults(func=cmd_train_sequence_compare)


def register_eval(sub) -> None:
    """``fingerspell eval-sequences`` (a top-level command, beside ``eval``)."""
    es = sub.add_parser("eval-sequences", help="CER and word accuracy of the letter and sequence readers on stitched "
                                               "sequences",
                        description="Reads every sequence of a stitched set ('fingerspell train stitch', e.g. with "
                                    "--only-signers for people the readers never saw and --words for real words) "
                                    "frame by frame as live would, with the letter reader (held letters), the "
                                    "sequence reader, and the sequence reader with --lexicon. The sequences are "
                                    "synthetic.", formatter_class=HelpFormatter)
    es.add_argument("--data", required=True, help="stitched set (.npz)")
    es.add_argument("--readers", default="letters,letters+lexicon,sequence,sequence+lexicon",
                    help="comma-separated: letters, letters+lexicon, sequence, sequence+lexicon (the +lexicon readers "
                         "need --lexicon; without it they are left out)")
    es.add_argument("--model", help="keypoint model of the letter reader (default: the set's alphabet's, "
                                    "asl-letters or lis-letters)")
    es.add_argument("--sequence-model", help="sequence model (default: the set's alphabet's, asl-sequence or "
                                             "lis-sequence)")
    es.add_argument("--lexicon", metavar="FILE", help="word list for the letters+lexicon and sequence+lexicon readers")
    es.add_argument("--limit", type=int_range(1), help="read only the first N sequences")
    es.add_argument("--json", metavar="OUT", help="also write the scores and examples as JSON")
    es.set_defaults(func=cmd_eval_sequences)
