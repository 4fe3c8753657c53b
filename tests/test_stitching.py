"""Sign stitching (paper 002) for fingerspelling: the invariants a sequence model's training data must keep."""
import numpy as np
import pytest

from realtime.features import NUM_JOINTS
from training.stitching import (
    LetterDictionary,
    PARENT,
    interpolate,
    motion,
    pronounceable_word,
    stitch,
    write_set,
)


def a_hand(curl: float = 0.0, seed: int = 0) -> np.ndarray:
    """A right hand, wrist at the origin, fingers up (y down), each finger bent by ``curl`` radians per joint."""
    rng = np.random.default_rng(seed)
    lm = np.zeros((NUM_JOINTS, 3))
    for f in range(5):
        x, y, angle = (f - 2) * 0.25, -1.0, 0.0
        lm[1 + 4 * f] = (x, y, 0.0)
        for k in range(1, 4):
            angle += curl
            x, y = x, y - 0.3 * np.cos(angle)
            lm[1 + 4 * f + k] = (x, y, -0.3 * np.sin(angle) * k)
    return lm + rng.normal(0, 0.01, lm.shape) * (np.arange(NUM_JOINTS) > 0)[:, None]


def dictionary() -> LetterDictionary:
    letters = "ABDEIKLOY"
    poses = {c: np.stack([a_hand(0.2 * i, seed=j) for j in range(3)]) for i, c in enumerate(letters)}
    return LetterDictionary("asl", poses, {c: np.array(["s1", "s2", "s3"]) for c in letters}, ["synthetic"])


def test_interpolation_ends_at_both_poses_and_keeps_bone_lengths():
    a, b = a_hand(0.0), a_hand(1.2, seed=1)
    assert np.allclose(interpolate(a, b, 0.0), a, atol=1e-9) and np.allclose(interpolate(a, b, 1.0), b, atol=1e-9)
    mid = interpolate(a, b, 0.5)
    length = lambda p: np.linalg.norm(p - p[PARENT], axis=-1)  # noqa: E731
    assert np.allclose(length(mid), (length(a) + length(b)) / 2, atol=1e-9)  # fingers bend, they do not shrink
    linear = (a + b) / 2
    assert (length(linear)[1:] <= length(mid)[1:] + 1e-9).all()  # a straight blend would shorten bent bones


def test_spans_match_the_frames_and_the_text():
    rng = np.random.default_rng(3)
    seq = stitch("LOOK ID", dictionary(), rng, fps=30)
    assert [c for c, _, _ in seq.spans] == list("LOOKID")
    ends = [0] + [e for _, _, e in seq.spans]
    assert all(s >= prev for (_, s, _), prev in zip(seq.spans, ends))  # ordered, never overlapping
    assert all(0 <= s < e <= len(seq.t) for _, s, e in seq.spans)
    assert seq.landmarks.shape == (len(seq.t), NUM_JOINTS, 3) and len(seq.detected) == len(seq.t)
    assert np.all(np.diff(seq.t) > 0)  # dropped frames leave gaps in time, never reorder it
    between = seq.detected[seq.spans[3][2]:seq.spans[4][1]]  # K ... I: the space (no hand), then the hand comes back
    run = max(len(r) for r in "".join("x" if d else "." for d in between).split("x"))
    assert run >= int(0.4 * 30 * 0.8)  # at least the shortest gap, less a few dropped frames


def test_motion_letters_move_and_static_holds_do_not():
    base = a_hand(0.0)
    for letter in ("J", "Z"):
        path = motion(letter, base, 30)
        travel = np.linalg.norm(path[-1] - path[0], axis=-1).max()
        assert travel > 0.4, letter
    d = dictionary()
    # Z's base handshape is D, J's is I: both are in the dictionary, so both motion letters are offered
    assert {"J", "Z"} <= set(d.letters)
    seq = stitch("JA", d, np.random.default_rng(0), fps=30, drop=0.0, miss=0.0)
    (j, s0, e0), (a, s1, e1) = seq.spans
    hand = seq.landmarks / np.linalg.norm(seq.landmarks[:, 9] - seq.landmarks[:, 0], axis=-1)[:, None, None]
    assert np.abs(hand[e0 - 1, 20] - hand[s0, 20]).max() > 0.3  # J's little finger travels
    assert np.abs(hand[e1 - 1, 20] - hand[s1, 20]).max() < 0.3  # A is held


def test_stitching_is_reproducible_and_refuses_unknown_letters(tmp_path):
    d = dictionary()
    one = stitch("BOIL", d, np.random.default_rng(7))
    two = stitch("BOIL", d, np.random.default_rng(7))
    assert np.array_equal(one.landmarks, two.landmarks) and one.spans == two.spans
    with pytest.raises(ValueError, match="not in the asl dictionary"):
        stitch("BOX", d, np.random.default_rng(0))
    words = {pronounceable_word(d.letters, np.random.default_rng(i)) for i in range(30)}
    assert all(set(w) <= set(d.letters) and 2 <= len(w) <= 7 for w in words) and len(words) > 20
    m = write_set(tmp_path / "set.npz", "asl", d, 5, seed=2, progress=False)
    z = np.load(tmp_path / "set.npz")
    assert m["synthetic"] and m["sequences"] == 5 and z["offsets"][-1] == m["frames"] == len(z["t"])
    again = write_set(tmp_path / "again.npz", "asl", d, 5, seed=2, progress=False)
    assert np.array_equal(np.load(tmp_path / "again.npz")["landmarks"], z["landmarks"]) and again == m


def test_ctc_greedy_decoding_on_scripted_posteriors():
    from training.sequence_model import edit_distance, greedy_decode

    classes = ["<blank>", "A", "B", " "]
    frames = [0, 1, 1, 0, 1, 2, 2, 0, 3, 0, 2]  # A, blank, A (a repeat needs a blank between), B, space, B
    logp = np.log(np.full((len(frames), 4), 0.01))
    logp[np.arange(len(frames)), frames] = 0.0
    assert greedy_decode(logp, classes) == "AAB B"
    assert edit_distance("ABC", "ABD") == 1 and edit_distance("", "AB") == 2 and edit_distance("AB", "AB") == 0


def test_the_sequence_reader_is_causal_and_learns_from_stitched_sequences(tmp_path):
    import torch

    from training.sequence_model import SequenceConfig, _model_class, frame_features, train_sequence

    d = dictionary()
    write_set(tmp_path / "train.npz", "asl", d, 60, seed=0, progress=False)
    write_set(tmp_path / "val.npz", "asl", d, 10, seed=1, progress=False)
    cfg = SequenceConfig(alphabet=d.letters, hidden=32, dilations=(1, 2, 4), epochs=6, lr=5e-3)
    m = train_sequence(tmp_path / "train.npz", tmp_path / "val.npz", tmp_path / "run", cfg, progress=False)
    assert m["history"][-1]["loss"] < m["history"][0]["loss"] and (tmp_path / "run" / "model.pt").exists()
    # killed during epoch 4 and started again: the same history as the run that was never stopped
    import training.sequence_model as sm

    real_score, calls = sm.score, []

    def dies_in_epoch_4(*args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_score(*args)

    sm.score = dies_in_epoch_4
    try:
        with pytest.raises(KeyboardInterrupt):
            train_sequence(tmp_path / "train.npz", tmp_path / "val.npz", tmp_path / "cut", cfg, progress=False)
    finally:
        sm.score = real_score
    resumed = train_sequence(tmp_path / "train.npz", tmp_path / "val.npz", tmp_path / "cut", cfg, progress=False)
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in m["history"]], rel=1e-5)
    from dataclasses import replace

    with pytest.raises(ValueError, match="other data or settings"):
        train_sequence(tmp_path / "train.npz", tmp_path / "val.npz", tmp_path / "cut", replace(cfg, lr=1e-3), False)
    assert m["synthetic_only"] and m["receptive_field_frames"] == 1 + 2 * (1 + 2 + 4)
    seq = stitch("BOIL", d, np.random.default_rng(5))
    x = torch.from_numpy(frame_features(seq.landmarks, seq.detected, seq.t))[None]
    model = _model_class()(x.shape[-1], cfg).eval()
    with torch.no_grad():
        full, cut = model(x), model(x[:, :40])
    assert torch.allclose(full[:, :40], cut, atol=1e-5)  # frame 39's output never saw frame 40: it can stream


def test_a_set_of_list_words_spells_only_words_the_dictionary_can_spell(tmp_path):
    d = dictionary()
    m = write_set(tmp_path / "w.npz", "asl", d, 8, seed=1, progress=False, words=["bike", "yield", "box", "boil"])
    texts = [str(t) for t in np.load(tmp_path / "w.npz")["text"]]
    assert m["words"] == "3 words of a word list"  # the dictionary's letters are ABDEIKLOY: BOX has no X
    assert {w for t in texts for w in t.split()} <= {"BIKE", "BOIL", "YIELD"}
    with pytest.raises(ValueError, match="no word of the list"):
        write_set(tmp_path / "x.npz", "asl", d, 2, words=["xyz"], progress=False)


def test_eval_sequences_scores_every_reader_and_writes_json(tmp_path):
    import json

    from tests.helpers import run_cli
    from training.sequence_eval import score_texts

    s = score_texts([("HELLO WORLD", "HELLO WORD"), ("BOIL", "BOIL")])
    assert s["cer"] == pytest.approx(1 / 15) and s["word_accuracy"] == pytest.approx(2 / 3) and s["sequences"] == 2
    write_set(tmp_path / "set.npz", "asl", dictionary(), 3, seed=0, progress=False, words=["boil", "bike"])
    words = tmp_path / "words.txt"
    words.write_text("boil\nbike\n")
    r = run_cli("eval-sequences", "--data", str(tmp_path / "set.npz"), "--lexicon", str(words), "--json",
                str(tmp_path / "out.json"))
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "out.json").read_text())
    assert m["synthetic"] and set(m["readers"]) == {"letters", "letters+lexicon", "sequence", "sequence+lexicon"}
    for scores in m["readers"].values():
        assert scores["sequences"] == 3 and scores["cer"] >= 0 and len(scores["examples"]) == 3
        assert all(ref in ("BOIL", "BIKE", "BOIL BIKE", "BIKE BOIL", "BOIL BOIL", "BIKE BIKE")
                   for ref, _ in scores["examples"])
    bad = run_cli("eval-sequences", "--data", str(tmp_path / "set.npz"), "--readers", "guess")
    assert bad.returncode != 0 and "unknown readers" in bad.stderr


def test_held_photo_sequences_hold_one_real_hand_per_letter_and_cut(tmp_path):
    """``--held-photos``: what a video made from photos shows (issue 17's case b): each letter one dictionary hand,
    unchanged for its whole hold, no frames between letters, a dropped hand between two photos of a repeated
    letter and for each space; the manifest says these are real hands without real motion."""
    from training.stitching import hold_photos

    d = dictionary()
    rng = np.random.default_rng(3)
    s = hold_photos("BOIL LOOK", d, rng, fps=20.0)
    assert [c for c, _, _ in s.spans] == list("BOILLOOK")
    for (c, a, b), (_, a2, _) in zip(s.spans, s.spans[1:] + [(None, len(s.t), None)]):
        held = s.landmarks[a:b]
        assert s.detected[a:b].all() and np.ptp(held, axis=0).max() == 0  # one photo, held still
        assert 16 <= b - a <= 24  # 0.8-1.2 s at 20 frames/s
        # its hand is one of the letter's dictionary hands, placed in the frame (a scale and a shift)
        rel = held[0] - held[0][0]
        assert any(np.allclose(rel / np.linalg.norm(rel[9]), (p - p[0]) / np.linalg.norm(p[9] - p[0]), atol=1e-4)
                   for p in d.poses[c])
        gap = s.detected[b:a2]
        assert not gap.any()  # the next letter follows at once, or after a drop of the hand
    cuts = [a2 - b for (_, _, b), (_, a2, _) in zip(s.spans, s.spans[1:])]
    assert cuts[:3] == [0, 0, 0] and cuts[4] == 0 and cuts[6] == 0
    assert 32 <= cuts[3] <= 45  # the space: 1.6-2.2 s
    assert 6 <= cuts[5] <= 10  # OO: the hand drops for 0.3-0.5 s, longer than the letter reader's 0.2 s release
    (_, a, _), (_, b, _) = s.spans[5], s.spans[6]
    assert not np.array_equal(s.landmarks[a], s.landmarks[b])  # ... and the second O is another photo
    with pytest.raises(ValueError, match="no photo"):
        hold_photos("BJ", d, rng)  # a motion letter has no photo
    m = write_set(tmp_path / "h.npz", "asl", d, 3, seed=0, progress=False, held_photos=True)
    assert m["kind"] == "held-photo-sequences" and not m["synthetic"] and "no real motion" in m["what"]
    assert m["letters"] == sorted(d.poses)


def test_joint_training_and_fine_tuning_from_a_pretrained_reader(tmp_path):
    """Paper 002's variants: several training sets at once (joint), and a pre-trained model fine-tuned; a model
    whose letters differ cannot be fine-tuned, and a set spelling letters the model lacks is refused."""
    import torch

    from training.sequence_model import SequenceConfig, set_letters, train_sequence

    d = dictionary()
    write_set(tmp_path / "stitched.npz", "asl", d, 30, seed=0, progress=False)
    write_set(tmp_path / "photos.npz", "asl", d, 30, seed=1, progress=False, held_photos=True)
    write_set(tmp_path / "val.npz", "asl", d, 6, seed=2, progress=False)
    letters = set_letters([tmp_path / "stitched.npz", tmp_path / "photos.npz"])
    assert letters == sorted(set(d.letters)) and "J" in letters  # the motion letter J comes from the stitched set
    cfg = SequenceConfig(alphabet=letters, hidden=16, dilations=(1, 2), epochs=4, lr=5e-3)
    joint = train_sequence([tmp_path / "stitched.npz", tmp_path / "photos.npz"], tmp_path / "val.npz",
                           tmp_path / "joint", cfg, progress=False)
    assert not joint["synthetic_only"] and [m["kind"] for m in joint["train_manifests"]] == [
        "stitched-sequences", "held-photo-sequences"]
    pre = tmp_path / "joint" / "model.pt"
    tuned = train_sequence(tmp_path / "photos.npz", tmp_path / "val.npz", tmp_path / "tuned", cfg, progress=False,
                           init=pre)
    assert tuned["init"] == str(pre) and tuned["pretrained_on"]["train"] == joint["train"]
    assert joint["train"] == [str(tmp_path / "stitched.npz"), str(tmp_path / "photos.npz")]
    # the fine-tuned run started from the pre-trained weights: its first epoch's loss is the pre-trained model's
    # kind of loss, far below a fresh model's on the same data
    fresh = train_sequence(tmp_path / "photos.npz", tmp_path / "val.npz", tmp_path / "fresh", cfg, progress=False)
    assert tuned["history"][0]["loss"] < fresh["history"][0]["loss"]
    with pytest.raises(ValueError, match="same letters"):
        train_sequence(tmp_path / "photos.npz", tmp_path / "val.npz", tmp_path / "x",
                       SequenceConfig(alphabet=letters[:-1] + ["Q"], hidden=16, dilations=(1, 2), epochs=1),
                       progress=False, init=pre)
    with pytest.raises(ValueError, match="another shape"):  # other layers: a clear refusal, not a state-dict error
        train_sequence(tmp_path / "photos.npz", tmp_path / "val.npz", tmp_path / "x2",
                       SequenceConfig(alphabet=letters, hidden=32, dilations=(1, 2), epochs=1), progress=False,
                       init=pre)
    with pytest.raises(ValueError, match="lack"):
        train_sequence(tmp_path / "stitched.npz", tmp_path / "val.npz", tmp_path / "y",
                       SequenceConfig(alphabet=["A", "B"], hidden=16, dilations=(1, 2), epochs=1), progress=False)
    assert torch.load(pre, weights_only=False)["config"]["alphabet"] == letters
