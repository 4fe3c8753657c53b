"""``--lexicon FILE``: words from a word list correct a misread letter inside a known word (issue 17).

The sequence reader types letters greedily, frame by frame. When a word ends (a space, or the end of the input),
the word's frames are rescored: every list word within two edits of the typed one is scored by its CTC
log-likelihood over those frames' posteriors (the forward algorithm), plus a fixed bonus for being a known word;
the typed word is scored the same way without the bonus. The best wins. A word outside the list is therefore
kept unless a list word explains the same frames almost as well: the list corrects, it never forbids.

This is rescoring of the greedy word, not a full prefix beam search: the candidates are the list words near the
greedy reading, which keeps it well under a millisecond a word on the CPU.

The letter reader (:class:`WordListSpeller`) has no frames of posteriors in the CTC sense: it types a letter once it
was held. Each typed letter becomes one frame, its hold's mean probabilities, with a blank frame after it, and the
word is rescored the same way; a letter frame keeps a little probability of being nothing (a letter typed that was
not meant) and a blank frame of being a letter (a letter missed), so that list words one letter longer or shorter
stay candidates.
"""
from __future__ import annotations

import os
from collections import deque
from pathlib import Path

import numpy as np

from realtime.manifest import spelled_letters
from realtime.speller import Speller, SpellerConfig

DEFAULT_BONUS = 3.0  # nats: a list word wins over the typed string unless it is e^3 (20x) less likely


def ctc_log_likelihood(logp: np.ndarray, target: list[int], blank: int) -> float:
    """log P(target | frames) under CTC: ``logp`` (T, C) log-posteriors per frame, ``target`` class indices.
    The forward algorithm over the blank-extended target, one vector step per frame."""
    logp = np.asarray(logp, np.float64)
    ext = np.full(2 * len(target) + 1, blank)
    ext[1::2] = target
    S, T = len(ext), len(logp)
    if T == 0:
        return 0.0 if not target else -np.inf
    skip = np.zeros(S, bool)  # s may come from s-2: a letter that differs from the letter before the blank
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    emit = logp[:, ext]  # (T, S)
    alpha = np.full(S, -np.inf)
    alpha[0] = emit[0, 0]
    if S > 1:
        alpha[1] = emit[0, 1]
    for t in range(1, T):
        one = np.concatenate([[-np.inf], alpha[:-1]])
        two = np.full(S, -np.inf)
        two[2:] = np.where(skip[2:], alpha[:-2], -np.inf)
        alpha = np.logaddexp(np.logaddexp(alpha, one), two) + emit[t]
    return float(np.logaddexp(alpha[-1], alpha[-2]) if S > 1 else alpha[-1])


def edit_distance(a: str, b: str, limit: int | None = None) -> int:
    """Levenshtein distance; with ``limit``, stopping early once every path exceeds it (returns limit + 1 then)."""
    if limit is not None and abs(len(a) - len(b)) > limit:
        return limit + 1
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        new = [i]
        for j, cb in enumerate(b, 1):
            new.append(min(row[j] + 1, new[j - 1] + 1, row[j - 1] + (ca != cb)))
        if limit is not None and min(new) > limit:
            return limit + 1
        row = new
    return row[-1]


class Lexicon:
    """A word list (one word a line; ``#`` comments) reduced to the words the model's letters can spell."""

    def __init__(self, words: list[str], letters: list[str], bonus: float = DEFAULT_BONUS, max_edits: int = 2):
        allowed = set(letters)
        self.words = sorted({w for w in (x.strip().upper() for x in words) if w and set(w) <= allowed})
        if not self.words:
            raise ValueError(f"the word list has no word spelled only with the model's letters {sorted(allowed)}")
        self.bonus, self.max_edits = bonus, max_edits
        self.by_length: dict[int, list[str]] = {}
        for w in self.words:
            self.by_length.setdefault(len(w), []).append(w)

    @classmethod
    def load(cls, path: str | os.PathLike, letters: list[str], **kw) -> "Lexicon":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no word list at {path}: give a text file with one word a line")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise ValueError(f"{path} is not a UTF-8 text file ({e})") from e
        return cls([ln.split("#", 1)[0] for ln in lines], letters, **kw)

    def candidates(self, word: str) -> list[str]:
        out = []
        for n in range(len(word) - self.max_edits, len(word) + self.max_edits + 1):
            out += [w for w in self.by_length.get(n, []) if edit_distance(word, w, self.max_edits) <= self.max_edits]
        return out

    def correct(self, word: str, logp: np.ndarray, classes: list[str], blank: int) -> str:
        """The best reading of ``word`` (as typed) given its frames' log-posteriors (T, C)."""
        if not word or len(logp) == 0:
            return word
        index = {c: i for i, c in enumerate(classes)}
        score = lambda w: ctc_log_likelihood(logp, [index[c] for c in w], blank)  # noqa: E731
        best, best_score = word, score(word)
        for cand in self.candidates(word):  # the typed word itself, if listed, earns the bonus too
            s = score(cand) + self.bonus
            if s > best_score:
                best, best_score = cand, s
        return best


# The letter reader's words as frames: how likely a typed letter was not meant (typed on the way to the next one),
# how likely a letter was missed between two typed ones, and a known word's bonus. Chosen on validation sets of NOOR
# (held photos, a letter model trained without NOOR; training/lexicon_choice.py, docs/lexicon-choice.md): the largest
# bonus that raised the letter error rate on strings outside the list by no more than 1.5 points (bonus 9: 3.8
# points), so names are still spelled, and below log((1 - extra) / extra) = 6.2 nats, so that a letter read surely
# is never dropped to make a list word (BOOKS is not read as BOOK).
EXTRA_LETTER, MISSED_LETTER, LETTER_BONUS = 0.002, 0.5, 6.0


def held_letter_frames(letter_probs: list[np.ndarray], extra: float = EXTRA_LETTER,
                       missed: float = MISSED_LETTER) -> np.ndarray:
    """Each typed letter's probabilities over the letters -> (2n, 1 + letters) log-posteriors for
    :meth:`Lexicon.correct`: a frame of the letter (blank: ``extra``), then a blank frame (letters: ``missed`` in
    all, spread as the letter's own probabilities)."""
    rows = []
    for p in letter_probs:
        p = np.maximum(np.asarray(p, np.float64), 1e-9)
        p = p / p.sum()
        rows.append(np.concatenate([[extra], (1 - extra) * p]))
        rows.append(np.concatenate([[1 - missed], missed * p]))
    return np.log(np.array(rows)) if rows else np.zeros((0, 1))


class WordListSpeller(Speller):
    """``--lexicon`` with the letter reader: the speller as it is, and when a word ends (a space, or the end of the
    input) the word is rescored against the list (:meth:`Lexicon.correct`) from each typed letter's hold
    (:func:`held_letter_frames`). Probabilities come with each frame (``update(..., probs=)``, over ``labels``).
    A word only partly spelled here (typed before a rebuild, or reached back into with backspace) is not rescored:
    the letters before have no holds to weigh."""

    MAX_HOLD_FRAMES = 300  # frames of one reading kept for its letter's mean (10 s at 30 frames/s)

    def __init__(self, config: SpellerConfig | None, lexicon: "Lexicon", labels: list[str],
                 extra_letter: float = EXTRA_LETTER, missed_letter: float = MISSED_LETTER):
        super().__init__(config or SpellerConfig())
        self.lexicon = lexicon
        self.extra_letter, self.missed_letter = extra_letter, missed_letter  # see held_letter_frames
        self.letters = spelled_letters(labels)
        self.classes = ["<blank>"] + self.letters
        self._columns = np.array([list(labels).index(l) for l in self.letters])
        # (time, probabilities) since the current reading began
        self._frames: deque[tuple[float, np.ndarray]] = deque(maxlen=self.MAX_HOLD_FRAMES)
        self._typed: list[np.ndarray] = []  # the holds of letters typed this frame, in order
        self.word_start, self.word_letters = 0, []  # where the word being spelled begins in text, its letters' holds
        self.whole_word = True  # False: the word's first letters were typed before (a rebuild, a backspace)

    def update(self, t: float, letter: str | None, confidence: float = 1.0, hand_present: bool = True,
               probs: np.ndarray | None = None) -> str | None:
        if probs is not None:
            self._frames.append((t, np.asarray(probs)[self._columns]))
        before = self.text
        typed = super().update(t, letter, confidence, hand_present)
        while self._frames and self._frames[0][0] < self._since:  # the readings before this one are done with
            self._frames.popleft()
        if self.text != before and self.text.startswith(before):  # typed this frame: a letter, a space, or both
            added, self.text = self.text[len(before):], before
            for ch in added:
                self.text += ch
                if ch == " ":
                    self._end_word(len(self.text) - 1)
                elif self._typed:
                    self.word_letters.append(self._typed.pop(0))
        self._typed = []
        return typed

    def _tick(self, until: float) -> str | None:
        """A letter typed: its hold is the frames of its reading, from its first frame until ``until`` (here, before
        a change moves on to the next reading)."""
        typed = super()._tick(until)
        if typed and typed != " ":
            held = [p for ft, p in self._frames if self._since <= ft <= until]
            self._typed.append(np.mean(held, axis=0) if held else np.ones(len(self.letters)))
        return typed

    def _end_word(self, end: int) -> None:
        """The word in ``text[word_start:end]`` ended: rescored against the list (when every letter of it has its
        hold); what follows it is kept."""
        word = self.text[self.word_start:end]
        if word and self.whole_word and len(self.word_letters) == len(word):
            fixed = self.lexicon.correct(word, held_letter_frames(self.word_letters, self.extra_letter,
                                                                  self.missed_letter), self.classes, 0)
            self.text = self.text[:self.word_start] + fixed + self.text[end:]
            end += len(fixed) - len(word)
        self.word_start, self.word_letters, self.whole_word = end + 1, [], True

    def finish(self) -> None:
        if self.text and not self.text.endswith(" "):
            self._end_word(len(self.text))
            self.word_start = len(self.text)

    def backspace(self) -> None:
        removed = self.text[-1:]
        super().backspace()
        if len(self.text) < self.word_start:  # back into the word before: the rest of it is not rescored
            self._part_word()
        elif removed and removed != " " and self.word_letters:
            self.word_letters.pop()

    def clear(self) -> None:
        super().clear()
        self.word_start, self.word_letters, self.whole_word = 0, [], True

    def resume(self, text: str) -> None:
        super().resume(text)
        self._part_word()

    def _part_word(self) -> None:
        """The text ends inside a word whose first letters have no holds here: that word is not rescored (its
        letters and holds can never line up), the next one is."""
        self.word_start, self.word_letters = self.text.rfind(" ") + 1, []
        self.whole_word = self.word_start == len(self.text)
