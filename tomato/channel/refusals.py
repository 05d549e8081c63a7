"""Which signed refusals of a refund request say the refund cannot exist or cannot be made, per channel.

A refused request says only that *this* request was not carried out. When an earlier request under the same refund
number may have been (its answer was lost), the refusal of a resend proves nothing about the refund unless its
code is about the refund itself: the trade does not exist or cannot be refunded, the amount cannot be refunded,
the merchant cannot pay it. Rate limits, system errors, signature, permission and format errors (WeChat 429
FREQUENCY_LIMITED, 403 NO_AUTH, Alipay isv.*, bank 12 "duplicate", 37 "too frequent") — and every code not listed
here — say "not now" and leave the refund to be queried again. A listed code cannot describe a refund the channel
already made: every channel answers a resent refund number with that refund (or, the bank, with 12).
"""

from __future__ import annotations

from tomato.channel.protocol import ChannelResult, ErrorClass, ResultStatus

REFUND_CANNOT_BE_MADE: dict[str, frozenset[str]] = {
    # Alipay 40004 business sub_codes (alipay.trade.refund)
    "alipay": frozenset({
        "ACQ.TRADE_NOT_EXIST", "ACQ.TRADE_STATUS_ERROR", "ACQ.TRADE_HAS_CLOSE", "ACQ.TRADE_HAS_FINISHED",
        "ACQ.TRADE_NOT_ALLOW_REFUND", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "ACQ.REFUND_FEE_ERROR",
        "ACQ.REASON_TRADE_REFUND_FEE_ERR", "ACQ.SELLER_BALANCE_NOT_ENOUGH", "ACQ.BUYER_ERROR",
        "ACQ.ONLINE_TRADE_VOUCHER_NOT_ALLOW_REFUND",
    }),
    # WeChat Pay v3 error codes of POST /v3/refund/domestic/refunds (business rule, balance, account, no trade)
    "wechat": frozenset({
        "INVALID_REQUEST", "NOT_ENOUGH", "USER_ACCOUNT_ABNORMAL", "ORDER_NOT_EXIST", "RESOURCE_NOT_EXISTS",
    }),
    # UnionPay ACP respCodes: 01 transaction failed, 30 not passed, 33 amount over the limit, 35 original missing
    # or in the wrong state, 36 does not match the original; plus the adapter's own definite refusals
    "bank": frozenset({"01", "30", "33", "35", "36", "INVALID_ORDER_ID", "ORIGINAL_NOT_PAID"}),
}  # fmt: skip


def refund_cannot_be_made(channel: str, result: ChannelResult) -> bool:
    """True when `result`, the answer to a refund request, settles the refund as failed even if an earlier request
    under the same refund number may have reached the channel."""
    if result.status is not ResultStatus.FAIL:
        return False
    if result.error is ErrorClass.NONE:  # the channel reports the refund itself failed (WeChat CLOSED, ABNORMAL)
        return True
    return result.error is ErrorClass.REJECTED and result.code in REFUND_CANNOT_BE_MADE.get(channel, frozenset())
