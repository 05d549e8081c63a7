"""uvicorn servers that finish a graceful shutdown with exit status 0.

Stock uvicorn re-raises SIGTERM/SIGINT after draining, so a clean stop looks like a kill (-15) to supervisors
and tests. `GracefulServer` drains the same way and then simply returns; `EmbeddedServer` installs no handlers at
all (for processes that run several servers and handle signals themselves).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import uvicorn

HANDLED = (signal.SIGINT, signal.SIGTERM)


class GracefulServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


class EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
