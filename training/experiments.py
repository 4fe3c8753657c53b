"""The keypoint recipes: the shipped models' (presets), the one before issue 14, and ablations of the shipped one.

``fingerspell train results`` judges them on people they never saw (:mod:`training.new_people`).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from training.train_keypoints import ASL_LETTERS, LIS_LETTERS, NO_LETTER, TrainConfig

ASL_SOURCES = ("massey", "roboflow", "kaggle_asl")  # not lsa16: its licence forbids shipped weights
# The shipped recipe adds every dataset that shows ASL handshapes of other people and cameras: the 218 people of
# `digits` (digits 0/2/6/9 are the handshapes O/V/W/F) and a laptop-webcam landmark set.
ASL_SOURCES_V2 = ASL_SOURCES + ("digits", "asl_webcam_landmarks")
LIS_WEBCAM = ("lis", "lis_webcam_landmarks")
# lis-v2 also learns the no-letter class from digits and kaggle_asl (only their no-letter rows: LIS_LABEL_MAP)
LIS_SOURCES_V2 = LIS_WEBCAM + ("digits", "kaggle_asl")

# Hands that spell nothing, learned as the class NO_LETTER: digit shapes that are no letter (3, 5 open hand,
# 7, 8) and kaggle_asl's own non-letter signs. `nothing` is kaggle_asl's empty background (rarely a hand found).
ASL_LABEL_MAP = {
    "digits": {"0": "O", "2": "V", "6": "W", "9": "F", "3": NO_LETTER, "5": NO_LETTER, "7": NO_LETTER,
               "8": NO_LETTER},
    "kaggle_asl": {"del": NO_LETTER, "space": NO_LETTER, "nothing": NO_LETTER},
}
LIS_LABEL_MAP = {"digits": {"3": NO_LETTER, "5": NO_LETTER, "7": NO_LETTER, "8": NO_LETTER, "*": None},
                 "kaggle_asl": {"del": NO_LETTER, "space": NO_LETTER, "nothing": NO_LETTER, "*": None}}

# New views and new hands from the cached keypoints: a 3-D rotation about the wrist, mirror images (left-handed
# signers, hands seen from the back) instead of MediaPipe's handedness, other finger lengths. Chosen on the
# leave-one-dataset-out protocols (docs/results.md), never on one test signer.
VIEW_AUGMENTATION = dict(yaw_deg=30.0, pitch_deg=20.0, flip=0.5, canonical=False, finger_scale=0.1)

# recipe name -> (datasets, labels, label map, config overrides). v1 is the recipe before issue 14 (kept to report
# before/after); v2 is the shipped one.
RECIPES = {
    "asl-v1": (ASL_SOURCES, ASL_LETTERS, {}, {}),
    "asl-v2": (ASL_SOURCES_V2, ASL_LETTERS + [NO_LETTER], ASL_LABEL_MAP, VIEW_AUGMENTATION),
    "lis-v1": (("lis",), LIS_LETTERS, {}, {}),
    "lis-v2": (LIS_SOURCES_V2, LIS_LETTERS + [NO_LETTER], LIS_LABEL_MAP, VIEW_AUGMENTATION),
}
# Ablations of v2, to justify each of its choices on the same protocols (docs/results.md):
_V1_VIEWS = dict(yaw_deg=0.0, pitch_deg=0.0, flip=0.0, canonical=True, finger_scale=0.0)
_GEOMETRY = ["polar_scaled", "cart_scaled", "geometry"]
_MILD_VIEWS = dict(yaw_deg=15.0, pitch_deg=10.0, flip=0.0, canonical=True, finger_scale=0.1)
RECIPES.update({
    "asl-v2-noview": (ASL_SOURCES_V2, ASL_LETTERS + [NO_LETTER], ASL_LABEL_MAP, _V1_VIEWS),  # new data, old views
    "asl-v2-canonical": (ASL_SOURCES_V2, ASL_LETTERS + [NO_LETTER], ASL_LABEL_MAP,
                         {**VIEW_AUGMENTATION, "flip": 0.0, "canonical": True}),  # handedness mirroring, no flips
    "asl-v1-view": (ASL_SOURCES, ASL_LETTERS, {}, VIEW_AUGMENTATION),  # old data, new views
    "asl-v2-half": (ASL_SOURCES_V2, ASL_LETTERS + [NO_LETTER], ASL_LABEL_MAP, {**VIEW_AUGMENTATION, "half_shapes": 0.1}),
    "asl-v2-geowide": (ASL_SOURCES_V2, ASL_LETTERS + [NO_LETTER], ASL_LABEL_MAP,
                       {**VIEW_AUGMENTATION, "yaw_deg": 45.0, "pitch_deg": 30.0, "features": _GEOMETRY}),
    "asl-v2-geowide-half": (ASL_SOURCES_V2, ASL_LETTERS + [NO_LETTER], ASL_LABEL_MAP,
                            {**VIEW_AUGMENTATION, "yaw_deg": 45.0, "pitch_deg": 30.0, "features": _GEOMETRY,
                             "half_shapes": 0.1}),
    "asl-v2-wideview": (ASL_SOURCES_V2, ASL_LETTERS + [NO_LETTER], ASL_LABEL_MAP,
                        {**VIEW_AUGMENTATION, "yaw_deg": 45.0, "pitch_deg": 30.0}),
    "lis-v2-noview": (LIS_SOURCES_V2, LIS_LETTERS + [NO_LETTER], LIS_LABEL_MAP, _V1_VIEWS),
    "lis-v2-canonical": (LIS_SOURCES_V2, LIS_LETTERS + [NO_LETTER], LIS_LABEL_MAP,
                         {**VIEW_AUGMENTATION, "flip": 0.0, "canonical": True}),
    "lis-v2-nowebcam": (("lis", "digits", "kaggle_asl"), LIS_LETTERS + [NO_LETTER], LIS_LABEL_MAP,
                        VIEW_AUGMENTATION),
    # milder views for LIS, whose 64x64 five-view crops already hold the views (and whose letters differ by them)
    "lis-v3-mild": (LIS_WEBCAM, LIS_LETTERS, {}, _MILD_VIEWS),
    "lis-v3-mild-none": (LIS_SOURCES_V2, LIS_LETTERS + [NO_LETTER], LIS_LABEL_MAP, _MILD_VIEWS),
    "lis-v3-views": (LIS_WEBCAM, LIS_LETTERS, {}, {**VIEW_AUGMENTATION, "flip": 0.0,
                                                                      "canonical": True}),
    "lis-v3-noview": (LIS_WEBCAM, LIS_LETTERS, {}, _V1_VIEWS),
    "lis-v3-geo-none": (LIS_SOURCES_V2, LIS_LETTERS + [NO_LETTER], LIS_LABEL_MAP,
                        {**VIEW_AUGMENTATION, "flip": 0.0, "canonical": True, "features": _GEOMETRY}),
    "lis-v1-view": (("lis",), LIS_LETTERS, {}, VIEW_AUGMENTATION),
})
# The shipped recipes (v3): v2's data and views plus the view-robust `geometry` features, which cut the false-letter
# rate on unseen no-letter hands; LIS without mirroring and without the no-letter class, which both cost it accuracy
# on the lis signers (docs/results-ablations.md).
RECIPES.update({
    "asl-v3": (ASL_SOURCES_V2, ASL_LETTERS + [NO_LETTER], ASL_LABEL_MAP, {**VIEW_AUGMENTATION, "features": _GEOMETRY}),
    "lis-v3": (LIS_WEBCAM, LIS_LETTERS, {},
               {**VIEW_AUGMENTATION, "flip": 0.0, "canonical": True, "features": _GEOMETRY}),
})
# MediaPipe's world landmarks (metric 3-D, camera-independent) instead of the image ones: only the photo datasets
# have them (the landmark-only sets recorded image landmarks), so each is compared with v3 on the same photos.
_PHOTOS_ASL = tuple(d for d in ASL_SOURCES_V2 if d != "asl_webcam_landmarks")
RECIPES.update({
    "asl-v3-photos": (_PHOTOS_ASL, ASL_LETTERS + [NO_LETTER], ASL_LABEL_MAP, RECIPES["asl-v3"][3]),
    "asl-v3-world": (_PHOTOS_ASL, ASL_LETTERS + [NO_LETTER], ASL_LABEL_MAP, {**RECIPES["asl-v3"][3], "points": "world"}),
    "lis-v3-photos": (("lis",), LIS_LETTERS, {}, RECIPES["lis-v3"][3]),
    "lis-v3-world": (("lis",), LIS_LETTERS, {}, {**RECIPES["lis-v3"][3], "points": "world"}),
})
# Variants of the shipped recipes, each one change: the photo cascade (realtime.hands.base; the shipped recipes learn
# from hands its first four views found and read photos with all six), and training-only regularisers for people never
# seen (the exported model is the same MLP). Name -> (config change, what it is).
V3_VARIANTS = {
    "read4": ({"read_views": 4}, "reading photos with the first four views only (the cascade before)"),
    "learn6": ({"training_views": 6}, "learning from hands all six views found"),
    "mixup": ({"mixup": 0.4}, "+ feature mixup (Beta 0.4)"),
    "dann": ({"group_adversary": 0.3}, "+ a group (dataset/signer) adversary, weight 0.3, reversed gradient"),
    "jitter": ({"jitter": 0.04}, "with landmark noise 0.04 of the hand size (0.02)"),
    "both": ({"hand_models": ["full", "lite"]}, "learning from the landmarks of both hand models, full and lite "
                                               "(the live default)"),
}
RECIPES.update({f"{r}-{name}": (*RECIPES[r][:3], {**RECIPES[r][3], **over}) for r in ("asl-v3", "lis-v3")
                for name, (over, _) in V3_VARIANTS.items()})
# Letter-aware views: the letters that are another letter pointing elsewhere keep v3's views, all others turn much
# further (a new person's M may point down with the back of the hand to the camera; a turned H would be a U). The
# Italian manual alphabet follows the international one but for S (it.wikipedia.org/wiki/Dattilologia). Not shipped:
# docs/results-free-views.md.
ORIENTED_LETTERS = {"asl": ["G", "H", "K", "P", "Q", "U"], "lis": ["H", "K", "P", "Q", "U"]}
FREE_VIEW_VARIANTS = {
    "free45": ([45.0, 45.0, 45.0], "with roll, yaw and pitch ±45° for the letters not defined by orientation"),
    "free90": ([90.0, 60.0, 90.0], "with roll ±90°, yaw ±60°, pitch ±90° for the letters not defined by orientation"),
}
RECIPES.update({f"{r}-{name}": (*RECIPES[r][:3], {**RECIPES[r][3], "free_views": views,
                                                  "oriented_letters": ORIENTED_LETTERS[r.split("-")[0]]})
                for r in ("asl-v3", "lis-v3") for name, (views, _) in FREE_VIEW_VARIANTS.items()})
# More people for LIS from the ASL datasets: the letters whose handshape the two alphabets share, measured, not
# assumed (training/shared_letters.py): an LIS model that never saw ASL data reads the ASL photos of these as the same
# letter; ASL E, M, N and T it reads as O, A, A and A, so their handshapes differ and they stay LIS-only.
SHARED_WITH_ASL = ["A", "B", "C", "D", "F", "H", "I", "K", "L", "O", "P", "Q", "R", "U", "V", "W", "X", "Y"]
_ASL_AS_LIS = {**{d: {**{l: l for l in SHARED_WITH_ASL}, "*": None}
                  for d in ("massey", "roboflow", "kaggle_asl", "asl_webcam_landmarks")},
               "digits": {"0": "O", "2": "V", "6": "W", "9": "F", "*": None}}
RECIPES.update({
    "lis-v3-asl": (LIS_WEBCAM + ASL_SOURCES_V2, LIS_LETTERS, _ASL_AS_LIS,
                   {**RECIPES["lis-v3"][3], "balance_classes": True}),
    "lis-v3-asl-plain": (LIS_WEBCAM + ASL_SOURCES_V2, LIS_LETTERS, _ASL_AS_LIS, RECIPES["lis-v3"][3]),
})
PRESETS = {"asl-letters": "asl-v3", "lis-letters": "lis-v3"}  # shipped model -> its recipe
# what `fingerspell train results` compares by default: each alphabet's recipe before issue 14, and the shipped one
BEFORE_AND_SHIPPED = ("asl-v1", PRESETS["asl-letters"], "lis-v1", PRESETS["lis-letters"])

RECIPE_NOTES = {  # what each recipe is, for the ablation table
    "asl-v1": "before: massey + roboflow + kaggle_asl, in-plane rotation only",
    "asl-v1-view": "v1's data + 3-D views, finger lengths, mirror images",
    "asl-v2-noview": "v2's data (+ digits, asl_webcam_landmarks, no-letter class), v1's augmentation",
    "asl-v2-canonical": "v2 with MediaPipe's handedness mirroring instead of random mirror images",
    "asl-v2": "v2's data + 3-D views, finger lengths, mirror images",
    "asl-v2-wideview": "v2 with yaw ±45°, pitch ±30°",
    "asl-v2-half": "v2 + half-formed shapes (two letters blended) as no-letter",
    "asl-v2-geowide": "v3 with yaw ±45°, pitch ±30°",
    "asl-v2-geowide-half": "v3 with wider views and half-formed shapes",
    "asl-v3": "shipped: v2 + geometry features",
    "lis-v1": "before: lis, in-plane rotation only",
    "lis-v1-view": "lis + 3-D views, finger lengths, mirror images",
    "lis-v2-noview": "lis + lis_webcam_landmarks + no-letter class, v1's augmentation",
    "lis-v2-canonical": "lis-v2 with handedness mirroring instead of random mirror images",
    "lis-v2-nowebcam": "lis-v2 without lis_webcam_landmarks",
    "lis-v2": "lis + lis_webcam_landmarks + no-letter class + 3-D views and mirror images",
    "lis-v3-noview": "lis + lis_webcam_landmarks, v1's augmentation",
    "lis-v3-mild": "lis + lis_webcam_landmarks, yaw ±15°, pitch ±10°",
    "lis-v3-mild-none": "lis-v3-mild + no-letter class",
    "lis-v3-views": "lis + lis_webcam_landmarks, yaw ±30°, pitch ±20°, no mirror images",
    "lis-v3-geo-none": "lis-v3 + no-letter class",
    "lis-v3": "shipped: lis-v3-views + geometry features",
    "asl-v3-photos": "v3 on the photo datasets only (no asl_webcam_landmarks)",
    "asl-v3-world": "asl-v3-photos on MediaPipe's world landmarks",
    "lis-v3-photos": "v3 on lis only (no lis_webcam_landmarks)",
    "lis-v3-world": "lis-v3-photos on MediaPipe's world landmarks",
    "lis-v3-asl": "lis-v3 + the ASL datasets' letters LIS shares, each letter drawn equally often",
    "lis-v3-asl-plain": "lis-v3 + the ASL datasets' letters LIS shares, each dataset drawn equally often",
    **{f"{r}-{name}": f"{r} {what}" for r in ("asl-v3", "lis-v3")
       for name, (_, what) in {**V3_VARIANTS, **FREE_VIEW_VARIANTS}.items()},
}


def split_seed(recipe: str) -> tuple[str, int | None]:
    """``asl-v3@2`` -> ("asl-v3", 2): a recipe trained with another seed (seed spreads and ensembles); a plain name
    -> (name, None), the recipe's own seed (0)."""
    base, _, seed = recipe.partition("@")
    if base not in RECIPES:
        raise ValueError(f"unknown recipe {base!r}; choose from {', '.join(RECIPES)} (NAME@SEED for another seed)")
    if "@" in recipe and not (seed.isdigit() and int(seed) > 0):
        raise ValueError(f"recipe {recipe!r}: the seed after @ must be a whole number above 0 ({base} itself is seed 0)")
    return base, int(seed) if seed else None


def recipe_points(recipe: str) -> str:
    """Which landmarks a recipe's models read ("image" or "world")."""
    return RECIPES[split_seed(recipe)[0]][3].get("points", "image")


EVALUATION = {
    "asl-letters": "trained on all data; its accuracy on new people is estimated by the same recipe with people or "
                   "whole datasets held out: docs/results.md (new-people table)",
    "lis-letters": "test figures are on the held-out signer GIULIA; docs/results.md (new-people table) also holds "
                   "lis_webcam_landmarks out",
}


def recipe_config(recipe: str, datasets_root: str | Path, out: str | Path, **overrides) -> TrainConfig:
    """The config of a named recipe (``asl-v2``, ``asl-v3@1`` with seed 1, ...) on the datasets under
    ``datasets_root``."""
    recipe, seed = split_seed(recipe)
    sources, labels, label_map, extra = RECIPES[recipe]
    if seed is not None:
        extra = {**extra, "seed": seed}
    root = Path(datasets_root)
    missing = [d for d in sources if not (root / d).is_dir()]
    if missing:
        raise ValueError(f"recipe {recipe} needs the dataset(s) {', '.join(missing)} in {root}")
    cfg = TrainConfig(data=[str(root / d) for d in sources], labels=list(labels), out=str(out), epochs=60,
                      label_map=label_map, **extra)
    return replace(cfg, **overrides)


def preset(name: str, datasets_root: str | Path, out: str | Path, **overrides) -> TrainConfig:
    """The recipe of a shipped model (``asl-letters`` or ``lis-letters``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose {' or '.join(PRESETS)}")
    if name == "lis-letters":
        overrides = {"test_signers": ["GIULIA"], **overrides}
    return recipe_config(PRESETS[name], datasets_root, out, **overrides)
