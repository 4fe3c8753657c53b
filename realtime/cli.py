"""The ``fingerspell`` command. Heavy imports happen inside each subcommand, so ``--help`` is instant
and the runtime works without the training extras."""
from __future__ import annotations

import argparse
import os
import signal
import sys


def _leave_at_once(*_) -> None:
    """Ctrl-C while the program starts (imports, the parser) or ``live`` loads its libraries: nothing is written
    yet, so exit 130 at once; a KeyboardInterrupt raised inside a library's import can come out as another error
    (mediapipe turns it into an ImportError), be swallowed, or end in a traceback."""
    print("interrupted", file=sys.stderr, flush=True)
    os._exit(130)  # EXIT_INTERRUPTED, before realtime.cli_common is imported


def _is_the_program() -> bool:
    """Started as ``fingerspell`` or ``python -m realtime.cli`` (not imported by tests, not a worker process that
    re-imports the main script), with Ctrl-C not ignored by whoever started it."""
    import multiprocessing

    program = __name__ == "__main__" or os.path.basename(sys.argv[0]) == "fingerspell"
    return (program and multiprocessing.current_process().name == "MainProcess"
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)


if _is_the_program():
    signal.signal(signal.SIGINT, _leave_at_once)

from realtime.backends import BACKENDS, DEVICES, PRECISIONS
from realtime.hands import HAND_PIPELINES, MAX_HANDS, MODEL_SIZES, WHICH_HAND
from realtime.pipeline import CLASSIFIER_KINDS, DEFAULT_IMAGE_WEIGHT, KEYPOINT_BACKENDS, READERS, PipelineOptions
from realtime.speller import SpellerConfig
from realtime.cli_common import (ENV_DATASETS, EXIT_INTERRUPTED, RUN_ERRORS, HelpFormatter, add_verbose, fail,
                                 float_range, int_range, missing_train_extra, window_problem, writable)


class _OtherCommandsOption(argparse.Action):
    """An option of another command (calibrate's --camera on live): refused saying how this command takes it, where
    argparse's 'unrecognized arguments' would name no way on."""

    def __init__(self, option_strings, dest, why: str, **kwargs):
        super().__init__(option_strings, dest, nargs="?", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        self.why = why

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(self.why)


def _add_runtime_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model",
                   help="shipped model name (see 'fingerspell models') or a folder with model.onnx + manifest.json "
                        "(default: asl-letters; lis-j2s with --keypoints j2s)")
    p.add_argument("--keypoints", choices=KEYPOINT_BACKENDS, default="mediapipe",
                   help="where the hand keypoints come from: MediaPipe's landmark model, or J2S, which regresses "
                        "them from the palm detector's hand crop and classifies in the same network "
                        "(default: %(default)s)")
    p.add_argument("--hands", choices=tuple(HAND_PIPELINES), default="mediapipe",
                   help="hand pipeline: " + "; ".join(f"{h.name}: {h.help}" for h in HAND_PIPELINES.values())
                        + " (default: %(default)s)")
    p.add_argument("--hands-model", choices=MODEL_SIZES, default=PipelineOptions.hand_model,
                   help="MediaPipe model size (the hand-landmark model; with --keypoints j2s the palm detector): "
                        "lite is faster (about 7 ms a frame less on 2 CPU cores); full made every training keypoint "
                        "and reads the photos of people never seen better (ASL 4-5 points, LIS 16; "
                        "docs/results-hand-model.md) (default: %(default)s)")
    p.add_argument("--hand", choices=WHICH_HAND, default="any",
                   help="which hand spells; 'any' takes the largest hand in view (default: %(default)s)")
    p.add_argument("--max-hands", type=int_range(1, MAX_HANDS), default=2,
                   help="hands MediaPipe tracks at once, 1 to 4 (default: %(default)s)")
    p.add_argument("--search-every", type=int_range(1), default=PipelineOptions.search_every, metavar="FRAMES",
                   help="while at least one but fewer than --max-hands hands are tracked, the palm detector looks for "
                        "another hand every FRAMES frames (1: every frame, as MediaPipe does; with no hand tracked it "
                        "looks on every frame); --hands onnx, torch and torch-fp16 (MediaPipe's graph keeps its own "
                        "schedule) (default: %(default)s)")
    p.add_argument("--redetect-after", type=int_range(0), metavar="FRAMES",
                   help="when tracking has found no hand for this many frames, look again with the full hand model "
                        "on the whole frame (every 5 frames until a hand is back); 0 turns it off; several streams: "
                        "each on its own; refused where nothing is tracked: photos (eval, calibrate --data) and "
                        "--keypoints j2s (the palm detector alone) (default: 5)")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="where the classifier and the converted hand nets run: with --backend torch and --hands "
                        "torch they run on torch CUDA whatever ONNX Runtime build is installed; with ONNX Runtime, CUDA "
                        "needs onnxruntime-gpu; auto takes CUDA where it is there (default: %(default)s)")
    p.add_argument("--backend", choices=tuple(BACKENDS), default="auto",
                   help="what runs the classifier: " + "; ".join(f"{b.name}: {b.help}" for b in BACKENDS.values())
                        + "; see docs/backends.md (default: %(default)s)")
    p.add_argument("--reject-far-hands", action="store_true",
                   help="a hand farther from every letter the model learned than 99%% of its own validation hands is "
                        "read as no letter, never typed (distance in the classifier's features; the model's "
                        "distance.npz: asl-letters has one). On people never seen: far fewer letters typed for "
                        "hands that spell nothing (kaggle_asl's 23%% -> 2%%, digits' 32%% -> 15%%) for some letters of "
                        "unusual hands (datasets held out 81%% -> 77%% of frames typed right); docs/results-rejection.md")
    p.add_argument("--no-fuse", dest="fuse", action="store_false",
                   help="with --hands torch --backend torch the keypoint classifier runs inside the hands stage's "
                        "landmark step on the device (features and classifier in the same CUDA graph, one download a "
                        "frame); this keeps them as stages of their own on the host path, to compare")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="classifier precision: fp16 with --backend tensorrt, torch (CUDA) or onnxruntime (TensorRT "
                        "EP); int8 with --backend tensorrt and an engine from 'fingerspell export --int8' "
                        "(default: %(default)s)")
    p.add_argument("--reader", choices=READERS, default="letters",
                   help="letters: each letter read from the hand alone, typed once held for --hold; sequence "
                        "(experimental: trained on synthetic stitched motion and real hands held still, never on real "
                        "fingerspelling video): a sequence model over the "
                        "last 63 frames types letters as it recognises them, J and Z included, no hold (so --hold, "
                        "--release, --space-after and --smoothing are refused with it; --min-confidence applies) "
                        "(default: %(default)s)")
    p.add_argument("--sequence-model", help="with --reader sequence: the model (default: asl-sequence)")
    p.add_argument("--lexicon", metavar="FILE",
                   help="a word list (one word a line; realtime/wordlists/en.txt, it.txt ship) that corrects a misread "
                        "letter inside a known word when the word ends, with either reader; words not in the list are "
                        "still spelled, but a name one letter from a list word may be corrected to it")
    p.add_argument("--classifier", choices=CLASSIFIER_KINDS, default="keypoints",
                   help="what reads the letter (with --keypoints mediapipe): keypoints (the landmarks' features and "
                        "--model), image (a square crop framed by the landmarks and --image-model, an EfficientNetV2 "
                        "trained as paper 000), or fused (both, probabilities averaged by --image-weight; "
                        "--model defaults to the keypoint model of the image model's alphabet) (default: %(default)s)")
    p.add_argument("--image-model", help="image-classifier model name or folder for --classifier image/fused "
                                         "(default: lis-letters-image)")
    p.add_argument("--image-weight", type=float_range(0.0, 1.0),  # None: not given (refused without fused)
                   help="--classifier fused: weight of the image classifier's probabilities, 0 to 1 "
                        f"(default: {DEFAULT_IMAGE_WEIGHT:g})")


def _add_profile_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", metavar="PROFILE",
                   help="a personal calibration made by 'fingerspell calibrate' for this --model: reads that person "
                        "better (keypoint and fused classifiers)")


def _add_speller_options(p: argparse.ArgumentParser) -> None:
    # no argparse defaults (None: not given; _options fills in SpellerConfig's), so that --reader sequence can
    # refuse the ones it has no use for instead of ignoring them
    d = SpellerConfig()
    g = p.add_argument_group("spelling")
    g.add_argument("--hold", type=float_range(0.0),
                   help=f"seconds a letter must stay stable to be committed (default: {d.hold_s:g})")
    g.add_argument("--release", type=float_range(0.0),
                   help="seconds of another or no confident reading before the same letter can be committed again "
                        f"(default: {d.release_s:g})")
    g.add_argument("--space-after", type=float_range(0.0, above=True),
                   help=f"seconds without a hand after which a space is added (default: {d.space_after_s:g})")
    g.add_argument("--min-confidence", type=float_range(0.0, 1.0),
                   help="smoothed probability below which a reading counts as unsure and is not typed (default: "
                        f"{d.min_confidence:g}; with --reader sequence, its model's probability, default 0: it reads "
                        "right letters at 0.4 to 0.6)")
    g.add_argument("--smoothing", type=float_range(0.0),
                   help="time constant in seconds of the probability smoothing; 0 turns it off (default: "
                        f"{PipelineOptions.smoothing_s:g})")


# the spelling options the sequence reader has no use for: it types a letter on the frame its model reads it (a letter
# often peaks for a frame or two), and its model types the spaces
NOT_FOR_SEQUENCE = ("hold", "release", "space_after", "smoothing")


def _unused_option(args) -> str | None:
    """Why an option given on the command line would do nothing on the path the other options choose, or None:
    said and refused, not silently ignored."""
    if args.command == "calibrate":
        given = [o for o, v in (("--reader sequence", args.reader == "sequence"), ("--sequence-model",
                 args.sequence_model), ("--lexicon", args.lexicon)) if v]
        if given:
            return (f"a profile calibrates the letter classifier (--model), which the sequence reader does not use: "
                    f"{', '.join(given)} would do nothing here")
        if args.reject_far_hands:
            return ("--reject-far-hands is a way of reading, not part of a profile: the samples are recorded the same "
                    "either way, and a profile reads without it (live, eval and bench refuse the pair)")
    if getattr(args, "redetect_after", None) is not None:
        if args.command == "eval" or (args.command == "calibrate" and args.data):
            return ("--redetect-after helps tracking in video; photos are read one at a time, each with the full "
                    "model (no tracking)")
        if args.keypoints == "j2s":
            return ("--redetect-after helps MediaPipe's landmark tracker; --keypoints j2s tracks with the palm "
                    "detector alone")
    if getattr(args, "reader", "letters") == "sequence":
        given = ["--" + k.replace("_", "-") for k in NOT_FOR_SEQUENCE if getattr(args, k, None) is not None]
        if given:
            return (f"--reader sequence types a letter on the frame its model reads it (a letter often peaks for a "
                    f"frame or two) and its model types the spaces: no hold, release, timed space or smoothing, so "
                    f"{', '.join(given)} would do nothing; they apply to --reader letters (--min-confidence "
                    f"applies to both)")
    if getattr(args, "reader", "letters") != "sequence" and getattr(args, "sequence_model", None):
        return "--sequence-model applies to --reader sequence; the letter reader (--reader letters) would ignore it"
    if args.command == "eval" and getattr(args, "lexicon", None):
        return ("--lexicon corrects words as they are spelled, in a video or from a camera; eval reads independent "
                "photos, one letter each")
    if args.classifier == "image" and args.model:
        return (f"--classifier image reads the hand crop with --image-model alone; --model {args.model} would do "
                "nothing (--classifier fused reads with both)")
    if args.classifier not in ("image", "fused") and args.image_model:
        return "--image-model applies to --classifier image or fused; --classifier keypoints would ignore it"
    if args.classifier != "fused" and args.image_weight is not None:
        return (f"--image-weight weighs the image model against the keypoint model in --classifier fused; "
                f"--classifier {args.classifier} would ignore it")
    return None


def _say_default_image_model(args) -> None:
    """Name the image model --classifier image or fused reads with when none was given: it reads another alphabet
    than --model's default (asl-letters), which would otherwise type Italian letters on an ASL signer unannounced."""
    if args.classifier == "keypoints" or args.keypoints != "mediapipe" or args.image_model:
        return
    from realtime.crop_classifier import DEFAULT_IMAGE_ALPHABET, DEFAULT_IMAGE_MODEL
    from realtime.pipeline import FUSED_KEYPOINT_MODELS

    models = DEFAULT_IMAGE_MODEL
    if args.classifier == "fused" and not args.model:
        models += f" and {FUSED_KEYPOINT_MODELS[DEFAULT_IMAGE_MODEL]}"
    print(f"--classifier {args.classifier} reads the {DEFAULT_IMAGE_ALPHABET} letters with {models} (the default; "
          "--image-model chooses another image model)", file=sys.stderr)


def _image_weight(args) -> float:
    """--image-weight, or its default when not given."""
    return DEFAULT_IMAGE_WEIGHT if args.image_weight is None else args.image_weight


def _profile(args):
    """--profile's file, loaded (its match with the model is checked when the recognizer wraps the classifier)."""
    if not getattr(args, "profile", None):
        return None
    from realtime.calibration import Profile

    return Profile.load(args.profile)


def _options(args):
    """The runtime options of live, eval and bench -> PipelineOptions; an option not given (None) takes
    SpellerConfig's or PipelineOptions' default."""
    speller, smoothing, sure = None, getattr(args, "smoothing", None), getattr(args, "min_confidence", None)
    if hasattr(args, "hold"):
        given = {"hold_s": args.hold, "release_s": args.release, "space_after_s": args.space_after,
                 "min_confidence": args.min_confidence}
        speller = SpellerConfig(**{k: v for k, v in given.items() if v is not None})
    redetect = args.redetect_after
    return PipelineOptions(model=args.model, hand_model=args.hands_model, hand=args.hand, max_hands=args.max_hands, search_every=args.search_every,
                           device=args.device, speller=speller,
                           smoothing_s=PipelineOptions.smoothing_s if smoothing is None else smoothing,
                           keypoints=args.keypoints, hands=args.hands, backend=args.backend, precision=args.precision,
                           classifier_kind=args.classifier, image_model=args.image_model,
                           image_weight=_image_weight(args), profile=_profile(args),
                           redetect_after=PipelineOptions.redetect_after if redetect is None else redetect,
                           reader=getattr(args, "reader", "letters"), sequence_model=getattr(args, "sequence_model", None),
                           lexicon=getattr(args, "lexicon", None), fuse=getattr(args, "fuse", True),
                           reject_far=getattr(args, "reject_far_hands", False),
                           sequence_min_confidence=PipelineOptions.sequence_min_confidence if sure is None else sure)


def _recognizer(args):
    from realtime.pipeline import Recognizer

    rec = Recognizer.from_options(_options(args))
    if args.backend != "auto":  # say which backend and provider were chosen
        if rec.sequence is not None:
            print("reader: " + rec.sequence.describe(), file=sys.stderr)
            return rec
        parts = [rec.classifier.keypoints, rec.classifier.image] if args.classifier == "fused" else [rec.classifier]
        print("classifier: " + "; ".join(c.backend.describe() for c in parts), file=sys.stderr)
    return rec


def cmd_live(args) -> int:
    from realtime.capture import SourceError, make_reader
    from realtime.manifest import ModelError
    from realtime.live import run_live

    unused = _unused_option(args)
    if unused:
        return fail(unused)
    _say_default_image_model(args)
    window = not args.no_window
    problem = window_problem() if window else None
    if problem:
        return fail(f"{problem}; use --no-window (with --jsonl FILE to record results)")
    writable(args.jsonl)
    # Ctrl-C while the libraries load: a KeyboardInterrupt raised inside a third-party import can come out as
    # another error (mediapipe turns it into an ImportError) or be swallowed. Nothing is written yet, so leave at
    # once with 130; run_live installs its own handler (finish the frame, print the text) before it writes a file.
    previous = signal.signal(signal.SIGINT, _leave_at_once)
    try:
        from realtime.pipeline import check_backend

        check_backend(args.keypoints, args.hand, args.hands, args.classifier)  # options that cannot work: say so first
        if "," in args.source:  # several cameras at once, one batched pipeline (realtime/streams.py)
            return _live_streams(args, window)
        reader = make_reader(args.source, args.width, args.height, args.fps)  # before any output file or model
        try:
            rec = _recognizer(args)
        except BaseException:
            reader.close()
            raise
        run = run_live(rec, reader, window=window, jsonl=args.jsonl, mirror=not args.no_mirror,
                       max_frames=args.max_frames)
    except (SourceError, ModelError, OSError, ValueError) as e:
        return fail(str(e))
    finally:
        signal.signal(signal.SIGINT, previous)
    print(run.text)
    if run.why_empty:
        print(run.why_empty, file=sys.stderr)
    if run.interrupted:
        return EXIT_INTERRUPTED
    if run.error:  # the source failed mid-run: the text so far is printed above, then the error
        return fail(run.error)
    if args.strict and run.lost_frames:
        return fail(f"--strict: {run.ended_early or f'{run.corrupt} corrupt frames were skipped'}")
    return 0


def _live_streams(args, window: bool) -> int:
    from realtime.capture import make_reader
    from realtime.live import run_live_streams
    from realtime.streams import MultiStreamRecognizer

    readers = []
    try:
        for source in args.source.split(","):
            readers.append(make_reader(source.strip(), args.width, args.height, args.fps))
        rec = MultiStreamRecognizer(len(readers), _options(args))
    except BaseException:
        for r in readers:
            r.close()
        raise
    runs = run_live_streams(rec, readers, window=window, jsonl=args.jsonl, mirror=not args.no_mirror,
                            max_frames=args.max_frames)
    for i, run in enumerate(runs):
        print(f"{i}: {run.text}")
        if run.why_empty:
            print(f"{i}: {run.why_empty}", file=sys.stderr)
    if runs and runs[0].interrupted:
        return EXIT_INTERRUPTED
    if runs and runs[0].error:
        return fail(runs[0].error)
    if args.strict and any(r.lost_frames for r in runs):
        return fail("--strict: " + "; ".join(r.ended_early or f"{r.corrupt} corrupt frames" for r in runs if r.lost_frames))
    return 0


def cmd_eval(args) -> int:
    from realtime.manifest import ModelError
    from realtime.images import DatasetError
    from training.evaluate import evaluate, plot_path

    if args.reader == "sequence":
        return fail("eval reads labelled photos one at a time; --reader sequence reads motion in video (try it with "
                    "live --source VIDEO, or bench)")
    unused = _unused_option(args)
    if unused:
        return fail(unused)
    _say_default_image_model(args)
    writable(args.json)
    try:
        if args.plots:
            os.makedirs(args.plots, exist_ok=True)
    except OSError as e:
        return fail(f"cannot make --plots folder: {e}")
    try:
        plot = plot_path(args.plot, args.plots, args.json)
    except ValueError as e:
        return fail(str(e))
    writable(plot and str(plot))
    try:
        evaluate(args.model, args.data, signers=args.signers, limit=args.limit, json_out=args.json,
                 plot=plot, device=args.device, hand=args.hand, keypoints=args.keypoints, hands=args.hands,
                 backend=args.backend, precision=args.precision, classifier=args.classifier,
                 image_model=args.image_model, image_weight=_image_weight(args), profile=_profile(args))
    except (ModelError, DatasetError, ValueError, OSError) as e:
        return fail(str(e))
    if plot is None:  # said after the results, not before an unrelated error
        print("no confusion matrix: give --plots DIR or --json FILE to write one")
    return 0


BENCH_BACKENDS_OPTIONS = ("backends", "model", "variants", "frames", "source", "hands_model", "json", "csv", "verbose")


def _bench_options_given(args) -> list[str]:
    """The bench options given on the command line, i.e. not at their defaults (dest names)."""
    defaults = vars(build_parser().parse_args(["bench"]))
    return [k for k, v in vars(args).items() if k not in ("command", "func") and v != defaults.get(k)]


def cmd_bench(args) -> int:
    from realtime.bench import run_bench
    from realtime.capture import SourceError
    from realtime.manifest import ModelError

    writable(args.json)
    writable(args.csv)
    given = _bench_options_given(args)
    if args.backends:  # it picks the backends, devices and precisions itself: the live path's options do not apply
        ignored, what = [k for k in given if k not in BENCH_BACKENDS_OPTIONS], "--backends runs its own variants and"
    else:
        ignored, what = [k for k in given if k in ("variants", "csv")], "without --backends, bench"
    if ignored:
        print(f"fingerspell: warning: {what} ignores {', '.join('--' + k.replace('_', '-') for k in ignored)}",
              file=sys.stderr)
    try:
        if args.backends:  # each stage on each backend (realtime/bench_backends.py)
            from realtime.bench_backends import run_backend_bench

            run_backend_bench(args.backends, [args.model] if args.model else None, profile=args.variants,
                              frames=args.frames, source=args.source, hands_model=args.hands_model,
                              json_out=args.json, csv_out=args.csv)
            return 0
        if not args.source:
            return fail("--source is required (or --backends to compare the backends)")
        unused = _unused_option(args)
        if unused:
            return fail(unused)
        _say_default_image_model(args)
        from realtime.capture import make_reader

        for src in args.source.split(",") if args.streams > 1 else [args.source]:
            make_reader(src).close()  # a missing or unreadable source is refused before the models load
        if args.streams > 1:  # N cameras through one batched pipeline (realtime/streams.py)
            import json

            from realtime.streams import format_streams, run_streams_bench

            report = run_streams_bench(_options(args), args.source.split(","), args.streams, frames=args.frames,
                                       size=(args.width, args.height))
            print(format_streams(report))
            if args.json:
                with open(args.json, "w") as f:
                    f.write(json.dumps(report, indent=1) + "\n")
            return 0
        run_bench(_recognizer(args), args.source, frames=args.frames, size=(args.width, args.height),
                  json_out=args.json)
    except (SourceError, ModelError, ValueError, OSError) as e:
        return fail(str(e))
    return 0


def cmd_hands_check(args) -> int:
    from realtime.manifest import ModelError
    from realtime.hands_check import check_hands, check_tracking, format_check, format_tracking, write_json
    from realtime.images import DatasetError

    writable(args.json)
    try:
        if args.tracking:
            report = check_tracking(args.data, limit=args.limit, model=args.hands_model, device=args.device)
        else:
            report = check_hands(args.data, limit=args.limit, model=args.hands_model, device=args.device,
                                 candidate=args.hands, reference=args.against)
    except (ModelError, DatasetError, ValueError, OSError) as e:
        return fail(str(e))
    print(format_tracking(report) if args.tracking else format_check(report))
    if args.json:
        write_json(report, args.json)
    return 0


def _model_line(name: str) -> str:
    """One line of 'fingerspell models': what the model reads and its held-out accuracy (a sequence model has none:
    it never saw real fingerspelling video), or why it will be refused."""
    import json

    from realtime.manifest import ModelError, held_out_accuracy, spelled_letters, verify_sha256, weights_dir

    try:
        m = json.loads((weights_dir() / name / "manifest.json").read_text())
        file = weights_dir() / name / m.get("file", "model.onnx")
        try:  # listed, but as what it is
            verify_sha256(file, m.get("sha256"))
        except (ModelError, OSError):
            return f"{name:<18}{file.name} is missing or does not match its manifest's sha256: it will be refused"
        if m.get("kind") == "sequence-reader":
            letters = spelled_letters(m["labels"])
            return f"{name:<18}{len(letters):>3} letters {''.join(letters)}  {m['window']} frames of hand features"
        crop = "image crop " + "x".join(str(v) for v in m["input"]["shape"][2:])
        inputs = {"j2s": f"{crop} (--keypoints j2s)", "image-classifier": f"hand {crop} (--classifier image)"}.get(
            m.get("kind")) or "features " + "+".join(m["features"]["parts"])
        tuning = ""
        if m.get("tuning"):  # personal tuning's weights and exemplar bank (realtime/personal_tuning.py)
            try:
                verify_sha256(weights_dir() / name / m["tuning"]["file"], m["tuning"].get("sha256"))
                tuning = "  personal tuning"
            except (ModelError, OSError):
                tuning = (f"  ({m['tuning']['file']} missing or damaged: tuned profiles will be refused, new "
                          "profiles use kNN)")
        return f"{name:<18}{len(m['labels']):>3} labels  {inputs}  accuracy {held_out_accuracy(m)}{tuning}"
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:  # one broken folder: said, the rest listed
        return f"{name:<18}unreadable manifest ({type(e).__name__}: {e})"


def cmd_models(args) -> int:
    from realtime.manifest import available_models, models_of_kind

    print("accuracy: over all images (no hand found counts as wrong) of people the model never saw")
    for name in available_models():
        print(_model_line(name))
    sequence = models_of_kind("sequence-reader")
    if sequence:
        print("\nsequence models, for --reader sequence --sequence-model NAME (experimental: trained on synthetic "
              "stitched motion and real hands held still, never on real fingerspelling video: no accuracy is given)")
        for name in sequence:
            print(_model_line(name))
    return 0


def _save_profile(profile, out: str) -> str:
    """Writes the profile to ``out`` and returns where it went: a profile already there is kept as OUT.bak (a new
    recording must not replace another unseen), and where ``out`` cannot be written the profile goes to the temp
    folder (the recording is not lost)."""
    try:
        if os.path.exists(out):
            import shutil

            shutil.copy2(out, out + ".bak")
            print(f"the previous {out} is kept as {out}.bak")
        profile.save(out)
        return out
    except OSError as e:
        import tempfile
        import time

        fallback = os.path.join(tempfile.gettempdir(), f"fingerspell-profile-{time.strftime('%Y%m%d-%H%M%S')}.json")
        profile.save(fallback)
        print(f"cannot write {out} ({e}); the profile was saved to {fallback} instead", file=sys.stderr)
        return fallback


def cmd_calibrate(args) -> int:
    from realtime.calibrate import calibrate_camera, calibrate_images, describe, describe_check, self_check
    from realtime.calibration import ProfileError
    from realtime.capture import SourceError, make_reader
    from realtime.manifest import ModelError
    from realtime.images import DatasetError

    if args.classifier == "image" or args.keypoints != "mediapipe":
        return fail("calibration records a keypoint classifier's features: use --keypoints mediapipe and "
                     "--classifier keypoints, or --classifier fused to keep each sample's hand crop as well")
    unused = _unused_option(args)
    if unused:
        return fail(unused)
    _say_default_image_model(args)
    out = writable(args.out)
    try:
        if args.data:
            from realtime.pipeline import Recognizer

            rec = Recognizer.build(args.model, hand=args.hand, static=True, hands=args.hands, device=args.device,
                                   classifier_kind=args.classifier, image_model=args.image_model,
                                   image_weight=_image_weight(args))
            try:
                profile, report = calibrate_images(rec, args.data, args.per_letter)
            finally:
                rec.close()
            for key, what in (("unknown_labels", "labels the model does not know, left out"),
                              ("unreadable", "unreadable files, skipped"), ("no_hand", "photos without a hand found")):
                if report[key]:
                    print(f"{len(report[key])} {what}: {', '.join(report[key][:5])}"
                          + (" ..." if len(report[key]) > 5 else ""))
        else:
            problem = window_problem()
            if problem:
                return fail(f"{problem} for the calibration window; calibrate from photos with --data DIR")
            reader = make_reader(args.camera, args.width, args.height)
            try:
                rec = _recognizer(args)
            except BaseException:
                reader.close()  # the camera is not left open when the models cannot be loaded
                raise
            try:
                # one training photo per letter, when the data is here
                from realtime.demo_calibration import reference_images

                session, stopped = calibrate_camera(rec, reader, args.per_letter, mirror=not args.no_mirror,
                                                    photos=reference_images(
                                                        getattr(rec.classifier, "keypoints", rec.classifier).manifest.name))
            finally:
                rec.close()
            if stopped:
                print(stopped, file=sys.stderr)
            profile = session.to_profile(rec.classifier, {"source": f"camera {args.camera}"})
    except (SourceError, ModelError, DatasetError, ProfileError, OSError, ValueError) as e:
        return fail(str(e))
    out = _save_profile(profile, out)
    print(f"profile for {profile.model}: {describe(profile)}")
    print(f"written to {out}; use it with --profile {out}")
    try:  # the classifier the profile was made with (the default model when no --model was given)
        print(describe_check(self_check(rec.classifier, profile)))
    except (ModelError, ProfileError, OSError, ValueError) as e:  # the profile is written: the check is extra
        print(f"self-check skipped: {e}", file=sys.stderr)
    return 0


def cmd_demo(args) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        return fail("the browser demo needs Gradio: pip install -e '.[demo]'")
    if args.time_limit <= 0 or not 0.02 <= args.stream_every <= 5:
        return fail("--time-limit must be positive and --stream-every between 0.02 and 5 seconds")
    from realtime.demo import launch

    try:
        launch(args.host, args.port, args.share, max_streams=args.max_streams, time_limit=args.time_limit,
               stream_every=args.stream_every, hands=args.hands)
    except OSError as e:  # the port is taken, or the host is not an address of this machine
        return fail(f"cannot serve on {args.host}:{args.port}: {e}")
    return 0


def cmd_export(args) -> int:
    from export.formats import run_export  # --format onnx | engine (export/formats.py, export/tensorrt_engine.py)

    if args.checkpoint and not os.path.isfile(args.checkpoint):
        return fail(f"checkpoint not found: {args.checkpoint}")
    try:
        run_export(args)
    except RUN_ERRORS as e:
        return fail(str(e))
    return 0


def build_parser() -> argparse.ArgumentParser:
    fmt = HelpFormatter
    p = argparse.ArgumentParser(prog="fingerspell", description="Real-time fingerspelling recognition from a webcam.",
                                epilog="Two commands to start: 'fingerspell live' (webcam 0, ASL letters) and "
                                       "'fingerspell live --model lis-letters'. Each subcommand has its own --help.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    live = sub.add_parser("live", help="read letters live from a camera, video, image folder or stream",
                          description="Capture -> hands -> features -> classify -> smooth -> show. Keys in the "
                                      "window: c clears, backspace deletes, q or Esc quits; Ctrl-C stops and prints "
                                      "the text so far.")
    live.add_argument("--source", default="0", help="camera index (0), video file, image folder, or stream URL; "
                                                    "several, comma-separated (0,1 or a.mp4,b.mp4), are read at once "
                                                    "through one batched pipeline (--hands onnx or torch) "
                                                    "(default: %(default)s)")
    live.add_argument("--camera", action=_OtherCommandsOption,
                      why="live reads a camera with --source INDEX (e.g. --source 1); --camera is calibrate's")
    _add_runtime_options(live)
    _add_profile_option(live)
    _add_speller_options(live)
    live.add_argument("--no-window", action="store_true", help="headless: no window (use with --jsonl)")
    live.add_argument("--jsonl", metavar="FILE", help="write one JSON line per frame: time, hands, letter, confidence, "
                                                      "committed text, per-stage milliseconds")
    live.add_argument("--no-mirror", action="store_true", help="show the camera image as is instead of a mirror view")
    live.add_argument("--width", type=int_range(1), help="ask the camera for this frame width")
    live.add_argument("--height", type=int_range(1), help="ask the camera for this frame height")
    live.add_argument("--max-frames", type=int_range(1), help="stop after this many frames")
    live.add_argument("--fps", type=float_range(0.0, 1000.0, above=True), default=30.0,
                      help="frame rate at which an image-folder source is played (its images have no timestamps)")
    live.add_argument("--strict", action="store_true",
                      help="exit with code 2 (after printing the text) when the source lost frames: a video that "
                           "ended before its container's frame count, or corrupt frames")
    add_verbose(live)
    live.set_defaults(func=cmd_live)

    ev = sub.add_parser("eval", help="accuracy of the whole per-image path on a labelled image folder",
                        description="Runs hand detection, features and the classifier on every image of LABEL/file "
                                    "folders (a manifest.csv is used when present). No hand counts as wrong in "
                                    "'accuracy'; labels the model does not know are reported and left out.")
    _add_runtime_options(ev)
    _add_profile_option(ev)
    add_verbose(ev)
    ev.add_argument("--data", required=True, help="image-folder dataset (LABEL/image files, optional manifest.csv)")
    ev.add_argument("--signers", nargs="+", help="only these signers (manifest column 'signer'), e.g. GIULIA")
    ev.add_argument("--limit", type=int_range(1), help="evaluate a reproducible random subset of this many images")
    ev.add_argument("--json", metavar="OUT", help="write the report as JSON")
    ev.add_argument("--plots", metavar="DIR", help="write the confusion matrix into this folder (made if needed)")
    ev.add_argument("--plot", metavar="PNG", help="confusion-matrix image path (default: beside --json as "
                                                  "NAME-confusion.png, or DIR/confusion_matrix.png with --plots; "
                                                  "none without either)")
    ev.set_defaults(func=cmd_eval)

    be = sub.add_parser("bench", help="per-stage latency and end-to-end FPS of the live path",
                        description="Times capture/decode, hands, features, classifier, smoothing and overlay on "
                                    "each frame and prints median and p95 milliseconds and FPS.")
    be.add_argument("--source", help="video file or image folder (images are letterboxed to --width x --height); "
                                     "required unless --backends, where it adds the hands stage")
    be.add_argument("--backends", metavar="all|LIST",
                    help="instead of the live path: each stage on each backend (comma-separated onnxruntime, "
                         "tensorrt, torch, or all), batch 1, with model size and held-out accuracy; all shipped "
                         "letter models unless --model")
    be.add_argument("--variants", choices=("default", "edge"), default="default",
                    help="with --backends: every variant, or the edge-GPU one (batch 1, FP16 only)")
    be.add_argument("--csv", metavar="OUT", help="with --backends: write the rows as CSV too")
    be.add_argument("--frames", type=int_range(1), default=300, help="frames to time after 10 warm-up frames")
    be.add_argument("--streams", type=int_range(1, 256), default=1,
                    help="N video streams at once through one batched pipeline (--hands onnx or torch; --source may "
                         "list several, comma-separated, cycled over the streams): total frames/s and per-frame "
                         "latency of the recognition steps (decoding and drawing are not timed) (default: %(default)s)")
    be.add_argument("--width", type=int_range(32), default=640, help="frame width for image folders")
    be.add_argument("--height", type=int_range(32), default=480, help="frame height for image folders")
    be.add_argument("--json", metavar="OUT", help="write the figures as JSON")
    _add_runtime_options(be)
    _add_profile_option(be)
    add_verbose(be)
    be.set_defaults(func=cmd_bench)

    de = sub.add_parser("demo", help="the browser demo: live webcam recognition and uploads in a web page",
                        description="Serves a Gradio page: the webcam stream through the live path (annotated "
                                    "frame, spelled text, per-stage latency), image and video uploads, a model "
                                    "selector and settings. Needs the demo extra: pip install -e '.[demo]'.",
                        formatter_class=fmt)
    de.add_argument("--host", default="127.0.0.1",
                    help="address to serve on; 0.0.0.0 serves every network interface of this machine")
    de.add_argument("--port", type=int_range(1, 65535), default=7860, help="TCP port to serve on")
    de.add_argument("--share", action="store_true", help="also ask Gradio for a temporary public link (needs internet)")
    de.add_argument("--max-streams", type=int_range(1), default=4,
                    help="webcam streams processed at once; more visitors wait in a queue and see their place")
    de.add_argument("--time-limit", type=float_range(0.0, above=True), default=600.0,
                    help="seconds after which a webcam stream stops (press record again to go on)")
    de.add_argument("--stream-every", type=float_range(0.0, above=True), default=0.1,
                    help="seconds between webcam frames the page sends; the newest frame always wins")
    de.add_argument("--hands", choices=tuple(HAND_PIPELINES), default="mediapipe",
                    help="hand pipeline for every stream and upload: "
                         + "; ".join(f"{h.name}: {h.help}" for h in HAND_PIPELINES.values())
                         + " (the demo has no --device or --backend: it runs with auto for both)")
    add_verbose(de)
    de.set_defaults(func=cmd_demo)

    hc = sub.add_parser("hands-check", help="compare two hand pipelines (ONNX with MediaPipe's by default) on real photos",
                        description="Runs MediaPipe Hands and its ONNX port (both in static-image mode, same "
                                    "settings and cascade) on the photos of a dataset folder and prints how often "
                                    "they agree on finding a hand, the distance between their landmarks (pixels "
                                    "and fraction of the hand's size) and their handedness agreement.",
                        formatter_class=fmt)
    hc.add_argument("--data", required=True, help="image-folder dataset (LABEL/image files, optional manifest.csv)")
    hc.add_argument("--limit", type=int_range(1), default=200,
                    help="check a reproducible random subset of this many photos")
    hc.add_argument("--hands-model", choices=MODEL_SIZES, default="full",
                    help="which size of MediaPipe's hand models (palm detector and landmark model) both pipelines "
                         "run, as --hands-model of live and eval (full is what the keypoint cache and eval use)")
    hc.add_argument("--model", dest="hands_model", choices=MODEL_SIZES, default=argparse.SUPPRESS,
                    help=argparse.SUPPRESS)  # the old spelling, kept working
    hc.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                    help="where the checked pipeline's nets run (ONNX Runtime's providers, or torch for --hands "
                         "torch)")
    hc.add_argument("--hands", choices=tuple(HAND_PIPELINES), default="onnx",
                    help="the pipeline checked (on --device) (default: %(default)s)")
    hc.add_argument("--against", choices=tuple(HAND_PIPELINES), default="mediapipe",
                    help="the pipeline it is compared with, on the CPU (default: %(default)s; --hands torch "
                         "--against onnx checks the torch nets against ONNX Runtime)")
    hc.add_argument("--tracking", action="store_true",
                    help="compare the video trackers instead (one hand): each of --limit photos moves for 15 frames, "
                         "then 5 empty frames")
    hc.add_argument("--json", metavar="OUT", help="write the figures and the per-photo rows as JSON")
    add_verbose(hc)
    hc.set_defaults(func=cmd_hands_check)

    ca = sub.add_parser("calibrate", help="record a personal calibration profile: sign each letter a few times",
                        description="A guided window asks for each letter of --model in turn (with a photo of it when "
                                    f"${ENV_DATASETS} has the training data) and records --per-letter still frames of "
                                    "your hand; or --data takes a folder of your own photos (LABEL/file). Writes one "
                                    "profile file for --profile on live, eval, bench and the demo. With --classifier "
                                    "fused the profile also keeps each sample's hand crop, which the fused reader "
                                    "compares too. Keys: r redo the letter, s skip it, b back one letter, q finish "
                                    "(what was recorded is kept).",
                        formatter_class=fmt)
    _add_runtime_options(ca)
    add_verbose(ca)
    src = ca.add_mutually_exclusive_group(required=True)
    src.add_argument("--camera", nargs="?", const="0", metavar="INDEX",
                     help="record from this camera (default index 0)")
    src.add_argument("--data", metavar="DIR", help="a folder of your own photos, LABEL/image files")
    ca.add_argument("--out", required=True, metavar="PROFILE", help="the profile file to write (JSON)")
    ca.add_argument("--per-letter", type=int_range(1, 50), default=5,
                    help="samples per letter, K (default: %(default)s)")
    ca.add_argument("--no-mirror", action="store_true", help="show the camera image as is instead of a mirror view")
    ca.add_argument("--width", type=int_range(1), help="ask the camera for this frame width")
    ca.add_argument("--height", type=int_range(1), help="ask the camera for this frame height")
    ca.set_defaults(func=cmd_calibrate)

    mo = sub.add_parser("models", help="list the shipped models and their measured accuracy")
    mo.set_defaults(func=cmd_models)

    ex = sub.add_parser("export", help="export a model to ONNX (with its manifest) or a TensorRT engine",
                        formatter_class=fmt)
    ex.add_argument("--checkpoint", help="model.pt written by 'fingerspell train keypoints' or "
                                         "'fingerspell train j2s'")
    ex.add_argument("--model", help="instead of --checkpoint: a shipped model name or a model folder (re-exported "
                                    "from the PyTorch module rebuilt from its weights; the source of an engine)")
    from export.formats import FORMATS  # light: the exporters import torch and onnx when they run

    ex.add_argument("--format", choices=tuple(FORMATS), default="onnx",
                    help="; ".join(f"{f.name}: {f.help}, written as {f.writes}, run by --backend "
                                   f"{'/'.join(f.backends)}" for f in FORMATS.values()))
    ex.add_argument("--half", action="store_true", help="engine: FP16")
    ex.add_argument("--int8", action="store_true", help="engine: INT8, calibrated (entropy) on --calib")
    ex.add_argument("--calib", nargs="+", metavar="DIR",
                    help="engine --int8: real calibration samples, dataset folders (LABEL/file + manifest.csv; the "
                         "held-out signers are left out) or .npy / .npz files")
    ex.add_argument("--workspace", type=float_range(0.0, 1024.0, above=True), default=1.0,
                    help="engine: TensorRT builder workspace in GiB, more than 0 and at most 1024")
    ex.add_argument("--max-batch", type=int_range(1), default=32, help="engine: largest batch of its profile")
    ex.add_argument("--opt-batch", type=int_range(1), default=1,
                    help="engine: the batch TensorRT optimises for (1: live, one hand per frame)")
    ex.add_argument("--opset", type=int_range(17), default=17, help="onnx with --model: ONNX opset (17 or later)")
    ex.add_argument("--simplify", action="store_true",
                    help="onnx with --model: run onnxsim and keep its graph where it has fewer nodes "
                         "(pip install -e '.[simplify]')")
    ex.add_argument("--data", help="J2S only: the training dataset folder, for the parity check on real crops and the "
                                   "crop framing (default: the folder it was trained from)")
    ex.add_argument("--add-embedding", action="store_true",
                    help="onnx with --model: an image classifier exported before the 'embedding' output existed -> "
                         "the same file and weights plus that output (personal calibration of --classifier fused)")
    ex.add_argument("--out", help="model folder to write (model.onnx + manifest.json); required for --format onnx")
    ex.add_argument("--name", help="model name in the manifest (default: the folder's name)")
    ex.set_defaults(func=cmd_export)

    tr = sub.add_parser("train", help="offline work: keypoint extraction, training, the results table")
    tsub = tr.add_subparsers(dest="train_command", required=True, metavar="WHAT")

    from training.commands import register as register_training_commands  # light: heavy imports are in the commands

    register_training_commands(tsub)
    from training.commands import register_eval

    register_eval(sub)
    from training.gan.commands import register as register_gan_commands  # light: heavy imports are in the commands

    register_gan_commands(sub, tsub)
    from training.hgan.commands import register as register_hgan_commands

    register_hgan_commands(sub, tsub)
    from training.classifier_commands import register as register_classifier_commands

    register_classifier_commands(tsub)
    return p


def main(argv: list[str] | None = None) -> int:
    from realtime.quiet import quiet_native_logs

    args = None
    try:  # the parser too: Ctrl-C while it is built (it imports every command's module) still exits 130
        args = build_parser().parse_args(argv)
        if signal.getsignal(signal.SIGINT) is _leave_at_once:  # started: commands handle Ctrl-C themselves
            signal.signal(signal.SIGINT, signal.default_int_handler)
        with quiet_native_logs(verbose=getattr(args, "verbose", True)):  # commands without --verbose print all
            return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ModuleNotFoundError as e:  # a runtime-only install running export, bench --backends or training
        need = missing_train_extra(e) if args is not None else None
        if need is None:
            raise
        return fail(" ".join(filter(None, (args.command, getattr(args, "train_command", None), need))))


if __name__ == "__main__":
    sys.exit(main())
