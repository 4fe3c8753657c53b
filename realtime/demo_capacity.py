"""How many webcam streams the demo server runs at once, and how long a waiting one should wait.

:class:`StreamCapacity` admits a tab's stream by the load the running streams measurably put on the CPU cores,
and tells a stream that waits its place in line and an expected wait; :func:`estimate_wait` makes that estimate
from the streams running and the measured durations of recent ones, and :func:`patch_queue_estimates` puts the
same estimate into Gradio's own queue (a tab waiting for one of the ``--max-streams`` places). Apart from the
sessions it admits because it is a policy over all of them, not the state of one tab.
"""
from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from collections import deque

from realtime.demo_session import RESTART_GAP_S, LiveSession, duration_words

log = logging.getLogger("fingerspell.demo")

OVERRUN_S = 10.0  # a stream past its time limit is told to stop: expected to end within this
RECENT_STREAMS = 20  # the wait estimate uses the durations of the last this many streams


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _about(seconds: float) -> str:
    if seconds < 5:
        return "a few seconds"
    if seconds < 90:
        return f"about {5 * round(seconds / 5):.0f} seconds"
    return f"about {seconds / 60:.0f} minutes"


def stopped(session: LiveSession, now: float) -> bool:
    """Whether ``session``'s stream stopped: no frame for RESTART_GAP_S, processed or dropped, and none being
    processed. A model change builds a new recognizer, which can take longer: its stream keeps its place meanwhile."""
    return not session.lock.locked() and (session.seen is None or now - session.seen > RESTART_GAP_S)


def stream_remaining(elapsed: float, recent: list[float], time_limit: float | None) -> float:
    """Seconds a stream that has run ``elapsed`` s is expected to go on: the median of the recent streams that ran
    longer than it has, else up to the time limit; past the limit (it is told to stop) OVERRUN_S."""
    longer = [d for d in recent if d > elapsed]
    if longer:
        return statistics.median(longer) - elapsed
    if time_limit is not None and elapsed < time_limit:
        return time_limit - elapsed
    return OVERRUN_S


def estimate_wait(ahead: int, running_elapsed: list[float], slots: int, recent: list[float],
                  time_limit: float | None) -> float:
    """Seconds until a stream with ``ahead`` streams before it in the queue starts: each of the ``slots`` places is
    free when its running stream ends (stream_remaining); each stream ahead takes the first free place and keeps it
    for a typical stream (the median of ``recent``, else the time limit)."""
    import heapq

    typical = statistics.median(recent) if recent else (time_limit if time_limit is not None else 600.0)
    if time_limit is not None:
        typical = min(typical, time_limit + OVERRUN_S)
    free = [stream_remaining(e, recent, time_limit) for e in running_elapsed]
    free += [0.0] * max(0, slots - len(free))
    heapq.heapify(free)
    if not free:
        return 0.0
    for _ in range(ahead):
        heapq.heappush(free, heapq.heappop(free) + typical)
    return max(0.0, heapq.heappop(free))


class StreamCapacity:
    """Admits webcam streams by measured load. A running stream costs (its median server milliseconds per frame) x
    (the frames per second the page sends) of a CPU core; a new stream starts only while the running ones leave
    room for one more within ``cores`` x ``headroom``. On 2 cores four streams used to run at 1-2.5 frames/s each,
    too few to spell: now the later ones wait, in order, and see their place and a wait estimate, until one ends.
    The milliseconds are measured under the machine's real load, other programs included.

    It also measures how long streams last (first to last frame, waits and overruns included: as long as the stream
    holds its place in Gradio's queue), for the wait estimates here and in Gradio's queue (patch_queue_estimates)."""

    def __init__(self, fps: float = 10.0, cores: int | None = None, headroom: float = 0.8,
                 default_ms: float = 60.0, time_limit: float | None = None):
        self.fps, self.cores = fps, cores or os.cpu_count() or 1
        self.budget, self.default_ms = self.cores * headroom, default_ms
        self.time_limit = time_limit
        self.lock = threading.Lock()
        self.running: dict[int, LiveSession] = {}
        self.waiting: dict[int, LiveSession] = {}  # in the order they came
        self.recent: deque[float] = deque(maxlen=RECENT_STREAMS)  # seconds, of the streams that ended
        self._streams: dict[int, list] = {}  # id -> [session, its stream's start, its last frame]

    def ms(self, session: LiveSession) -> float:
        return statistics.median(session.server_ms) if session.server_ms else self.default_ms

    def load(self, session: LiveSession) -> float:
        """Cores a stream uses: its seconds per frame x frames per second."""
        return self.ms(session) / 1000 * self.fps

    def track(self, session: LiveSession) -> None:
        """Note a frame of ``session``'s stream (after LiveSession.over_time): the durations of the streams that
        ended go into ``recent``."""
        with self.lock:
            entry = self._streams.get(id(session))
            if entry is not None and entry[0] is session and entry[1] != session._stream_start:
                self.recent.append(entry[2] - entry[1])  # Stop, then Record: the previous stream ended
                entry = None
            if entry is None or entry[0] is not session:
                self._streams[id(session)] = [session, session._stream_start, session._last_frame]
            else:
                entry[2] = session._last_frame
            self._expire(session.clock())

    def _expire(self, now: float) -> None:
        for key, (s, start, last) in list(self._streams.items()):
            if stopped(s, now):
                self.recent.append(last - start)
                del self._streams[key]

    def release(self, session: LiveSession) -> None:
        """``session``'s stream no longer runs (past its time limit): its room goes to the next one."""
        with self.lock:
            self.running.pop(id(session), None)
            self.waiting.pop(id(session), None)

    def wait_s(self, ahead: int, running: list[LiveSession], now: float) -> float:
        elapsed = [now - s._stream_start for s in running if s._stream_start is not None]
        return estimate_wait(ahead, elapsed, len(running), list(self.recent), self.time_limit)

    def admit(self, session: LiveSession) -> str | None:
        """None if ``session``'s stream may run now, else the message that says why it waits: its place in line
        and how long it should wait. Streams start in the order they came."""
        with self.lock:
            for queue in (self.running, self.waiting):
                for key, s in list(queue.items()):
                    if s is not session and stopped(s, s.clock()):
                        del queue[key]
            if id(session) in self.running:
                return None
            used = sum(self.load(s) for s in self.running.values())
            new = (statistics.median(self.ms(s) for s in self.running.values()) if self.running else
                   self.default_ms) / 1000 * self.fps
            ahead = [s for key, s in self.waiting.items() if key != id(session)]
            if id(session) in self.waiting:
                ahead = ahead[:list(self.waiting).index(id(session))]
            if not ((self.running and used + new > self.budget) or ahead):
                self.waiting.pop(id(session), None)
                self.running[id(session)] = session
                return None
            self.waiting.setdefault(id(session), session)
            n, place = len(self.running), len(ahead) + 1
            wait = self.wait_s(len(ahead), list(self.running.values()), session.clock())
            return (f"**The server is at capacity:** {n} stream{'s' if n > 1 else ''} use about {used:.1f} of its "
                    f"{self.cores} CPU cores at {self.fps:.0f} frames/s, and one more would slow every stream "
                    f"below what spelling needs. **You are {_ordinal(place)} in line; expected wait "
                    f"{_about(wait)}** ({self._basis()}). Yours starts by itself: keep the camera on.")

    def _basis(self) -> str:
        if self.recent:
            return f"streams here lasted {_about(statistics.median(self.recent))} lately"
        return (f"a stream runs at most {duration_words(self.time_limit)}" if self.time_limit is not None else
                "no stream has ended yet")


def patch_queue_estimates(app, capacity: StreamCapacity, concurrency_id: str = "live") -> bool:
    """A tab waiting in Gradio's queue for a stream place sees 'queue: 2/3 | 4.1/75.0s': its place and Gradio's
    estimate of its wait. Gradio assumes every running stream lasts its whole time limit (10 minutes by default) and
    knows no wait before the first stream ended; here the estimate comes from estimate_wait instead: the streams
    running and how long they have run, the places, and the measured durations of recent streams. It is sent again
    whenever the queue moves. Gradio has no setting for this: its queue's broadcast is replaced for this app's
    stream group (other groups, and any failure, keep Gradio's own). False where this Gradio has no such queue."""
    queue = getattr(app, "_queue", None)
    original = getattr(queue, "broadcast_estimations", None)
    try:
        from gradio.server_messages import EstimationMessage
    except ImportError:
        return False
    if original is None or not hasattr(queue, "event_queue_per_concurrency_id"):
        return False

    def broadcast_estimations(cid, after=None):
        if cid != concurrency_id:
            return original(cid, after)
        try:
            group = queue.event_queue_per_concurrency_id[cid]
            now = time.time()
            elapsed = [now - t for times in group.start_times_per_fn.values() for t in times]
            waiting = list(group.queue)
            slots = group.concurrency_limit or len(elapsed) + len(waiting)
            recent = list(capacity.recent)
            for rank, event in enumerate(waiting):
                if after is None or rank >= after:
                    eta = estimate_wait(rank, elapsed, slots, recent, capacity.time_limit)
                    queue.send_message(event, EstimationMessage(rank=rank, rank_eta=round(eta, 1),
                                                                queue_size=len(waiting)))
        except Exception:  # Gradio changed: its own estimate
            log.exception("wait estimate failed; Gradio's own is shown")
            return original(cid, after)
        return None

    queue.broadcast_estimations = broadcast_estimations
    return True
