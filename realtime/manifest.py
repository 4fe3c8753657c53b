"""The model-folder contract: the ground floor that ``weights/``, export and the runtime share.

A model folder holds its file (``model.onnx``) and ``manifest.json``: labels, feature spec, input and outputs,
sha256, training data and command, metrics. :class:`Manifest` reads it; :func:`resolve_model` finds a folder by
name; :func:`verify_sha256` and :func:`check_io` refuse a model whose file disagrees with its manifest, with a
message that says which. Nothing here loads a model: it imports no runtime.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from realtime.features import FeatureSpec

MANIFEST = "manifest.json"
NO_LETTER = "none"  # the label of hands that spell nothing (training.train_keypoints.NO_LETTER): never typed
KINDS = ("keypoint-classifier", "j2s", "image-classifier", "sequence-reader")


class ModelError(RuntimeError):
    """A model that cannot be used: missing, corrupt, or not matching its manifest."""


def weights_dir() -> Path:
    import weights

    return Path(weights.__file__).parent


NOT_LETTER_MODELS = ("hand-pipeline", "gan-generator", "sequence-reader")  # not static-letter models


def _manifest_kind(folder: Path) -> str | None:
    try:
        return json.loads((folder / MANIFEST).read_text()).get("kind", "keypoint-classifier")
    except (OSError, ValueError, AttributeError):
        return None  # listed all the same: loading it says what is wrong


def available_models(also: tuple[str, ...] = ()) -> list[str]:
    """The shipped letter models, then those of the kinds in ``also`` (e.g. ``("sequence-reader",)``); other
    weight folders (the hand models, kind hand-pipeline) are not listed."""
    kinds = {p.name: _manifest_kind(p) for p in weights_dir().iterdir() if (p / MANIFEST).is_file()}  # read once
    letters = sorted(name for name, kind in kinds.items() if kind not in NOT_LETTER_MODELS)
    return letters + sorted(name for kind in also for name, k in kinds.items() if k == kind)


def models_of_kind(kind: str) -> list[str]:
    """The shipped models of one kind, e.g. the sequence readers (which available_models leaves out)."""
    return sorted(p.name for p in weights_dir().iterdir() if (p / MANIFEST).is_file() and _manifest_kind(p) == kind)


def spelled_letters(labels) -> list[str]:
    """The letters among a model's labels: not the sequence models' blank and space, nor the no-letter class (what
    a word list's words are spelled with, what the model selector counts)."""
    return [label for label in labels if len(label) == 1 and label.isalpha()]


def resolve_model(name_or_path: str | Path) -> Path:
    """A shipped model name (``asl-letters``), a model folder, or a manifest / .onnx path -> model folder."""
    p = Path(name_or_path)
    if p.is_file():
        folder = p.parent
        if p.name != MANIFEST and (folder / MANIFEST).is_file():
            named = Manifest.load(folder).file
            if p.name != named:
                raise ModelError(f"{p} is not the model its folder's {MANIFEST} describes ({named}); "
                                 "give the folder, or a folder of its own with a manifest")
        p = folder
    if (p / MANIFEST).is_file():
        return p
    shipped = weights_dir() / str(name_or_path)
    if (shipped / MANIFEST).is_file():
        return shipped
    raise ModelError(f"no model {str(name_or_path)!r}: not a folder with {MANIFEST} and not a shipped model "
                     f"(shipped: {', '.join(available_models()) or 'none'}; for --reader sequence: "
                     f"{', '.join(models_of_kind('sequence-reader')) or 'none'})")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_fields(path: Path) -> dict:
    """What a manifest records of the file it names: ``file``, ``sha256`` and ``bytes``."""
    path = Path(path)
    return {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}


def write_manifest(folder: Path, manifest: dict) -> dict:
    """The one writer of ``manifest.json``, used by every exporter: written whole or not at all (a killed export
    never leaves half a manifest beside a model)."""
    path = Path(folder) / MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    tmp.replace(path)
    return manifest


def copy_companions(src: Path, dst: Path, also: tuple[str, ...] = ()) -> None:
    """The files that go with a model folder's ONNX file when it is exported again (its licence and provenance, and
    ``also``), where the source has them."""
    for name in ("LICENSE.md", "PROVENANCE.md", *also):
        if (Path(src) / name).is_file():
            shutil.copy(Path(src) / name, Path(dst) / name)


@contextmanager
def staged_folder(folder: str | Path):
    """An export writes its files into a hidden folder beside ``folder`` (yielded); only when the whole export
    succeeded are they moved into ``folder``, the manifest last. A failed, interrupted or killed export leaves the
    model that was there and its manifest as they were (never a new file beside an old manifest)."""
    folder = Path(folder)
    stage = folder.parent / f".{folder.name}.export-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        yield stage
        folder.mkdir(parents=True, exist_ok=True)
        for f in sorted(stage.iterdir(), key=lambda f: f.name == MANIFEST):  # the manifest last
            os.replace(f, folder / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def verify_sha256(path: Path, expected: str, remedy: str = "") -> None:
    """Refuse (:class:`ModelError`) a file whose sha256 is not the one its manifest recorded; ``remedy`` says how
    to get a good file back."""
    digest = sha256_file(path)
    if digest != expected:
        raise ModelError(f"{path}: sha256 {digest} does not match the manifest's {expected}; "  # in full: prefixes
                         "the file is corrupt or was replaced" + (f" ({remedy})" if remedy else ""))  # can look equal


def save_npz(path: str | Path, **arrays) -> Path:
    """A model folder's companion arrays (``np.savez_compressed``), written whole or not at all."""
    import numpy as np

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_checked(path: Path, sha256: str | None, what: str, remedy: str, error=ModelError) -> tuple[bytes, str]:
    """A model folder's companion file (``what``: "tuning file", ...) -> (its bytes, their sha256), refused with
    ``error`` when it cannot be read or, given the manifest's ``sha256``, is not that file (``remedy``: how to
    make it again)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise error(f"{path}: cannot read the {what} ({e})") from e
    digest = hashlib.sha256(raw).hexdigest()
    if sha256 is not None and digest != sha256:
        raise error(f"{path}: sha256 differs from the manifest's: the file was changed or damaged; {remedy}")
    return raw, digest


def held_out_accuracy(raw: dict) -> str:
    """The README's figure for a model: accuracy over all images (no hand found counts as wrong) on people it never
    saw. ``metrics.held_out`` records it; a keypoint model's own test split measures the same thing."""
    metrics = raw.get("metrics") or {}
    h = metrics.get("held_out")
    if h is None and raw.get("kind", "keypoint-classifier") == "keypoint-classifier" and metrics.get("test"):
        signers = ((raw.get("training") or {}).get("config") or {}).get("test_signers") or []
        h = {"accuracy": metrics["test"]["accuracy"], "images": metrics["test"]["images"],
             "people": "held-out signers " + ", ".join(signers) if signers else "the held-out test split"}
    if h is None:
        return "no held-out accuracy recorded (measure it: fingerspell eval --data DIR --signers ...)"
    return f"{h['accuracy']:.1%} of all {h['images']} images of {h['people']}"


@dataclass
class Manifest:
    name: str
    file: str
    sha256: str
    labels: list[str]
    features: FeatureSpec | None  # keypoint classifiers only; J2S reads images
    input_name: str
    output_name: str
    raw: dict
    kind: str = "keypoint-classifier"

    @classmethod
    def load(cls, folder: Path) -> "Manifest":
        path = folder / MANIFEST
        try:
            d = json.loads(path.read_text())
            kind = d.get("kind", "keypoint-classifier")
            if kind not in KINDS:
                raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(KINDS)})")
            features = FeatureSpec.from_dict(d["features"]) if kind in ("keypoint-classifier", "sequence-reader") else None
            return cls(name=d["name"], file=d["file"], sha256=d["sha256"], labels=list(d["labels"]),
                       features=features, input_name=d["input"]["name"], output_name=d["output"]["name"], raw=d,
                       kind=kind)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{path}: unreadable or incomplete manifest ({type(e).__name__}: {e})") from e


def check_io(session, path: Path, manifest: Manifest):
    """One input named as the manifest says, a probability output with one column per label, and the labels
    embedded in the file equal to the manifest's -> (the input's description, the file's metadata map)."""
    ins, outs = session.get_inputs(), {o.name: o for o in session.get_outputs()}
    if len(ins) != 1 or ins[0].name != manifest.input_name:
        raise ModelError(f"{path}: inputs {[i.name for i in ins]} but the manifest says [{manifest.input_name!r}]")
    if manifest.output_name not in outs:
        raise ModelError(f"{path}: no output {manifest.output_name!r} (has {list(outs)})")
    n = outs[manifest.output_name].shape[-1]
    if isinstance(n, int) and n != len(manifest.labels):
        raise ModelError(f"{path}: {n} outputs but the manifest lists {len(manifest.labels)} labels")
    return ins[0], check_labels_metadata(session, path, manifest.labels)


def check_labels_metadata(session, path: Path, labels: list[str]) -> dict:
    """The labels embedded in the ONNX file must be the manifest's; returns the metadata map."""
    meta = session.get_modelmeta().custom_metadata_map
    if "labels" in meta and json.loads(meta["labels"]) != labels:
        raise ModelError(f"{path}: the labels inside the ONNX file differ from the manifest's "
                         f"(file: {json.loads(meta['labels'])}, manifest: {labels})")
    return meta
