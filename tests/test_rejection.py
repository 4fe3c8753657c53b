"""The distance to the learned letters (training/rejection_experiments.py): the squared Mahalanobis distance to the
nearest class mean, with a shared covariance."""
import numpy as np
import pytest


def test_letter_distance_is_the_nearest_class_mahalanobis_distance():
    from training.rejection_experiments import LetterDistance

    rng = np.random.default_rng(0)
    means = rng.normal(0, 5, (4, 6))
    y = np.repeat(np.arange(4), 200)
    emb = means[y] + rng.normal(0, 1, (800, 6)) * [1, 2, 0.5, 1, 3, 1]
    dist = LetterDistance.fit(emb, y, emb, shrink=0.0)
    probe = np.concatenate([means + 0.1, rng.normal(0, 30, (3, 6))])
    brute = np.stack([[(p - m) @ dist.precision @ (p - m) for m in dist.means] for p in probe]).min(1)
    np.testing.assert_allclose(dist(probe), brute, rtol=1e-9, atol=1e-9)
    assert dist(probe)[:4].max() < 1.0 < dist(probe)[4:].min()  # near a class: small; far from all: large


def test_a_letter_distance_file_round_trips_and_refuses_damage(tmp_path):
    import pytest

    from realtime.letter_distance import LetterDistance
    from realtime.manifest import ModelError

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 100)
    emb = rng.normal(0, 1, (300, 5)) + y[:, None] * 4
    dist = LetterDistance.fit(emb, y, emb[::3], quantile=0.9)
    assert 0.85 <= np.mean(dist(emb[::3]) <= dist.threshold) <= 0.95
    path = dist.save(tmp_path / "distance.npz")
    back = LetterDistance.load(path, embedding_size=5)
    np.testing.assert_allclose(back(emb), dist(emb), rtol=1e-4)
    assert back.threshold == dist.threshold and back.quantile == 0.9
    with pytest.raises(ModelError, match="sha256 differs"):
        LetterDistance.load(path, sha256="0" * 64)
    with pytest.raises(ModelError, match="embedding"):
        LetterDistance.load(path, embedding_size=7)
    path.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a readable letter-distance file"):
        LetterDistance.load(path)


def test_the_shipped_asl_model_reads_far_hands_as_no_letter():
    """The model's own exemplar bank (training hands, in training views) stays readable; the same hands with every
    feature doubled (no hand looks like that) are read as 'none', which is never typed; and exactly the hands past
    the threshold are."""
    from realtime.classifier import OnnxClassifier
    from realtime.personal_tuning import Tuning

    plain, strict = OnnxClassifier("asl-letters", device="cpu"), OnnxClassifier("asl-letters", device="cpu",
                                                                                reject_far=True)
    assert strict.distance.quantile == 0.99 and strict.distance.sha256 == strict.manifest.raw["distance"]["sha256"]
    bank = Tuning.load(plain.folder / "tuning.npz").bank_x.astype(np.float32)
    none = strict.labels.index("none")
    x = np.concatenate([bank, 2 * bank, np.random.default_rng(0).normal(0, 1, (100, plain.spec.dim))]).astype(np.float32)
    probs, emb = plain.probs_and_embedding(x)
    far = strict.distance(emb) > strict.distance.threshold
    assert far[:len(bank)].mean() < 0.02 and far[len(bank):2 * len(bank)].all()
    out = strict(x)
    assert (out[far].argmax(1) == none).all() and np.allclose(out[far].max(1), 1.0)
    np.testing.assert_array_equal(out[~far], probs[~far])
    assert strict.rejected == far.sum()


def test_reject_far_hands_is_refused_where_it_cannot_work():
    import pytest

    from realtime.classifier import OnnxClassifier
    from realtime.manifest import ModelError
    from realtime.pipeline import PipelineOptions

    with pytest.raises(ModelError, match="no 'none' class"):
        OnnxClassifier("lis-letters", device="cpu", reject_far=True)
    with pytest.raises(ValueError, match="without --profile"):
        PipelineOptions(reject_far=True, profile=object()).check()
    with pytest.raises(ValueError, match="--classifier keypoints"):
        PipelineOptions(reject_far=True, classifier_kind="fused").check()


def test_far_hands_keep_the_host_path_of_the_torch_hands():
    from realtime.classifier import OnnxClassifier
    from realtime.pipeline import PipelineOptions
    from realtime.torch_reader import why_not_fused

    clf = OnnxClassifier("asl-letters", device="cpu", backend="torch", reject_far=True)
    assert "reject-far-hands" in why_not_fused(PipelineOptions(hands="torch", backend="torch", device="cpu"), clf)


@pytest.mark.data
def test_eval_and_live_with_far_hands_rejected(tmp_path):
    """`eval --reject-far-hands` writes the same JSON keys; `live --reject-far-hands` spells a video of real held
    letters as `live` does (massey hand1's are near what the model learned); with a profile it is refused, saying
    why."""
    import json

    import cv2

    from helpers import manifest_rows, need_dataset, run_cli, small_copy, write_spelling_video

    root = need_dataset("massey")
    rows = [r for r in manifest_rows(root) if r["signer"] == "hand1" and r["label"] in ("W", "H", "Y", "A")][::3]
    data = small_copy(root, tmp_path / "massey", rows)
    for name, extra in (("plain", []), ("strict", ["--reject-far-hands"])):
        r = run_cli("eval", "--model", "asl-letters", "--data", str(data), "--json", str(tmp_path / f"{name}.json"),
                    *extra)
        assert r.returncode == 0, r.stderr
    plain, strict = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("plain", "strict"))
    assert set(plain) == set(strict)
    photos = [cv2.imread(str(root / next(r["path"] for r in rows if r["label"] == c))) for c in "WHY"]
    write_spelling_video(tmp_path / "why.mp4", photos)
    texts = []
    for extra in ([], ["--reject-far-hands"]):
        r = run_cli("live", "--no-window", "--source", str(tmp_path / "why.mp4"), *extra)
        assert r.returncode == 0, r.stderr
        texts.append(r.stdout.strip())
    assert texts[0] == texts[1] and len(texts[0]) >= 2, texts
    prof = tmp_path / "me.json"
    r = run_cli("calibrate", "--model", "asl-letters", "--data", str(data), "--out", str(prof), "--per-letter", "1")
    assert r.returncode == 0, r.stderr
    r = run_cli("live", "--no-window", "--source", str(tmp_path / "why.mp4"), "--reject-far-hands", "--profile",
                str(prof))
    assert r.returncode == 2 and "--reject-far-hands" in r.stderr and "without --profile" in r.stderr
