"""Paper 001's evaluation of an H-GAN run, in this project's terms.

- FID and KID (Table I) of rendered and of translated hands against the real crops, in the feature space of the
  real-data evaluator CNN (Inception weights cannot be downloaded here); real vs real gives the floor.
- The realism test (Tables II-III): (a) a classifier that learned real vs rendered, shown translated hands: how
  many it calls real; (b) a classifier that learned real / rendered / translated: how often it takes translated
  hands for real and real for translated (high confusion = similar distributions).
- Pose kept: MediaPipe's landmarks on the translated crop against the rendered keypoints (mean distance as a
  fraction of the crop, PCK at 5% and 10% of the crop), with the same figures for the rendered crops, and for
  real crops against the landmarks they were framed by (what MediaPipe manages at this size at all).
- Letter kept: the shipped image classifier's accuracy on translated and on rendered hands.

Every figure uses fresh poses (seed 1), never the ones the GAN trained on.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

DOMAINS = ("real", "rendered", "translated")


def _split(n: int, seed: int):
    idx = np.random.default_rng(seed).permutation(n)
    return idx[: n // 2], idx[n // 2:]


def realism_test(real: np.ndarray, rendered: np.ndarray, translated: np.ndarray, out: Path, seed: int = 0,
                 epochs: int = 6, progress: bool = False) -> dict:
    """The paper's two classifier tests on uint8 crops (N, S, S, 3); each domain split in halves (train/test)."""
    from training.image_classifier import ClassifierConfig, train_classifier, to_input

    halves = {name: _split(len(x), seed) for name, x in zip(DOMAINS, (real, rendered, translated))}
    data = dict(zip(DOMAINS, (real, rendered, translated)))
    recipe = ClassifierConfig(arch="cnn", epochs=epochs, lr=1e-3, betas=(0.9, 0.999), cosine=True, seed=seed)

    def fit(names, folder):
        x = np.concatenate([data[n][halves[n][0]] for n in names])
        y = np.concatenate([[n] * len(halves[n][0]) for n in names])
        vx = np.concatenate([data[n][halves[n][1]][:64] for n in names])
        vy = np.concatenate([[n] * len(halves[n][1][:64]) for n in names])
        return train_classifier(x, y, vx, vy, list(names), out / folder, recipe, progress=progress)

    def predict(clf, name):
        p = clf.probabilities(to_input(data[name][halves[name][1]]))
        return np.asarray(clf.labels)[p.argmax(1)]

    two = fit(("real", "rendered"), "realism-2way")
    result = {"two_way": {"real_called_real": float((predict(two, "real") == "real").mean()),
                          "rendered_called_real": float((predict(two, "rendered") == "real").mean()),
                          "translated_called_real": float((predict(two, "translated") == "real").mean())}}
    three = fit(DOMAINS, "realism-3way")
    confusion = {t: {p: float((predict(three, t) == p).mean()) for p in DOMAINS} for t in DOMAINS}
    result["three_way"] = {"confusion": confusion, "accuracy": float(np.mean([confusion[d][d] for d in DOMAINS]))}
    return result


def pose_kept(images: np.ndarray, keypoints: np.ndarray, upscale: int = 256) -> dict:
    """MediaPipe on each crop (upscaled) against ``keypoints`` (N, 21, 2, fractions of the crop)."""
    import cv2

    from realtime.hands import StaticHandDetector

    det = StaticHandDetector()
    found, dists = 0, []
    try:
        for img, kp in zip(images, keypoints):
            big = cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), (upscale, upscale), interpolation=cv2.INTER_CUBIC)
            hands = det(big)
            if not hands:
                continue
            found += 1
            lm = np.asarray(hands[0].landmarks, np.float64)[:, :2] / upscale
            dists.append(np.linalg.norm(lm - kp, axis=1))
    finally:
        det.close()
    d = np.concatenate(dists) if dists else np.zeros(0)
    return {"detected": found / max(len(images), 1), "mean_distance": float(d.mean()) if len(d) else None,
            "pck_0.05": float((d < 0.05).mean()) if len(d) else None,
            "pck_0.10": float((d < 0.10).mean()) if len(d) else None}


def letter_kept(classifier_dir: str | os.PathLike, images: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy of a shipped image classifier (``weights/NAME``, run as the live path runs it) on uint8 crops."""
    from realtime.crop_classifier import OnnxImageClassifier
    from realtime.manifest import Manifest
    from training.image_classifier import to_input

    kind = Manifest.load(Path(classifier_dir)).kind
    if kind != "image-classifier":
        raise ValueError(f"{classifier_dir} is not an image classifier (kind {kind!r})")
    clf = OnnxImageClassifier(classifier_dir, device="cpu")
    resized = None
    if images.shape[1:3] != (clf.size, clf.size) and min(images.shape[1:3]) < clf.size:
        raise ValueError(f"{classifier_dir} reads {clf.size}x{clf.size} crops, these are "
                         f"{images.shape[1]}x{images.shape[2]}: smaller crops are not enlarged")
    if images.shape[1:3] != (clf.size, clf.size):  # e.g. a 64x64 H-GAN and the 32x32 shipped classifier:
        # area-averaged, as the classifier's own crops are made from larger photos
        import cv2

        resized = f"{images.shape[1]}x{images.shape[2]} crops area-averaged to {clf.size}x{clf.size}"
        images = np.stack([cv2.resize(im, (clf.size, clf.size), interpolation=cv2.INTER_AREA) for im in images])
    x = to_input(images).numpy()
    probs = np.concatenate([clf(x[i:i + 256]).reshape(-1, len(clf.labels)) for i in range(0, len(x), 256)])
    pred = np.asarray(clf.labels)[probs.argmax(1)]
    known = np.isin(labels, clf.labels)
    return {"classifier": clf.manifest.name, "accuracy": float((pred[known] == labels[known]).mean()),
            "images": int(known.sum()), **({"resized": resized} if resized else {})}


def _classifier_training(classifier_dir) -> dict:
    from realtime.manifest import Manifest

    return dict(Manifest.load(Path(classifier_dir)).raw.get("training", {}))


def hgan_metrics(run: str | os.PathLike, datasets=None, cache_dir=None, images: int = 2000, doc: str | None = None,
                 evaluator: str | None = None, classifier: str | None = "weights/lis-letters-image",
                 progress: bool = True) -> dict:
    """All of the module docstring for the run folder ``run``; writes RUN/metrics.json (and a doc section)."""
    from training.gan.config import GANConfig
    from training.gan.metrics import ClassifierFeatures, ensure_evaluator, fid_kid
    from training.hgan.data import pose_pool, real_crops, render_settings
    from training.hgan.render import render_hands
    from training.hgan.translate import balanced_poses, load_hgan
    from training.image_classifier import ImageClassifier, to_input

    run = Path(run)
    hgan = load_hgan(run)
    c = hgan.config
    real = real_crops(c, datasets, cache_dir, progress)
    lm_pool, lab_pool = pose_pool(c, datasets, cache_dir, progress)
    classes = sorted(set(lab_pool.tolist()))
    lm, labels = balanced_poses(lm_pool, lab_pool, max(1, images // len(classes)), c, seed=1, classes=classes)
    r = render_hands(lm, 1, render_settings(c), progress=progress)
    rendered, translated = r["images"], hgan.translate(r["images"], r["masks"])
    pick = np.random.default_rng(0).choice(len(real), min(len(real), len(rendered)), replace=False)
    real_u8 = real.images[pick]

    gan_like = GANConfig(dataset=c.dataset, size=c.size, labels=c.labels, exclude_signers=list(c.exclude_signers))
    ev = ImageClassifier.load(evaluator) if evaluator else ensure_evaluator(gan_like, datasets, cache_dir,
                                                                          progress=progress)
    extractor = ClassifierFeatures(ev)
    rx, sx, tx = to_input(real_u8), to_input(rendered), to_input(translated)
    half = len(rx) // 2
    m = {"run": str(run), "step": hgan.step, "config": c.name, "images": len(rendered), "real_images": len(rx),
         "feature_space": "real-data evaluator (SmallCNN, seed 0; the perceptual discriminator's CNN is seed 1)",
         "fid_kid": {"real_vs_real": fid_kid(rx[:half], rx[half:], extractor),
                     "rendered": fid_kid(rx, sx, extractor), "translated": fid_kid(rx, tx, extractor)}}
    m["realism"] = realism_test(real_u8, rendered, translated, run / "metrics", progress=progress)
    n_pose = min(len(rendered), 300)
    m["pose"] = {"real": pose_kept(real_u8[:n_pose], real.keypoints[pick][:n_pose]),  # the floor at this size
                 "rendered": pose_kept(rendered[:n_pose], r["keypoints"][:n_pose]),
                 "translated": pose_kept(translated[:n_pose], r["keypoints"][:n_pose]), "images": n_pose}
    training = _classifier_training(classifier) if classifier else {}
    learned = list(training.get("data", []))
    made_by = (training.get("generated") or {}).get("generator")
    if classifier and made_by == c.name:  # it learned from this H-GAN's own hands: it would grade its own teacher
        m["letter_note"] = (f"not measured: {Path(classifier).name} was trained with hands translated by {made_by}; "
                            "pass --classifier a model trained without them")
    elif classifier and c.dataset in learned:
        m["letter"] = {"rendered": letter_kept(classifier, rendered, labels),
                       "translated": letter_kept(classifier, translated, labels)}
    elif classifier:  # e.g. an ASL H-GAN and the LIS classifier: letters of another alphabet, a meaningless figure
        m["letter_note"] = (f"not measured: {Path(classifier).name} learned {', '.join(learned) or 'unknown data'}, "
                            f"not {c.dataset}")
    (run / "metrics").mkdir(parents=True, exist_ok=True)
    (run / "metrics.json").write_text(json.dumps(m, indent=1))
    from training.gan.sampling import save_grid

    grid = torch.cat([torch.from_numpy(a[:12]).permute(0, 3, 1, 2).float() / 127.5 - 1
                      for a in (rendered, translated)])
    save_grid(grid, run / "metrics" / "rendered-translated.png", 12, ["syn", "H-GAN"], scale=3)
    if doc:
        write_doc_section(m, doc, run)
    return m


def format_hgan_metrics(m: dict) -> str:
    f = m["fid_kid"]
    lines = [f"H-GAN {m['config']} at step {m['step']}: {m['images']} fresh poses, {m['real_images']} real crops",
             f"  FID real vs real {f['real_vs_real']['fid']:.2f} | rendered {f['rendered']['fid']:.2f} | "
             f"translated {f['translated']['fid']:.2f}",
             f"  KID rendered {f['rendered']['kid']:.4f} | translated {f['translated']['kid']:.4f}"]
    two = m["realism"]["two_way"]
    lines.append(f"  real-vs-rendered classifier calls real: real {two['real_called_real']:.1%}, rendered "
                 f"{two['rendered_called_real']:.1%}, translated {two['translated_called_real']:.1%}")
    conf = m["realism"]["three_way"]["confusion"]
    lines.append(f"  3-way classifier: translated taken for real {conf['translated']['real']:.1%}, real taken for "
                 f"translated {conf['real']['translated']:.1%}")
    for k in ("real", "rendered", "translated"):
        if k not in m["pose"]:
            continue
        p = m["pose"][k]
        lines.append(f"  pose ({k}): MediaPipe finds {p['detected']:.1%}"
                     + (f", mean distance {p['mean_distance']:.3f} of the crop, PCK@0.1 {p['pck_0.10']:.1%}"
                        if p["mean_distance"] is not None else ""))
    if "letter_note" in m:
        lines.append(f"  letter read: {m['letter_note']}")
    if "letter" in m:
        lines.append(f"  letter read by {m['letter']['translated']['classifier']}: rendered "
                     f"{m['letter']['rendered']['accuracy']:.1%}, translated {m['letter']['translated']['accuracy']:.1%}")
    return "\n".join(lines)


def write_doc_section(m: dict, doc: str, run: Path) -> None:
    """Replace (or add) this run's section of ``doc`` with its tables and grids (copied beside the doc)."""
    import shutil

    doc = Path(doc)
    img_dir = doc.parent / "hgan"
    img_dir.mkdir(parents=True, exist_ok=True)
    if not (run / "losses.png").exists() and (run / "history.json").exists():  # a run trained on a lent GPU brings
        # back its loss history (training.gpu_short), not the plot
        from training.gan.plots import plot_gan_history
        from training.hgan.trainer import HGAN_PANELS

        plot_gan_history(json.loads((run / "history.json").read_text()), run / "losses.png", HGAN_PANELS)
    for src, name in ((run / "samples.png", f"{m['config']}-samples.png"), (run / "losses.png", f"{m['config']}-losses.png")):
        if src.exists():
            shutil.copy(src, img_dir / name)
    f, two, conf = m["fid_kid"], m["realism"]["two_way"], m["realism"]["three_way"]["confusion"]
    lines = [f"## {m['config']}", "", f"`fingerspell hgan-metrics --hgan {run} --doc {doc}` (generator step {m['step']};"
             f" {m['images']} fresh poses, {m['real_images']} real crops)", "",
             "| | FID | KID |", "|---|---:|---:|",
             f"| real vs real (two halves) | {f['real_vs_real']['fid']:.2f} | {f['real_vs_real']['kid']:.4f} |",
             f"| rendered vs real | {f['rendered']['fid']:.2f} | {f['rendered']['kid']:.4f} |",
             f"| translated vs real | {f['translated']['fid']:.2f} | {f['translated']['kid']:.4f} |", "",
             "| realism test | real | rendered | translated |", "|---|---:|---:|---:|",
             f"| called real by a real-vs-rendered classifier | {two['real_called_real']:.1%} | "
             f"{two['rendered_called_real']:.1%} | {two['translated_called_real']:.1%} |"]
    lines += [f"| 3-way classifier: taken for {p} | " + " | ".join(f"{conf[t][p]:.1%}" for t in DOMAINS) + " |"
              for p in DOMAINS]
    lines += ["", "| | MediaPipe finds a hand | mean landmark distance (crop) | PCK@0.05 | PCK@0.10 | letter read |",
              "|---|---:|---:|---:|---:|---:|"]
    for k in ("real", "rendered", "translated"):
        if k not in m["pose"]:
            continue
        p = m["pose"][k]
        letter = f"{m['letter'][k]['accuracy']:.1%}" if "letter" in m and k in m["letter"] else "-"
        fmt = lambda v, s: "-" if v is None else s.format(v)  # noqa: E731
        lines.append(f"| {k} | {p['detected']:.1%} | {fmt(p['mean_distance'], '{:.3f}')} | "
                     f"{fmt(p['pck_0.05'], '{:.1%}')} | {fmt(p['pck_0.10'], '{:.1%}')} | {letter} |")
    if "letter_note" in m:
        lines += ["", f"Letter read: {m['letter_note']}."]
    if m.get("letter", {}).get("translated", {}).get("resized"):
        lines += ["", f"Letter read: {m['letter']['translated']['resized']} for the classifier."]
    lines += ["", f"![rendered, translated, nearest real](hgan/{m['config']}-samples.png)", "",
              f"![losses](hgan/{m['config']}-losses.png)", ""]
    section = "\n".join(lines)
    text = doc.read_text() if doc.exists() else "# H-GAN\n\n"
    head = f"## {m['config']}\n"
    if head in text:
        start = text.index(head)
        end = text.find("\n## ", start + len(head))
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text)
