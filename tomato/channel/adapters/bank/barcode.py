"""Barcode pay (付款码) at the bank: UnionPay's QR-code product, the payer-presented (被扫) consumption.

Wire (UnionPay 二维码支付产品 on ACP 5.1.0, back transactions to `backTransReq.do`, signed as every bank call):

- pay: txnType 01 / txnSubType 06 / bizType 000000 / channelType 08, `qrNo` = the payer's code, orderId =
  order_no, txnTime = the order's created_at, txnAmt, currencyCode 156, backUrl. respCode 00 = accepted, then one
  query (below); 61 (invalid or expired code) and other signed refusals → FAIL REJECTED with the respCode;
  03/04/05, timeouts, 5xx, bad signatures → UNKNOWN.
- the query after it: the ordinary txnType 00 query of that orderId + txnTime. origRespCode 00 → SUCCESS (amount,
  queryId, paid_at from traceTime); 03/04/05, respCode 34 or an unanswered query → WAITING (the payer confirming);
  any other origRespCode (64: no funds) → FAIL REJECTED with it, nothing was paid.
- cancel (冲正): txnType 99 / txnSubType 01 / bizType 000000 / channelType 08 with the original consume's own
  orderId + txnTime (no amount, no queryId). 00 → SUCCESS (reversed); 34 → SUCCESS (the bank never had it, and
  refuses it if it comes later); 03/04/05 → WAITING (send the reversal again); anything else → FAIL or UNKNOWN, not
  reversed.

Why 冲正 and not 消费撤销 (txnType 31): the till reverses when it does not know the outcome — a timeout, or a payer
still confirming — and then may hold no `queryId`. 冲正 names the original by the orderId + txnTime the platform
always has, takes whatever state the trade is in (in process → closed, paid → refunded), and needs no new orderId;
撤销 needs the original's `queryId` and its full amount and is meant for a consume known to have succeeded.
Both must happen on the consume's day; after that only a refund (txnType 04) returns the money.

A pay answer of respCode 00 only says the bank took the consume; the result follows by back-notify or query. So
`pay` queries once straight away: a payer who needs no confirmation is reported paid in the same call, and one who
is confirming is WAITING for the platform's polling (the ordinary `query`, the same txnType 00 call).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from tomato.channel.adapters.bank import codec
from tomato.channel.adapters.bank.config import BankConfig
from tomato.channel.protocol import ChannelResult, CreateRequest, ErrorClass, ResultStatus, TradeRef
from tomato.core.clock import Clock

PAY_METHOD = "BARCODE"
CONSUME_TXN = ("01", "06", "000000")  # 二维码消费 (被扫)
REVERSAL_TXN = ("99", "01", "000000")  # 冲正
CHANNEL_TYPE = "08"  # mobile: the payer's phone shows the code
INVALID_CODE = "61"  # 输入的卡号无效: the code names no payer (or has expired)
NO_FUNDS = "64"  # 卡上的余额不足

Base = Callable[[str, str, str], dict[str, str]]
Call = Callable[..., Awaitable[dict[str, str] | ChannelResult]]
Query = Callable[[str, datetime | None], Awaitable[ChannelResult]]


class BankBarcode:
    """The barcode half of `BankAdapter`: it lends its field base, signed call and query (one error mapping)."""

    def __init__(self, config: BankConfig, clock: Clock, base: Base, call: Call, query: Query) -> None:
        self._config, self._clock = config, clock
        self._base, self._call, self._query = base, call, query

    async def pay(self, req: CreateRequest) -> ChannelResult:
        """Consume with the payer's code; SUCCESS when already paid, WAITING while in process."""
        if not codec.valid_order_id(req.order_no):
            return _refused("INVALID_ORDER_ID", "orderId must be 8-40 letters or digits")
        code = req.auth_code or ""
        if not (code.isascii() and code.isdigit() and 1 <= len(code) <= 20):
            return _refused("INVALID_AUTH_CODE", "qrNo must be 1-20 digits")
        txn_at = req.created_at or self._clock.now()
        fields = self._base(*CONSUME_TXN) | {
            "channelType": CHANNEL_TYPE,
            "orderId": req.order_no,
            "txnTime": codec.format_time(txn_at),
            "txnAmt": codec.fen_text(req.amount),
            "currencyCode": codec.CURRENCY_CNY,
            "qrNo": code,
            "backUrl": req.notify_url,
        }
        node = await self._call(self._config.back_url, fields, "barcode pay")
        if isinstance(node, ChannelResult):
            return node
        accepted = node.get("queryId") or None
        found = await self._query(req.order_no, txn_at)
        if found.status is ResultStatus.SUCCESS:
            return found
        if found.status is ResultStatus.FAIL and found.error is ErrorClass.NONE:  # the consume failed: nothing paid
            return ChannelResult(
                ResultStatus.FAIL,
                ErrorClass.REJECTED,
                code=found.code,
                message=found.message,
                channel_trade_no=found.channel_trade_no or accepted,
            )
        return ChannelResult(  # accepted, result not known yet (payer confirming, or the query said nothing)
            ResultStatus.WAITING, code=found.code, message=found.message, channel_trade_no=accepted, amount=req.amount
        )

    async def cancel(self, ref: TradeRef) -> ChannelResult:
        """冲正 of the consume named by orderId + its txnTime: reversed whatever its state (see the module doc)."""
        if ref.pay_method is not None and ref.pay_method != PAY_METHOD:
            return _refused("BARCODE_NOT_SUPPORTED", "only barcode trades are reversed; close ends a web payment")
        if ref.created_at is None:
            return ChannelResult.unknown(ErrorClass.MALFORMED, "reversal needs the original txnTime (created_at)")
        fields = self._base(*REVERSAL_TXN) | {
            "channelType": CHANNEL_TYPE,
            "orderId": ref.order_no,
            "txnTime": codec.format_time(ref.created_at),
        }
        node = await self._call(self._config.back_url, fields, "reversal", not_found=ResultStatus.SUCCESS)
        if isinstance(node, ChannelResult):
            if node.status is ResultStatus.UNKNOWN and node.code in codec.PENDING_CODES:
                return ChannelResult(ResultStatus.WAITING, code=node.code, message="reversal in process: send again")
            return node  # SUCCESS (34: nothing to reverse), FAIL REJECTED or UNKNOWN: as mapped
        return ChannelResult(
            ResultStatus.SUCCESS,
            code=node.get("respCode"),
            message=node.get("respMsg"),
            channel_trade_no=node.get("origQryId") or ref.channel_trade_no,
        )


def _refused(code: str, message: str) -> ChannelResult:
    return ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code=code, message=message)
