"""Barcode pay at the Alipay simulator: `alipay.trade.pay` (scene bar_code) and `alipay.trade.cancel`.

The payer's code is looked up in the sandbox's `BarcodeBook` (`POST /sandbox/barcodes`): `pay` answers 10000 paid,
`confirm_after`/`never` answer 10003 "order success pay inprocess" (the trade waits, WAIT_BUYER_PAY), `refuse` is
40004 `ACQ.BUYER_BALANCE_NOT_ENOUGH`, and a code the book never issued to Alipay, or one already used, is 40004
`ACQ.PAYMENT_AUTH_CODE_INVALID`. A confirming trade becomes paid once its payer confirms (`settle_due`, run before
every gateway request and by a timer at the confirmation time); it is then notified like any trade, as Alipay
notifies barcode trades when the pay carried a `notify_url` (a trade paid at once is notified too).

`alipay.trade.cancel` closes an unpaid trade (`action` close) and refunds a paid one in full (`action` refund: the
bill shows the payment and its refund, `out_request_no` = the order number); a trade Alipay does not know is
answered 10000 without `action`. `cancel_retries` makes the next cancels answer `retry_flag` Y without acting.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from tomato.channel.adapters.alipay import codec
from tomato.channel.sandbox.alipay import (
    BUYER_ID,
    BUYER_LOGON_ID,
    AlipaySimulator,
    BizError,
    Node,
    _ok,
    _order_fields,
    _str,
)
from tomato.channel.sandbox.state import SandboxState, SimRefund, SimTrade, TradeState

IN_PROCESS_MSG = " order success pay inprocess"  # Alipay's own text, leading space included
INVALID_CODE_MSG = "支付失败，获取顾客账户信息失败，请顾客刷新付款码后重新收款"
NO_FUNDS_MSG = "买家余额不足"
WAKE_MARGIN_S = 0.05  # the timer fires a little after the confirmation time, never before it


class AlipayBarcodes:
    def __init__(self, sim: AlipaySimulator, state: SandboxState) -> None:
        self._sim = sim
        self._state = state
        self._due: dict[str, datetime] = {}  # confirming trade (channel_trade_no) → when its payer confirms
        self._used: set[str] = set()  # codes already presented: a payer's code pays once
        self.cancel_retries = 0  # the next N cancels answer retry_flag Y and do nothing

    # --- alipay.trade.pay -------------------------------------------------------------------------------------

    def pay(self, app_id: str, params: dict[str, str], biz: Node) -> Node:
        if biz.get("scene") != "bar_code":
            raise BizError("ACQ.INVALID_PARAMETER", "scene must be bar_code")
        auth_code = _str(biz, "auth_code")
        if not auth_code:
            raise BizError("isv.missing-parameter", "auth_code is required", "40001", "Missing Required Arguments")
        out_trade_no, amount, subject = _order_fields(biz)
        trade = self._sim.book.find(app_id, out_trade_no)
        if trade is not None:
            return self._repeat(trade, amount, auth_code)
        barcode = self._state.barcodes.lookup(auth_code)
        if barcode is None or barcode.channel != self._sim.channel or auth_code in self._used:
            raise BizError("ACQ.PAYMENT_AUTH_CODE_INVALID", INVALID_CODE_MSG)
        self._used.add(auth_code)
        self._state.barcodes.present(auth_code)
        if barcode.behaviour == "refuse":
            raise BizError("ACQ.BUYER_BALANCE_NOT_ENOUGH", NO_FUNDS_MSG)
        trade = self._sim._new_trade(app_id, out_trade_no, amount, subject, params, TradeState.WAITING)
        trade.extra["auth_code"] = auth_code
        self._sim.book.add(trade)
        now = self._state.clock.now()
        if self._state.barcodes.confirmed(auth_code):
            self._paid(trade, now)
            return self._paid_node(trade)
        if barcode.behaviour == "confirm_after":
            self._due[trade.channel_trade_no] = now + timedelta(seconds=barcode.confirm_after_s)
            self._wake_after(barcode.confirm_after_s)
        return self._in_process_node(trade)

    def _repeat(self, trade: SimTrade, amount: int, auth_code: str) -> Node:
        """The same order paid again (a retry after a timeout): its state, as Alipay answers a resent pay."""
        if trade.extra.get("auth_code") != auth_code or trade.amount != amount:
            raise BizError("ACQ.CONTEXT_INCONSISTENT", "trade exists with other details")
        if trade.state is TradeState.PAID and trade.refunded == 0:
            raise BizError("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
        if trade.state is not TradeState.WAITING:
            raise BizError("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
        return self._in_process_node(trade)

    def settle_due(self) -> None:
        """Confirming trades whose payer has confirmed by now become paid (at the confirmation time) and notified."""
        now = self._state.clock.now()
        for trade_no, due in list(self._due.items()):
            trade = self._sim.book.trades.get(trade_no)
            if trade is None or trade.state is not TradeState.WAITING:
                del self._due[trade_no]  # closed or cancelled meanwhile: it never gets paid
            elif self._state.barcodes.confirmed(trade.extra["auth_code"]):
                del self._due[trade_no]
                self._paid(trade, min(due, now))

    def _paid(self, trade: SimTrade, at: datetime) -> None:
        trade.state, trade.paid_at = TradeState.PAID, at
        self._sim._notify(trade)

    def _wake_after(self, delay_s: float) -> None:
        """Settle on time without waiting for a request (a live sandbox's notify); a frozen clock makes it a no-op."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - handlers always run in the server's loop
            return
        loop.call_later(delay_s + WAKE_MARGIN_S, self.settle_due)

    def _paid_node(self, trade: SimTrade) -> Node:
        assert trade.paid_at is not None
        paid = codec.yuan(trade.amount)
        node = _ok(trade)
        node.update({
            "buyer_logon_id": BUYER_LOGON_ID, "total_amount": paid, "receipt_amount": paid, "buyer_pay_amount": paid,
            "point_amount": "0.00", "invoice_amount": paid, "gmt_payment": codec.format_beijing(trade.paid_at),
            "fund_bill_list": [{"amount": paid, "fund_channel": "ALIPAYACCOUNT"}], "buyer_user_id": BUYER_ID,
        })  # fmt: skip
        return node

    def _in_process_node(self, trade: SimTrade) -> Node:
        return {
            "code": "10003", "msg": IN_PROCESS_MSG, "trade_no": trade.channel_trade_no,
            "out_trade_no": trade.out_trade_no, "buyer_logon_id": BUYER_LOGON_ID,
            "total_amount": codec.yuan(trade.amount), "receipt_amount": "0.00", "buyer_pay_amount": "0.00",
            "point_amount": "0.00", "invoice_amount": "0.00", "buyer_user_id": BUYER_ID,
        }  # fmt: skip

    # --- alipay.trade.cancel ----------------------------------------------------------------------------------

    def cancel(self, app_id: str, params: dict[str, str], biz: Node) -> Node:
        out_trade_no, trade_no = _str(biz, "out_trade_no"), _str(biz, "trade_no")
        if not out_trade_no and not trade_no:
            raise BizError("isv.missing-parameter", "out_trade_no or trade_no is required", "40001",
                           "Missing Required Arguments")  # fmt: skip
        if self.cancel_retries > 0:
            self.cancel_retries -= 1
            node: Node = {"code": "10000", "msg": "Success", "retry_flag": "Y"}
            return node | ({"out_trade_no": out_trade_no} if out_trade_no else {})
        trade = self._sim.book.find(app_id, out_trade_no, trade_no)
        if trade is None:  # nothing to reverse: Alipay answers without an action
            return {"code": "10000", "msg": "Success", "out_trade_no": out_trade_no or "", "retry_flag": "N"}
        now = self._state.clock.now()
        if trade.state in (TradeState.UNSCANNED, TradeState.WAITING):
            trade.state, trade.closed_at = TradeState.CLOSED, now
            self._due.pop(trade.channel_trade_no, None)
        action = "close"
        if trade.state is TradeState.PAID:
            action = "refund"
            if trade.refunded == 0:
                trade.refunds[trade.out_trade_no] = SimRefund(trade.out_trade_no, trade.amount, now)
            elif trade.refunded < trade.amount:
                raise BizError("ACQ.TRADE_STATUS_ERROR", "trade partly refunded: refund the rest instead")
        node = _ok(trade) | {"retry_flag": "N", "action": action}
        reversal = trade.refunds.get(trade.out_trade_no)
        if action == "refund" and reversal is not None:
            node["gmt_refund_pay"] = codec.format_beijing(reversal.created_at)
        return node
