"""How a long-running process stops on SIGINT (Ctrl-C) or SIGTERM: within 3 s, exit status 0, no traceback.

One budget for everything a process runs (servers, background loops, timed jobs), spent concurrently:

- `GRACE_S`: work in hand may finish on its own — loops see their stop event between rounds, jobs between runs,
  servers drain their in-flight requests;
- `CANCEL_WAIT_S`: what is still running is cancelled (a webhook or channel call the far end does not answer, a
  statement in progress) and gets this long to unwind. Nothing is lost by it: no HTTP call runs inside a database
  transaction, a statement cancelled on SQLite is rolled back (`core.db`), an unanswered webhook is sent again by
  the sweeper or redelivered by RabbitMQ (same event id), and a job runs again next round;
- `CLOSE_S`: closing the container (connections, pools, leases); a lease left behind expires by itself.

A second signal while stopping changes nothing: the budget already bounds the stop.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Iterable
from typing import Any

log = logging.getLogger(__name__)

GRACE_S = 1.0
CANCEL_WAIT_S = 0.5
CLOSE_S = 1.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def on_stop_signal(stop: asyncio.Event) -> None:
    """SIGINT and SIGTERM set `stop` (instead of raising KeyboardInterrupt in whatever code happens to run)."""
    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, stop.set)


async def stop_tasks(
    tasks: Iterable[asyncio.Task[Any]], *, grace_s: float = GRACE_S, cancel_wait_s: float = CANCEL_WAIT_S
) -> None:
    """Waits up to `grace_s` for `tasks` (already told to stop) to end, cancels the rest and waits up to
    `cancel_wait_s` for them to unwind; one that takes longer is left to the end of the event loop."""
    tasks = list(tasks)
    pending = {t for t in tasks if not t.done()}
    if pending and grace_s > 0:
        _, pending = await asyncio.wait(pending, timeout=grace_s)
    for task in pending:
        task.cancel()
    if pending:
        _, pending = await asyncio.wait(pending, timeout=cancel_wait_s)
    if pending:
        log.warning("still unwinding at shutdown: %s", ", ".join(sorted(t.get_name() for t in pending)))
        for task in pending:
            task.add_done_callback(_retrieve)
    for task in failed(tasks):
        log.warning("%s had failed: %r", task.get_name(), task.exception())


def failed(tasks: Iterable[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """The tasks that ended with an error (reading it here keeps asyncio from reporting it at exit)."""
    return [t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]


async def bounded(step: Awaitable[Any], what: str, timeout_s: float = CLOSE_S) -> None:
    """Runs one closing step with a time limit; a failure or a timeout is one log line, not a traceback."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        task.cancel()  # not awaited: it may be stuck where a cancel takes long to land
        task.add_done_callback(_retrieve)
        log.warning("%s did not finish within %.1f s at shutdown; what it held expires by itself", what, timeout_s)
    elif not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("%s failed at shutdown: %r", what, exc)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Reads the outcome of a task left to unwind on its own, so its end is not reported as a traceback."""
    if not task.cancelled():
        task.exception()
