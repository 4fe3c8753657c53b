"""``--reader sequence`` (experimental): the shipped sequence model, its streaming path against the whole-sequence
model, and the live path on a video."""
from pathlib import Path

import numpy as np
import pytest

from helpers import manifest_rows, need_dataset, run_cli

torch = pytest.importorskip("torch", reason="the parity check rebuilds the model in PyTorch")


def test_shipped_sequence_model_matches_its_manifest():
    from realtime.manifest import Manifest, sha256_file, weights_dir
    from realtime.sequence_reader import SequenceReader

    folder = weights_dir() / "asl-sequence"
    m = Manifest.load(folder)
    assert m.kind == "sequence-reader" and sha256_file(folder / m.file) == m.sha256
    reader = SequenceReader("asl-sequence")
    assert reader.classes[0] == "<blank>" and {"J", "Z", " "} <= set(reader.classes)
    assert reader.window == m.raw["window"]
    # trained jointly on stitched motion (synthetic) and held photos (real hands): the manifest says both
    assert m.raw["training"]["synthetic_only"] is False
    assert [d["kind"] for d in m.raw["training"]["data"]] == ["stitched-sequences", "held-photo-sequences"]
    assert "sequence-compare --export-variant joint" in m.raw["training"]["command"]


def test_shipped_lis_sequence_model_matches_its_manifest():
    """The Italian reader: the 22 static LIS letters and a space (G, J, S, Z need motion no source here describes),
    trained jointly on stitched and held-photo sequences without GIULIA and NOOR."""
    from realtime.manifest import Manifest, sha256_file, weights_dir
    from realtime.sequence_reader import SequenceReader
    from training.train_keypoints import LIS_LETTERS

    folder = weights_dir() / "lis-sequence"
    m = Manifest.load(folder)
    assert m.kind == "sequence-reader" and sha256_file(folder / m.file) == m.sha256
    reader = SequenceReader("lis-sequence")
    assert reader.classes == ["<blank>", *LIS_LETTERS, " "]
    assert [d["kind"] for d in m.raw["training"]["data"]] == ["stitched-sequences", "held-photo-sequences"]
    for data in m.raw["training"]["data"]:  # GIULIA is the test signer, NOOR chose the best epoch
        assert "lis/ANTONIA" in data["dictionary"]["signers"]
        assert not {"lis/GIULIA", "lis/NOOR"} & set(data["dictionary"]["signers"])


def test_streaming_reads_each_frame_as_the_whole_sequence_would():
    """Frame by frame through the ONNX model's 63-frame window = the causal model run over the whole sequence."""
    from realtime.features import FeatureSpec
    from realtime.sequence_reader import SequenceReader
    from training.sequence_model import frame_features
    from training.stitching import LetterDictionary, stitch
    from test_stitching import a_hand

    letters = "ABDEIKLOY"
    d = LetterDictionary("asl", {c: np.stack([a_hand(0.2 * i, seed=j) for j in range(2)]) for i, c in enumerate(letters)},
                         {c: np.array(["s1", "s2"]) for c in letters})
    seq = stitch("BOIL KID", d, np.random.default_rng(0), fps=30)
    reader = SequenceReader("asl-sequence")
    spec = FeatureSpec.from_dict(reader.manifest.raw["features"])
    streamed = []
    for lm, found, t in zip(seq.landmarks, seq.detected, seq.t):
        x = spec.compute(lm[None], False, (640.0, 480.0))[0] if found else None
        streamed.append(reader.row(x, float(t)))
    whole = frame_features(seq.landmarks, seq.detected, seq.t)
    np.testing.assert_allclose(np.array(streamed), whole, atol=1e-4)  # the same inputs, frame by frame


@pytest.mark.data
def test_live_reads_a_video_with_the_sequence_reader(tmp_path):
    from helpers import write_spelling_video
    from realtime.images import read_image

    root = need_dataset("massey")
    photo = {r["label"]: root / r["path"] for r in manifest_rows(root) if r["signer"] == "hand1"}
    write_spelling_video(tmp_path / "lavy.mp4", [read_image(photo[c]) for c in "LAVY"])
    r = run_cli("live", "--reader", "sequence", "--source", str(tmp_path / "lavy.mp4"), "--no-window")
    assert r.returncode == 0, r.stderr
    text = r.stdout.strip().splitlines()[-1]
    assert text.replace(" ", "") and set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ ")
    assert text.replace(" ", "").startswith("LA")  # measured: 'LA Y' (the letter reader: 'LA Y' too)
    words = Path(__file__).parent.parent / "realtime" / "wordlists" / "en.txt"
    r = run_cli("live", "--reader", "sequence", "--lexicon", str(words), "--source", str(tmp_path / "lavy.mp4"),
                "--no-window")
    assert r.returncode == 0, r.stderr
    read = r.stdout.strip().splitlines()[-1]
    assert read.strip() and set(read) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ ")
    r = run_cli("live", "--lexicon", str(words), "--source", str(tmp_path / "lavy.mp4"), "--no-window", "--jsonl",
                str(tmp_path / "letters.jsonl"))  # the letter reader with the word list: the same path, words rescored
    assert r.returncode == 0, r.stderr
    read = r.stdout.strip().splitlines()[-1]
    assert read.replace(" ", "").startswith("LA") and set(read) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ ")
    r = run_cli("live", "--reader", "sequence", "--lexicon", str(tmp_path / "none.txt"), "--source",
                str(tmp_path / "lavy.mp4"), "--no-window")
    assert r.returncode != 0 and "no word list at" in r.stderr
    bad = run_cli("eval", "--reader", "sequence", "--data", str(root))
    assert bad.returncode == 2 and "reads motion in video" in bad.stderr


def test_a_window_of_the_receptive_field_gives_the_whole_sequences_output():
    """Why streaming with the last 63 frames is exact: the causal model's output at frame t depends on frames
    t-62..t only."""
    from training.sequence_model import SequenceConfig, _model_class

    model = _model_class()(9, SequenceConfig(alphabet=list("AB"), hidden=16)).eval()
    x = torch.randn(1, 150, 9)
    rf = model.receptive_field
    with torch.no_grad():
        whole = model(x)
        for t in (rf - 1, 100, 149):
            np.testing.assert_allclose(model(x[:, t - rf + 1:t + 1])[0, -1].numpy(), whole[0, t].numpy(), atol=1e-5)
        for t in (0, 5, rf - 2):  # a stream's first frames: the window's empty places masked as not yet seen
            window = torch.cat([torch.randn(1, rf - 1 - t, 9), x[:, :t + 1]], 1)
            valid = (torch.arange(rf) >= rf - 1 - t).float()[None]
            np.testing.assert_allclose(model(window, valid)[0, -1].numpy(), whole[0, t].numpy(), atol=1e-5)


def test_a_hand_missed_for_a_frame_or_two_does_not_type_the_held_letter_twice():
    """The model reads blank on a frame without a hand; a detector's one- or two-frame miss is not the pause that
    separates a double letter, a longer absence is."""
    from realtime.sequence_reader import SequenceReader

    reader = SequenceReader("asl-sequence")
    a = reader.classes.index("A")

    class Scripted:  # the model's reading: A while a hand is seen, blank when the newest frame has none
        def run(self, _, feeds):
            logp = np.full(len(reader.classes), -9.0, np.float32)
            logp[a if feeds[reader.manifest.input_name][0, -1, -1] > 0 else reader.blank] = 0.0
            return [logp[None]]

    reader.session, reader.step = Scripted(), None  # the window path, its session scripted
    hand = np.zeros(reader.dim, np.float32)
    frames = [hand] * 10 + [None] + [hand] * 10 + [None, None] + [hand] * 10 + [None] * 3 + [hand] * 5
    for i, x in enumerate(frames):
        reader.update(x, i / 30)
    assert reader.text == "AA"  # the gaps of one and two frames bridged; three frames without a hand separate


def test_streaming_step_reads_every_frame_as_the_window_model_does(tmp_path, capsys):
    """The shipped readers' step.onnx (one frame and a carried state) against their model.onnx (the whole window each
    frame), on a stitched stream with missed hands, and after a reset; a damaged step file is said and the window
    model reads instead, with the same letters."""
    import shutil

    from realtime.features import FeatureSpec
    from realtime.sequence_reader import SequenceReader
    from training.stitching import LetterDictionary, stitch
    from test_stitching import a_hand

    letters = "ABDEIKLOY"
    d = LetterDictionary("asl", {c: np.stack([a_hand(0.2 * i, seed=j) for j in range(2)]) for i, c in enumerate(letters)},
                         {c: np.array(["s1", "s2"]) for c in letters})
    seq = stitch("BOIL KID BOLD", d, np.random.default_rng(1), fps=30)
    for name in ("asl-sequence", "lis-sequence"):
        step, window = SequenceReader(name), SequenceReader(name)
        assert step.step is not None and "streaming step" in step.describe()
        window.step = None
        spec = FeatureSpec.from_dict(step.manifest.raw["features"])
        for reader in (step, window):
            reader.read = []
            for _ in range(2):  # the second time after a reset: the state starts empty again
                reader.reset()
                for lm, found, t in zip(seq.landmarks, seq.detected, seq.t):
                    x = spec.compute(lm[None], False, (640.0, 480.0))[0] if found else None
                    reader.read.append(reader.update(x, float(t))[:2])
        assert len(step.read) > step.window * 2 and step.text == window.text
        assert [r[0] for r in step.read] == [r[0] for r in window.read]
        np.testing.assert_allclose([r[1] for r in step.read], [r[1] for r in window.read], atol=1e-4)

    folder = tmp_path / "asl-sequence"
    from realtime.manifest import weights_dir

    shutil.copytree(weights_dir() / "asl-sequence", folder)
    (folder / "step.onnx").write_bytes(b"not a model")
    reader = SequenceReader(str(folder))
    assert reader.step is None and "window of 63 frames" in reader.describe()
    assert "step.onnx" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_the_torch_backend_reads_every_frame_as_onnx_runtime_does(device):
    """--backend torch: the streaming step in PyTorch from model.onnx's weights (on CUDA whatever ONNX Runtime build
    is there), against ONNX Runtime's step.onnx, frame by frame over a stream with missed hands."""
    from realtime.pipeline import PipelineOptions
    from realtime.sequence_reader import SequenceReader

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to PyTorch: the CUDA run is in python -m realtime.gpu_report on the lent GPU")
    mine, ort = SequenceReader("lis-sequence", device=device, backend="torch"), SequenceReader("lis-sequence")
    assert mine.session is None and f"PyTorch ({device})" in mine.describe()
    rng = np.random.default_rng(3)
    for i in range(150):
        x = rng.normal(0, 0.5, mine.dim).astype(np.float32) if i % 11 else None
        a, b = mine.update(x, i / 30), ort.update(x, i / 30)
        assert a[0] == b[0] and a[2] == b[2] and abs(a[1] - b[1]) < 1e-4
    assert mine.text == ort.text
    for bad in (dict(backend="tensorrt"), dict(precision="fp16")):
        with pytest.raises(ValueError, match="--reader sequence runs fp32"):
            PipelineOptions(reader="sequence", **bad).check()


def test_export_copies_a_sequence_reader_and_makes_its_streaming_step(tmp_path):
    from realtime.manifest import Manifest, sha256_file, weights_dir
    from realtime.sequence_reader import SequenceReader

    out = tmp_path / "my-reader"
    r = run_cli("export", "--model", "lis-sequence", "--out", str(out))
    assert r.returncode == 0, r.stderr
    m = Manifest.load(out)
    assert m.name == "my-reader" and m.sha256 == Manifest.load(weights_dir() / "lis-sequence").sha256
    step = m.raw["stream_step"]
    assert sha256_file(out / step["file"]) == step["sha256"] and step["stream_parity_max_abs"] <= 1e-4
    assert step["command"].startswith("fingerspell export --model lis-sequence")
    assert SequenceReader(str(out)).step is not None
    r = run_cli("export", "--model", "lis-sequence", "--out", str(out), "--opset", "18")
    assert r.returncode == 2 and "--opset" in r.stderr and "Traceback" not in r.stderr

    from realtime.sequence_step import window_layers
    from realtime.manifest import ModelError

    with pytest.raises(ModelError, match="not the graph of a sequence reader"):
        window_layers(weights_dir() / "asl-letters" / "model.onnx")  # a letter classifier: no convolutions


@pytest.mark.data
def test_live_reads_an_italian_video_with_the_lis_sequence_reader(tmp_path):
    """GIULIA, whom neither reader saw, spells LUCE from her front-camera photos (64x64 crops, so the full hand
    model); the LIS sequence reader types it as it goes, the last letter included only in part: LUC."""
    from helpers import write_spelling_video
    from realtime.images import read_image

    root = need_dataset("lis")
    photo = {}
    for r in manifest_rows(root):
        if r["signer"] == "GIULIA" and "front" in r["path"]:
            photo.setdefault(r["label"], root / r["path"])
    write_spelling_video(tmp_path / "luce.mp4", [read_image(photo[c]) for c in "LUCE"])
    r = run_cli("live", "--reader", "sequence", "--sequence-model", "lis-sequence", "--hands-model", "full",
                "--source", str(tmp_path / "luce.mp4"), "--no-window")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("LUC"), r.stdout


def test_eval_sequences_reads_a_set_with_the_readers_of_its_alphabet(tmp_path):
    """An Italian stitched set is read by lis-letters and lis-sequence unless other models are named."""
    from training.sequence_eval import evaluate_sequences
    from training.stitching import LetterDictionary, write_set
    from test_stitching import a_hand

    letters = "ABCDE"
    d = LetterDictionary("lis", {c: np.stack([a_hand(0.2 * i, seed=j) for j in range(2)]) for i, c in enumerate(letters)},
                         {c: np.array(["s1", "s2"]) for c in letters})
    write_set(tmp_path / "lis.npz", "lis", d, 2, progress=False)
    m = evaluate_sequences(tmp_path / "lis.npz", ["letters", "sequence"], progress=False)
    assert m["models"] == {"letters": "lis-letters", "sequence": "lis-sequence"}
    assert m["readers"]["sequence"]["sequences"] == 2
    m = evaluate_sequences(tmp_path / "lis.npz", ["sequence"], sequence_model="asl-sequence", progress=False)
    assert m["models"]["sequence"] == "asl-sequence"
    words = str(Path(__file__).resolve().parents[1] / "realtime" / "wordlists" / "it.txt")
    m = evaluate_sequences(tmp_path / "lis.npz", ["letters", "letters+lexicon"], lexicon=words, progress=False)
    assert m["readers"]["letters+lexicon"]["sequences"] == 2 and m["lexicon"] == words
    with pytest.raises(ValueError, match="letters\\+lexicon reader needs --lexicon"):
        evaluate_sequences(tmp_path / "lis.npz", ["letters+lexicon"], progress=False)


def test_eval_sequences_refuses_a_file_that_is_not_a_stitched_set_naming_it(tmp_path, capsys):
    """Another .npz (a model's tuning file) gave numpy's KeyError, random bytes an error without the file's name."""
    from realtime.cli import main
    from realtime.manifest import weights_dir

    noise = tmp_path / "noise.npz"
    noise.write_bytes(np.random.default_rng(0).bytes(3000))
    for path in (weights_dir() / "asl-letters" / "tuning.npz", noise):
        assert main(["eval-sequences", "--data", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"{path} is not a stitched sequence set" in err, err
        assert "fingerspell train stitch" in err
