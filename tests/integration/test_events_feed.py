"""`GET /v1/events` pages in commit order: following cursors never skips an event whose transaction committed
after a later-numbered one was already listed (embedded SQLite + in-process bus, and PostgreSQL + RabbitMQ).

Event ids (and their sequence numbers) are taken when the row is written, not when it commits, so two writers can
commit out of id order; a cursor over ids would then page past the late one for good.
"""

from __future__ import annotations

import asyncio

from tests.fixtures.notice_harness import Harness
from tomato.core.outbox import add_event


async def feed(h: Harness, cursor: str | None = None, limit: int = 100) -> tuple[list[str], str | None]:
    path = f"/v1/events?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
    r = await h.client.request("GET", path)
    assert r.status_code == 200, r.text
    return [e["id"] for e in r.json()["data"]], r.json()["next_cursor"]


async def follow(h: Harness, cursor: str | None, limit: int) -> list[str]:
    seen: list[str] = []
    while True:
        ids, cursor = await feed(h, cursor, limit)
        seen += ids
        if cursor is None:
            return seen


async def wait_listed(h: Harness, wanted: set[str], timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not wanted <= set((await feed(h))[0]):
            await asyncio.sleep(0.05)  # polling the API: the feed offers nothing to wait on


async def test_following_cursors_shows_an_event_that_committed_after_a_later_numbered_one(hooks: Harness) -> None:
    h = hooks
    async with h.c.db.uow() as slow:
        late = add_event(slow.session, h.c.ids, event_type="pay.closed", aggregate_type="pay_order",
                         aggregate_id="P1", data={"order_no": "P1"}, app_id=h.app_id)  # fmt: skip
        if h.c.db.dialect == "postgresql":
            await slow.flush()  # really inserted, uncommitted (SQLite would hold its write lock from here on)
        early = await h.emit(2)  # numbered after `late`, committed before it
        await wait_listed(h, set(early))
        first_page, cursor = await feed(h, limit=1)
        await slow.commit()
    h.c.relay.notify()
    await wait_listed(h, {late.id})
    assert int(late.id[1:]) < min(int(e[1:]) for e in early)  # the late event really has the lowest number
    assert first_page == [early[0]] and cursor is not None
    rest = await follow(h, cursor, limit=1)
    assert sorted(first_page + rest) == sorted([late.id, *early])  # nothing skipped, nothing repeated
    assert rest[-1] == late.id  # listed in the order the events became visible
    assert await follow(h, None, limit=2) == first_page + rest  # the same order from the start
