"""The spelling state machine on scripted letter sequences (time in seconds, 30 FPS)."""
import numpy as np
import pytest

from realtime.speller import ProbabilitySmoother, Speller, SpellerConfig

DT = 1 / 30


def play(speller, script, t0=0.0):
    """script: list of (letter or None for 'no hand' or '?' for unsure, seconds)."""
    t = t0
    for letter, seconds in script:
        for _ in range(int(round(seconds / DT))):
            if letter is None:
                speller.update(t, None, 0.0, hand_present=False)
            elif letter == "?":
                speller.update(t, "A", 0.2, hand_present=True)
            else:
                speller.update(t, letter, 0.95, hand_present=True)
            t += DT
    return t


def make(**kw):
    return Speller(SpellerConfig(**{"hold_s": 0.5, "release_s": 0.2, "space_after_s": 1.5, "min_confidence": 0.6, **kw}))


def test_letter_needs_the_hold_time():
    s = make()
    play(s, [("A", 0.4)])
    assert s.text == ""
    play(s, [("A", 0.2)], t0=0.4)
    assert s.text == "A"


def test_holding_a_letter_commits_it_once():
    s = make()
    play(s, [("B", 3.0)])
    assert s.text == "B"


def test_double_letter_needs_a_release():
    s = make()
    play(s, [("L", 0.7), ("L", 2.0)])
    assert s.text == "L"
    s = make()
    play(s, [("L", 0.7), ("?", 0.3), ("L", 0.7)])  # an unsure shape for 0.3 s re-arms L
    assert s.text == "LL"
    s = make()
    play(s, [("L", 0.7), (None, 0.3), ("L", 0.7)])  # lowering the hand re-arms L
    assert s.text == "LL"
    s = make()
    play(s, [("L", 0.7), ("?", 0.1), ("L", 0.7)])  # a flicker shorter than release_s does not
    assert s.text == "L"


def test_hello_with_flicker():
    s = make()
    play(s, [("H", 0.7), ("E", 0.1), ("H", 0.1), ("E", 0.6), ("L", 0.7), (None, 0.3), ("L", 0.7), ("O", 0.7)])
    assert s.text == "HELLO"


def test_space_once_after_the_hand_is_gone():
    s = make()
    t = play(s, [("H", 0.7), ("I", 0.7), (None, 4.0)])
    assert s.text == "HI "
    play(s, [("Y", 0.7), (None, 1.0)], t0=t)
    assert s.text == "HI Y"  # gone for less than space_after: no space


def test_no_space_at_the_start_and_no_double_space():
    s = make()
    t = play(s, [(None, 3.0)])
    assert s.text == ""
    t = play(s, [("A", 0.7), (None, 2.0)], t0=t)
    t = play(s, [("?", 0.5), (None, 2.0)], t0=t)  # a hand that signs nothing, then gone again
    assert s.text == "A "


def test_low_confidence_is_never_committed():
    s = make()
    play(s, [("?", 3.0)])
    assert s.text == ""


def test_backspace_and_clear():
    s = make()
    play(s, [("A", 0.7), ("B", 0.7)])
    s.backspace()
    assert s.text == "A"
    s.clear()
    assert s.text == ""


@pytest.mark.parametrize("fps", [10, 30, 120])
def test_smoother_time_constant_independent_of_frame_rate(fps):
    sm = ProbabilitySmoother(0.2)
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    sm(a, 0.0)
    t = 0.0
    while t < 0.2 - 1e-9:
        t += 1 / fps
        p = sm(b, t)
    assert p[1] == pytest.approx(1 - np.exp(-t / 0.2), abs=1e-9)
    sm.reset()
    np.testing.assert_allclose(sm(a, 5.0), a)


def test_a_single_dropped_frame_is_not_a_release():
    s = make()
    play(s, [("A", 1.0), (None, DT), ("A", 1.0)])
    assert s.text == "A"
    s = make()
    play(s, [("A", 1.0), ("?", DT), ("A", 1.0)])
    assert s.text == "A"


def test_durations_are_right_at_a_low_frame_rate():
    """At 2 FPS one unsure frame (0.5 s, longer than release_s) cannot be told from a glitch: it does not re-arm the
    letter. Two in a row (1 s) do: the double letter counts."""
    for unsure, expected in [(1, "L"), (2, "LL")]:
        s = make()
        t = 0.0
        for reading in ["L", "L", "L", *["?"] * unsure, "L", "L", "L"]:
            s.update(t, "L", 0.1 if reading == "?" else 0.95)
            t += 0.5
        assert s.text == expected


def sample(script, fps, phase, glitches=True):
    """Frames of a continuous-time ``script`` [(letter or None, seconds)] taken at ``fps`` from ``phase``: (t, letter
    or None). With ``glitches``, the frame nearest the middle of each letter is misread (another letter, sure) or
    the hand is missed there, in turn."""
    bounds, t = [], 0.0
    for letter, seconds in script:
        bounds.append((t, t + seconds, letter))
        t += seconds
    frames = []
    k = 0
    while (ft := phase + k / fps) < t:
        frames.append([ft, next(letter for a, b, letter in bounds if a <= ft < b)])
        k += 1
    if glitches:
        for n, (a, b, letter) in enumerate(x for x in bounds if x[2]):
            mid = min(range(len(frames)), key=lambda i: abs(frames[i][0] - (a + b) / 2))
            frames[mid][1] = "Q" if n % 2 == 0 else None
    return frames


@pytest.mark.parametrize("fps", [2, 3, 5, 10, 30])
def test_a_sparse_stream_neither_doubles_nor_loses_a_letter(fps):
    """Issue 19: four streams on 2 cores ran at 1-2.5 frames/s and spelled 'WHYWWWYWYH'. Letters held 1.5 s with
    0.6 s gaps, a long gap between the two Ls, one glitch frame in each letter: HELLO at every frame rate from 2/s,
    whatever the phase of the frames."""
    script = [("H", 1.5), (None, 0.6), ("E", 1.5), (None, 0.6), ("L", 1.5), (None, 1.2), ("L", 1.5), (None, 0.6),
              ("O", 1.5), (None, 0.4)]
    for phase in np.linspace(0, 1 / fps, 10, endpoint=False):
        s = make()
        for t, letter in sample(script, fps, phase):
            s.update(t, letter, 0.95 if letter else 0.0, hand_present=letter is not None)
        assert s.text == "HELLO", (fps, phase)
