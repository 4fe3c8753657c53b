"""A sequence reader for continuous fingerspelling (issue 17, second step): per-frame hand features and their
velocities -> a small causal temporal convolution -> letter posteriors with a CTC blank, trained on stitched
sequences (:mod:`training.stitching`). Causal: each frame's output depends only on the frames before it (a
bounded look-back of :attr:`SequenceReader.receptive_field` frames), so it can stream. Not yet in the live path.

    fingerspell train sequence --train runs/stitched/asl.npz --val runs/stitched/asl-val.npz --out runs/sequence
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from realtime.features import FeatureSpec
from realtime.lexicon import edit_distance
from realtime.manifest import sha256_file
from realtime.sequence_reader import sequence_inputs

SPEC = FeatureSpec(parts=("polar_scaled", "cart_scaled", "geometry"))  # the static classifier's features
FRAME = (640.0, 480.0)  # the notional frame stitched sequences are placed in
BLANK = 0


def frame_features(landmarks: np.ndarray, detected: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(T, 21, 3) landmarks, (T,) detected, (T,) seconds -> the model's inputs
    (:func:`realtime.sequence_reader.sequence_inputs`, which the streaming reader uses too)."""
    return sequence_inputs(SPEC.compute(landmarks, False, FRAME), detected, t)


def load_sets(paths) -> tuple[list[np.ndarray], list[str], list[dict]]:
    """One set or several (joint training) -> their features and texts, concatenated, and each one's manifest."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    feats, texts, manifests = [], [], []
    for p in paths:
        f, t, m = load_set(p)
        feats, texts, manifests = feats + f, texts + t, manifests + [m]
    return feats, texts, manifests


def load_set(path: str | Path):
    """A stitched set (.npz from ``fingerspell train stitch``) -> (features list, texts, manifest)."""
    path = Path(path)
    z = np.load(path)
    manifest = json.loads(path.with_suffix(".json").read_text())
    off = z["offsets"]
    feats = [frame_features(z["landmarks"][a:b], z["detected"][a:b], z["t"][a:b]) for a, b in zip(off[:-1], off[1:])]
    return feats, [str(s) for s in z["text"]], manifest


@dataclass
class SequenceConfig:
    alphabet: list[str]  # the letters; the model's classes are blank, the letters, then " "
    hidden: int = 128
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16)
    kernel: int = 3
    dropout: float = 0.1
    epochs: int = 15
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return ["<blank>"] + list(self.alphabet) + [" "]


def _model_class():
    import torch
    from torch import nn

    class CausalBlock(nn.Module):
        def __init__(self, channels: int, kernel: int, dilation: int, dropout: float):
            super().__init__()
            self.pad = (kernel - 1) * dilation
            self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation)
            self.norm = nn.BatchNorm1d(channels)
            self.drop = nn.Dropout(dropout)

        def forward(self, x):
            y = self.conv(nn.functional.pad(x, (self.pad, 0)))  # left padding only: no frame sees the future
            return x + self.drop(torch.relu(self.norm(y)))

    class SequenceReader(nn.Module):
        """(batch, T, features) -> (batch, T, classes) log-probabilities."""

        def __init__(self, in_dim: int, config: SequenceConfig):
            super().__init__()
            self.config = config
            self.inp = nn.Linear(in_dim, config.hidden)
            self.blocks = nn.Sequential(*[CausalBlock(config.hidden, config.kernel, d, config.dropout)
                                          for d in config.dilations])
            self.out = nn.Linear(config.hidden, len(config.classes))
            self.receptive_field = 1 + sum((config.kernel - 1) * d for d in config.dilations)

        def forward(self, x, valid=None):
            """``valid`` (batch, T), 1 for real frames: a stream's window before its first frame is 0 there, and
            every layer's activations are zeroed at those places, as the zero padding of a whole sequence does,
            so the newest frame's output is exactly the whole sequence's from the stream's first frame on."""
            h = torch.relu(self.inp(x)).transpose(1, 2)
            if valid is None:
                return torch.log_softmax(self.out(self.blocks(h).transpose(1, 2)), -1)
            m = valid[:, None, :]
            h = h * m
            for block in self.blocks:
                h = block(h) * m
            return torch.log_softmax(self.out(h.transpose(1, 2)), -1)

    return SequenceReader


def load_trained_sequence(model_pt: str | Path):
    """A ``model.pt`` of :func:`train_sequence` -> the model (eval mode), rebuilt from its own config."""
    import torch

    ck = torch.load(model_pt, weights_only=False)
    config = SequenceConfig(**{**ck["config"], "dilations": tuple(ck["config"]["dilations"])})
    model = _model_class()(ck["in_dim"], config)
    model.load_state_dict(ck["state"])
    return model.eval()


def greedy_decode(log_probs: np.ndarray, classes: list[str]) -> str:
    """Best path: the most likely class per frame, repeats merged, blanks dropped."""
    best = np.asarray(log_probs).argmax(-1)
    out, prev = [], BLANK
    for k in best:
        if k != prev and k != BLANK:
            out.append(classes[k])
        prev = k
    return "".join(out).strip()


def score_texts(pairs: list[tuple[str, str]]) -> dict:
    """(reference, read) pairs -> character error rate (edit distance over the reference length) and word
    accuracy (words right, where the word count matches)."""
    errors = chars = words = right = 0
    for ref, got in pairs:
        errors += edit_distance(got, ref)
        chars += len(ref)
        rw, gw = ref.split(), got.split()
        words += len(rw)
        right += sum(a == b for a, b in zip(rw, gw)) if len(rw) == len(gw) else 0
    return {"cer": errors / max(chars, 1), "word_accuracy": right / max(words, 1), "sequences": len(pairs)}


def score(model, feats: list[np.ndarray], texts: list[str]) -> dict:
    """:func:`score_texts` of the model's greedy decoding of each sequence."""
    import torch

    model.eval()
    with torch.no_grad():
        read = [greedy_decode(model(torch.from_numpy(x)[None])[0].numpy(), model.config.classes) for x in feats]
    return score_texts(list(zip(texts, read)))


def set_letters(paths) -> list[str]:
    """The letters a model trained on these sets must know: every set's, in alphabet order."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    return sorted({c for p in paths for c in json.loads(Path(p).with_suffix(".json").read_text())["letters"]})


def train_sequence(train, val, out: str | Path, config: SequenceConfig | None = None, progress: bool = True,
                   resume: bool = True, init: str | Path | None = None) -> dict:
    """CTC training on one stitched set or several (``train``, ``val``: a path or a list: joint training); the best
    epoch by validation CER is kept (``out``/model.pt, metrics.json). ``init``: a ``model.pt`` to start from
    (pre-training, then fine-tuning on ``train``); its letters must be the config's.
    Every epoch is checkpointed (``out``/checkpoint.pt): a killed run started again with the same data and
    settings continues where it stopped; with other settings it is refused rather than mixed."""
    import torch
    from tqdm import tqdm

    from training.io import atomic_torch_save, load_checkpoint

    feats, texts, manifests = load_sets(train)
    vfeats, vtexts, _ = load_sets(val)
    config = config or SequenceConfig(alphabet=set_letters(train))
    missing = sorted({c for t in texts for c in t.replace(" ", "")} - set(config.alphabet))
    if missing:
        raise ValueError(f"the training sets spell {missing}, which the model's letters {''.join(config.alphabet)} lack")
    torch.manual_seed(config.seed)
    model = _model_class()(feats[0].shape[1], config)
    pretrained_on = None
    if init is not None:
        start_from = torch.load(init, weights_only=False)
        arch = ("alphabet", "hidden", "dilations", "kernel")
        theirs, ours = ({k: list(c[k]) if isinstance(c[k], (list, tuple)) else c[k] for k in arch}
                        for c in (start_from["config"], asdict(config)))
        if theirs != ours or start_from["in_dim"] != feats[0].shape[1]:
            raise ValueError(f"{init} is a reader of another shape ({theirs}, {start_from['in_dim']} inputs) than "
                             f"this one ({ours}, {feats[0].shape[1]} inputs): fine-tuning needs the same letters "
                             "and layers")
        model.load_state_dict(start_from["state"])
        init_metrics = Path(init).parent / "metrics.json"
        pretrained_on = json.loads(init_metrics.read_text()) if init_metrics.is_file() else {}
        pretrained_on = {k: pretrained_on.get(k) for k in ("train", "synthetic_only", "train_manifests", "init")}
    index = {c: i for i, c in enumerate(config.classes)}
    targets = [torch.tensor([index[c] for c in " ".join(t.split())], dtype=torch.long) for t in texts]
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.epochs * (
        (len(feats) + config.batch_size - 1) // config.batch_size))
    ctc = torch.nn.CTCLoss(blank=BLANK, zero_infinity=True)
    rng = np.random.default_rng(config.seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    history, best, start = [], None, 0
    def set_paths(p):
        return [Path(p)] if isinstance(p, (str, Path)) else [Path(q) for q in p]

    def names(p):  # one set: its path, as checkpoints made before joint training record it; several: a list
        p = [p] if isinstance(p, (str, Path)) else list(p)
        return str(p[0]) if len(p) == 1 else [str(q) for q in p]
    same = {"config": asdict(config), "train": names(train), "val": names(val), **({"init": str(init)} if init else {}),
            # the sets' content too: a set written again under the same name is other data
            "data_sha256": {str(q): sha256_file(q) for q in set_paths(train) + set_paths(val)}}
    ckpt = out / "checkpoint.pt"
    if resume and ckpt.exists():
        state = load_checkpoint(ckpt, needs=("same", "model", "opt", "sched"))
        saved = state.get("same") or {}
        now = same if "data_sha256" in saved else {k: v for k, v in same.items() if k != "data_sha256"}  # older runs
        if saved != now:
            what = "other data" if saved.get("data_sha256") not in (None, same["data_sha256"]) else "other data or settings"
            raise ValueError(f"{ckpt} was made with {what}; use another --out, or delete it")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        history, best, start = state["history"], state["best"], len(state["history"])
        if progress:
            print(f"resuming {out} after epoch {start}")
    for epoch in tqdm(range(start, config.epochs), desc="train sequence", unit="epoch", disable=not progress,
                      initial=start, total=config.epochs):
        model.train()
        order, losses = rng.permutation(len(feats)), []
        for i in range(0, len(order), config.batch_size):
            idx = order[i:i + config.batch_size]
            lengths = torch.tensor([len(feats[j]) for j in idx])
            x = torch.zeros(len(idx), int(lengths.max()), feats[0].shape[1])
            for k, j in enumerate(idx):
                x[k, :len(feats[j])] = torch.from_numpy(feats[j])
            y = [targets[j] for j in idx]
            logp = model(x).transpose(0, 1)  # (T, batch, classes) for CTCLoss
            loss = ctc(logp, torch.cat(y), lengths, torch.tensor([len(t) for t in y]))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        val_score = score(model, vfeats, vtexts)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), **val_score})
        if best is None or val_score["cer"] < best["cer"]:
            best = {"epoch": epoch + 1, **val_score}
            atomic_torch_save({"state": model.state_dict(), "config": asdict(config), "in_dim": feats[0].shape[1]},
                              out / "model.pt")
        atomic_torch_save({"same": same, "model": model.state_dict(), "opt": opt.state_dict(),
                           "sched": sched.state_dict(), "rng": rng.bit_generator.state,
                           "torch_rng": torch.get_rng_state(), "history": history, "best": best}, ckpt)
    metrics = {"best": best, "history": history, "train": same["train"], "val": same["val"], "init": same.get("init"),
               "pretrained_on": pretrained_on, "receptive_field_frames": model.receptive_field,
               "synthetic_only": all(m.get("synthetic", True) for m in manifests) and (
                   pretrained_on is None or pretrained_on.get("synthetic_only") is not False),
               "train_manifests": [{k: m.get(k) for k in ("kind", "what", "sequences", "frames", "seed", "dictionary")}
                                   for m in manifests]}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics
