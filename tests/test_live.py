"""The live command's lifecycle: Ctrl-C stops cleanly and prints the text; no display is a clear error."""
import os
import signal
import subprocess
import sys
import time

import numpy as np


def blank_video(path, frames=3000):
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (320, 240))
    frame = np.zeros((240, 320, 3), np.uint8)
    for _ in range(frames):
        w.write(frame)
    w.release()


def test_ctrl_c_stops_cleanly_and_prints_the_text(tmp_path):
    video = tmp_path / "long.mp4"
    blank_video(video)
    jsonl = tmp_path / "f.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "realtime.cli", "live", "--no-window", "--source", str(video),
                          "--jsonl", str(jsonl)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and sum(f.stat().st_size for f in tmp_path.glob(".f.jsonl.*.partial")) < 2000:
        time.sleep(0.2)  # wait until frames are flowing (into the file that replaces f.jsonl at the end)
    assert p.poll() is None, "live ended before it could be interrupted"
    assert not jsonl.exists()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err  # as shells expect of Ctrl-C, after printing the text so far
    assert out.endswith("\n")
    assert "Traceback" not in err
    assert "frames in" in err  # the closing summary
    assert not list(tmp_path.glob("*.partial"))
    lines = jsonl.read_text().splitlines()
    assert 0 < len(lines) < 3000  # stopped early, and every written line is whole
    import json

    for line in lines:
        json.loads(line)


def test_window_without_a_display_is_a_clear_error():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run([sys.executable, "-m", "realtime.cli", "live", "--source", "0"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 2 and "--no-window" in r.stderr and "Traceback" not in r.stderr


def test_ctrl_c_while_starting_exits_130_and_keeps_the_old_file(tmp_path):
    video = tmp_path / "long.mp4"
    blank_video(video, frames=300)
    jsonl = tmp_path / "f.jsonl"
    jsonl.write_text("an earlier recording\n")
    p = subprocess.Popen([sys.executable, "-m", "realtime.cli", "live", "--no-window", "--source", str(video),
                          "--jsonl", str(jsonl)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)  # still importing and loading the models
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err
    assert jsonl.read_text() == "an earlier recording\n"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["f.jsonl", "long.mp4"]


def live(*args):
    return subprocess.run([sys.executable, "-m", "realtime.cli", "live", "--no-window", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_jsonl_is_left_alone_when_the_source_cannot_be_opened(tmp_path):
    old = tmp_path / "old.jsonl"
    old.write_text('{"an": "earlier recording"}\n')
    for target in (old, tmp_path / "new.jsonl"):
        r = live("--source", tmp_path / "no-such-clip.mp4", "--jsonl", target)
        assert r.returncode == 2 and "no-such-clip.mp4" in r.stderr
    assert old.read_text() == '{"an": "earlier recording"}\n'
    assert sorted(f.name for f in tmp_path.iterdir()) == ["old.jsonl"]  # no 0-byte file, no leftover


def test_jsonl_replaces_the_file_only_at_the_end(tmp_path):
    from realtime.live import PartialFile

    out = tmp_path / "frames.jsonl"
    out.write_text("old\n")
    with PartialFile(out) as f:
        f.write_line("{}")
        assert out.read_text() == "old\n"  # while running, the earlier file is intact
    assert out.read_text() == "{}\n"
    with PartialFile(out):
        pass  # nothing written: nothing replaced, nothing left behind
    assert out.read_text() == "{}\n" and [p.name for p in tmp_path.iterdir()] == ["frames.jsonl"]


def _atoms(buf, start, end):
    """Top-level MP4 boxes: (kind, offset, size, header size)."""
    import struct

    i = start
    while i < end:
        size, kind = struct.unpack(">I4s", buf[i:i + 8])
        hdr = 8
        if size == 1:
            size, hdr = struct.unpack(">Q", buf[i + 8:i + 16])[0], 16
        elif size == 0:
            size = end - i
        yield kind.decode("latin1"), i, size, hdr
        i += size


def faststart(data: bytes) -> bytes:
    """Move the index (moov) in front of the media data, as streaming mp4s have it (qt-faststart, stco only)."""
    import struct

    top = list(_atoms(data, 0, len(data)))
    _, off, size, _ = next(a for a in top if a[0] == "moov")
    moov = bytearray(data[off:off + size])

    def shift_offsets(start, end):
        for kind, o, n, hdr in _atoms(moov, start, end):
            if kind in ("trak", "mdia", "minf", "stbl"):
                shift_offsets(o + hdr, o + n)
            elif kind == "stco":
                for k in range(struct.unpack(">I", moov[o + 12:o + 16])[0]):
                    q = o + 16 + 4 * k
                    struct.pack_into(">I", moov, q, struct.unpack(">I", moov[q:q + 4])[0] + len(moov))
    shift_offsets(8, len(moov))
    out = bytearray()
    for kind, o, n, _ in top:
        if kind == "mdat":
            out += moov
        if kind != "moov":
            out += data[o:o + n]
    return bytes(out)


def cut_video(path, frames=90):
    """A 90-frame mp4 with its index in front, cut off part way: it opens and plays its first part."""
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        w.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    w.release()
    whole = faststart(path.read_bytes())
    path.write_bytes(whole[:len(whole) * 45 // 100])


def test_a_cut_off_video_says_so_and_fails_with_strict(tmp_path):
    video = tmp_path / "cut.mp4"
    cut_video(video)
    r = live("--source", video)
    assert r.returncode == 0, r.stderr
    assert "the file ended early after" in r.stderr and "of 90 frames" in r.stderr
    assert "partial file" not in r.stderr and "W0000" not in r.stderr  # FFmpeg's and TFLite's noise, hidden
    r = live("--source", video, "--strict")
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1].startswith("fingerspell: error: --strict: the file ended early")
    r = live("--source", video, "--verbose")
    assert "partial file" in r.stderr  # --verbose shows the libraries' logs


def test_a_whole_video_is_not_reported_as_cut_off(tmp_path):
    video = tmp_path / "whole.mp4"
    blank_video(video, frames=45)
    r = live("--source", video, "--strict")
    assert r.returncode == 0, r.stderr
    assert "ended early" not in r.stderr and "45 frames in" in r.stderr


def test_a_bad_camera_gives_one_line_and_no_library_noise():
    r = live("--source", "97")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["fingerspell: error: cannot open camera 97"]


def test_an_empty_result_says_no_hand_was_seen(tmp_path):
    video = tmp_path / "blank.mp4"
    blank_video(video, frames=30)
    r = live("--source", video)
    assert r.returncode == 0 and r.stdout == "\n"
    assert "no text: no hand was seen in any of the 30 frames" in r.stderr


class _Result:
    def __init__(self, t, letter, confidence=0.9):
        self.t, self.letter, self.confidence = t, letter, confidence
        self.hand = object() if letter else None


def test_an_empty_result_says_letters_were_not_held_long_enough():
    from realtime.live import ReadingStats

    stats = ReadingStats(min_confidence=0.6)
    for i in range(30):  # B for 0.3 s, no hand, A for 0.15 s, at 30 frames per second
        stats.add(_Result(i / 30, "B" if i < 10 else (None if i < 25 else "A")))
    msg = stats.why_empty(hold_s=0.5)
    assert "letters were seen" in msg and "B, for 0.30 s" in msg and "held for 0.5 s (--hold)" in msg
    unsure = ReadingStats(min_confidence=0.6)
    unsure.add(_Result(0.0, "B", confidence=0.3))
    assert "no letter was read with confidence 0.6" in unsure.why_empty(0.5)
