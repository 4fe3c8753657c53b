"""Personal tuning: the numpy network equals the shipped ONNX model, its gradients are right, tuning learns a
person's own variant without forgetting the other letters, the tuning file is checked, and a tuned profile runs."""
import json
import shutil

import numpy as np
import pytest

from realtime.calibration import SHIPPED_METHOD, CalibratedClassifier, Profile, ProfileError, make_profile
from realtime.personal_tuning import MLP, TUNING_FILE, Tuning, TuningError, _gradients, softmax, tune


def small_mlp(seed=0, dims=(6, 8, 5, 3)) -> MLP:
    rng = np.random.default_rng(seed)
    a, b, c, d = dims
    return MLP(rng.normal(size=(a, b)), rng.normal(size=b) * 0.1, rng.normal(size=(b, c)) / 3,
               rng.normal(size=c) * 0.1, rng.normal(size=(c, d)) / 2, rng.normal(size=d) * 0.1)


def loss(mlp: MLP, x, y) -> float:
    return float(-np.log(softmax(mlp._forward(x)[-1])[np.arange(len(y)), y]).mean())


def test_gradients_match_finite_differences():
    mlp, rng = small_mlp(), np.random.default_rng(1)
    x, y = rng.normal(size=(7, 6)), rng.integers(0, 3, 7)
    for p, g in zip(mlp.params(), _gradients(mlp, x, y)):
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in rng.choice(flat.size, min(5, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + 1e-6
            up = loss(mlp, x, y)
            flat[i] = old - 1e-6
            down = loss(mlp, x, y)
            flat[i] = old
            assert abs((up - down) / 2e-6 - gflat[i]) < 1e-6


def test_tuning_learns_a_persons_variant_and_keeps_the_other_letters():
    """The person signs class 0 where the model reads class 1; the bank holds hands of every class as the model
    reads them. After tuning the person's variant reads 0 and the bank's hands keep their labels."""
    rng = np.random.default_rng(0)
    base = small_mlp()
    base.w3 *= 10  # a confident model
    bank_x = rng.normal(size=(300, 6)) * 2
    probs = base(bank_x)
    bank_y = probs.argmax(1)
    variant = bank_x[np.argsort(-probs[:, 1])[:5]]  # the hands the model is surest are class 1 (a person's own 0)
    assert (base(variant).argmax(1) == 1).all()
    tuned = tune(base, variant, np.zeros(5, np.int64), bank_x, bank_y, steps=150, lr=1e-2)
    assert (tuned(variant).argmax(1) == 0).all()
    others = bank_y != 1
    assert (tuned(bank_x[others]).argmax(1) == bank_y[others]).mean() > 0.9
    assert np.array_equal(tune(base, variant, np.zeros(5, np.int64), bank_x, bank_y, steps=20).w1,
                          tune(base, variant, np.zeros(5, np.int64), bank_x, bank_y, steps=20).w1)  # deterministic


def test_tuning_file_round_trip_and_damage(tmp_path):
    import hashlib

    t = Tuning(small_mlp(), np.ones((4, 6)), np.array([0, 1, 2, 0]))
    path = t.save(tmp_path / TUNING_FILE)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    back = Tuning.load(path, sha)
    assert np.allclose(back.base.w2, t.base.w2, atol=1e-6) and list(back.bank_y) == [0, 1, 2, 0]
    with pytest.raises(TuningError, match="sha256 differs"):
        Tuning.load(path, "0" * 64)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(TuningError, match="not a readable tuning file"):
        Tuning.load(path)
    Tuning(small_mlp(), np.ones((4, 5)), np.array([0, 1, 2, 0])).save(path)  # bank of the wrong width
    with pytest.raises(TuningError, match="do not fit"):
        Tuning.load(path)


def test_the_shipped_tuning_file_is_the_onnx_model():
    """Each shipped keypoint model's tuning.npz holds the same network as its ONNX file (BatchNorm folded), and a
    bank of every label."""
    from realtime.classifier import OnnxClassifier

    for name in ("asl-letters", "lis-letters"):
        clf = OnnxClassifier(name)
        entry = clf.manifest.raw["tuning"]
        t = Tuning.load(clf.folder / entry["file"], entry["sha256"])
        x = t.bank_x[::7].astype(np.float32)
        p, e = clf.probs_and_embedding(x)
        q, f = t.base.probs_and_embedding(x)
        assert np.abs(p - q).max() < 1e-4 and np.abs(e - f).max() < 1e-3
        assert sorted(set(t.bank_y.tolist())) == list(range(len(clf.labels)))


def test_a_tuned_profile_reads_its_samples_and_needs_the_models_tuning_file(tmp_path):
    """make_profile gives the shipped method where the model has a tuning file. The person signs D their own way
    (here: between the model's B and C); after calibration that shape reads D, and their B and C still read B and C.
    A model folder without the file refuses the profile, saying why."""
    from realtime.classifier import OnnxClassifier

    kp = OnnxClassifier("lis-letters")
    t = Tuning.load(kp.folder / TUNING_FILE)
    own = {l: t.bank_x[t.bank_y == i][:3].astype(np.float32) for i, l in enumerate(kp.labels)}  # training hands
    own["D"] = 0.5 * (own["B"] + own["C"])
    assert "D" not in [kp.labels[i] for i in kp(own["D"]).argmax(1)]
    labels = [l for l in kp.labels for _ in own[l]]
    p = make_profile(kp, np.concatenate([own[l] for l in kp.labels]), labels)
    assert p.method == SHIPPED_METHOD == "tuned+knn"
    path = p.save(tmp_path / "me.json")
    assert json.loads(path.read_text())["tuning"] == {"steps": 150, "learning_rate": 0.001}
    cal = CalibratedClassifier(kp, Profile.load(path))
    for letter in ("D", "B", "C"):
        assert [cal.labels[int(np.argmax(cal(x[None])))] for x in own[letter]] == [letter] * 3
    samples = p.samples
    # the same model folder without its tuning file (as exported before tuning existed)
    folder = tmp_path / "old"
    shutil.copytree(kp.folder, folder)
    (folder / TUNING_FILE).unlink()
    m = json.loads((folder / "manifest.json").read_text())
    m.pop("tuning")
    (folder / "manifest.json").write_text(json.dumps(m))
    old = OnnxClassifier(str(folder))
    with pytest.raises(ProfileError, match="ships no tuning file"):
        CalibratedClassifier(old, Profile.load(path))
    assert make_profile(old, samples, labels).method == "knn"  # a new profile for it uses kNN alone


@pytest.mark.parametrize("tuning, message", [
    (None, "'tuning' must be an object"),
    ({"steps": 1.9}, "whole number"),
    ({"steps": True}, "whole number"),
    ({"steps": "150"}, "whole number"),
    ({"learning_rate": float("inf")}, "finite number"),
    ({"steps": 10**30}, "tunes 1-1000 steps"),
    ({"learning_rate": 0.9}, r"learning rate in \(0, 0.01\]"),
    ({"steps": 0}, "tunes 1-1000 steps"),
])
def test_a_damaged_tuning_setting_is_a_clear_error(tmp_path, tuning, message):
    rng = np.random.default_rng(0)
    p = Profile(model="toy", model_sha256="a" * 64, labels=["A", "B"], features={"dim": 3},
                samples=rng.normal(size=(2, 3)), sample_labels=["A", "B"], method="tuned+knn")
    d = p.to_json()
    d["tuning"] = tuning
    path = tmp_path / "p.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ProfileError, match=message):
        Profile.load(path)


def test_export_carries_the_tuning_file_and_a_damaged_one_falls_back_to_knn(tmp_path, capsys):
    """`fingerspell export --model` keeps tuning.npz beside the new ONNX file (profiles made for the export are
    tuned); a folder whose tuning file is damaged makes kNN profiles and says why."""
    from export.formats import export_model_onnx
    from realtime.classifier import OnnxClassifier

    out = tmp_path / "exported"
    export_model_onnx("asl-letters", out)
    assert (out / TUNING_FILE).is_file()
    clf = OnnxClassifier(str(out))
    t = Tuning.load(clf.folder / TUNING_FILE)
    samples = t.bank_x[:6].astype(np.float32)
    labels = [clf.labels[i] for i in t.bank_y[:6]]
    p = make_profile(clf, samples, labels)
    assert p.method == "tuned+knn"
    CalibratedClassifier(clf, p)
    (out / TUNING_FILE).write_bytes(b"damaged")
    assert make_profile(OnnxClassifier(str(out)), samples, labels).method == "knn"
    assert "sha256 differs" in capsys.readouterr().err


def test_the_self_check_names_the_letters_to_record_again():
    """Each sample is read by a profile made without it: a letter whose samples are really another letter's hands
    is named, with what it is read as; the others read right."""
    from realtime.calibrate import describe_check, self_check
    from realtime.classifier import OnnxClassifier

    kp = OnnxClassifier("asl-letters")
    t = Tuning.load(kp.folder / TUNING_FILE)
    own = {l: t.bank_x[t.bank_y == i][:5].astype(np.float32) for i, l in enumerate(kp.labels) if l != "none"}
    own["M"] = t.bank_x[t.bank_y == kp.labels.index("B")][5:10].astype(np.float32)  # "M" recorded with B's hands
    labels = [l for l in own for _ in own[l]]
    check = self_check(kp, make_profile(kp, np.concatenate(list(own.values())), labels))
    assert check["samples"] == len(labels) and set(check["letters"]) == set(own)
    right, n, confused = check["letters"]["M"]
    assert n == 5 and right <= 1 and "B" in confused
    assert check["read"] >= 0.85 * len(labels)
    assert "worth recording again: " in describe_check(check) and "M " in describe_check(check)
