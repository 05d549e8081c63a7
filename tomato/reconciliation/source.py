"""Where a run gets its statement: a `StatementSource` fetches one channel account's file for a business date
(called with no unit of work open: it downloads) and yields its parsed lines, streaming.

The lines follow the statement interface (tomato/reconciliation/statement.py): a `StatementLine` has line_no,
kind (PAYMENT | REFUND), channel_trade_no, order_no, refund_no, amount, fee (fen), status ("SUCCESS" when
completed) and occurred_at (UTC); a `MalformedRow` has line_no and reason. Matching reads only those attributes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

from tomato.channel.protocol import StatementUnavailable as ChannelStatementUnavailable
from tomato.channel.service import ChannelService
from tomato.reconciliation.errors import StatementUnavailable
from tomato.reconciliation.store import StatementStore, fetch_statement


class LineLike(Protocol):
    @property
    def line_no(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def channel_trade_no(self) -> str: ...
    @property
    def order_no(self) -> str | None: ...
    @property
    def refund_no(self) -> str | None: ...
    @property
    def amount(self) -> int: ...
    @property
    def fee(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...


@runtime_checkable
class MalformedLike(Protocol):
    @property
    def line_no(self) -> int: ...
    @property
    def reason(self) -> str: ...


@runtime_checkable
class RecordSource(Protocol):
    """What a source may return beside plain lines: a statement that also gives its staging rows for a batch
    (`statement.Statement`); the loader then copies those without building an object per line — with
    `copy_text`, some as ready PostgreSQL COPY text (`bytes`)."""

    def records(
        self, batch_id: str, *, copy_text: bool = False
    ) -> Iterator[list[tuple[Any, ...]] | bytes | MalformedLike]: ...


class StatementSource(Protocol):
    async def open(self, channel: str, channel_account_id: str, day: date) -> Iterable[LineLike | MalformedLike]:
        """Fetches (no unit of work open) and returns the parsed lines, produced lazily; raises
        StatementUnavailable (or any error) when there is no usable statement; the iteration may raise when the
        file is rejected whole."""
        ...


class NoStatementSource:
    """Used until a process wires the channel statement store: every run is an ERROR saying so."""

    async def open(self, channel: str, channel_account_id: str, day: date) -> Iterable[LineLike | MalformedLike]:
        raise StatementUnavailable("no statement source is configured")


# what a channel answers for a date on which the account had no trade at all (WeChat: "账单文件不存在"); a bill
# that is not ready yet is another answer (WeChat STATEMENT_CREATING, Alipay isp.bill_not_exist) and stays an error
NO_TRADES = frozenset({"NO_STATEMENT_EXIST"})


class ChannelStatementSource:
    """Downloads the statement through the account's adapter (its real bill API; WeChat's SHA1 is checked there),
    keeps the raw file in the statement store (content-addressed, for audit) and parses it as a stream."""

    def __init__(self, channels: ChannelService, store: StatementStore) -> None:
        self._channels = channels
        self._store = store

    async def open(self, channel: str, channel_account_id: str, day: date) -> Iterable[LineLike | MalformedLike]:
        try:
            stored = await fetch_statement(self._channels, channel_account_id, day, store=self._store)
        except ChannelStatementUnavailable as exc:
            if exc.result.code in NO_TRADES:
                return ()  # the channel keeps no bill for a day without trades: an empty statement
            raise
        return stored.statement()  # lines when iterated; staging rows for the loader's fast path
