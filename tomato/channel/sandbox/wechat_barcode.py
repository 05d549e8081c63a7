"""WeChat Pay payment-code pay (付款码) in the simulator: the API v2 XML endpoints `POST /pay/micropay`,
`/pay/orderquery` and `/secapi/pay/reverse`, on the same merchants and trade book as the v3 APIs.

Wire rules kept: requests are flat XML signed with the merchant's v2 key (`sign_type` HMAC-SHA256, or MD5 when
absent — as at WeChat, so SDKs that sign MD5 work); an unknown `mch_id`, a merchant without a v2 key, a bad or
missing `sign` or unreadable XML get an unsigned `return_code` FAIL; every other answer is signed with the request's
sign type. The real reverse also needs the merchant's TLS client certificate: the simulator does not check TLS.

Behaviour (the payer's, from `POST /sandbox/barcodes`, see `barcodes.py`):
- `pay`: SUCCESS at once; `confirm_after`: `USERPAYING`, then paid once the delay has passed (queries say SUCCESS
  with `time_end` = the moment of confirmation); `never`: `USERPAYING` until reversed; `refuse`: `NOTENOUGH`, the
  trade `PAYERROR`; a code the book never issued, or another channel's: `AUTH_CODE_INVALID`, no trade;
- reverse closes a confirming trade and refunds a paid one: either way it becomes `REVOKED` and no trade bill lists
  it (the sandbox's simplification: a reversed payment and its refund cancel out); a reverse of an unknown order is
  `ORDERNOTEXIST`; `recalls` (a test hook) makes the next reverses answer SYSTEMERROR with `recall` Y, doing nothing;
- WeChat sends no notify for payment-code trades (micropay has no `notify_url`): the till learns by query.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response

from tomato.channel.adapters.wechat import codec, v2
from tomato.channel.sandbox.state import SimTrade, TradeState
from tomato.channel.sandbox.wechat import SIM_OPENID, _wx_id

if TYPE_CHECKING:
    from tomato.channel.sandbox.wechat import WechatSimulator

KIND = "micropay"  # SimTrade.extra["kind"] of a payment-code trade
_Fields = dict[str, str]
_Handler = Callable[[str, _Fields], _Fields]


class _Refusal(Exception):
    """A signed business answer `result_code` FAIL with `err_code` (and `recall` for reverse)."""

    def __init__(self, code: str, message: str, **extra: str) -> None:
        super().__init__(code)
        self.fields = {"err_code": code, "err_code_des": message, **extra}


class BarcodeDesk:
    """The v2 payment-code half of `WechatSimulator`."""

    def __init__(self, sim: WechatSimulator) -> None:
        self._sim = sim
        self._keys: dict[str, str] = {}  # mch_id → API v2 key
        self.recalls = 0  # the next reverses answer SYSTEMERROR / recall Y (test hook)

    def register_key(self, mchid: str, api_v2_key: str) -> None:
        if len(api_v2_key) != 32 or not api_v2_key.isascii() or not api_v2_key.isprintable():
            raise ValueError("api_v2_key must be 32 printable ASCII characters")
        self._keys[mchid] = api_v2_key

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        for path, handler in (
            ("/pay/micropay", self._micropay),
            ("/pay/orderquery", self._orderquery),
            ("/secapi/pay/reverse", self._reverse),
        ):
            router.add_api_route(path, self._endpoint(handler), methods=["POST"])
        return router

    # --- HTTP ---------------------------------------------------------------------------------------------

    def _endpoint(self, handler: _Handler) -> Callable[[Request], object]:
        async def endpoint(request: Request) -> Response:
            state = self._sim._state
            faults = state.faults["wechat"]
            if faults.latency_ms > 0:
                await asyncio.sleep(faults.latency_ms / 1000)
            if state.roll(faults.error_rate):
                return Response("<html>500 sandbox fault</html>", status_code=500)
            stall = state.roll(faults.timeout_rate)
            response = self._answer(handler, await request.body())
            if stall:  # done, but the answer comes too late
                await asyncio.sleep(state.timeout_sleep_s)
            return response

        return endpoint

    def _answer(self, handler: _Handler, body: bytes) -> Response:
        try:
            fields = v2.from_xml(body)
        except ValueError:
            return _xml({"return_code": "FAIL", "return_msg": "XML格式错误"})
        mchid = fields.get("mch_id", "")
        key = self._keys.get(mchid)
        sign_type = fields.get("sign_type") or v2.MD5
        if key is None:
            return _xml({"return_code": "FAIL", "return_msg": "mch_id参数错误"})
        if sign_type not in v2.SIGN_TYPES or not v2.verify(fields, key, sign_type):
            return _xml({"return_code": "FAIL", "return_msg": "签名错误"})
        answer: _Fields = {"return_code": "SUCCESS", "return_msg": "OK", "appid": fields.get("appid", ""),
                           "mch_id": mchid, "nonce_str": v2.nonce_str()}
        try:
            for name in ("appid", "nonce_str"):
                _required(fields, name)
            answer.update(result_code="SUCCESS", **handler(mchid, fields))
        except _Refusal as refusal:
            answer.update(result_code="FAIL", **refusal.fields)
        return _xml(v2.signed(answer, key, sign_type))

    # --- APIs ---------------------------------------------------------------------------------------------

    def _micropay(self, mchid: str, f: _Fields) -> _Fields:
        body, code, ip = _required(f, "body"), _required(f, "auth_code"), _required(f, "spbill_create_ip")
        _required(f, "out_trade_no")
        total = f.get("total_fee", "")
        if not (total.isascii() and total.isdigit() and int(total) > 0):
            raise _Refusal("PARAM_ERROR", "total_fee must be a positive integer of fen")
        book, now = self._sim.book, self._sim._state.clock.now()
        trade = book.find(mchid, f["out_trade_no"])
        if trade is not None:
            if (trade.amount, trade.extra.get("auth_code")) != (int(total), code):
                raise _Refusal("OUT_TRADE_NO_USED", "商户订单号重复")
            self._settle(trade)
            if trade.state is TradeState.PAID:
                raise _Refusal("ORDERPAID", "订单已支付")
            if trade.state is TradeState.CLOSED:
                raise _Refusal("ORDERREVERSED" if trade.extra.get("revoked") else "ORDERCLOSED", "订单已关闭")
            if trade.state is TradeState.FAILED:
                raise _Refusal("ORDERCLOSED", "订单已关闭")
            raise _Refusal("USERPAYING", "需要用户输入支付密码")
        barcodes = self._sim._state.barcodes
        issued = barcodes.lookup(code)
        if issued is None or issued.channel != "wechat":
            raise _Refusal("AUTH_CODE_INVALID", "每个二维码仅限使用一次，请刷新再试")
        barcodes.present(code)
        trade = SimTrade(
            channel="wechat", merchant_id=mchid, out_trade_no=f["out_trade_no"], channel_trade_no=_wx_id("4200", now),
            amount=int(total), subject=body, notify_url="", created_at=now,
            extra={"kind": KIND, "appid": f["appid"], "openid": SIM_OPENID, "auth_code": code, "ip": ip},
        )
        book.add(trade)
        if f.get("profit_sharing") == "Y":  # splits are v3's, on the same trade (wechat_splits.py)
            trade.extra["profit_sharing"] = "true"
        if issued.behaviour == "refuse":
            trade.state, trade.closed_at = TradeState.FAILED, now
            raise _Refusal("NOTENOUGH", "余额不足")
        self._settle(trade)
        if trade.state is not TradeState.PAID:
            raise _Refusal("USERPAYING", "需要用户输入支付密码")
        return self._paid_fields(trade)

    def _orderquery(self, mchid: str, f: _Fields) -> _Fields:
        trade = self._find(mchid, f)
        self._settle(trade)
        state = _trade_state(trade)
        fields = {"out_trade_no": trade.out_trade_no, "trade_state": state, "trade_state_desc": _DESC[state],
                  "total_fee": str(trade.amount), "trade_type": codec.WIRE_TRADE_TYPES[trade.extra["kind"]]}
        if trade.state is TradeState.PAID:
            fields.update(self._paid_fields(trade))
        elif trade.state is not TradeState.WAITING:
            fields["transaction_id"] = trade.channel_trade_no
        return fields

    def _reverse(self, mchid: str, f: _Fields) -> _Fields:
        if self.recalls > 0:
            self.recalls -= 1
            raise _Refusal("SYSTEMERROR", "系统错误，请重新调用撤销", recall="Y")
        try:
            trade = self._find(mchid, f)
        except _Refusal as refusal:
            refusal.fields["recall"] = "N"
            raise
        self._settle(trade)
        if not _is_barcode(trade):
            raise _Refusal("INVALID_REQUEST", "仅付款码支付订单可撤销", recall="N")
        if trade.refunds:
            raise _Refusal("INVALID_REQUEST", "订单已退款，请使用退款查询", recall="N")
        trade.state, trade.paid_at = TradeState.CLOSED, None  # paid: the money goes back to the payer
        trade.closed_at = trade.closed_at or self._sim._state.clock.now()
        trade.extra["revoked"] = "Y"
        return {"recall": "N"}

    # --- records ------------------------------------------------------------------------------------------

    def _find(self, mchid: str, f: _Fields) -> SimTrade:
        if not f.get("out_trade_no") and not f.get("transaction_id"):
            raise _Refusal("PARAM_ERROR", "out_trade_no or transaction_id is required")
        trade = self._sim.book.find(mchid, f.get("out_trade_no"), f.get("transaction_id"))
        if trade is None:
            raise _Refusal("ORDERNOTEXIST", "此交易订单号不存在")
        return trade

    def _settle(self, trade: SimTrade) -> None:
        """A confirming payment-code trade becomes paid once its payer has confirmed, dated then."""
        if not _is_barcode(trade) or trade.state is not TradeState.WAITING:
            return
        barcodes = self._sim._state.barcodes
        code = trade.extra["auth_code"]
        issued = barcodes.lookup(code)
        if issued is None or not barcodes.confirmed(code):
            return
        now = self._sim._state.clock.now()
        delay = timedelta(seconds=issued.confirm_after_s if issued.behaviour == "confirm_after" else 0)
        trade.state, trade.paid_at = TradeState.PAID, min(now, trade.created_at + delay)

    def settle_all(self, mchid: str) -> None:
        """Bring `mchid`'s confirming trades up to date (before a bill is drawn from the records)."""
        for trade in list(self._sim.book.trades.values()):
            if trade.merchant_id == mchid:
                self._settle(trade)

    @staticmethod
    def _paid_fields(trade: SimTrade) -> _Fields:
        paid_at: datetime = trade.paid_at or trade.created_at
        return {
            "openid": trade.extra.get("openid", ""), "is_subscribe": "N", "trade_type": "MICROPAY",
            "bank_type": "OTHERS", "fee_type": "CNY", "total_fee": str(trade.amount), "cash_fee_type": "CNY",
            "cash_fee": str(trade.amount), "transaction_id": trade.channel_trade_no,
            "out_trade_no": trade.out_trade_no, "time_end": v2.format_time(paid_at),
        }


_DESC = {"SUCCESS": "支付成功", "REFUND": "转入退款", "USERPAYING": "用户支付中", "NOTPAY": "未支付",
         "CLOSED": "已关闭", "REVOKED": "已撤销（付款码支付）", "PAYERROR": "支付失败"}


def _trade_state(trade: SimTrade) -> str:
    if trade.state is TradeState.PAID:
        return "REFUND" if trade.refunds else "SUCCESS"
    if trade.state is TradeState.CLOSED:
        return "REVOKED" if trade.extra.get("revoked") else "CLOSED"
    if trade.state is TradeState.FAILED:
        return "PAYERROR"
    return "USERPAYING" if _is_barcode(trade) else "NOTPAY"


def _is_barcode(trade: SimTrade) -> bool:
    return trade.extra.get("kind") == KIND


def _required(fields: _Fields, name: str) -> str:
    value = fields.get(name, "")
    if not value:
        raise _Refusal("PARAM_ERROR", f"{name} is required")
    return value


def _xml(fields: _Fields) -> Response:
    return Response(v2.to_xml(fields), media_type="text/xml")
