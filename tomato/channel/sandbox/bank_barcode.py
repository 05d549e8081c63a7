"""Barcode pay (付款码) at the simulated bank: UnionPay's payer-presented QR consumption and its reversal (冲正).

On `backTransReq.do`: the consume (txnType 01 / txnSubType 06 / bizType 000000, the code in `qrNo`) consults the
sandbox's `BarcodeBook` and answers respCode 00 (accepted) with the trade's `queryId`, except for a code the book
never issued for the bank, refused at once with respCode 61 (输入的卡号无效). The payer then behaves as the code
says: `pay` paid at once; `confirm_after` in process (query origRespCode 05) until confirmed, paid from then on
(paid_at = the moment of confirmation); `never` in process until reversed; `refuse` failed with origRespCode 64
(卡上的余额不足). Successes are back-notified (UnionPay notifies successes only). A code pays one trade only: used
again under another orderId it is refused with 61, as a spent code is. The simulated bank looks at a confirming
trade `confirm_after_s` after the consume (divided by the state's time scale) and whenever the trade is looked at
(query, reversal); the confirmation itself follows the sandbox clock, so a test's frozen clock decides it, and
under a time scale above 1 it is noticed at the next query or reversal.

The reversal (txnType 99 / txnSubType 01 / bizType 000000) names the consume by its orderId + txnTime: an
in-process trade is closed (a later confirmation never happens), a paid one is reversed — the payer gets the money
back and the trade is in no reconciliation file (a reversed consume is never settled), queries then answer
origRespCode 01. Reversing again answers 00 again. An orderId the bank never saw answers 34 and is remembered, so
a consume arriving after its own reversal is refused (12). The same orderId, txnTime, amount and code again
answer the same trade; other terms answer 12.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from tomato.channel.adapters.bank import codec
from tomato.channel.sandbox.bank_wire import OK_MSG, BankError, Fields, common_fields, txn_fields
from tomato.channel.sandbox.state import SandboxState, SimTrade, TradeState

CHANNEL = "bank"
CONSUME = ("06", "000000")  # txnSubType, bizType of the QR consume (txnType 01)
REVERSAL = ("01", "000000")  # of the reversal (txnType 99)
INVALID_CODE, NO_FUNDS, REVERSED = "61", "64", "01"
_MESSAGES = {
    "00": OK_MSG,
    "05": "交易已受理,请稍后查询交易结果",
    NO_FUNDS: "卡上的余额不足",
    REVERSED: "交易失败: 已冲正",
}


class BankBarcodes:
    """The bank's barcode trades live in the channel book (refunds and the file find them); this desk keeps
    their codes. `notify(url, fields, query_id)` sends a back-notify."""

    def __init__(self, state: SandboxState, notify: Callable[[str, Fields, str], None]) -> None:
        self._state = state
        self._notify = notify
        self._reversed_unseen: set[tuple[str, str]] = set()  # reversals of consumes the bank never saw
        self._spent: set[str] = set()  # codes that paid (or tried to pay) a trade: one trade per code

    def consume(self, mer_id: str, fields: Fields) -> Fields:
        if (fields.get("txnSubType"), fields.get("bizType")) != CONSUME:
            raise BankError("32", "无此交易权限: back consumes are QR codes (txnSubType 06, bizType 000000)")
        order_id, amount, txn_time = txn_fields(fields)
        code, back_url = fields.get("qrNo", ""), fields.get("backUrl", "")
        if urlsplit(back_url).scheme not in ("http", "https") or fields.get("currencyCode") != codec.CURRENCY_CNY:
            raise BankError("13", "报文交易要素缺失: backUrl or currencyCode")
        if not code:
            raise BankError("13", "报文交易要素缺失: qrNo")
        txn_text = codec.format_time(txn_time)
        book = self._state.books[CHANNEL]
        known = book.find(mer_id, order_id)
        if known is not None:  # a resend of the same consume answers the same trade
            same = (known.extra.get("qrNo"), known.extra["txnTime"], known.amount) == (code, txn_text, amount)
            if not same:
                raise BankError("12", "重复交易: this orderId is known with other terms")
            return self._fields(known) | {"respCode": "00", "respMsg": OK_MSG}
        if (mer_id, order_id) in self._reversed_unseen:
            raise BankError("12", "重复交易: this orderId was reversed")
        barcode = self._state.barcodes.lookup(code)
        if barcode is None or barcode.channel != CHANNEL or code in self._spent:
            raise BankError(INVALID_CODE, "输入的卡号无效: unknown or expired payment code")
        self._state.barcodes.present(code)
        self._spent.add(code)
        now = self._state.clock.now()
        trade = SimTrade(
            channel=CHANNEL,
            merchant_id=mer_id,
            out_trade_no=order_id,
            channel_trade_no=codec.new_query_id(now),
            amount=amount,
            subject=order_id,
            notify_url=back_url,
            created_at=now,
            extra={"txnTime": txn_text, "qrNo": code, "traceNo": f"{secrets.randbelow(10**6):06d}"},
        )
        book.add(trade)
        if barcode.behaviour == "refuse":
            trade.state, trade.closed_at, trade.extra["result"] = TradeState.FAILED, now, NO_FUNDS
        elif barcode.behaviour == "confirm_after":
            delay = barcode.confirm_after_s / self._state.time_scale
            self._state.notifier.later(delay, lambda: self._settle(trade))
        self._settle(trade)
        return self._fields(trade) | {"respCode": "00", "respMsg": OK_MSG}

    def reverse(self, mer_id: str, fields: Fields) -> Fields:
        if (fields.get("txnSubType"), fields.get("bizType")) != REVERSAL:
            raise BankError("32", "无此交易权限: reversals are txnSubType 01, bizType 000000")
        order_id = fields.get("orderId", "")
        try:
            txn_text = codec.format_time(codec.parse_time(fields.get("txnTime", "")))
        except ValueError:
            raise BankError("10", "报文格式错误: txnTime") from None
        if not codec.valid_order_id(order_id):
            raise BankError("10", "报文格式错误: orderId")
        trade = self._trade(mer_id, order_id, txn_text)
        if trade is None:
            if self._state.books[CHANNEL].find(mer_id, order_id) is None:
                self._reversed_unseen.add((mer_id, order_id))
            raise BankError(codec.NOT_FOUND_CODE, "查无此交易")
        self._settle(trade)
        if trade.refunds:
            raise BankError("35", "原交易不存在或状态不正确: already refunded")
        if trade.state is not TradeState.CLOSED:
            trade.state, trade.closed_at, trade.paid_at = TradeState.CLOSED, self._state.clock.now(), None
            trade.extra["reversalQueryId"] = codec.new_query_id(self._state.clock.now())
        return common_fields(mer_id) | {
            "txnType": "99",
            "txnSubType": REVERSAL[0],
            "bizType": REVERSAL[1],
            "channelType": "08",
            "orderId": order_id,
            "txnTime": txn_text,
            "queryId": trade.extra["reversalQueryId"],
            "origQryId": trade.channel_trade_no,
            "respCode": "00",
            "respMsg": OK_MSG,
        }

    def query_answer(self, mer_id: str, order_id: str, txn_time: str) -> Fields | None:
        """A query's answer for the barcode consume of exactly this orderId and txnTime, None when there is none."""
        trade = self._trade(mer_id, order_id, txn_time)
        if trade is None:
            return None
        self._settle(trade)
        code = {TradeState.PAID: "00", TradeState.CLOSED: REVERSED}.get(trade.state, trade.extra.get("result", "05"))
        return self._fields(trade) | {"origRespCode": code, "origRespMsg": _MESSAGES.get(code, code)}

    def _trade(self, mer_id: str, order_id: str, txn_time: str) -> SimTrade | None:
        trade = self._state.books[CHANNEL].find(mer_id, order_id)
        if trade is None or "qrNo" not in trade.extra or trade.extra["txnTime"] != txn_time:
            return None
        return trade

    def _settle(self, trade: SimTrade) -> None:
        """An in-process trade whose payer has confirmed by now becomes paid (when they confirmed) and is notified."""
        if trade.state is not TradeState.WAITING or not self._state.barcodes.confirmed(trade.extra["qrNo"]):
            return
        barcode = self._state.barcodes.lookup(trade.extra["qrNo"])
        now = self._state.clock.now()
        delay = timedelta(seconds=barcode.confirm_after_s if barcode and barcode.behaviour == "confirm_after" else 0)
        self._pay(trade, min(now, trade.created_at + delay))

    def _pay(self, trade: SimTrade, at: datetime) -> None:
        trade.state, trade.paid_at = TradeState.PAID, at
        trade.extra["traceTime"] = codec.format_time(at)[4:]
        fields = self._fields(trade) | {"respCode": "00", "respMsg": OK_MSG}
        self._notify(trade.notify_url, fields, trade.channel_trade_no)

    @staticmethod
    def _fields(trade: SimTrade) -> Fields:
        """The consume's answer/query/notify fields (the payer's code is not echoed)."""
        fields = common_fields(trade.merchant_id) | {
            "txnType": "01",
            "txnSubType": CONSUME[0],
            "bizType": CONSUME[1],
            "channelType": "08",
            "orderId": trade.out_trade_no,
            "txnTime": trade.extra["txnTime"],
            "txnAmt": str(trade.amount),
            "currencyCode": codec.CURRENCY_CNY,
            "queryId": trade.channel_trade_no,
            "traceNo": trade.extra["traceNo"],
            "traceTime": trade.extra.get("traceTime", codec.format_time(trade.created_at)[4:]),
        }
        if trade.paid_at is not None:
            fields |= {
                "settleAmt": str(trade.amount),
                "settleCurrencyCode": codec.CURRENCY_CNY,
                "settleDate": codec.settle_date(codec.beijing_date(trade.paid_at)),
            }
        return fields
