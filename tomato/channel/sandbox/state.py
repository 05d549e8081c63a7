"""The simulator's in-memory world: per-channel books of merchants and trades, faults, and the time scale.

Channel simulators (`alipay.py`, later `wechat.py`, `bank.py`) keep their trades in a `ChannelBook` here and
attach themselves to the `SandboxState`, so the payer API, the notifier and the faults serve them all alike.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, time, timedelta, timezone
from enum import StrEnum
from typing import Any, Protocol

import httpx
from fastapi import APIRouter

from tomato.channel.sandbox.barcodes import BarcodeBook
from tomato.channel.sandbox.notifier import Notifier
from tomato.core.clock import Clock, SystemClock

CHANNELS = ("alipay", "wechat", "bank")
DEFAULT_FEE_PPM = 3800  # what every simulated channel charges: 0.38 % of a payment, half up
CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")  # the channels' statement dates are China calendar dates


@dataclass
class Faults:
    """Fault switches of the simulator API, one set per channel."""

    latency_ms: int = 0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    drop_notify: bool = False
    duplicate_notify: int = 0
    ignore_close: bool = False
    reject_refunds: bool = False
    reject_payouts: bool = False

    def update(self, changes: dict[str, Any]) -> None:
        """Apply the given fields only (omitted ones keep their values)."""
        names = {f.name for f in fields(self)}
        for name, value in changes.items():
            if name not in names:
                raise ValueError(f"unknown fault {name!r}")
            setattr(self, name, value)


class TradeState(StrEnum):
    """Channel-neutral trade states; each simulator maps them onto its own wire status."""

    UNSCANNED = "UNSCANNED"  # code handed out (e.g. a precreated QR): unknown to queries until scanned
    WAITING = "WAITING"  # created at the channel, unpaid
    PAID = "PAID"
    FAILED = "FAILED"  # the payer's payment failed: can no longer be paid
    CLOSED = "CLOSED"  # closed unpaid by the merchant


@dataclass
class SimRefund:
    refund_no: str
    amount: int  # fen
    created_at: datetime


@dataclass
class SimTrade:
    channel: str
    merchant_id: str  # Alipay app_id, WeChat mchid, bank merId
    out_trade_no: str
    channel_trade_no: str
    amount: int  # fen
    subject: str
    notify_url: str
    created_at: datetime
    state: TradeState = TradeState.WAITING
    expire_at: datetime | None = None
    paid_at: datetime | None = None
    closed_at: datetime | None = None
    refunds: dict[str, SimRefund] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)  # channel-specific wire values

    @property
    def refunded(self) -> int:
        return sum(r.amount for r in self.refunds.values())

    @property
    def settled(self) -> bool:
        """Paid, failed or closed: a scan can no longer change it."""
        return self.state in (TradeState.PAID, TradeState.FAILED, TradeState.CLOSED)


@dataclass
class ChannelBook:
    """One channel's registry: merchant keys and trades, indexed by channel trade number and pay code."""

    merchants: dict[str, str] = field(default_factory=dict)  # merchant id → merchant public key PEM
    trades: dict[str, SimTrade] = field(default_factory=dict)  # channel_trade_no → trade
    by_out_trade_no: dict[tuple[str, str], str] = field(default_factory=dict)
    by_code: dict[str, str] = field(default_factory=dict)  # QR / redirect code → channel_trade_no

    def add(self, trade: SimTrade, code: str | None = None) -> None:
        self.trades[trade.channel_trade_no] = trade
        self.by_out_trade_no[(trade.merchant_id, trade.out_trade_no)] = trade.channel_trade_no
        if code:
            self.by_code[code] = trade.channel_trade_no

    def find(self, merchant_id: str, out_trade_no: str | None = None, trade_no: str | None = None) -> SimTrade | None:
        """By channel trade number when given (it wins, as at the real channels), else by merchant order number."""
        if trade_no:
            trade = self.trades.get(trade_no)
            return trade if trade is not None and trade.merchant_id == merchant_id else None
        if out_trade_no:
            key = self.by_out_trade_no.get((merchant_id, out_trade_no))
            return self.trades.get(key) if key else None
        return None

    def find_by_code(self, code: str) -> SimTrade | None:
        key = self.by_code.get(code)
        return self.trades.get(key) if key else None

    def find_by_order_no(self, out_trade_no: str) -> SimTrade | None:
        """Any merchant's trade with that order number, the newest first (the payer does not know the app)."""
        matches = [t for t in self.trades.values() if t.out_trade_no == out_trade_no]
        return max(matches, key=lambda t: t.created_at) if matches else None


class StatementFaultType(StrEnum):
    """How a date's statement differs from the simulator's records (docs/operations.md, statement faults)."""

    MISSING_CHANNEL = "MISSING_CHANNEL"  # the row is left out
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"  # its amount is one fen more
    FEE_MISMATCH = "FEE_MISMATCH"  # its fee is one fen more
    STATUS_MISMATCH = "STATUS_MISMATCH"  # its status is not a success
    DUPLICATE = "DUPLICATE"  # the row appears twice
    MISSING_LOCAL = "MISSING_LOCAL"  # an unpaid trade reported paid (applied to the trade when posted)


@dataclass(frozen=True)
class StatementFault:
    type: StatementFaultType
    order_no: str  # the order's payment row, or a refund's row when it names a refund_no


@dataclass(frozen=True)
class BillRow:
    """One statement row before a channel writes it in its format; `fee` is what was charged or returned (≥ 0)."""

    trade: SimTrade
    refund: SimRefund | None
    at: datetime
    amount: int
    fee: int
    succeeded: bool = True


def china_date(value: datetime) -> date:
    return value.astimezone(CHINA).date()


def payment_fee(amount: int, ppm: int) -> int:
    """(amount × ppm + 500,000) // 1,000,000: the channel's fee on a payment, half up."""
    return (amount * ppm + 500_000) // 1_000_000


def refund_fee(trade: SimTrade, refund_no: str, ppm: int) -> int:
    """The fee a refund returns: pro rata and cumulative, so all refunds of a payment return at most its fee.

    After refunds totalling R of a payment of amount A and fee C, (2·C·R + A) // (2·A) has been returned in all;
    this refund returns the total after it less the total before it (refunds in the order they were made).
    """
    fee, before = payment_fee(trade.amount, ppm), 0
    for refund in trade.refunds.values():
        after = before + refund.amount
        if refund.refund_no == refund_no:
            a = trade.amount
            return (2 * fee * after + a) // (2 * a) - (2 * fee * before + a) // (2 * a)
        before = after
    raise KeyError(refund_no)


class ChannelSimulator(Protocol):
    """What a channel simulator offers the shared app and payer API."""

    channel: str

    def router(self) -> APIRouter: ...

    def find_for_scan(self, content: str | None, order_no: str | None) -> SimTrade | None:
        """The trade a payer scan designates (creating it from a signed pay code if needed), or None."""
        ...

    def complete(self, trade: SimTrade, paid: bool) -> None:
        """Record the payer's result on an unsettled trade and send the channel's notify."""
        ...

    def pay_silently(self, trade: SimTrade, at: datetime) -> None:
        """Record an unpaid trade as paid at `at` without any notify (the MISSING_LOCAL statement fault)."""
        ...


class SandboxState:
    """Everything the simulator remembers; tests build one, configure it, and hand it to `create_sandbox_app`."""

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        timeout_sleep_s: float = 30.0,
        notify_transport: httpx.AsyncBaseTransport | None = None,
        notify_timeout_s: float = 5.0,
        fee_ppm: int = DEFAULT_FEE_PPM,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if not 0 <= fee_ppm <= 1_000_000:
            raise ValueError("fee_ppm must be within 0..1,000,000")
        self.fee_ppm = fee_ppm  # every channel's fee rate, written in its statements
        self.time_scale = time_scale  # divides notify retry delays
        self.rng = rng or random.Random()
        self.clock: Clock = clock or SystemClock()
        self.timeout_sleep_s = timeout_sleep_s  # how long a `timeout_rate` hit stalls (not scaled)
        self.faults: dict[str, Faults] = {channel: Faults() for channel in CHANNELS}
        self.books: dict[str, ChannelBook] = {channel: ChannelBook() for channel in CHANNELS}
        self.simulators: dict[str, ChannelSimulator] = {}
        self.notifier = Notifier(self, transport=notify_transport, timeout_s=notify_timeout_s)
        self.statement_faults: dict[tuple[str, date], list[StatementFault]] = {}
        self.barcodes = BarcodeBook(self.clock)  # payer-presented codes handed out by POST /sandbox/barcodes

    def attach(self, simulator: ChannelSimulator) -> None:
        self.simulators[simulator.channel] = simulator

    def reset_faults(self) -> None:
        for channel in self.faults:
            self.faults[channel] = Faults()

    def reset_statement_faults(self) -> None:
        """Statements follow the records again (a MISSING_LOCAL trade stays paid: that happened at the channel)."""
        self.statement_faults.clear()

    def statement_rows(self, channel: str, merchant_id: str, day: date) -> list[BillRow]:
        """The rows of one merchant's statement for a China calendar date, by time, with that date's faults applied.

        Payments are listed on the date they were paid, refunds on the date they were made; fees follow
        `fee_ppm` (refunds return theirs pro rata, see `refund_fee`).
        """
        rows: list[BillRow] = []
        for trade in self.books[channel].trades.values():
            if trade.merchant_id != merchant_id:
                continue
            if trade.paid_at is not None and china_date(trade.paid_at) == day:
                rows.append(BillRow(trade, None, trade.paid_at, trade.amount, payment_fee(trade.amount, self.fee_ppm)))
            for refund in trade.refunds.values():
                if china_date(refund.created_at) == day:
                    fee = refund_fee(trade, refund.refund_no, self.fee_ppm)
                    rows.append(BillRow(trade, refund, refund.created_at, refund.amount, fee))
        rows.sort(key=lambda row: row.at)
        for fault in self.statement_faults.get((channel, day), []):
            rows = _apply(fault, rows)
        return rows

    def roll(self, rate: float) -> bool:
        """True with probability `rate`, from the injectable generator."""
        return rate > 0 and self.rng.random() < rate

    async def aclose(self) -> None:
        await self.notifier.aclose()


def day_time(day: date, trade: SimTrade, now: datetime) -> datetime:
    """When a trade reported paid on `day` by a MISSING_LOCAL fault was paid: now, its creation, or that noon."""
    if china_date(now) == day:
        return now
    if china_date(trade.created_at) == day:
        return trade.created_at
    return datetime.combine(day, time(12), CHINA)


def _apply(fault: StatementFault, rows: list[BillRow]) -> list[BillRow]:
    out: list[BillRow] = []
    for row in rows:
        named = row.refund.refund_no if row.refund is not None else row.trade.out_trade_no
        if named != fault.order_no:
            out.append(row)
            continue
        match fault.type:
            case StatementFaultType.MISSING_CHANNEL:
                pass
            case StatementFaultType.AMOUNT_MISMATCH:
                out.append(replace(row, amount=row.amount + 1))
            case StatementFaultType.FEE_MISMATCH:
                out.append(replace(row, fee=row.fee + 1))
            case StatementFaultType.STATUS_MISMATCH:
                out.append(replace(row, succeeded=False))
            case StatementFaultType.DUPLICATE:
                out += [row, row]
            case StatementFaultType.MISSING_LOCAL:
                out.append(row)
    return out
