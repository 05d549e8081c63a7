"""Group commit: concurrent callers each submit one item; a few flusher tasks run one transaction per batch.

There is no linger: a flusher takes whatever has queued up while the previous batch ran (up to `max_size`), so
an idle system answers at once and a busy one batches by itself. A failing batch is retried item by item, so
one bad item fails only its own caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(
        self, run: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *, name: str, max_size: int = 200, flushers: int = 2
    ) -> None:
        self._run = run
        self._name = name
        self._max = max(1, max_size)
        self._n_flushers = max(1, flushers)
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._flush_forever(), name=f"{self._name}:{n}") for n in range(self._n_flushers)
            ]

    async def submit(self, item: T) -> R:
        if not self._tasks:
            raise RuntimeError(f"batcher {self._name} is not running")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def _flush_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            live = [(i, f) for i, f in batch if not f.done()]
            if live:
                await self._flush(live)

    async def _flush(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            log.warning("%s: batch of %d failed (%r); retrying one by one", self._name, len(batch), exc)
            for pair in batch:
                await self._flush([pair])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        while not self._queue.empty():
            self._queue.get_nowait()[1].cancel()


def _settle(future: asyncio.Future[R], *, result: R | None = None, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]
