"""The GPU training presets that fit one lent-GPU command: the carried pack of real hands, the wall-time stop, and a
dry run of a preset on the CPU from the pack alone."""
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest


def test_pack_rows_keep_every_signer_and_letter(tmp_path):
    from training.gpu_pack import pack_rows

    rows = [f"{l}/{s}{i}.png,{l},{s},train" for s in ("P", "Q") for l in ("A", "B") for i in range(5)]
    (tmp_path / "manifest.csv").write_text("path,label,signer,source_split\n" + "\n".join(rows) + "\n")
    kept = pack_rows(tmp_path / "manifest.csv", 2)
    assert len(kept) == 12  # 3 of each 5 (the 1st, 3rd and 5th), for 2 signers x 2 letters
    assert {(r["signer"], r["label"]) for r in kept} == {("P", "A"), ("P", "B"), ("Q", "A"), ("Q", "B")}


def test_a_folder_that_is_not_a_pack_is_refused(tmp_path):
    from training.gpu_pack import use_pack

    with pytest.raises(FileNotFoundError, match="not a GPU pack.*training.gpu_pack"):
        use_pack(tmp_path, tmp_path / "cache")


def test_training_stops_at_max_minutes_with_a_checkpoint():
    """The short GPU presets stop on wall time, whatever the card: the step loop checkpoints where it is."""
    from training.steps import run_steps

    saved = []

    class Slow:
        config = SimpleNamespace(steps=1000, log_every=10, sample_every=10 ** 6, checkpoint_every=10 ** 6,
                                 max_minutes=0.0005)  # 30 ms
        step, history, progress = 0, [], False
        out = __import__("pathlib").Path("unused")  # sample_grid is given a path under it, and writes nothing here

        def train_step(self):
            import time

            time.sleep(0.01)
            self.step += 1
            return {"loss": 1.0}

        def sample_grid(self, path):
            pass

        def save_checkpoint(self):
            saved.append(self.step)

    t = Slow()
    assert run_steps(t, "slow") is False
    assert 1 <= t.step < 1000 and saved == [t.step] and t.history[-1]["step"] == t.step


def test_short_configs_load_and_stop_on_time():
    from training.gan.config import load_config as gan_config
    from training.hgan.config import load_config as hgan_config
    from training.gpu_short import PRESETS

    for p in PRESETS.values():
        if p.kind == "gan":
            assert gan_config(p.config).max_minutes and gan_config(p.config).size == 64
        elif p.kind == "hgan":
            assert hgan_config(p.config).max_minutes and hgan_config(p.config).size == 64


@pytest.mark.data
def test_a_preset_runs_from_the_pack_alone(tmp_path, monkeypatch):
    """A small pack made here, then the classifier preset for one epoch on the CPU with the datasets folder pointing
    at the pack only (as on the lent machine): it writes what comes back, each file within 16 MiB."""
    from training.gpu_pack import make_pack
    from training.gpu_short import MAX_FILE_MIB, run_short

    info = make_pack(os.environ["FINGERSPELL_DATASETS"], tmp_path / "pack", every=60, progress=False)
    assert info["images"] > 100 and len(info["signers"]) == 11 and info["hands_found"] > 0.8
    import sys

    monkeypatch.setitem(sys.modules, "mediapipe", None)  # as on the lent machine: importing it fails
    monkeypatch.setenv("FINGERSPELL_DATASETS", "/nonexistent")  # use_pack must replace it
    monkeypatch.setenv("FINGERSPELL_CACHE", str(tmp_path / "elsewhere"))
    s = run_short(str(tmp_path / "pack"), "classifier", str(tmp_path / "out"), device="cpu", steps=1,
                  work=str(tmp_path / "work"))
    assert s["card"] == "cpu" and s["test_images"] > 0 and 0 <= s["test_accuracy"] <= 1
    summary = json.loads((tmp_path / "out" / "gpu-short-classifier.json").read_text())
    assert summary["too_big_to_come_back"] == [] and "model.onnx" in summary["files"]
    assert all(f.stat().st_size <= MAX_FILE_MIB * 2 ** 20 for f in (tmp_path / "out").rglob("*") if f.is_file())
    assert not (tmp_path / "elsewhere").exists() or not any((tmp_path / "elsewhere").rglob("*.npz"))
    assert np.isfinite(summary["seconds"])
    pack_mib = sum(f.stat().st_size for f in (tmp_path / "pack").rglob("*") if f.is_file()) / 2 ** 20
    assert abs(pack_mib - info["mib"]) < 0.05  # nothing was written into the pack: it stays small enough to carry
