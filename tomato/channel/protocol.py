"""The one narrow interface every channel adapter implements, and the values that cross it.

Results use one vocabulary for every channel (docs/architecture.md):
- `SUCCESS`  the channel definitely did it (created, paid, closed, refunded);
- `FAIL`     the channel definitely refused or the payment definitely failed;
- `WAITING`  accepted but not final yet (unpaid trade, refund processing): query later;
- `UNKNOWN`  we cannot tell (timeout, 5xx, bad signature, unparseable): never treated as a failure.

Barcode payments (pay method `BARCODE`, the payer's code in `CreateRequest.auth_code`): `create` answers SUCCESS
(with amount, channel_trade_no, paid_at) when paid, WAITING while the payer confirms on their phone, FAIL REJECTED
when refused (an invalid code, no funds: nothing was paid), UNKNOWN otherwise. `cancel` reverses a trade whatever
its state, refunding it if it was paid (Alipay `alipay.trade.cancel`, WeChat `reverse`, the bank's 撤销): SUCCESS =
reversed; WAITING = the channel asks for the cancel again (Alipay `retry_flag` Y, WeChat `recall` Y); FAIL or
UNKNOWN = not reversed. A channel or mode without barcode pay answers FAIL REJECTED `BARCODE_NOT_SUPPORTED`.

Payouts (money out to a bank account) are a second, narrower protocol, `PayoutChannel`: only the bank implements
it, so `ChannelAdapter` stays the same for every channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from tomato.core.errors import ChannelError


class ResultStatus(StrEnum):
    SUCCESS = "SUCCESS"
    FAIL = "FAIL"
    WAITING = "WAITING"
    UNKNOWN = "UNKNOWN"


class ErrorClass(StrEnum):
    """Why a result is not SUCCESS; routing retries another account only for `CONNECT`/`BREAKER_OPEN`/`REJECTED`."""

    NONE = "NONE"
    CONNECT = "CONNECT"  # never reached the channel: safe to try elsewhere
    TIMEOUT = "TIMEOUT"  # may have reached it: unknown
    SERVER = "SERVER"  # 5xx: unknown
    BAD_SIGNATURE = "BAD_SIGNATURE"  # response not provably from the channel: unknown
    MALFORMED = "MALFORMED"
    REJECTED = "REJECTED"  # signed business refusal: definite
    BREAKER_OPEN = "BREAKER_OPEN"


@dataclass(frozen=True)
class PayData:
    type: str  # qr_code | redirect_url | form_html | jsapi | cashier_url
    value: str | dict[str, str]


@dataclass(frozen=True)
class ChannelResult:
    status: ResultStatus
    error: ErrorClass = ErrorClass.NONE
    code: str | None = None  # the channel's own code (sub_code, respCode, …)
    message: str | None = None
    channel_trade_no: str | None = None
    channel_refund_no: str | None = None
    pay_data: PayData | None = None
    amount: int | None = None  # fen
    paid_at: datetime | None = None

    @classmethod
    def unknown(cls, error: ErrorClass, message: str) -> ChannelResult:
        return cls(ResultStatus.UNKNOWN, error=error, message=message)

    @property
    def settles_query(self) -> bool:
        """A query answer that states the trade's outcome: paid, or definitely failed/closed.

        A signed refusal to answer (FAIL with REJECTED: too many queries, bad arguments) says nothing about the
        trade and must never fail an order.
        """
        return self.status is ResultStatus.SUCCESS or (
            self.status is ResultStatus.FAIL and self.error is ErrorClass.NONE
        )


@dataclass(frozen=True)
class SubMerchant:
    """The sub-merchant a service-provider account acts for (docs/channels.md, "Service-provider accounts").

    Alipay ISV: `app_auth_token` (secret: never printed) and the authorizing `auth_app_id`; WeChat partner:
    `sub_mchid` and optional `sub_appid`. Requests in direct mode carry none.
    """

    app_auth_token: str | None = None
    auth_app_id: str | None = None
    sub_mchid: str | None = None
    sub_appid: str | None = None

    def __repr__(self) -> str:
        token = "****" if self.app_auth_token else None
        return (
            f"SubMerchant(app_auth_token={token!r}, auth_app_id={self.auth_app_id!r}, "
            f"sub_mchid={self.sub_mchid!r}, sub_appid={self.sub_appid!r})"
        )

    @property
    def notify_id(self) -> str | None:
        """What the channel's notify names the sub-merchant by: Alipay's `auth_app_id`, WeChat's `sub_mchid`."""
        return self.auth_app_id or self.sub_mchid


@dataclass(frozen=True)
class CreateRequest:
    order_no: str  # the merchant order number at the channel
    amount: int  # fen
    subject: str
    pay_method: str
    notify_url: str
    expire_at: datetime
    body: str | None = None
    return_url: str | None = None
    client_ip: str | None = None
    openid: str | None = None
    created_at: datetime | None = None  # when the order was made (the bank identifies a trade by it: txnTime)
    sub: SubMerchant | None = None  # service-provider mode: the merchant's identity under the provider
    auth_code: str | None = None  # BARCODE: the payer's code the till scanned (pay_method BARCODE)
    profit_sharing: bool = False  # the payment may be split later (WeChat settle_info, Alipay royalty freeze)


@dataclass(frozen=True)
class TradeRef:
    """Identifies a trade at the channel for query and close."""

    order_no: str
    channel_trade_no: str | None = None
    amount: int | None = None  # fen; the bank's query needs the original txnTime/amount context
    created_at: datetime | None = None
    sub: SubMerchant | None = None
    pay_method: str | None = None  # the order's (a BARCODE trade may be queried by another API than a QR one)


@dataclass(frozen=True)
class RefundRequest:
    order_no: str
    refund_no: str
    amount: int  # fen, this refund
    total_amount: int  # fen, the order
    notify_url: str
    reason: str | None = None
    channel_trade_no: str | None = None
    order_created_at: datetime | None = None
    created_at: datetime | None = None  # when the refund was made (the bank's txnTime of the refund)
    sub: SubMerchant | None = None
    # split money taken back from receivers within this refund (Alipay refund_royalty_parameters)
    split_returns: tuple[SplitReturnRequest, ...] = ()


@dataclass(frozen=True)
class RefundRef:
    order_no: str
    refund_no: str
    amount: int | None = None
    channel_trade_no: str | None = None
    created_at: datetime | None = None
    sub: SubMerchant | None = None


@dataclass(frozen=True)
class PayoutRequest:
    """Money out to a bank account. `payout_no` is our payout number, the bank's orderId (8–40 letters/digits);
    `created_at` the payout row's creation time, sent as txnTime on every (re)send so the bank sees one trade."""

    payout_no: str
    amount: int  # fen
    account_name: str
    account_number: str  # never logged: repr masks it
    bank_name: str
    notify_url: str
    created_at: datetime

    def __repr__(self) -> str:
        return (
            f"PayoutRequest(payout_no={self.payout_no!r}, amount={self.amount}, "
            f"account_number='****{self.account_number[-4:]}')"
        )


@dataclass(frozen=True)
class PayoutRef:
    payout_no: str
    created_at: datetime  # the txnTime the payout was sent with
    amount: int | None = None


@dataclass(frozen=True)
class SplitReceiver:
    """Someone a payment may be split to, at one channel: WeChat `MERCHANT_ID` (a mchid) or `PERSONAL_OPENID`
    (an openid under the account's appid); Alipay `MERCHANT` / `PERSONAL` as `userId` (2088…) or a logon id."""

    account: str
    account_type: str  # MERCHANT | PERSONAL
    name: str | None = None  # WeChat: required for MERCHANT (the merchant's full name), sent encrypted
    sub: SubMerchant | None = None


@dataclass(frozen=True)
class SplitShare:
    receiver: SplitReceiver
    amount: int  # fen
    description: str


@dataclass(frozen=True)
class SplitRequest:
    """One split of a paid order (`split_no` is ours: WeChat out_order_no, Alipay out_request_no). `finish`: release
    what is left to the merchant with it (WeChat unfreeze_unsplit, Alipay royalty_finish)."""

    order_no: str
    split_no: str
    channel_trade_no: str
    shares: tuple[SplitShare, ...]
    finish: bool = False
    sub: SubMerchant | None = None


@dataclass(frozen=True)
class SplitRef:
    order_no: str
    split_no: str
    channel_trade_no: str
    sub: SubMerchant | None = None


@dataclass(frozen=True)
class SplitReturnRequest:
    """Money a split sent to a receiver, taken back before a refund (WeChat return-orders, Alipay refund royalty)."""

    order_no: str
    split_no: str
    return_no: str
    channel_trade_no: str
    receiver: SplitReceiver
    amount: int  # fen
    description: str
    sub: SubMerchant | None = None


@dataclass(frozen=True)
class ChannelNotify:
    """A verified callback, normalised. `kind` is `payment`, `refund` or `payout` (`order_no` = the payout_no)."""

    kind: str
    status: ResultStatus
    order_no: str
    amount: int | None = None
    channel_trade_no: str | None = None
    paid_at: datetime | None = None
    refund_no: str | None = None
    channel_refund_no: str | None = None
    payout_no: str | None = None
    failure_reason: str | None = None  # the channel's code and message when status is FAIL
    split_no: str | None = None  # kind "split": our split number (the channel's out_order_no / out_request_no)
    sub_merchant: str | None = None  # service-provider mode: the sub-merchant named (auth_app_id / sub_mchid)
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AckResponse:
    """The exact HTTP answer the channel expects."""

    status_code: int
    body: bytes = b""
    content_type: str = "text/plain"


class StatementUnavailable(ChannelError):
    """A statement could not be had; `result` says why (not ready, not configured, or an UNKNOWN outcome)."""

    def __init__(self, result: ChannelResult, channel: str = "channel") -> None:
        super().__init__(f"{channel} statement unavailable: {result.code or result.error}: {result.message}")
        self.result = result


class CallbackRejected(Exception):
    """The callback failed verification or could not be parsed; nothing may change."""


class ChannelAdapter(Protocol):
    channel: str
    pay_methods: frozenset[str]

    async def create(self, req: CreateRequest) -> ChannelResult: ...
    async def query(self, ref: TradeRef) -> ChannelResult: ...
    async def close(self, ref: TradeRef) -> ChannelResult: ...
    async def cancel(self, ref: TradeRef) -> ChannelResult: ...
    async def refund(self, req: RefundRequest) -> ChannelResult: ...
    async def query_refund(self, ref: RefundRef) -> ChannelResult: ...
    async def download_statement(self, bill_date: date, sub: SubMerchant | None = None) -> bytes: ...
    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ChannelNotify: ...
    def callback_ack(self, ok: bool, message: str = "") -> AckResponse: ...


@runtime_checkable
class PayoutChannel(Protocol):
    """Payouts, for the channels that make them (the bank). Results:
    - `payout`: WAITING = accepted, the result follows by notify or query; FAIL REJECTED = definitely refused
      (nothing will be paid); UNKNOWN = we cannot tell (query later, never void on it).
    - `query_payout`: SUCCESS = paid out; FAIL with error NONE = definitely failed; WAITING = still in process or
      not known to the bank (code `34`); UNKNOWN / FAIL REJECTED = the query itself said nothing.
    """

    async def payout(self, req: PayoutRequest) -> ChannelResult: ...
    async def query_payout(self, ref: PayoutRef) -> ChannelResult: ...


@runtime_checkable
class ProfitSharingChannel(Protocol):
    """Profit sharing (分账), for the channels that split payments (Alipay, WeChat Pay). Results:
    - `bind_receiver`: SUCCESS = the receiver may be split to (already bound is SUCCESS too); FAIL REJECTED = refused.
    - `split`: SUCCESS = done; WAITING = accepted, the result follows by notify or `query_split`; FAIL (error NONE) =
      definitely failed, nothing moved; FAIL REJECTED = refused (nothing moved); UNKNOWN = query later.
    - `query_split`: SUCCESS / WAITING / FAIL as above; per-receiver failures make the split FAIL (nothing is
      partially reported: a split is all or nothing here).
    - `finish_split` (release the rest to the merchant; `ref.split_no` is a new number for this request): SUCCESS /
      WAITING / FAIL / UNKNOWN.
    - `return_split`: SUCCESS = the receiver's money came back; WAITING = query again (call it again with the same
      return_no); FAIL = it could not be taken back.
    A channel without profit sharing answers FAIL REJECTED `SPLIT_NOT_SUPPORTED`.
    """

    async def bind_receiver(self, receiver: SplitReceiver) -> ChannelResult: ...
    async def split(self, req: SplitRequest) -> ChannelResult: ...
    async def query_split(self, ref: SplitRef) -> ChannelResult: ...
    async def finish_split(self, ref: SplitRef) -> ChannelResult: ...
    async def return_split(self, req: SplitReturnRequest) -> ChannelResult: ...
