"""Driving a command under test in a child process: interrupt it once it is under way.

A plain module (not conftest.py), as tests/_envdata.py.
"""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Callable


def interrupt_when(proc: subprocess.Popen, ready: Callable[[], bool], sig: int = signal.SIGINT, *,
                   wait_s: float = 120.0, settle_s: float = 0.0, exit_s: float = 60.0) -> str:
    """Wait up to ``wait_s`` until ``ready()`` (failing if ``proc`` ends first), wait ``settle_s`` more, send
    ``sig`` and wait up to ``exit_s`` for ``proc`` to end; returns its stderr. ``proc`` is killed if the test
    fails meanwhile, so no child outlives it."""
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not ready():
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.2)
        time.sleep(settle_s)
        proc.send_signal(sig)
        return proc.communicate(timeout=exit_s)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
