"""The load schedule runner (adascale_rl/context/load.py): what each segment runs, and nothing left behind."""

from __future__ import annotations

import time

from adascale_rl.context import load


def _wait_for(runner: load.ScheduleRunner, index: int, timeout_s: float = 30.0) -> None:
    end = time.monotonic() + timeout_s
    while runner._index < index:
        assert time.monotonic() < end, f"segment {index} never started"
        time.sleep(0.02)


def test_a_schedule_keeps_what_carries_over_and_starts_busy_processes_before_the_hog(monkeypatch):
    """Busy processes of a segment start before its memory hog (which is waited for while it touches its memory),
    a hog of the same size and the same number of busy processes carry over to the next segment (not stopped and
    started again), and every child is gone after the runner."""
    started = []
    real_enter = load.MemoryHog.__enter__

    def enter(self):
        if self.mb:
            started.append([p.poll() is None for p in runner._current[0].procs])
        return real_enter(self)

    monkeypatch.setattr(load.MemoryHog, "__enter__", enter)
    segments = [load.Segment(1.0, busy=1, memory_mb=16), load.Segment(1.0, busy=1, memory_mb=16),
                load.Segment(1.0, busy=2, memory_mb=16), load.Segment(1.0, busy=2)]
    runner = load.ScheduleRunner(load.LoadSchedule("carry-over", segments))
    seen = []
    with runner:
        for k in range(len(segments)):
            _wait_for(runner, k)
            time.sleep(0.3)
            with runner._lock:
                busy, hog = runner._current
                seen.append((list(busy.pids), list(hog.pids)))
            assert load.alive(busy.pids + hog.pids) == busy.pids + hog.pids, k
    every = {pid for b, h in seen for pid in b + h}
    assert load.alive(sorted(every)) == []
    (b0, h0), (b1, h1), (b2, h2), (b3, h3) = seen
    assert len(b0) == 1 and len(h0) == 1
    assert (b1, h1) == (b0, h0)                   # the same load: nothing restarted
    assert len(b2) == 2 and set(b2).isdisjoint(b0) and h2 == h0  # more busy processes; the hog carried over
    assert b3 == b2 and h3 == []                  # the hog stopped, the busy processes carried over
    assert started == [[True]]                    # one hog started, with its segment's busy process already running
