"""The calibration protocol (issue 14, part 2): how much a one-minute personal calibration helps a person the model
never saw.

For each person (each massey signer, each lis signer, each webcam landmark set): take the model trained without
that person (the new-people runs' held-out models, :mod:`training.new_people`), calibrate on K = 1, 3, 5 samples
per letter of that person, test on the rest of that person's images. Photos: K random images per letter (3
seeds). Webcam landmark sets (video frames in recording order): the K samples come from the first half of each
letter's frames and the test is the second half, so that near-identical neighbouring frames never straddle.

The *own variant* test: a massey signer spells K with the handshape of the digit 3 (thumb, index and middle
finger out), which no training K shows; after calibration that shape must read as K.

*Fused* (``--image-models``): for each lis signer held out of an image classifier, the reading of
``--classifier fused`` (keypoint model without that person, image model without them), calibrated by the keypoint
embedding alone (what a keypoint profile does) or by the keypoint and the image embedding together (a profile
with the hand crops of its samples).

*Tuned* (``tuned+knn``, the shipped method): the held-out model's layers tuned to the samples with the exemplar bank
its run keeps (:func:`cell_tuning`), then kNN on the tuned embedding, as a profile does when it is loaded.

    fingerspell train calibration --doc docs/calibration.md --image-models lis-letters-image,DIR
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from realtime.calibration import SHIPPED_METHOD as SHIPPED_KEY, Adapter, Profile, in_batches
from realtime.personal_tuning import Tuning
from training.experiments import PRESETS
from training.new_people import LIS_SIGNERS, TorchModel
from training.train_keypoints import NO_LETTER

KS = (1, 3, 5)
SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Person:
    name: str
    model_run: str  # run folder under the new-people out folder: recipe/slug
    dataset: str
    signer: str | None  # None: the whole dataset is one person
    video: bool = False  # rows are video frames in recording order


def people() -> list[Person]:
    """Every person of the protocol, with the shipped recipe's model trained without them."""
    asl, lis = PRESETS["asl-letters"], PRESETS["lis-letters"]
    out = [Person(f"massey {s}", f"{asl}/asl-massey-{s}", "massey", s) for s in
           ("hand1", "hand2", "hand3", "hand4", "hand5")]
    out.append(Person("asl_webcam_landmarks signer0", f"{asl}/asl-asl_webcam_landmarks", "asl_webcam_landmarks",
                      None, video=True))
    out += [Person(f"lis {s}", f"{lis}/lis-lis-{s}", "lis", s) for s in LIS_SIGNERS]
    out.append(Person("lis_webcam_landmarks", f"{lis}/lis-lis_webcam_landmarks", "lis_webcam_landmarks", None,
                      video=True))
    return out




def ensure_models(runs: Path, datasets_root: str | Path, jobs: int = 1, progress: bool = True) -> None:
    """Train the held-out model of every person that lacks one (the lis signers other than GIULIA are not part
    of the new-people table), with the shipped recipe; cached, so a killed run resumes."""
    from concurrent.futures import ProcessPoolExecutor

    from training.new_people import PROTOCOLS, cached_cell, cell_config

    protos = {f"{PRESETS[p.alphabet + '-letters']}/{p.slug}": p for p in PROTOCOLS}
    todo = [(run.split("/")[0], protos[run], str(datasets_root), str(runs)) for run in
            sorted({p.model_run for p in people()})
            if cached_cell(runs / run, cell_config(run.split("/")[0], protos[run], datasets_root,
                                                    runs / run).fingerprint()) is None]
    if progress and todo:
        print(f"training {len(todo)} held-out model(s) first")
    with ProcessPoolExecutor(max(1, jobs)) as pool:
        list(pool.map(_run_cell, todo))


def _run_cell(args):
    from training.new_people import run_cell

    return run_cell(*args)


def person_rows(person: Person, datasets_root: str | Path, labels: list[str]):
    from training.keypoints import load_keypoints

    kp = load_keypoints(Path(datasets_root) / person.dataset, progress=False)
    keep = kp.readable & np.isin(kp.labels, labels)
    if person.signer:
        keep &= kp.signers == person.signer
    return kp.subset(np.flatnonzero(keep))


def split_calibration(kp, k: int, seed: int, video: bool, reserve: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(calibration rows, test rows): K detected rows per letter; photos at random, video from the first half.
    Photos with ``reserve`` (>= K): the first K of ``reserve`` drawn rows calibrate and none of them is tested, so
    every K of a seed is tested on the same photos."""
    if reserve is not None and not video:
        cal, test = split_calibration(kp, reserve, seed, video)
        first = np.concatenate([cal[kp.labels[cal] == label][:k] for label in np.unique(kp.labels[cal])]) \
            if len(cal) else cal
        return first.astype(np.int64), test
    rng = np.random.default_rng(seed)
    calib, test = [], []
    for label in np.unique(kp.labels):
        rows = np.flatnonzero(kp.labels == label)
        if video:
            first, second = rows[: len(rows) // 2], rows[len(rows) // 2:]
            pool = first[kp.detected[first]]
            calib.extend(rng.choice(pool, min(k, len(pool)), replace=False))
            test.extend(second)
        else:
            pool = rows[kp.detected[rows]]
            pick = rng.choice(pool, min(k, len(pool)), replace=False)
            calib.extend(pick)
            test.extend(np.setdiff1d(rows, pick))
    return np.array(calib, np.int64), np.array(test, np.int64)


def _accuracy(probs, labels, truth, detected) -> float:
    pred = np.array(labels)[probs.argmax(1)]
    return float(((pred == truth) & detected).mean()) if len(truth) else float("nan")


# (name, space: "embedding" (the model's penultimate activations) or "input" (its input features), Adapter kwargs)
METHODS = tuple(
    (f"{m}, {space}, alpha {a:g}, T {t:g}", space, dict(method=m, alpha=a, temperature=t))
    for space in ("embedding", "input") for m, a, t in
    (("knn", 6, 0.5), ("knn", 12, 0.25), ("knn", 24, 0.25), ("knn", 24, 0.5), ("knn", 48, 0.25),
     ("prototype", 24, 0.5))) + tuple(
    (f"{m}, embedding, {'alpha 24, T 0.25, ' if 'knn' in m else ''}L2 {l2:g}", "embedding",
     dict(method=m, alpha=24, temperature=0.25, l2=l2))
    for m, l2 in (("head", 0.01), ("head", 0.05), ("knn+head", 0.01), ("knn+head", 0.05))) + (
    ("tuned+knn, embedding, alpha 24, T 0.25", "embedding", dict(method="tuned+knn", alpha=24, temperature=0.25)),)


def cell_tuning(person: Person, runs: Path, datasets_root: str | Path, model: TorchModel):
    """What the held-out model's exported folder would ship for personal tuning: its weights and the exemplar bank
    its run keeps (made again from the run's own training data for runs trained before the bank was kept; the same
    rows and views, since the bank has its own seeded generator)."""
    from training.keypoint_model import fold_batchnorm
    from training.new_people import PROTOCOLS, cell_config
    from training.train_keypoints import exemplar_bank, load_exemplars, prepare_data

    bank = load_exemplars(runs / person.model_run / "model.pt")
    if bank is None:
        recipe, slug = person.model_run.split("/")
        cfg = cell_config(recipe, next(p for p in PROTOCOLS if p.slug == slug), datasets_root, runs / person.model_run)
        bank = exemplar_bank(cfg, prepare_data(cfg, progress=False), model.spec, seed=cfg.seed)
    return Tuning(fold_batchnorm(model.model), *bank)


def calibration_splits(kp, video: bool, by_camera: bool = False):
    """(camera, K, seed, calibration rows, test rows) of a person's protocol. ``by_camera`` (lis photos): samples
    and test from one of the five cameras at a time, as a webcam user calibrates and spells in front of one camera
    (otherwise most test photos show a view no sample did); every K of a seed is then tested on the same photos."""
    if not by_camera:
        for k in KS:
            for seed in SEEDS:
                yield (None, k, seed, *split_calibration(kp, k, seed, video))
        return
    from training.new_people import LIS_VIEWS, lis_view

    views = np.array([lis_view(r) for r in kp.rel.astype(str)])
    for view in LIS_VIEWS:
        at = np.flatnonzero(views == view)
        for k in KS:
            for seed in SEEDS:
                cal, test = split_calibration(kp.subset(at), k, seed, False, reserve=max(KS))
                yield view, k, seed, at[cal], at[test]


def run_person(person: Person, runs: Path, datasets_root: str | Path, variant: bool = False,
               by_camera: bool = False) -> list[dict]:
    """Rows (person, camera, K, seed, method, accuracy) for one person; ``variant``: massey K signed as the digit 3;
    ``by_camera``: the one-camera protocol (:func:`calibration_splits`).
    The model is the same network as the shipped ONNX file's, run in PyTorch: its ``embedding`` output is ``h``."""
    model = TorchModel(runs / person.model_run / "model.pt")
    letters = [l for l in model.labels if l != NO_LETTER]
    kp = person_rows(person, datasets_root, letters + (["3"] if variant else []))
    if variant:
        kp = kp.subset(np.flatnonzero(kp.labels != "K"))
        kp.labels = np.where(kp.labels == "3", "K", kp.labels)
    x, p, h = model.run(kp)
    truth, det = kp.labels.astype(str), kp.detected
    ids = np.array([model.labels.index(t) for t in truth], np.int64)
    tuning = cell_tuning(person, runs, datasets_root, model)
    rows = []
    for camera, k, seed, cal, test in calibration_splits(kp, person.video, by_camera):
        if not len(test) or (variant and not (kp.labels[test] == "K").any()):
            continue  # e.g. massey hand3 / hand4: five photos per letter leave none to test at K=5
        base = {"person": person.name, "k": k, "seed": seed, "variant": variant, "test_images": int(len(test)),
                "hands_found": float(det[test].mean()), **({"camera": camera} if by_camera else {})}
        is_k = truth[test] == "K"
        rows.append({**base, "method": "uncalibrated", "accuracy": _accuracy(p[test], model.labels, truth[test],
                                                                            det[test]),
                     "variant_accuracy": _accuracy(p[test][is_k], model.labels, truth[test][is_k], det[test][is_k])
                     if variant else None})
        for name, space, kw in METHODS:
            pm, e = p, (x if space == "input" else h)
            if "tuned" in kw["method"]:  # as a profile does at load time: the network tuned, then kNN on it
                pm, e = tuning.tune(x[cal], ids[cal]).probs_and_embedding(x)
            ad = Adapter(e[cal], list(truth[cal]), model.labels, sample_probs=pm[cal], **kw)
            q = ad(pm[test], e[test])
            rows.append({**base, "method": name, "accuracy": _accuracy(q, model.labels, truth[test], det[test]),
                         "variant_accuracy": _accuracy(q[is_k], model.labels, truth[test][is_k], det[test][is_k])
                         if variant else None})
    return rows


# shown beside the shipped method in the one-camera table: kNN alone (shipped before tuning) and the best method
# on one camera before tuning (kNN on the input features)
COMPARED = ("knn, embedding, alpha 24, T 0.25", "knn, input, alpha 48, T 0.25")


def camera_calibration_table(rows: list[dict], mixed: list[dict]) -> str:
    """Markdown: the lis signers calibrated and tested on one camera, beside the same signers with the cameras
    mixed (``mixed``: run_person's rows); uncalibrated, the shipped method, the best of each protocol at K=5, and
    the methods the README weighs against them (:data:`COMPARED`)."""
    from training.new_people import LIS_VIEWS

    protocols = {"one camera": rows, "cameras mixed": mixed}
    best = {name: best_method([{**r, "variant": False} for r in rs]) for name, rs in protocols.items()}
    present = {r["method"] for r in rows}
    methods = [m for m in dict.fromkeys(("uncalibrated", *COMPARED, SHIPPED_METHOD, *best.values())) if m in present]
    per = {name: _per_person(rs) for name, rs in protocols.items()}  # (method, K, person) -> mean over seeds, cameras
    per_view = {view: _per_person([r for r in rows if r.get("camera") == view]) for view in LIS_VIEWS}

    def person_means(table, m, k):
        return [v for (method, kk, _), v in table.items() if (method, kk) == (m, k)]
    lines = ["## One camera per person (the lis signers)", "",
             "A webcam user calibrates and spells in front of the same camera. Here each lis signer is calibrated on "
             "K samples per letter from one of the five cameras and tested on that camera's other photos, for each "
             "camera (mean over cameras and 3 seeds per person, then the mean and the worst person); every K of a seed is "
             f"tested on the same photos (those left after drawing {max(KS)} per letter). Beside it the protocol above "
             "for the same signers, whose samples and test photos mix the cameras.", "",
             "| protocol | method | " + " | ".join(f"K={k} mean | K={k} worst" for k in KS) + " |",
             "|---|---|" + "---:|" * (2 * len(KS))]
    for name in protocols:
        for m in methods:
            cells = [f"{np.mean(v):.1%} | {np.min(v):.1%}" if (v := person_means(per[name], m, k)) else " | "
                     for k in KS]
            marks = [w for w, hit in (("shipped", m == SHIPPED_METHOD), (f"best at K={max(KS)}", m == best[name]))
                     if hit]
            lines.append(f"| {name} | {m}{' (' + ', '.join(marks) + ')' if marks else ''} | " + " | ".join(cells)
                         + " |")
    k = max(KS)
    found = {name: np.mean([r["hands_found"] for r in rs if r["k"] == k and "hands_found" in r])
             for name, rs in protocols.items()}
    lines += ["", f"At K={k} MediaPipe found a hand in {found['one camera']:.1%} of the one-camera test photos and "
              f"{found['cameras mixed']:.1%} of the mixed ones (the samples are drawn from photos with a hand, and a "
              "camera has few photos per letter), so compare each protocol's gain over its own uncalibrated row.",
              "", f"One camera, K={k}, by camera (mean over the signers):", "",
              "| camera | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for view in LIS_VIEWS:
        lines.append(f"| {view} | " + " | ".join(f"{np.mean(person_means(per_view[view], m, k)):.1%}"
                                                  for m in methods) + " |")
    return "\n".join(lines) + "\n"


# (name, image similarity weight and temperature, or None: the keypoint embedding alone, as a keypoint profile)
FUSED_METHODS = (("fused, keypoint kNN (a keypoint profile)", None),
                 ("fused, keypoint + image kNN, image alpha 12, T 0.25 (a fused profile)", (12, 0.25)),
                 ("fused, keypoint + image kNN, image alpha 24, T 0.25", (24, 0.25)),
                 ("fused, keypoint + image kNN, image alpha 24, T 0.5", (24, 0.5)))

TUNED_FUSED = ("fused, tuned keypoints + keypoint kNN (a tuned keypoint profile)",
               "fused, tuned keypoints + keypoint and image kNN, image alpha 12, T 0.25 (a tuned fused profile)")


def image_model_people(image_model: str) -> tuple[list[str], "object"]:
    """(the lis signers an image classifier was trained without, the classifier), from its manifest."""
    from realtime.crop_classifier import OnnxImageClassifier

    im = OnnxImageClassifier(image_model, backend="onnxruntime")
    held = list(im.manifest.raw.get("training", {}).get("config", {}).get("test_signers") or [])
    if "lis" not in im.manifest.raw.get("training", {}).get("data", []) or not held:
        raise ValueError(f"{image_model}: not a lis image classifier with held-out signers "
                         f"(training data {im.manifest.raw.get('training', {}).get('data')}, test signers {held})")
    return [s for s in held if s in LIS_SIGNERS], im


def run_person_fused(signer: str, im, runs: Path, datasets_root: str | Path, cache_dir=None,
                     weight: float | None = None, by_camera: bool = False) -> list[dict]:
    """Rows (person, camera, K, seed, method, accuracy) of ``--classifier fused`` for one lis signer whom both the
    keypoint model and the image classifier ``im`` (an OnnxImageClassifier with an ``embedding`` output) never saw;
    ``by_camera``: the one-camera protocol (:func:`calibration_splits`)."""
    from realtime.crop_classifier import DEFAULT_IMAGE_WEIGHT, FusedClassifier
    from training.fused_results import GivenProbabilities
    from training.hand_crops import load_hand_crops
    from training.image_classifier import to_input

    person = next(p for p in people() if p.dataset == "lis" and p.signer == signer)
    model = TorchModel(runs / person.model_run / "model.pt")
    kp = person_rows(person, datasets_root, [l for l in model.labels if l != NO_LETTER])
    x, p_kp, h = model.run(kp)
    truth = kp.labels.astype(str)
    ids = np.array([model.labels.index(t) for t in truth], np.int64)
    tuning = cell_tuning(person, runs, datasets_root, model)
    crops = load_hand_crops(Path(datasets_root) / "lis", im.size, "hand", im.crop.scale, cache_dir=cache_dir,
                            progress=False)
    index = {r: i for i, r in enumerate(crops.rel.astype(str))}
    at = np.array([index.get(r, -1) for r in kp.rel.astype(str)])
    found = kp.detected & (at >= 0)  # a crop needs a hand: without one the live path reads nothing
    x_im = to_input(crops.images[np.where(at >= 0, at, 0)]).numpy()
    p_im, e_im = in_batches(im.probs_and_embedding, x_im, 256)
    fused = FusedClassifier(GivenProbabilities(model.labels, "keypoints"), GivenProbabilities(im.labels, "image"),
                            DEFAULT_IMAGE_WEIGHT if weight is None else weight)
    p_fused = fused((p_kp, p_im))
    rows = []
    for camera, k, seed, cal, test in calibration_splits(kp, False, by_camera):
        cal = cal[found[cal]]
        base = {"person": person.name, "k": k, "seed": seed, "test_images": int(len(test)),
                "image_model": im.manifest.name, **({"camera": camera} if by_camera else {}),
                "image_model_command": im.manifest.raw.get("training", {}).get("command")}

        def score(q):
            return _accuracy(q, model.labels, truth[test], found[test])

        rows.append({**base, "method": "keypoints, uncalibrated", "accuracy": score(p_kp[test])})
        rows.append({**base, "method": "fused, uncalibrated", "accuracy": score(p_fused[test])})
        kp_knn = Adapter(h[cal], list(truth[cal]), model.labels)  # the shipped keypoint profile's settings
        rows.append({**base, "method": "keypoints, keypoint kNN", "accuracy": score(kp_knn(p_kp[test], h[test]))})
        for name, image in FUSED_METHODS:  # chained as CalibratedClassifier does live
            q = kp_knn(p_fused[test], h[test])
            if image is not None:
                q = Adapter(e_im[cal], list(truth[cal]), model.labels, alpha=image[0],
                            temperature=image[1])(q, e_im[test])
            rows.append({**base, "method": name, "accuracy": score(q)})
        # a tuned profile: the keypoint network tuned to the samples reads the frames, then the same kNN terms
        p_t, h_t = tuning.tune(x[cal], ids[cal]).probs_and_embedding(x)
        q = Adapter(h_t[cal], list(truth[cal]), model.labels, alpha=24, temperature=0.25)(fused((p_t, p_im))[test],
                                                                                            h_t[test])
        rows.append({**base, "method": TUNED_FUSED[0], "accuracy": score(q)})
        q = Adapter(e_im[cal], list(truth[cal]), model.labels, alpha=12, temperature=0.25)(q, e_im[test])
        rows.append({**base, "method": TUNED_FUSED[1], "accuracy": score(q)})
    return rows


def _per_person(rows: list[dict]) -> dict:
    """(method, K, person) -> mean accuracy over the seeds (and cameras)."""
    out: dict = {}
    for r in rows:
        out.setdefault((r["method"], r["k"], r["person"]), []).append(r["accuracy"])
    return {key: float(np.mean(v)) for key, v in out.items()}


def _mean_worst_lines(rows: list[dict]) -> list[str]:
    """Markdown table lines: per method, each K's mean and worst person."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    persons = list(dict.fromkeys(r["person"] for r in rows))
    per = _per_person(rows)
    lines = ["| method | " + " | ".join(f"K={k} mean | K={k} worst" for k in KS) + " |",
             "|---|" + "---:|" * (2 * len(KS))]
    for m in methods:
        cells = [f"{np.mean([per[(m, k, p)] for p in persons]):.1%} | {np.min([per[(m, k, p)] for p in persons]):.1%}"
                 for k in KS]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def fused_calibration_table(rows: list[dict], camera_rows: list[dict] = ()) -> str:
    """Markdown: the fused protocol, per K the mean and worst person, and each person at the largest K; with
    ``camera_rows`` also the one-camera protocol."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    persons = list(dict.fromkeys(r["person"] for r in rows))
    models = ", ".join(f"`{m}` ({', '.join(dict.fromkeys(r['person'] for r in rows if r['image_model'] == m))})"
                       for m in dict.fromkeys(r["image_model"] for r in rows))
    per = _per_person(rows)
    lines = ["## Fused with the image classifier", "",
             "`--classifier fused` (image weight 0.3) for the lis signers whom an image classifier never saw: "
             f"{models}; the keypoint model is the one trained without the same person. Calibrated by the keypoint "
             "embedding alone (what a keypoint profile does), or by the keypoint and the image classifier's embedding "
             "of the samples' hand crops. Same splits and seeds as above; no hand found counts as wrong.", "",
             *_mean_worst_lines(rows)]
    if camera_rows:
        lines += ["", "The same on one camera (samples and test photos from one camera at a time, as in \"One camera "
                  "per person\" above):", "", *_mean_worst_lines(list(camera_rows))]
    lines += ["", f"Per person at K={max(KS)}, cameras mixed:", "", "| person | " + " | ".join(methods) + " |",
              "|---|" + "---:|" * len(methods)]
    for p in persons:
        lines.append(f"| {p} | " + " | ".join(f"{per[(m, max(KS), p)]:.1%}" for m in methods) + " |")
    lines += ["", "How each image model was trained (its manifest's command):", ""]
    lines += [f"- `{m}`: `{c}`" for m, c in dict.fromkeys((r["image_model"], r.get("image_model_command"))
                                                          for r in rows)]
    return "\n".join(lines) + "\n"


def run_calibration(runs: str | Path, datasets_root: str | Path, out: str | Path = "runs/calibration",
                    doc: str | Path | None = None, progress: bool = True, jobs: int = 1,
                    image_models: list[str] = (), cache_dir=None) -> list[dict]:
    from tqdm import tqdm

    runs = Path(runs)
    ensure_models(runs, datasets_root, jobs, progress)
    todo = [(p, False) for p in people() if (runs / p.model_run / "model.pt").exists()]
    todo += [(p, True) for p in people() if p.dataset == "massey" and (runs / p.model_run / "model.pt").exists()]
    missing = [p.name for p in people() if not (runs / p.model_run / "model.pt").exists()]
    rows = []
    for person, variant in tqdm(todo, desc="calibration", unit="person", disable=not progress):
        rows += run_person(person, runs, datasets_root, variant)
    camera_rows = []
    for person in tqdm([p for p, v in todo if p.dataset == "lis" and not v], desc="calibration, one camera",
                       unit="person", disable=not progress):
        camera_rows += run_person(person, runs, datasets_root, by_camera=True)
    fused_rows, fused_camera_rows = [], []
    for image_model in image_models:
        signers, im = image_model_people(image_model)
        for s in tqdm(signers, desc=f"fused with {im.manifest.name}", unit="person", disable=not progress):
            fused_rows += run_person_fused(s, im, runs, datasets_root, cache_dir)
            fused_camera_rows += run_person_fused(s, im, runs, datasets_root, cache_dir, by_camera=True)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "calibration.json").write_text(json.dumps(rows, indent=1))
    (Path(out) / "calibration-fused.json").write_text(json.dumps(fused_rows, indent=1))
    (Path(out) / "calibration-camera.json").write_text(json.dumps(camera_rows, indent=1))
    (Path(out) / "calibration-fused-camera.json").write_text(json.dumps(fused_camera_rows, indent=1))
    table = calibration_table(rows, missing)
    if camera_rows:
        lis_names = {r["person"] for r in camera_rows}
        table += "\n" + camera_calibration_table(camera_rows, [r for r in rows if r["person"] in lis_names
                                                               and not r["variant"]])
    table += "\n" + fused_calibration_table(fused_rows, fused_camera_rows) if fused_rows else ""
    if doc:
        Path(doc).write_text(table)
        plot_people(rows, Path(doc).with_suffix(".png"))
    if progress:
        print(table)
    return rows


# what realtime/calibration.py does (a profile's defaults), named as in METHODS: the row shown per person and plotted
_P = {f.name: f.default for f in fields(Profile)}
SHIPPED_METHOD = f"{SHIPPED_KEY}, {_P['space']}, alpha {_P['alpha']:g}, T {_P['temperature']:g}"


def best_method(rows: list[dict]) -> str:
    """The adaptation with the best mean over people at the largest K (marked in the table; it need not be the
    shipped one: a method must beat it by more than the seeds' noise to replace it)."""
    normal = [r for r in rows if not r["variant"]]
    persons = sorted({r["person"] for r in normal})
    methods = sorted({r["method"] for r in normal} - {"uncalibrated"})

    def mean_at_k(m):
        per = [np.mean(a) for p in persons if (a := [r["accuracy"] for r in normal if r["person"] == p
                                                     and r["k"] == max(KS) and r["method"] == m])]
        return np.mean(per) if per else -1.0
    return max(methods, key=mean_at_k)


def plot_people(rows: list[dict], path: Path) -> None:
    """Each person before and after calibrating on K=5 samples per letter (the shipped adaptation)."""
    from training.plots import plot_recipe_bars

    normal = [r for r in rows if not r["variant"] and r["k"] == max(KS)]
    bars = []
    for p in sorted({r["person"] for r in normal}):
        acc = {label: np.mean([r["accuracy"] for r in normal if r["person"] == p and r["method"] == m])
               for label, m in (("uncalibrated", "uncalibrated"), (f"calibrated, K={max(KS)}", SHIPPED_METHOD))}
        bars.append((p, acc))
    plot_recipe_bars(bars, path, f"Personal calibration ({SHIPPED_METHOD})")


def calibration_table(rows: list[dict], missing: list[str] = ()) -> str:
    methods = ["uncalibrated"] + [m for m, _, _ in METHODS]
    normal = [r for r in rows if not r["variant"]]
    lines = ["Accuracy on the rest of each person's images (no hand found counts as wrong), after calibrating on K "
             "samples per letter of that person; mean over 3 seeds per person, then the mean and the worst person. "
             "A person with no images left to test at some K (massey hand3 and hand4 have five per letter) is left "
             "out of that K's columns.", ""]
    lines += ["| method | " + " | ".join(f"K={k} mean | K={k} worst" for k in KS) + " |",
              "|---|" + "---:|" * (2 * len(KS))]
    persons = sorted({r["person"] for r in normal})
    per_person = {(m, k): [np.mean(acc) for p in persons if (acc := [r["accuracy"] for r in normal if r["person"] == p
                                                                    and r["k"] == k and r["method"] == m])]
                  for m in methods for k in KS}
    best = best_method(rows)
    for m in methods:
        cells = [f"{np.mean(per_person[(m, k)]):.1%} | {np.min(per_person[(m, k)]):.1%}" if per_person[(m, k)]
                 else " | " for k in KS]
        marks = [w for w, hit in (("shipped", m == SHIPPED_METHOD), (f"best at K={max(KS)}", m == best)) if hit]
        lines.append(f"| {m}{' (' + ', '.join(marks) + ')' if marks else ''} | " + " | ".join(cells) + " |")
    lines += ["", f"Per person, K=5, {SHIPPED_METHOD} (shipped) against uncalibrated:", "",
              "| person | test images | uncalibrated | calibrated (K=5) |", "|---|---:|---:|---:|"]
    for p in persons:
        sel = lambda m: [r for r in normal if r["person"] == p and r["k"] == 5 and r["method"] == m]  # noqa: E731
        u, c = sel("uncalibrated"), sel(SHIPPED_METHOD)
        if not u:
            lines.append(f"| {p} | 0 | (too few images to test at K=5) | |")
            continue
        lines.append(f"| {p} | {u[0]['test_images']} | {np.mean([r['accuracy'] for r in u]):.1%} | "
                     f"{np.mean([r['accuracy'] for r in c]):.1%} |")
    var = [r for r in rows if r["variant"]]
    if var:
        lines += ["", "Own variant: each massey signer spells K with the digit-3 handshape (thumb, index, middle "
                  "out), which no training K shows. Accuracy on those K images, mean over the 5 signers and 3 seeds:",
                  "", "| method | " + " | ".join(f"K={k}" for k in KS) + " |", "|---|" + "---:|" * len(KS)]
        for m in methods:
            cells = [[r["variant_accuracy"] for r in var if r["k"] == k and r["method"] == m] for k in KS]
            lines.append(f"| {m} | " + " | ".join(f"{np.mean(c):.1%}" if c else "" for c in cells) + " |")
    if missing:
        lines += ["", f"Not run (no held-out model): {', '.join(missing)}."]
    return "\n".join(lines) + "\n"
