"""The new-people table: every keypoint recipe judged on people it never saw, by protocols that hold out
whole people or whole datasets (never one test signer alone), as issue 14 asks.

Protocols (:data:`PROTOCOLS`):

- ASL leave-one-signer-out on massey (5 folds; massey's signers share one studio, so this alone misleads);
- ASL leave-one-dataset-out for each source: roboflow, kaggle_asl, massey, digits (its O/V/W/F handshapes and
  the no-letter digits, 218 people), asl_webcam_landmarks (a laptop webcam);
- LIS leave-one-signer-out on all 11 lis signers (GIULIA is the one the source set aside), lis_webcam_landmarks
  held out, and the no-letter digits held out.

Per row: accuracy over all test images (no hand found counts as wrong), macro-F1 over the letters, the three
worst letters, and the false-letter rate: how often a hand that spells nothing (label ``none``) is read as a
letter with at least :data:`TYPED_CONFIDENCE`, the live speller's threshold. A recipe without the ``none``
class is scored on the same frames, so before/after compare like with like.

    fingerspell train results --recipes asl-v1,asl-v3,lis-v1,lis-v3 --doc docs/results.md   # before / shipped
"""
from __future__ import annotations

import json
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from realtime.speller import SpellerConfig
from training.experiments import ASL_LABEL_MAP, LIS_LABEL_MAP, RECIPE_NOTES, recipe_config, recipe_points, split_seed
from training.train_keypoints import ASL_LETTERS, LIS_LETTERS, NO_LETTER

LIS_SIGNERS = ("ANTONIA", "EVISA", "FATIMA", "GIANLUCA", "GIULIA", "HUZAIFA", "IBRAHIM", "KENZA", "MARGHERITA",
               "MIKE", "NOOR")
TYPED_CONFIDENCE = SpellerConfig().min_confidence  # the live speller's default: below it nothing is typed


@dataclass(frozen=True)
class Protocol:
    name: str
    alphabet: str  # "asl" or "lis": which recipes it applies to
    test_dataset: str  # the dataset the test rows come from
    test_signer: str | None = None  # hold out this signer only (else the whole dataset)

    @property
    def slug(self) -> str:
        return f"{self.alphabet}-{self.test_dataset}" + (f"-{self.test_signer}" if self.test_signer else "")


PROTOCOLS = (
    *(Protocol(f"massey hand{k} (leave-one-signer-out)", "asl", "massey", f"hand{k}") for k in range(1, 6)),
    Protocol("roboflow (leave-one-dataset-out)", "asl", "roboflow"),
    Protocol("kaggle_asl (leave-one-dataset-out)", "asl", "kaggle_asl"),
    Protocol("massey (leave-one-dataset-out)", "asl", "massey"),
    Protocol("digits O/V/W/F + no-letter, 218 people (leave-one-dataset-out)", "asl", "digits"),
    Protocol("asl_webcam_landmarks (leave-one-dataset-out)", "asl", "asl_webcam_landmarks"),
    *(Protocol(f"lis {s} (leave-one-signer-out)", "lis", "lis", s) for s in LIS_SIGNERS),
    Protocol("lis_webcam_landmarks (leave-one-dataset-out)", "lis", "lis_webcam_landmarks"),
    Protocol("digits no-letter shapes (leave-one-dataset-out)", "lis", "digits"),
)
ALPHABET = {"asl": (ASL_LETTERS, ASL_LABEL_MAP), "lis": (LIS_LETTERS, LIS_LABEL_MAP)}


def recipe_protocols(recipe: str, datasets_root: str | Path, protocols=PROTOCOLS) -> list[Protocol]:
    """The protocols a recipe is judged on: those of its alphabet, less the landmark-only test sets for a recipe that
    reads world landmarks (those sets recorded image landmarks only)."""
    from training.landmark_sets import is_landmark_set

    world = recipe_points(recipe) == "world"
    return [p for p in protocols if recipe.startswith(p.alphabet + "-")
            and not (world and is_landmark_set(Path(datasets_root) / p.test_dataset))]


def test_rows(protocol: Protocol, datasets_root: str | Path, cache_dir=None, settings=None):
    """The held-out rows of a protocol, labels mapped as the shipped recipe maps them (letters and ``none``);
    ``settings``: the photo detector's (:class:`realtime.hands.base.StaticSettings`; default: the cache's)."""
    from realtime.hands.base import StaticSettings
    from training.keypoints import load_keypoints
    from training.train_keypoints import map_labels

    letters, label_map = ALPHABET[protocol.alphabet]
    kp = load_keypoints(Path(datasets_root) / protocol.test_dataset, cache_dir=cache_dir, progress=False,
                        settings=settings or StaticSettings())
    kp = map_labels(kp, label_map.get(protocol.test_dataset, {}), letters + [NO_LETTER])
    kp = kp.subset(np.flatnonzero(kp.readable))
    if protocol.test_signer:
        kp = kp.subset(np.flatnonzero(kp.signers == protocol.test_signer))
    return kp


def score(probs: np.ndarray, detected: np.ndarray, truth: np.ndarray, model_labels: list[str], letters: list[str]) -> dict:
    """Letter accuracy (all images), macro-F1 and worst letters on letter rows; false-letter rate on ``none`` rows."""
    from training.metrics import classification_report

    pred = np.array([model_labels[k] for k in probs.argmax(1)]) if len(probs) else np.zeros(0, str)
    conf = probs.max(1) if len(probs) else np.zeros(0)
    out: dict = {}
    is_letter = truth != NO_LETTER
    if is_letter.any():
        present = [l for l in letters if (truth[is_letter] == l).any()]
        idx = {l: i for i, l in enumerate(letters)}
        y = np.array([idx[t] for t in truth[is_letter]])
        p = np.array([idx.get(str(q), len(letters)) if d else -1 for q, d in zip(pred[is_letter], detected[is_letter])])
        rep = classification_report(y, np.where(p == len(letters), -2, p), letters)  # -2: read as `none` (wrong)
        per = {l: rep["per_class"][l]["accuracy"] for l in present}
        worst = sorted(per, key=lambda l: per[l])[:3]
        out.update(images=int(is_letter.sum()), detection_rate=float(detected[is_letter].mean()),
                   accuracy=rep["accuracy"], macro_f1=rep["macro_f1"], per_class=per,
                   worst=[(l, per[l]) for l in worst], report=rep)
    nothing = ~is_letter
    if nothing.any():
        typed = detected[nothing] & (pred[nothing] != NO_LETTER) & (conf[nothing] >= TYPED_CONFIDENCE)
        out.update(no_letter_images=int(nothing.sum()), false_letter_rate=float(typed.mean()))
    return out


class TorchModel:
    """A trained ``model.pt``: input features, probabilities and penultimate embeddings (the shipped ONNX file's
    ``embedding`` output) of cached keypoints."""

    def __init__(self, model_pt: str | Path):
        from training.train_keypoints import load_trained

        self.model, self.labels, self.spec = load_trained(model_pt)

    def run(self, kp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(features, probabilities, embeddings) of every row; rows without a hand give meaningless numbers."""
        import torch

        x = np.nan_to_num(kp.features(self.spec))
        with torch.no_grad():
            h = self.model.embed(torch.from_numpy(x))
            p = torch.softmax(self.model.fc3(h), -1)
        return x, p.numpy(), h.numpy()

    def probabilities(self, kp) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, hand found) of every row: zeros where the model finds no hand (for a world-landmark model
        also where there are no world landmarks), which then count as wrong."""
        probs = np.zeros((len(kp), len(self.labels)), np.float32)
        det = kp.with_points(self.spec.points).detected.copy()
        if det.any():
            probs[det] = self.run(kp.subset(np.flatnonzero(det)))[1]
        return probs, det


def evaluate_trained(model_pt: str | Path, kp) -> dict:
    """A trained keypoint model (``model.pt``) on a :class:`KeypointSet` of test rows -> :func:`score`."""
    model = TorchModel(model_pt)
    letters = [l for l in model.labels if l != NO_LETTER]
    probs, det = model.probabilities(kp)
    return score(probs, det, kp.labels.astype(str), model.labels, letters)


def cached_cell(run: str | Path, fingerprint: str | None = None) -> dict | None:
    """A cell's stored result; None when there is none, when it was made with another photo cascade (its model
    learned from and was scored on other landmarks), or, given the ``fingerprint`` of the config it should have
    been trained with, when it was trained with another (a quick run with other --epochs, an older recipe): such a
    cell must be made again, never reused in a table."""
    result_file = Path(run) / "new_people.json"
    if not result_file.exists():
        return None
    from training.keypoints import extraction_record

    res = json.loads(result_file.read_text())
    if res.get("photo_cascade") != extraction_record():
        return None
    if fingerprint is not None and cell_fingerprint(run, res) != fingerprint:
        return None
    return res


def cell_fingerprint(run: str | Path, res: dict) -> str | None:
    """The config fingerprint a cell was trained with: recorded in its result, or (cells made before it was) in its
    checkpoint."""
    if res.get("fingerprint"):
        return res["fingerprint"]
    ckpt = Path(run) / "checkpoint.pt"
    if not ckpt.exists():
        return None
    import torch

    try:
        return torch.load(ckpt, weights_only=False, map_location="cpu").get("fingerprint")
    except Exception:  # a damaged checkpoint: the cell is made again
        return None


def cell_config(recipe: str, protocol: Protocol, datasets_root: str | Path, run: str | Path, epochs: int | None = None,
                cache_dir=None):
    """The TrainConfig of one cell: the recipe with the protocol's people held out."""
    cfg = recipe_config(recipe, datasets_root, run, cache_dir=cache_dir, **({"epochs": epochs} if epochs else {}))
    if protocol.test_signer:
        return replace(cfg, test_signers=[f"{protocol.test_dataset}/{protocol.test_signer}"])
    if any(Path(d).name == protocol.test_dataset for d in cfg.data):
        return replace(cfg, test_datasets=[protocol.test_dataset])
    return cfg


def run_cell(recipe: str, protocol: Protocol, datasets_root: str, out: str, epochs: int | None = None,
             cache_dir=None) -> dict:
    """Train ``recipe`` with the protocol's people held out (resumable) and score it on them."""
    import shutil

    from training.io import atomic_write_text
    from training.keypoints import extraction_record
    from training.train_keypoints import train

    run = Path(out) / recipe / protocol.slug
    result_file = run / "new_people.json"
    cfg = cell_config(recipe, protocol, datasets_root, run, epochs, cache_dir)
    cached = cached_cell(run, cfg.fingerprint())
    if cached is not None:
        return cached
    if result_file.exists():  # made with another photo cascade or other settings: trained again from scratch
        print(f"{run}: made with another photo cascade or other settings (--epochs?); training it again")
        shutil.rmtree(run)
    train(cfg, progress=False)
    test = test_rows(protocol, datasets_root, cache_dir)
    if cfg.read_views is not None:
        test = test.found_by_first(cfg.read_views)
    res = {"recipe": recipe, "protocol": protocol.name, "slug": protocol.slug,
           **evaluate_trained(run / "model.pt", test), "photo_cascade": extraction_record(),
           "fingerprint": cfg.fingerprint()}
    res.pop("report", None)
    atomic_write_text(result_file, json.dumps(res, indent=1))  # the mark of a finished cell: whole or absent
    return res


def _cell(args):
    return run_cell(*args)


def run_new_people(recipes: list[str], datasets_root: str | Path, out: str | Path = "runs/new-people",
                   doc: str | Path | None = None, jobs: int = 1, epochs: int | None = None,
                   protocols: tuple[Protocol, ...] = PROTOCOLS, progress: bool = True,
                   layout: str = "protocols") -> list[dict]:
    """Every (recipe, protocol) cell of the same alphabet; cached per cell, so a killed run resumes. ``layout``:
    ``protocols`` (a row per protocol, columns per recipe: before / after) or ``recipes`` (a row per recipe with the
    protocols' summaries: ablations)."""
    from tqdm import tqdm

    for r in recipes:
        split_seed(r)  # an unknown recipe is refused before anything trains
    cells = [(r, p, str(datasets_root), str(out), epochs) for r in recipes
             for p in recipe_protocols(r, datasets_root, protocols)]
    results = []
    with tqdm(total=len(cells), desc="new-people cells", unit="run", disable=not progress) as bar:
        if jobs > 1:
            with ProcessPoolExecutor(jobs) as pool:
                for res in pool.map(_cell, cells):
                    results.append(res)
                    bar.update(1)
        else:
            for c in cells:
                results.append(run_cell(*c))
                bar.update(1)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "new_people.json").write_text(json.dumps(results, indent=1))
    if layout == "protocols":
        table = new_people_table(results, recipes)
        lis = [r for r in recipes if r.startswith("lis-")]
        views = lis_views_table(lis[-1], datasets_root, out) if lis else []
        if views:
            table += "\n" + "\n".join(views) + "\n"
    else:
        table = recipe_table(results, recipes)
    if doc:
        Path(doc).parent.mkdir(parents=True, exist_ok=True)
        Path(doc).write_text(table)
        if layout == "protocols":
            write_plots(results, recipes, protocols, datasets_root, out, Path(doc).parent, Path(doc).stem)
    if progress:
        print(table)
    return results


def methods_table(rows: dict[str, dict[str, dict]], protos, methods, baseline: str, measure: str = "") -> list[str]:
    """Markdown: per method of a page over the new-people cells, ``measure`` (accuracy) as means over the signers
    and over the datasets held out, the worst protocol, and the false-letter rate of each protocol that has no-letter
    hands (``baseline``: the method every protocol was scored with)."""
    loso = [p.slug for p in protos if p.test_signer]
    lodo = [p.slug for p in protos if not p.test_signer and "accuracy" in rows[p.slug][baseline]]
    none = [p.slug for p in protos if "false_letter_rate" in rows[p.slug][baseline]]
    head = [f"{measure}signers held out (mean)", "datasets held out (mean)", "worst protocol"] + \
           [f"false letters, {s.split('-', 1)[1]} held out" for s in none]
    lines = ["| method | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for m in methods:
        mean = lambda slugs: f"{np.mean([rows[s][m]['accuracy'] for s in slugs]):.1%}" if slugs else "-"  # noqa: E731
        worst = min(loso + lodo, key=lambda s: rows[s][m]["accuracy"])
        cells = [mean(loso), mean(lodo), f"{rows[worst][m]['accuracy']:.1%} ({worst.split('-', 1)[1]})"]
        cells += [f"{rows[s][m]['false_letter_rate']:.1%}" for s in none]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def protocol_tables(recipes: list[str], datasets_root, out, head: list[str], evaluate, tables,
                    doc: str | Path | None = None, jobs: int = 1, progress: bool = True) -> str:
    """A page that reads every new-people cell of ``recipes`` another way (adaptation, rejection): the cells that
    lack are trained first; ``evaluate(recipe, protocol, datasets_root, out)`` gives a protocol's rows and
    ``tables(rows, protocols)`` the recipe's markdown lines, under ``head``."""
    from tqdm import tqdm

    from training.io import atomic_write_text

    run_new_people(recipes, datasets_root, out, jobs=jobs, progress=False)
    text = list(head)
    for recipe in recipes:
        protos = recipe_protocols(recipe, datasets_root)
        rows = {p.slug: evaluate(recipe, p, datasets_root, out)
                for p in tqdm(protos, desc=f"{recipe} protocols", disable=not progress)}
        text += [f"## {recipe}", "", *tables(rows, protos)]
    out_text = "\n".join(text)
    if doc:
        atomic_write_text(doc, out_text)
    if progress:
        print(out_text)
    return out_text


def write_plots(results: list[dict], recipes: list[str], protocols, datasets_root, out, folder: Path,
                stem: str) -> None:
    """Beside the table: a bar chart per alphabet (each recipe's accuracy per protocol), and the confusion matrix of
    the last recipe of each alphabet on each leave-one-dataset-out protocol (and GIULIA)."""
    from training.plots import plot_confusion, plot_recipe_bars

    by = {(r["recipe"], r["slug"]): r for r in results}
    for alphabet in ("asl", "lis"):
        rs = [r for r in recipes if r.startswith(alphabet + "-")]
        rows = [(p.name.split(" (")[0], {r: by[(r, p.slug)]["accuracy"] for r in rs
                                          if (r, p.slug) in by and "accuracy" in by[(r, p.slug)]})
                for p in protocols if p.alphabet == alphabet]
        rows = [row for row in rows if row[1]]
        if rows:
            plot_recipe_bars(rows, folder / f"{stem}-{alphabet}.png",
                             f"{alphabet.upper()}: people never seen in training")
        if not rs:
            continue
        for p in protocols:
            if p.alphabet != alphabet or (p.test_signer and p.test_signer != "GIULIA"):
                continue
            model = Path(out) / rs[-1] / p.slug / "model.pt"
            if not model.exists():
                continue
            res = evaluate_trained(model, test_rows(p, datasets_root))
            if "report" in res:
                plot_confusion(res["report"], folder / f"confusion-{rs[-1]}-{p.slug.split('-', 1)[1]}.png",
                               f"{rs[-1]} on {p.name}: accuracy {res['accuracy']:.1%}")


LIS_VIEWS = ("front", "left", "right", "top", "bottom")  # the five cameras of the lis photos, named in each file name


def lis_view(rel: str) -> str | None:
    """The camera a ``lis`` photo was taken from, by its file name (``a_ANTONIA_13_left.JPG`` -> "left")."""
    m = re.search(r"_(" + "|".join(LIS_VIEWS) + r")\.[^.]+$", str(rel), re.IGNORECASE)
    return m.group(1).lower() if m else None


def lis_views_table(recipe: str, datasets_root: str | Path, out: str | Path) -> list[str]:
    """Markdown lines: ``recipe`` on the lis signers held out, per camera view (every signer's held-out model on
    that signer's photos from that camera), with how many of the hands found MediaPipe called left hands, how those
    read, and how they read taken as right hands (is the handedness flag the trouble?); empty when the cells have
    not been run."""
    from dataclasses import replace

    # per view: images, hands found, read right, hands called left, those read right, those read right as right hands
    counts = {v: np.zeros(6, np.int64) for v in LIS_VIEWS}
    for p in PROTOCOLS:
        model = Path(out) / recipe / p.slug / "model.pt"
        if p.test_dataset != "lis" or not p.test_signer or not model.exists():
            continue
        kp = test_rows(p, datasets_root)
        tm = TorchModel(model)
        truth = kp.labels.astype(str)
        probs, det = tm.probabilities(kp)
        right = det & (np.array(tm.labels)[probs.argmax(1)] == truth)
        as_right, _ = tm.probabilities(replace(kp, is_left=np.zeros(len(kp), bool)))
        right_as_right = det & (np.array(tm.labels)[as_right.argmax(1)] == truth)
        left = det & kp.is_left
        views = np.array([lis_view(r) for r in kp.rel])
        for v in LIS_VIEWS:
            sel = views == v
            counts[v] += (int(sel.sum()), int(det[sel].sum()), int(right[sel].sum()), int(left[sel].sum()),
                          int((right & left)[sel].sum()), int((right_as_right & left)[sel].sum()))
    if not any(c[0] for c in counts.values()):
        return []
    lines = [f"{recipe} on the lis signers held out, by the camera each photo was taken from (all 11 signers; the "
             "view is in the file name), and the hands MediaPipe called left hands, read as it called them (mirrored, "
             "as live) and as right hands (the flag ignored):", "",
             "| camera | images | hands found | read right | read right, of the hands found | hands found called "
             "left | read right, of those | of those, read right as right hands |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    counts["all"] = sum(counts.values())
    for v, (n, found, right, left, left_right, left_as_right) in counts.items():
        if n:
            lines.append(f"| {v} | {n} | {found / n:.1%} | {right / n:.1%} | {right / max(found, 1):.1%} | "
                         f"{left / max(found, 1):.1%} | {left_right / max(left, 1):.1%} | "
                         f"{left_as_right / max(left, 1):.1%} |")
    return lines


def held_out_summary(recipe: str, out: str | Path = "runs/new-people") -> dict | None:
    """The README's figure for a shipped model from its recipe's cells: the mean accuracy of the leave-one-dataset-out
    rows of its alphabet (None when they have not all been run)."""
    alphabet = recipe.split("-")[0]
    rows = [p for p in PROTOCOLS if p.alphabet == alphabet and not p.test_signer]
    files = [Path(out) / recipe / p.slug / "new_people.json" for p in rows]
    if not all(f.exists() for f in files):
        return None
    res = [json.loads(f.read_text()) for f in files]
    res = [r for r in res if "accuracy" in r]
    return {"accuracy": float(np.mean([r["accuracy"] for r in res])), "images": int(sum(r["images"] for r in res)),
            "people": "each dataset held out in turn: " + ", ".join(r["slug"].split("-", 1)[1] for r in res),
            "how": "the same recipe trained without that dataset; cached MediaPipe keypoints of the photos (landmarks "
                   "as recorded for the landmark-only sets); mean over the held-out datasets",
            "source": "docs/results.md, fingerspell train results"}


def _fmt(r: dict | None, key: str, pct: bool = True) -> str:
    if not r or key not in r:
        return ""
    return f"{r[key]:.1%}" if pct else f"{r[key]:.3f}"


def _alphabets(results: list[dict], recipes: list[str]):
    """(alphabet, its recipes, its protocols, (recipe, slug) -> result) for each alphabet that has recipes."""
    by = {(r["recipe"], r["slug"]): r for r in results}
    for alphabet in ("asl", "lis"):
        rs = [r for r in recipes if r.startswith(alphabet + "-")]
        if rs:
            yield alphabet, rs, [p for p in PROTOCOLS if p.alphabet == alphabet], by


def new_people_table(results: list[dict], recipes: list[str]) -> str:
    """Markdown: one row per protocol, for each recipe accuracy / macro-F1 / false-letter rate; worst letters of
    the last recipe of the alphabet; and the mean of the ASL leave-one-dataset-out rows."""
    lines = ["Accuracy over all test images (no hand found counts as wrong) / macro-F1 over the letters / "
             f"false-letter rate (a no-letter hand read as a letter with confidence >= {TYPED_CONFIDENCE}).", ""]
    for alphabet, rs, protos, by in _alphabets(results, recipes):
        head = " | ".join(f"{r} acc | {r} F1 | {r} false letters" for r in rs)
        lines += [f"| {alphabet.upper()} protocol (held out) | images | {head} | worst letters ({rs[-1]}) |",
                  "|---|---:|" + "---:|" * (3 * len(rs)) + "---|"]
        for p in protos:
            cells = [by.get((r, p.slug)) for r in rs]
            if not any(cells):
                continue
            last = cells[-1] or {}
            n = last.get("images", 0) + last.get("no_letter_images", 0)
            vals = " | ".join(f"{_fmt(c, 'accuracy')} | {_fmt(c, 'macro_f1', False)} | {_fmt(c, 'false_letter_rate')}"
                              for c in cells)
            worst = ", ".join(f"{l} {a:.0%}" for l, a in last.get("worst", []))
            lines.append(f"| {p.name} | {n} | {vals} | {worst} |")
        for label, pick in (("mean of the leave-one-signer-out rows", lambda p: p.test_signer),
                            ("mean of the leave-one-dataset-out rows", lambda p: not p.test_signer)):
            means = []
            for r in rs:
                accs = [by[(r, p.slug)] for p in protos if pick(p) and (r, p.slug) in by and "accuracy" in by[(r, p.slug)]]
                means.append((np.mean([a["accuracy"] for a in accs]), np.mean([a["macro_f1"] for a in accs]))
                             if accs else None)
            if any(m is not None for m in means):
                vals = " | ".join(f"**{m[0]:.1%}** | {m[1]:.3f} | " if m else " | | " for m in means)
                lines.append(f"| {label} | | {vals} |")
        lines += ["", *lost_letters_table(rs[-1], protos, by), ""]
    return "\n".join(lines)


def lost_letters_table(recipe: str, protos, by: dict) -> list[str]:
    """Markdown lines: where ``recipe`` loses the letters of each protocol, to the hand detector (no hand found,
    which no classifier can mend) or to the classifier (a hand found and misread)."""
    lines = [f"Where {recipe} loses letters: hands MediaPipe found, accuracy on those, and the share of all images "
             "lost to each cause.", "",
             "| protocol (held out) | hands found | read right, of the hands found | lost: no hand | lost: misread |",
             "|---|---:|---:|---:|---:|"]
    rows = {}
    for p in protos:
        r = by.get((recipe, p.slug), {})
        if "detection_rate" not in r:
            continue
        found, acc = r["detection_rate"], r["accuracy"]
        rows[p.slug] = (p, found, acc / found if found else 0.0, 1 - found, found - acc)
        lines.append(f"| {p.name} | {found:.1%} | {acc / found if found else 0.0:.1%} | {1 - found:.1%} | "
                     f"{found - acc:.1%} |")
    for label, pick in (("mean of the leave-one-signer-out rows", lambda p: p.test_signer),
                        ("mean of the leave-one-dataset-out rows", lambda p: not p.test_signer)):
        sel = np.array([v[1:] for v in rows.values() if pick(v[0])])
        if len(sel):
            found, _, no_hand, misread = sel.mean(0)
            right = (found - misread) / found if found else 0.0  # of the mean's hands found, as the other columns
            lines.append(f"| {label} | " + " | ".join(f"**{x:.1%}**" for x in (found, right, no_hand, misread)) + " |")
    return lines


def recipe_table(results: list[dict], recipes: list[str]) -> str:
    """Markdown, one row per recipe: mean accuracy of the leave-one-signer-out and leave-one-dataset-out rows, the
    accuracy on each held-out dataset, and the false-letter rates, so that ablations read side by side."""
    lines = ["Accuracy over all test images of people never seen (no hand found counts as wrong); false letters: "
             f"no-letter hands read as a letter with confidence >= {TYPED_CONFIDENCE}.", ""]
    for alphabet, rs, protos, by in _alphabets(results, recipes):
        lodo = [p for p in protos if not p.test_signer and any("accuracy" in by.get((r, p.slug), {}) for r in rs)]
        # the mean only over the datasets every recipe here was tested on (world-landmark recipes cannot be tested
        # on the landmark-only sets), so that the means compare like with like
        common = [p for p in lodo if all("accuracy" in by.get((r, p.slug), {}) for r in rs)]
        nothing = [p for p in protos if any("false_letter_rate" in by.get((r, p.slug), {}) for r in rs)]
        head = ["recipe", "what it is", "signers held out (mean)"] + [f"{p.test_dataset} held out" for p in lodo] + \
               ["datasets held out (mean)"] + [f"false letters, {p.test_dataset} held out" for p in nothing]
        lines += ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
        for r in rs:
            loso = [by[(r, p.slug)]["accuracy"] for p in protos if p.test_signer and (r, p.slug) in by]
            base, seed = split_seed(r)
            note = RECIPE_NOTES.get(base, "") + (f" (seed {seed})" if seed is not None else "")
            cells = [note, f"{np.mean(loso):.1%}" if loso else ""]
            accs = [by.get((r, p.slug), {}).get("accuracy") for p in lodo]
            cells += [f"{a:.1%}" if a is not None else "" for a in accs]
            have = [a for a, p in zip(accs, lodo) if a is not None and p in common]
            cells.append(f"**{np.mean(have):.1%}**" if have else "")
            cells += [f"{by[(r, p.slug)]['false_letter_rate']:.1%}" if "false_letter_rate" in by.get((r, p.slug), {})
                      else "" for p in nothing]
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
        if len(common) < len(lodo):
            lines += ["", ("The datasets-held-out mean is over " + ", ".join(p.test_dataset for p in common) +
                           ", the datasets every recipe of this table was tested on." if common else
                           "No dataset held out was tested with every recipe of this table (world-landmark recipes "
                           "cannot be tested on the landmark-only sets), so there is no datasets-held-out mean.")]
        lines.append("")
    return "\n".join(lines)
