"""Background loops a role attaches to its process: connecting the bus, relaying the outbox, booking the ledger."""

from __future__ import annotations

import asyncio
import logging

from tomato.account.consumer import BookingConsumer
from tomato.bootstrap import Container
from tomato.runtime.shutdown import GRACE_S, stop_tasks

log = logging.getLogger(__name__)


class BackgroundLoops:
    """Owns the tasks of one process so shutdown can stop them in order."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def spawn(self, coro: object, name: str) -> None:
        self.tasks.append(asyncio.create_task(coro, name=name))  # type: ignore[arg-type]

    async def start_bus(self, c: Container) -> None:
        """Connect the bus without blocking start-up: a broker that is down now is retried in the background."""
        try:
            await asyncio.wait_for(c.bus.start(), timeout=5)
        except Exception:
            log.warning("event bus %s not reachable at start; retrying in the background", c.bus.name)
            self.spawn(self._retry_bus(c), "bus-connect")

    async def _retry_bus(self, c: Container) -> None:
        delay = 1.0
        while not self.stop.is_set():
            await asyncio.sleep(delay)
            try:
                await asyncio.wait_for(c.bus.start(), timeout=5)
                log.info("event bus %s connected", c.bus.name)
                return
            except Exception:
                delay = min(delay * 2, 30.0)

    async def start_notice(self, c: Container) -> None:
        """Webhooks (consumer, delivery worker, sweeper); subscribed before this returns, so call it before
        start_relay: an in-process bus must never publish to nobody."""
        from tomato.runtime.notice_loops import start_notice

        self.tasks.append(await start_notice(c, self.stop))

    async def start_relay(self, c: Container) -> None:
        self.spawn(c.relay.run_forever(self.stop), "outbox-relay")

    def start_booking(self, c: Container) -> BookingConsumer:
        """The ledger's booking consumer (account.consumer): reads the outbox itself, so it needs no broker and
        may start in any order; one process at a time books (a database lease), the others stand by."""
        consumer = BookingConsumer(c.db, c.ids, c.clock)
        self.spawn(consumer.run_forever(self.stop), "ledger-booking")
        return consumer

    async def shutdown(self, grace_s: float = GRACE_S) -> None:
        """Sets `stop` and lets the loops finish their round (up to `grace_s`), then cancels what is left and waits a
        little for it to unwind (`runtime.shutdown`): a loop cancelled inside a SQLite statement is rolled back."""
        self.stop.set()
        await stop_tasks(self.tasks, grace_s=grace_s)
        self.tasks.clear()
