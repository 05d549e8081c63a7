"""An adapter bound to one merchant's identity under a service-provider account.

Pay asks for the adapter of (account, merchant) and calls it as it calls any adapter; this wrapper puts the
merchant's `SubMerchant` on every request, so no flow needs to know whether an account is a service provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from typing import Any, cast

from tomato.channel.protocol import (
    AckResponse,
    ChannelAdapter,
    ChannelNotify,
    ChannelResult,
    CreateRequest,
    ProfitSharingChannel,
    RefundRef,
    RefundRequest,
    SplitReceiver,
    SplitRef,
    SplitRequest,
    SplitReturnRequest,
    SubMerchant,
    TradeRef,
)


class SubMerchantAdapter:
    def __init__(self, inner: ChannelAdapter, sub: SubMerchant) -> None:
        self._inner = inner
        self._sub = sub
        self.channel = inner.channel
        self.pay_methods = inner.pay_methods

    @property
    def _splits(self) -> ProfitSharingChannel:
        """The account's adapter as a profit-sharing channel (a GuardedAdapter refuses if the channel has none)."""
        return cast(ProfitSharingChannel, self._inner)

    def __getattr__(self, name: str) -> Any:  # anything else (payouts, breaker views) is the account's own
        return getattr(self._inner, name)

    async def create(self, req: CreateRequest) -> ChannelResult:
        return await self._inner.create(replace(req, sub=self._sub))

    async def query(self, ref: TradeRef) -> ChannelResult:
        return await self._inner.query(replace(ref, sub=self._sub))

    async def close(self, ref: TradeRef) -> ChannelResult:
        return await self._inner.close(replace(ref, sub=self._sub))

    async def cancel(self, ref: TradeRef) -> ChannelResult:
        return await self._inner.cancel(replace(ref, sub=self._sub))

    async def refund(self, req: RefundRequest) -> ChannelResult:
        return await self._inner.refund(replace(req, sub=self._sub))

    async def query_refund(self, ref: RefundRef) -> ChannelResult:
        return await self._inner.query_refund(replace(ref, sub=self._sub))

    async def bind_receiver(self, receiver: SplitReceiver) -> ChannelResult:
        return await self._splits.bind_receiver(replace(receiver, sub=self._sub))

    async def split(self, req: SplitRequest) -> ChannelResult:
        return await self._splits.split(replace(req, sub=self._sub))

    async def query_split(self, ref: SplitRef) -> ChannelResult:
        return await self._splits.query_split(replace(ref, sub=self._sub))

    async def finish_split(self, ref: SplitRef) -> ChannelResult:
        return await self._splits.finish_split(replace(ref, sub=self._sub))

    async def return_split(self, req: SplitReturnRequest) -> ChannelResult:
        return await self._splits.return_split(replace(req, sub=self._sub))

    async def download_statement(self, bill_date: date, sub: SubMerchant | None = None) -> bytes:
        return await self._inner.download_statement(bill_date, sub or self._sub)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ChannelNotify:
        return self._inner.parse_callback(headers, body)

    def callback_ack(self, ok: bool, message: str = "") -> AckResponse:
        return self._inner.callback_ack(ok, message)
