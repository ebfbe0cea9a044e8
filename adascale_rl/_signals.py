"""SIGTERM handled as Ctrl-C, so that a stopped command still stops its children and flushes its logs.

A bottom-layer helper (no package imports): the CLI enters it around every command.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs in the main thread, SIGTERM raises ``KeyboardInterrupt`` (as Ctrl-C does), so the
    ``finally`` and ``with`` blocks that stop child processes and flush logs run; the previous handler is restored
    after. Elsewhere than in the main thread (where Python cannot install handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _term(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
