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


def test_shortfalls_name_the_segments_whose_load_came_late_or_never():
    """Ten-second segments: in place at once, 3 s late (above LATE_S and a tenth), never held, not reached."""
    segments = [load.Segment(10.0), load.Segment(10.0, busy=2), load.Segment(10.0, memory_mb=64),
                load.Segment(10.0, busy=1), load.Segment(10.0)]
    runner = load.ScheduleRunner(load.LoadSchedule("late", segments))
    runner.t0, runner.stopped_s = 0.0, 35.0
    runner.in_place = [0.1, 13.0, 31.0, None, None]
    said = runner.shortfalls()
    assert said == [
        "load segment 1 (10-20 s: 2 busy, 0 MiB) came in place 3.0 s late, at 13.0 s (30% of the segment)",
        "load segment 2 (20-30 s: 0 busy, 64 MiB) never held: its load came in place at 31.0 s, after the segment's "
        "end (the load before it took that long to start)",
        "load segment 3 (30-40 s: 1 busy, 0 MiB) was not in place before the run stopped at 35.0 s"]
    runner.in_place = [0.1, 12.0, 20.5, 30.2, None]  # 2 s late is within LATE_S; segment 4 begins after the stop
    assert runner.shortfalls() == []


def test_a_memory_hog_that_outlasts_its_segment_shows_in_the_runners_account(monkeypatch):
    """The schedule keeps its clock while a hog touches its memory: the segment after it never holds, and the
    runner says so (record and run report it)."""
    real_enter = load.MemoryHog.__enter__

    def slow(self):
        if self.mb:
            time.sleep(1.5)  # a hog that takes longer than its segment and the next one
        return real_enter(self)

    monkeypatch.setattr(load.MemoryHog, "__enter__", slow)
    segments = [load.Segment(0.5), load.Segment(0.5, memory_mb=16), load.Segment(0.5, busy=1), load.Segment(5.0)]
    runner = load.ScheduleRunner(load.LoadSchedule("slow-hog", segments))
    with runner:
        _wait_for(runner, 3)
        time.sleep(0.2)
    said = runner.shortfalls()
    assert [s.split(" (", 1)[0] for s in said] == ["load segment 1", "load segment 2"], said
    assert all("never held" in s for s in said)
    assert runner.in_place[0] == 0.0 and runner.in_place[1] >= 1.5 and runner.in_place[3] < 4.0
