"""core.resp: the script calls made in one loop turn (concurrent requests' admits) leave in one write, in the order
they were made, so each answer still reaches its caller; a connection lost before the write fails them all."""

from __future__ import annotations

import asyncio

import pytest

from tomato.core.resp import _Protocol


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = True


async def test_calls_of_one_loop_turn_leave_in_one_write_and_answers_match_in_order() -> None:
    proto, transport = _Protocol(), RecordingTransport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    first, second, third = proto.send(b"one\r\n"), proto.send(b"two\r\n"), proto.send(b"three\r\n")
    assert transport.writes == []  # nothing yet: later calls of this turn may join
    await asyncio.sleep(0)
    assert transport.writes == [b"one\r\ntwo\r\nthree\r\n"]
    proto.data_received(b":1\r\n:2\r\n+three\r\n")
    assert (await first, await second, await third) == (1, 2, "three")
    later = proto.send(b"four\r\n")
    await asyncio.sleep(0)
    assert transport.writes[1:] == [b"four\r\n"]
    proto.data_received(b":4\r\n")
    assert await later == 4


async def test_a_connection_lost_before_the_write_fails_every_call_waiting_on_it() -> None:
    proto, transport = _Protocol(), RecordingTransport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    calls = [proto.send(b"x\r\n"), proto.send(b"y\r\n")]
    proto.connection_lost(None)
    await asyncio.sleep(0)
    assert transport.writes == []
    for call in calls:
        with pytest.raises(ConnectionError):
            await call
