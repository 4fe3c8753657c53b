"""The demo server's temporary files (``fingerspell demo``): one folder per server for every file its page makes.

Uploads, the Upload tab's result images and the Calibrate tab's profile files all go into one folder of the
server's own (:class:`DemoFiles`, which Gradio is pointed at through GRADIO_TEMP_DIR). It is removed whole when the
server stops, and a marker that names the server's process lets a later server remove what a killed one left
(:func:`remove_stale_folders`), and nothing else. Kept apart from the page so that the per-tab sessions can put
their files there without importing the page.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

FILES_PREFIX = "fingerspell-demo-"  # the name of every folder a demo server makes for its files
FILES_MARKER = ".fingerspell-demo"  # in that folder: {"pid": the server's process, "started": its start time}
# The running server's folder (set by realtime.demo.launch; None otherwise), where a tab's profile files go too.
current: DemoFiles | None = None


def _process_started(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (Linux /proc), which tells a PID reused by another process
    from the one that wrote a marker; None where /proc has no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (PermissionError): alive
        pass
    now = _process_started(pid)
    return not (started and now and now != started)  # the PID now belongs to a later process


def remove_stale_folders(parent: Path) -> list[Path]:
    """Remove what killed demo servers left in ``parent``: only folders named FILES_PREFIX... that hold a marker
    written by this user's demo server whose process is gone. Anything else is left alone. The folders removed."""
    removed = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for folder in entries:
        if not folder.name.startswith(FILES_PREFIX) or folder.is_symlink() or not folder.is_dir():
            continue
        try:
            if folder.stat().st_uid != os.getuid():
                continue
            mark = json.loads((folder / FILES_MARKER).read_text())
            pid, started = int(mark["pid"]), mark.get("started")
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            continue  # no marker of ours: not a folder this demo made
        if pid == os.getpid() or _alive(pid, started):
            continue
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
    return removed


class DemoFiles:
    """One folder per demo server for every file its page makes: uploads, the Upload tab's result images, profile
    files. Gradio is pointed at it (GRADIO_TEMP_DIR); it is removed whole, folders included, when the server stops,
    and a later server removes what a killed one left (a marker names the server's process). It is made inside
    ``parent``: $GRADIO_TEMP_DIR as it was, else the system's temp folder."""

    def __init__(self, parent: str | Path | None = None):
        import tempfile

        parent = Path(parent or os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir())
        parent.mkdir(parents=True, exist_ok=True)
        self.stale_removed = remove_stale_folders(parent)
        self.path = Path(tempfile.mkdtemp(prefix=f"{FILES_PREFIX}{os.getpid()}-", dir=parent))
        (self.path / FILES_MARKER).write_text(json.dumps({"pid": os.getpid(),
                                                          "started": _process_started(os.getpid())}))

    def prune_empty(self, min_age_s: float = 60.0) -> int:
        """Remove the empty folders Gradio's periodic cleanup leaves (it deletes files, not their folders), once
        they are ``min_age_s`` old (a folder just made is about to get its file): how many."""
        n, now = 0, time.time()
        folders = sorted((p for p in self.path.rglob("*") if p.is_dir() and not p.is_symlink()),
                         key=lambda p: len(p.parts), reverse=True)  # the deepest first
        ages = {}
        for folder in folders:  # before any is removed: removing one changes its parent's time
            try:
                ages[folder] = now - folder.stat().st_mtime
            except OSError:
                pass
        for folder in folders:
            try:
                if ages.get(folder, 0.0) >= min_age_s and not any(folder.iterdir()):
                    folder.rmdir()
                    n += 1
            except OSError:
                pass
        return n

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)
