"""Alipay face-to-face barcode pay (付款码, docs/channels.md "Alipay barcode pay"): the request and answer mapping.

`alipay.trade.pay` with scene `bar_code` answers 10000 when paid, 10003 ("order success pay inprocess") while the
payer confirms on their phone, 40004 with a sub_code when refused, 20000 / `ACQ.SYSTEM_ERROR` when the outcome is
not known. `alipay.trade.cancel` reverses a trade: `action` says what it did (`close` unpaid, `refund` paid, absent
when Alipay found no trade) and `retry_flag` Y asks for the cancel again. Pure functions: the adapter does the I/O.
"""

from __future__ import annotations

from typing import Any

from tomato.channel.adapters.alipay import codec
from tomato.channel.protocol import ChannelResult, CreateRequest, ErrorClass, ResultStatus

PAY_METHOD = "BARCODE"
SCENE = "bar_code"
PRODUCT_CODE = "FACE_TO_FACE_PAYMENT"
PAID_CODE = "10000"
IN_PROCESS_CODE = "10003"  # the payer is confirming (password, or a large amount): query until final
HAS_SUCCESS = "ACQ.TRADE_HAS_SUCCESS"  # a repeated pay of a paid trade: the money moved, never a refusal
RETRY = "RETRY"  # our code on a cancel Alipay asked to be repeated (retry_flag Y)
AUTH_CODE_REQUIRED = "AUTH_CODE_REQUIRED"


def pay_biz(req: CreateRequest) -> dict[str, Any] | ChannelResult:
    """The biz_content of `alipay.trade.pay`; a request without the payer's code is refused before any call."""
    if not req.auth_code:
        return ChannelResult(
            ResultStatus.FAIL, ErrorClass.REJECTED, code=AUTH_CODE_REQUIRED, message="barcode pay needs auth_code"
        )
    biz: dict[str, Any] = {
        "out_trade_no": req.order_no,
        "scene": SCENE,
        "auth_code": req.auth_code,
        "product_code": PRODUCT_CODE,
        "total_amount": codec.yuan(req.amount),
        "subject": req.subject,
        "time_expire": codec.format_beijing(req.expire_at),
    }
    if req.body:
        biz["body"] = req.body
    if req.profit_sharing:
        biz["extend_params"] = {"royalty_freeze": "true"}  # splits.FREEZE_FLAG: the money waits for the split
    return biz


def is_pay_answer(node: dict[str, Any]) -> bool:
    """Signed answers `pay_result` maps itself: 10003 (not a refusal: the trade waits for the payer) and
    `ACQ.TRADE_HAS_SUCCESS` (a resent pay of a trade already paid)."""
    return str(node.get("code", "")) == IN_PROCESS_CODE or node.get("sub_code") == HAS_SUCCESS


def wants_retry(node: dict[str, Any]) -> bool:
    """A signed cancel answer asking to be repeated (retry_flag Y), whatever its code."""
    return node.get("retry_flag") == "Y"


def pay_result(node: dict[str, Any]) -> ChannelResult:
    """10000 → SUCCESS (amount, trade_no, gmt_payment); 10003 → WAITING; `ACQ.TRADE_HAS_SUCCESS` → UNKNOWN (paid,
    but this answer lacks the payment: query it). A paid answer we cannot read is UNKNOWN too: the money may have
    moved, so the caller queries rather than fails."""
    if node.get("sub_code") == HAS_SUCCESS:
        message = _opt_str(node.get("sub_msg")) or "trade already paid: query it"
        return ChannelResult(ResultStatus.UNKNOWN, code=HAS_SUCCESS, message=message)
    trade_no = _opt_str(node.get("trade_no"))
    try:
        amount = codec.fen(str(node["total_amount"])) if "total_amount" in node else None
        if str(node.get("code", "")) == IN_PROCESS_CODE:
            return ChannelResult(
                ResultStatus.WAITING, code=IN_PROCESS_CODE, message=str(node.get("msg", "")).strip() or None,
                channel_trade_no=trade_no, amount=amount,
            )  # fmt: skip
        paid_at = codec.parse_beijing(str(node["gmt_payment"])) if node.get("gmt_payment") else None
    except ValueError as exc:
        return ChannelResult.unknown(ErrorClass.MALFORMED, f"trade.pay: {exc}")
    if trade_no is None or amount is None:
        return ChannelResult.unknown(ErrorClass.MALFORMED, "trade.pay: paid answer without trade_no/total_amount")
    return ChannelResult(ResultStatus.SUCCESS, channel_trade_no=trade_no, amount=amount, paid_at=paid_at)


def cancel_result(node: dict[str, Any]) -> ChannelResult:
    """retry_flag Y → WAITING (cancel again); otherwise 10000 = reversed, `code` = Alipay's `action`."""
    trade_no = _opt_str(node.get("trade_no"))
    if wants_retry(node):
        why = _opt_str(node.get("sub_msg")) or _opt_str(node.get("msg")) or "Alipay asks to cancel again"
        return ChannelResult(ResultStatus.WAITING, code=RETRY, message=why, channel_trade_no=trade_no)
    action = _opt_str(node.get("action"))
    message = None if action else "no trade at Alipay: nothing to reverse"
    return ChannelResult(ResultStatus.SUCCESS, code=action, message=message, channel_trade_no=trade_no)


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
