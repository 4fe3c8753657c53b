"""Frame sources: files give every frame in order, live sources only the newest; bad sources fail clearly."""
import subprocess
import sys
import time

import numpy as np
import pytest

from realtime.capture import SourceError, ThreadedCapture, _Reader, make_reader, open_source


def write_video(path, n=20):
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(n):
        w.write(np.full((48, 64, 3), i * 10, np.uint8))
    w.release()


def test_video_file_gives_every_frame_in_order(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path)
    got = []
    with open_source(path) as cap:
        while (f := cap.read()) is not None:
            got.append((f.index, int(f.image.mean())))
            time.sleep(0.005)  # a slow consumer must not lose frames of a file
    assert [i for i, _ in got] == list(range(20))
    assert np.all(np.diff([m for _, m in got]) > 0)


def test_image_folder_skips_and_counts_corrupt_files(tmp_path):
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((20, 20, 3), i, np.uint8))
    (tmp_path / "1b.jpg").write_bytes(b"\xff\xd8 truncated")
    with open_source(tmp_path) as cap:
        frames = []
        while (f := cap.read()) is not None:
            frames.append(f)
        assert len(frames) == 3 and cap.corrupt == 1


class FastLiveReader(_Reader):
    """Stands in for a camera (none here): produces numbered frames much faster than they are consumed."""

    live = True

    def __init__(self, n=200):
        self.i, self.n = 0, n

    def grab(self):
        time.sleep(0.001)
        self.i += 1
        return None if self.i > self.n else np.full((4, 4, 3), self.i % 256, np.uint8)


def test_live_source_keeps_only_the_newest_frame():
    with ThreadedCapture(FastLiveReader()) as cap:
        first = cap.read()
        time.sleep(0.1)  # a slow frame: many frames arrive meanwhile
        second = cap.read()
        assert second.index - first.index > 5  # we got the newest, not the next in a queue
        assert cap.dropped > 0


@pytest.mark.parametrize("source", ["/no/such/video.mp4", "99"])
def test_bad_sources_raise_source_error(source):
    with pytest.raises(SourceError):
        make_reader(source)


def test_cli_live_with_a_bad_source_exits_2_with_one_line():
    r = subprocess.run([sys.executable, "-m", "realtime.cli", "live", "--no-window", "--source", "/no/such/video.mp4"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    errors = [l for l in r.stderr.splitlines() if l.startswith("fingerspell: error")]
    assert len(errors) == 1 and "/no/such/video.mp4" in errors[0]


def test_files_carry_media_time_so_results_do_not_depend_on_speed(tmp_path):
    import cv2

    path = tmp_path / "v.mp4"
    write_video(path)  # 10 FPS
    with open_source(path) as cap:
        times = []
        while (f := cap.read()) is not None:
            times.append(f.media_t)
    np.testing.assert_allclose(times, np.arange(20) / 10, atol=1e-3)
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((20, 20, 3), i, np.uint8))
    with open_source(tmp_path, folder_fps=5) as cap:
        assert [cap.read().media_t for _ in range(3)] == [0.0, 0.2, 0.4]


def test_read_after_close_returns_none(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path)
    cap = open_source(path)
    assert cap.read() is not None
    cap.close()
    assert cap.read() is None


def test_redetect_looks_again_with_the_full_model_only_after_the_tracker_misses():
    """A tracker that lost the hand is helped by a second detector, after `after` frames, every `every` frames."""
    from types import SimpleNamespace

    from realtime.hands import Redetect

    hand = SimpleNamespace(area=1.0)
    seen = {"tracker": [True, False, False, False, False, False, False, False, False], "fallback": []}

    def tracker(frame):
        return [hand] if seen["tracker"].pop(0) else []

    def fallback(frame):
        seen["fallback"].append(frame)
        return [hand] if frame == 7 else []

    stage = Redetect(tracker, fallback, after=3, every=2)
    got = [bool(stage(i)) for i in range(9)]
    assert seen["fallback"] == [3, 5, 7]  # after 3 misses, then every 2nd frame, until it finds the hand
    assert got == [True, False, False, False, False, False, False, True, False]
    assert stage.redetections == 1 and stage.missed == 1  # found at frame 7; frame 8 missed again
    with pytest.raises(ValueError):
        Redetect(tracker, fallback, after=0)
