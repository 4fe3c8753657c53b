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
    while time.time() < deadline and (not jsonl.exists() or jsonl.stat().st_size < 2000):
        time.sleep(0.2)  # wait until frames are flowing
    assert p.poll() is None, "live ended before it could be interrupted"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "Traceback" not in err
    assert "frames in" in err  # the closing summary
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
