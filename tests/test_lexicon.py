"""--lexicon: CTC likelihood against brute force, correction on scripted posteriors, words outside the list kept,
the streaming reader's word boundaries, and bad input."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from realtime.lexicon import Lexicon, ctc_log_likelihood, edit_distance

CLASSES = ["<blank>", "A", "B", "E", "H", "L", "O", "P", " "]
IDX = {c: i for i, c in enumerate(CLASSES)}
WORDLISTS = Path(__file__).parent.parent / "realtime" / "wordlists"


def collapse(path, blank=0):
    out, prev = [], None
    for k in path:
        if k != prev and k != blank:
            out.append(k)
        prev = k
    return out


@pytest.mark.parametrize("target", [[], [1], [1, 1], [1, 2], [2, 1, 2]])
def test_ctc_likelihood_matches_the_sum_over_every_path(target):
    rng = np.random.default_rng(len(target))
    p = rng.dirichlet(np.ones(3), size=5)  # 5 frames, classes blank, 1, 2
    brute = sum(np.prod([p[t, k] for t, k in enumerate(path)])
                for path in itertools.product(range(3), repeat=5) if collapse(path) == target)
    assert np.exp(ctc_log_likelihood(np.log(p), target, 0)) == pytest.approx(brute, rel=1e-9)


def test_edit_distance():
    assert edit_distance("HELLO", "HELLO") == 0
    assert edit_distance("HELLP", "HELLO") == 1
    assert edit_distance("HLLO", "HELLO") == 1
    assert edit_distance("ABCDEFG", "A", limit=2) == 3  # stops early beyond the limit


def frames(word_probs: list[dict[str, float]], hold: int = 3) -> np.ndarray:
    """Log-posteriors: each letter held ``hold`` frames with the given probabilities, blanks between."""
    rows = []
    for probs in word_probs:
        p = np.full(len(CLASSES), 1e-4)
        for c, v in probs.items():
            p[IDX[c]] = v
        rows += [p / p.sum()] * hold
        b = np.full(len(CLASSES), 1e-4)
        b[0] = 1.0
        rows.append(b / b.sum())
    return np.log(np.array(rows))


def test_a_misread_letter_in_a_known_word_is_corrected_and_an_unknown_word_is_kept():
    lex = Lexicon(["hello", "help", "bell"], [c for c in CLASSES if c.isalpha() and len(c) == 1])
    unsure = frames([{"H": 0.9}, {"E": 0.9}, {"L": 0.9}, {"L": 0.9}, {"P": 0.5, "O": 0.45}])
    assert lex.correct("HELLP", unsure, CLASSES, 0) == "HELLO"
    sure = frames([{"H": 0.9}, {"O": 0.9}, {"P": 0.95}, {"E": 0.9}])
    assert lex.correct("HOPE", sure, CLASSES, 0) == "HOPE"  # not in the list, clearly signed: stays
    assert lex.correct("HELP", frames([{"H": 0.9}, {"E": 0.9}, {"L": 0.9}, {"P": 0.9}]), CLASSES, 0) == "HELP"


def test_the_word_list_keeps_only_what_the_model_can_spell(tmp_path):
    f = tmp_path / "w.txt"
    f.write_text("# comment\nhello\nperché\nhelp  # trailing comment\n\nzzz\n", encoding="utf-8")
    lex = Lexicon.load(f, ["E", "H", "L", "O", "P"])
    assert lex.words == ["HELLO", "HELP"]
    with pytest.raises(FileNotFoundError, match="no word list"):
        Lexicon.load(tmp_path / "missing.txt", ["A"])
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValueError, match="not a UTF-8 text file"):
        Lexicon.load(tmp_path / "bin.txt", ["A"])
    with pytest.raises(ValueError, match="no word spelled only with"):
        Lexicon(["zzz"], ["A"])


def test_the_shipped_word_lists_load():
    letters = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    assert len(Lexicon.load(WORDLISTS / "en.txt", letters).words) > 200
    assert len(Lexicon.load(WORDLISTS / "it.txt", letters).words) > 150


class ScriptedSession:
    """Stands in for the ONNX sequence model: returns the next scripted row of log-posteriors each frame."""

    def __init__(self, rows):
        self.rows = list(rows)

    def run(self, _names, _feeds):
        return [self.rows.pop(0)[None, None][0]]


def scripted_reader(rows, lexicon):
    from realtime.sequence_reader import SequenceReader

    r = SequenceReader.__new__(SequenceReader)  # no model file: the session is scripted
    r.classes, r.blank, r.space, r.dim, r.window = CLASSES, 0, CLASSES.index(" "), 2, 4
    r.manifest = type("M", (), {"input_name": "x"})()
    r.frames = np.zeros((4, 5), np.float32)
    r.session, r.step, r.state = ScriptedSession(rows), None, None  # the window path, its session scripted
    r.text, r.prev_k, r.prev_x, r.prev_t = "", 0, None, None
    r.lexicon, r.word_start, r.word_logp, r.whole_word = lexicon, 0, [], True
    r.mask_name, r.seen, r.valid = None, 0, np.zeros((1, 4), np.float32)
    return r


def test_the_streaming_reader_corrects_each_word_when_it_ends():
    lex = Lexicon(["hello", "bell"], [c for c in CLASSES if c.isalpha() and len(c) == 1])
    word1 = frames([{"H": 0.9}, {"E": 0.9}, {"L": 0.9}, {"L": 0.9}, {"P": 0.5, "O": 0.45}])
    space = frames([{" ": 0.9}])
    word2 = frames([{"B": 0.9}, {"O": 0.5, "E": 0.45}, {"L": 0.9}, {"L": 0.9}])  # read BOLL, E nearly as likely
    rows = list(word1) + list(space) + list(word2)
    r = scripted_reader(rows, lex)
    for i in range(len(rows)):
        r.update(np.zeros(2, np.float32), i / 30)
    assert r.text == "HELLO BOLL"  # the first word corrected at the space; the second still open
    r.finish()
    assert r.text == "HELLO BELL"  # the end of the input ends the word too
    plain = scripted_reader(rows, None)
    for i in range(len(rows)):
        plain.update(np.zeros(2, np.float32), i / 30)
    plain.finish()
    assert plain.text == "HELLP BOLL"  # without a lexicon: as read


def test_lexicon_needs_words_spelled_in_time_not_photos():
    from realtime.pipeline import PipelineOptions

    PipelineOptions(lexicon=str(WORDLISTS / "en.txt")).check()  # the letter reader takes it too
    with pytest.raises(ValueError, match="not independent photos"):
        PipelineOptions(lexicon=str(WORDLISTS / "en.txt"), static=True).check()


LETTERS = list("ACEHKLNOPSTXY")


def held(speller, letter_probs: dict, t0: float, hold: float = 0.8, fps: int = 30) -> float:
    """Frames of one held reading (``letter_probs``: letter -> probability) from t0; returns the time after."""
    from realtime.pipeline import smooth_and_spell
    from realtime.speller import ProbabilitySmoother

    p = np.full(len(LETTERS), 1e-3)
    for letter, q in letter_probs.items():
        p[LETTERS.index(letter)] = q
    p /= p.sum()
    smoother = ProbabilitySmoother(0.0)
    for i in range(int(hold * fps)):
        smooth_and_spell(p, t0 + i / fps, LETTERS, smoother, speller)
    return t0 + hold


def gap(speller, t0: float, seconds: float = 0.4, fps: int = 30) -> float:
    from realtime.pipeline import smooth_and_spell
    from realtime.speller import ProbabilitySmoother

    for i in range(int(seconds * fps)):
        smooth_and_spell(None, t0 + i / fps, LETTERS, ProbabilitySmoother(0.0), speller)
    return t0 + seconds


def test_the_letter_reader_corrects_a_word_from_its_letters_holds_and_keeps_a_sure_word_outside_the_list():
    from realtime.lexicon import LETTER_BONUS, WordListSpeller

    lex = Lexicon(["CAT", "HELLO"], LETTERS, bonus=LETTER_BONUS)
    s = WordListSpeller(None, lex, LETTERS)
    t = 0.0
    for probs in ({"C": 0.9}, {"E": 0.62, "A": 0.35}, {"T": 0.9}):  # A held, but read as E a little more surely
        t = gap(s, held(s, probs, t))
    assert s.text == "CET"
    t = gap(s, t, 2.0)  # the hand gone: a space ends the word, which the list corrects
    assert s.text == "CAT "
    for probs in ({"C": 0.97}, {"X": 0.97}, {"T": 0.97}):  # a name: every letter sure, one letter from CAT
        t = gap(s, held(s, probs, t))
    s.finish()
    assert s.text == "CAT CXT"  # kept: the list corrects, it does not forbid


def test_the_letter_readers_word_list_follows_deletions():
    from realtime.lexicon import LETTER_BONUS, WordListSpeller

    s = WordListSpeller(None, Lexicon(["CAT"], LETTERS, bonus=LETTER_BONUS), LETTERS)
    t = gap(s, held(s, {"C": 0.9}, 0.0))
    t = gap(s, held(s, {"O": 0.9}, t))
    s.backspace()  # the O was a mistake: deleted, its reading with it
    for probs in ({"E": 0.62, "A": 0.35}, {"T": 0.9}):
        t = gap(s, held(s, probs, t))
    assert s.text == "CET" and len(s.word_letters) == 3
    s.finish()
    assert s.text == "CAT"
    s.clear()
    assert s.text == "" and s.word_start == 0 and s.word_letters == []


def test_held_letter_frames_are_distributions_with_a_blank_between_letters():
    from realtime.lexicon import EXTRA_LETTER, MISSED_LETTER, held_letter_frames

    frames = np.exp(held_letter_frames([np.array([0.7, 0.2, 0.1]), np.array([0.1, 0.1, 0.8])]))
    assert frames.shape == (4, 4) and np.allclose(frames.sum(1), 1)
    assert np.isclose(frames[0, 0], EXTRA_LETTER) and np.isclose(frames[1, 0], 1 - MISSED_LETTER)
    assert frames[0, 1] > frames[0, 2] > frames[0, 3] and frames[2, 3] == frames[2].max()


def test_a_letter_typed_as_the_next_reading_begins_keeps_its_own_hold():
    """The speller types a held letter when the next reading is confirmed (two frames of three): by then the reading
    has moved on, but the letter's hold is the frames of its own reading."""
    from realtime.lexicon import LETTER_BONUS, WordListSpeller

    s = WordListSpeller(None, Lexicon(["CAT"], LETTERS, bonus=LETTER_BONUS), LETTERS)
    t = held(s, {"C": 0.9}, 0.0, hold=0.8)
    t = held(s, {"A": 0.9}, t, hold=0.3)  # shorter than the hold: C is typed as A begins, A is not typed
    assert s.text == "C" and len(s.word_letters) == 1
    assert LETTERS[int(np.argmax(s.word_letters[0]))] == "C"


def test_a_word_spelled_partly_before_a_rebuild_or_reached_back_into_is_not_rescored():
    """Its first letters have no holds here: rescoring only the rest would spell another word (HEL + TO -> HETO)."""
    from realtime.lexicon import LETTER_BONUS, WordListSpeller

    lex = Lexicon(["HELLO", "TO", "CAT"], LETTERS, bonus=LETTER_BONUS)
    s = WordListSpeller(None, lex, LETTERS)
    s.resume("HEL")
    t = 0.0
    for probs in ({"T": 0.62, "L": 0.35}, {"O": 0.9}):
        t = gap(s, held(s, probs, t))
    t = gap(s, t, 2.0)
    assert s.text == "HELTO "  # as typed: neither HETO nor a guess from half a word
    for probs in ({"C": 0.9}, {"E": 0.62, "A": 0.35}, {"T": 0.9}):
        t = gap(s, held(s, probs, t))
    s.finish()
    assert s.text == "HELTO CAT"  # the next word, spelled whole here, is rescored
    s.clear()
    t = gap(s, held(s, {"T": 0.9}, t))
    t = gap(s, t, 2.0)
    s.backspace()  # back into the word before its space
    t = gap(s, held(s, {"O": 0.62, "E": 0.35}, t))
    s.finish()
    assert s.text == "TO"


def test_a_letter_read_surely_is_never_dropped_to_make_a_list_word():
    """CATS, every letter sure, is not read as CAT: dropping a typed letter costs more than a list word earns."""
    from realtime.lexicon import EXTRA_LETTER, LETTER_BONUS, WordListSpeller

    assert LETTER_BONUS < np.log((1 - EXTRA_LETTER) / EXTRA_LETTER)
    s = WordListSpeller(None, Lexicon(["CAT", "HAT"], LETTERS, bonus=LETTER_BONUS), LETTERS)
    t = 0.0
    for letter in "CATS":
        t = gap(s, held(s, {letter: 0.998}, t))
    t = gap(s, t, 2.0)
    for letter in "CAAT":  # a letter typed twice while it was held unsure of itself: the list may drop it
        t = gap(s, held(s, {letter: 0.62, "H" if letter == "C" else "E": 0.35}, t))
    s.finish()
    assert s.text.startswith("CATS ")
