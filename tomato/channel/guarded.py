"""An adapter wrapped in its account's circuit breaker and health window.

Only failures that say the channel is unwell count against the breaker (timeouts, 5xx, connection errors);
a declined order or any signed business answer is a healthy channel saying no.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import date

from tomato.channel.breakers import BreakerOpen, BreakerRegistry
from tomato.channel.health import HealthWindow
from tomato.channel.protocol import (
    AckResponse,
    ChannelAdapter,
    ChannelNotify,
    ChannelResult,
    CreateRequest,
    ErrorClass,
    PayoutChannel,
    PayoutRef,
    PayoutRequest,
    ProfitSharingChannel,
    RefundRef,
    RefundRequest,
    ResultStatus,
    SplitReceiver,
    SplitRef,
    SplitRequest,
    SplitReturnRequest,
    SubMerchant,
    TradeRef,
)

UNWELL = frozenset({ErrorClass.TIMEOUT, ErrorClass.SERVER, ErrorClass.CONNECT})


def is_unwell(result: ChannelResult) -> bool:
    return result.status is ResultStatus.UNKNOWN and result.error in UNWELL


class GuardedAdapter:
    def __init__(self, account_id: str, inner: ChannelAdapter, breakers: BreakerRegistry, health: HealthWindow) -> None:
        self.account_id = account_id
        self.inner = inner
        self.channel = inner.channel
        self.pay_methods = inner.pay_methods
        self._breakers = breakers
        self._health = health

    async def _run(self, call: Callable[[], Awaitable[ChannelResult]]) -> ChannelResult:
        started = time.perf_counter()
        try:
            result = await self._breakers.call(self.account_id, call, is_unwell)
        except BreakerOpen as exc:
            return ChannelResult.unknown(ErrorClass.BREAKER_OPEN, str(exc))
        self._health.record(self.account_id, time.perf_counter() - started, not is_unwell(result))
        return result

    async def create(self, req: CreateRequest) -> ChannelResult:
        return await self._run(lambda: self.inner.create(req))

    async def query(self, ref: TradeRef) -> ChannelResult:
        return await self._run(lambda: self.inner.query(ref))

    async def close(self, ref: TradeRef) -> ChannelResult:
        return await self._run(lambda: self.inner.close(ref))

    async def cancel(self, ref: TradeRef) -> ChannelResult:
        return await self._run(lambda: self.inner.cancel(ref))

    async def refund(self, req: RefundRequest) -> ChannelResult:
        return await self._run(lambda: self.inner.refund(req))

    async def query_refund(self, ref: RefundRef) -> ChannelResult:
        return await self._run(lambda: self.inner.query_refund(ref))

    async def payout(self, req: PayoutRequest) -> ChannelResult:
        inner = self.inner
        if not isinstance(inner, PayoutChannel):
            return _no_payouts(self.channel)
        return await self._run(lambda: inner.payout(req))

    async def query_payout(self, ref: PayoutRef) -> ChannelResult:
        inner = self.inner
        if not isinstance(inner, PayoutChannel):
            return _no_payouts(self.channel)
        return await self._run(lambda: inner.query_payout(ref))

    async def bind_receiver(self, receiver: SplitReceiver) -> ChannelResult:
        inner = self.inner
        if not isinstance(inner, ProfitSharingChannel):
            return _no_splits(self.channel)
        return await self._run(lambda: inner.bind_receiver(receiver))

    async def split(self, req: SplitRequest) -> ChannelResult:
        inner = self.inner
        if not isinstance(inner, ProfitSharingChannel):
            return _no_splits(self.channel)
        return await self._run(lambda: inner.split(req))

    async def query_split(self, ref: SplitRef) -> ChannelResult:
        inner = self.inner
        if not isinstance(inner, ProfitSharingChannel):
            return _no_splits(self.channel)
        return await self._run(lambda: inner.query_split(ref))

    async def finish_split(self, ref: SplitRef) -> ChannelResult:
        inner = self.inner
        if not isinstance(inner, ProfitSharingChannel):
            return _no_splits(self.channel)
        return await self._run(lambda: inner.finish_split(ref))

    async def return_split(self, req: SplitReturnRequest) -> ChannelResult:
        inner = self.inner
        if not isinstance(inner, ProfitSharingChannel):
            return _no_splits(self.channel)
        return await self._run(lambda: inner.return_split(req))

    async def download_statement(self, bill_date: date, sub: SubMerchant | None = None) -> bytes:
        return await self.inner.download_statement(bill_date, sub)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ChannelNotify:
        return self.inner.parse_callback(headers, body)

    def callback_ack(self, ok: bool, message: str = "") -> AckResponse:
        return self.inner.callback_ack(ok, message)


def _no_payouts(channel: str) -> ChannelResult:
    return ChannelResult(
        ResultStatus.FAIL, ErrorClass.REJECTED, code="PAYOUT_NOT_SUPPORTED", message=f"{channel} makes no payouts"
    )


def _no_splits(channel: str) -> ChannelResult:
    return ChannelResult(
        ResultStatus.FAIL, ErrorClass.REJECTED, code="SPLIT_NOT_SUPPORTED", message=f"{channel} splits no payments"
    )
