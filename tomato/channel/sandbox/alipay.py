"""The Alipay OpenAPI simulator: one gateway, RSA2 both ways, signed async notifies (docs/channels.md).

Wire rules it keeps: requests verified over query ∪ form params exactly as received; responses emitted as
`{"<m>_response":<node>,"sign":"…"}` with the node signed byte for byte and no braces inside string values;
notifies signed without `sign_type` and without empty fields, retried until the reply is exactly `success`.
The trade bill (`alipay.data.dataservice.bill.downloadurl.query`, bill_type trade, any date) is a zip of GBK CSVs
built from these records with the state's fee rate and statement faults (`alipay_bill.py`), downloaded unsigned
from `BILL_PATH` on the host the caller reached. A request with an `app_auth_token` acts for the sub-merchant
that issued it to the calling app (`alipay_isv.py`). Barcode pay (`alipay.trade.pay`) and cancel live in
`alipay_barcode.py`, profit sharing (royalty bind, settle, settle query) in `alipay_splits.py`.
"""

from __future__ import annotations

import asyncio
import html
import json
import secrets
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from tomato.channel.adapters.alipay import codec, signing
from tomato.channel.sandbox import alipay_isv
from tomato.channel.sandbox.alipay_bill import build_bill
from tomato.channel.sandbox.notifier import Notification
from tomato.channel.sandbox.state import ChannelBook, SandboxState, SimRefund, SimTrade, TradeState
from tomato.core.crypto import generate_rsa_key, load_public_key, public_key_pem
from tomato.core.money import MoneyFormatError

GATEWAY_PATH = "/alipay/gateway.do"
BILL_PATH = "/alipay/downloadBillFile.resource"  # on the gateway's host: the adapter follows bill URLs only there
BILL_METHOD = "alipay.data.dataservice.bill.downloadurl.query"
NOTIFY_GAPS_S = (240.0, 600.0, 600.0, 3600.0, 7200.0, 21600.0, 54000.0)  # 4m,10m,10m,1h,2h,6h,15h: 8 sends
BROWSER_METHODS = frozenset({"alipay.trade.wap.pay", "alipay.trade.page.pay"})
BUYER_ID = "2088102000000001"
BUYER_LOGON_ID = "sim***@sandbox.example"
SELLER_ID = "2088101000000001"

Node = dict[str, Any]
_MISSING = "Missing Required Arguments"


class BizError(Exception):
    """A signed business failure to answer with."""

    def __init__(self, sub_code: str, sub_msg: str, code: str = "40004", msg: str = "Business Failed") -> None:
        super().__init__(sub_code)
        self.node: Node = {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}


class AlipaySimulator:
    channel = "alipay"

    def __init__(
        self,
        state: SandboxState,
        *,
        private_key: rsa.RSAPrivateKey | None = None,
        qr_prefix: str = "https://qr.alipay.com/sim",
    ) -> None:
        self._state = state
        self._key = private_key or generate_rsa_key()
        self._qr_prefix = qr_prefix
        self._app_keys: dict[str, rsa.RSAPublicKey] = {}
        self._methods: dict[str, Callable[[str, dict[str, str], Node], Node]] = {
            "alipay.trade.precreate": self._precreate,
            "alipay.trade.query": self._query,
            "alipay.trade.close": self._close,
            "alipay.trade.refund": self._refund,
            "alipay.trade.fastpay.refund.query": self._refund_query,
        }
        self._bills: dict[str, tuple[str, bytes]] = {}  # fileId → (download name, zip bytes)
        self.isv = alipay_isv.IsvGrants()  # service-provider authorizations and the requests seen
        from tomato.channel.sandbox.alipay_barcode import AlipayBarcodes  # it builds on this module's helpers

        self.barcode = AlipayBarcodes(self, state)  # barcode pay and cancel (`alipay_barcode.py`)
        self._methods["alipay.trade.pay"] = self.barcode.pay
        self._methods["alipay.trade.cancel"] = self.barcode.cancel
        from tomato.channel.sandbox.alipay_splits import AlipaySplits

        self.splits = AlipaySplits(self, state)  # profit sharing, and refunds that take split money back
        self._methods.update(self.splits.methods())
        state.attach(self)

    @property
    def public_key_pem(self) -> str:
        """Alipay's public key: configure the platform's `alipay_public_key_pem` with it."""
        return public_key_pem(self._key)

    @property
    def book(self) -> ChannelBook:
        return self._state.books[self.channel]

    def register_app(self, app_id: str, merchant_public_key_pem: str) -> None:
        """Register (or re-key) an app: requests from `app_id` must verify with this merchant public key."""
        self._app_keys[app_id] = load_public_key(merchant_public_key_pem)
        self.book.merchants[app_id] = merchant_public_key_pem

    def authorize(self, app_id: str, app_auth_token: str, auth_app_id: str) -> alipay_isv.Grant:
        """Provider app `app_id` (registered: else LookupError) may act for `auth_app_id` with that token."""
        if app_id not in self._app_keys:
            raise LookupError(f"unknown app_id {app_id!r}")
        return self.isv.authorize(app_id, app_auth_token, auth_app_id)

    def router(self) -> APIRouter:
        router = APIRouter()
        # a plain Starlette route: the gateway parses its own form, so FastAPI's per-request machinery (about a
        # sixth of the simulator's CPU per call) would buy nothing, and the benches share the box with it
        router.add_route(GATEWAY_PATH, self._gateway, methods=["GET", "POST"], include_in_schema=False)
        router.add_api_route(BILL_PATH, self._bill_file, methods=["GET"], include_in_schema=False)
        return router

    # --- HTTP ---------------------------------------------------------------------------------------------

    async def _gateway(self, request: Request) -> Response:
        try:
            params = codec.parse_form(request.scope["query_string"].decode("latin-1"))
            body = codec.parse_form(await request.body())
        except ValueError:
            return self._respond("error_response", _invalid("isv.invalid-parameter", "bad form").node)
        if set(params) & set(body):
            return self._respond("error_response", _invalid("isv.invalid-parameter", "param sent twice").node)
        params.update(body)
        method = params.get("method", "")
        if method in BROWSER_METHODS:
            return self._cashier(params)
        key = codec.response_key(method) if method else "error_response"
        faults = self._state.faults[self.channel]
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        if self._state.roll(faults.error_rate):
            return Response("Internal Server Error", status_code=500, media_type="text/plain")
        stall = self._state.roll(faults.timeout_rate)
        self.barcode.settle_due()  # a payer who confirmed by now has paid, whatever this request asks
        try:
            app_id, biz = self._authenticate(params)
            handler = self._methods.get(method)
            if method == BILL_METHOD:
                node = self._bill_url(app_id, params, biz, str(request.base_url).rstrip("/"))
            elif handler is None:
                raise _invalid("isv.invalid-method", f"unknown method {method}")
            else:
                node = handler(app_id, params, biz)
        except BizError as exc:
            node = exc.node
        response = self._respond(key, node)
        if stall:  # the work is done, the answer comes too late: the caller sees a timeout, outcome unknown
            await asyncio.sleep(self._state.timeout_sleep_s)
        return response

    def _respond(self, key: str, node: Node) -> Response:
        node_json = json.dumps(_no_braces(node), separators=(",", ":"), ensure_ascii=False)
        body = signing.sign_response(key, node_json, self._key)
        return Response(body.encode("utf-8"), media_type="application/json;charset=utf-8")

    def _authenticate(self, params: dict[str, str]) -> tuple[str, Node]:
        """(whom the request acts for: the app, or the sub-merchant its app_auth_token names; biz_content)."""
        app_id = params.get("app_id", "")
        if not app_id:
            raise BizError("isv.missing-app-id", "missing app_id", "40001", _MISSING)
        public_key = self._app_keys.get(app_id)
        if public_key is None:
            raise _invalid("isv.invalid-app-id", "invalid app_id")
        if not params.get("sign"):
            raise BizError("isv.missing-signature", "missing sign", "40001", _MISSING)
        if params.get("sign_type") != "RSA2" or not signing.verify_params(params, public_key):
            raise _invalid("isv.invalid-signature", "invalid signature")
        merchant_id = self.isv.acting_for(params.get("method", ""), app_id, params.get("app_auth_token") or None)
        if merchant_id is None:
            raise BizError(alipay_isv.INVALID_TOKEN_SUB_CODE, alipay_isv.INVALID_TOKEN_SUB_MSG,
                           alipay_isv.INVALID_TOKEN_CODE, alipay_isv.INVALID_TOKEN_MSG)  # fmt: skip
        try:
            biz = json.loads(params.get("biz_content") or "{}", parse_float=Decimal)
        except ValueError:
            biz = None
        if not isinstance(biz, dict):
            raise _invalid("isv.invalid-parameter", "biz_content is not a JSON object")
        return merchant_id, biz

    def _cashier(self, params: dict[str, str]) -> Response:
        """The browser flow: opening the signed page/wap pay URL creates the trade and shows a cashier page."""
        try:
            trade = self._open_browser_trade(params)
        except BizError as exc:
            text = html.escape(f"{exc.node['sub_code']}: {exc.node['sub_msg']}")
            return HTMLResponse(f"<!doctype html><title>Alipay error</title><p>{text}</p>", status_code=400)
        page = (
            "<!doctype html><meta charset='utf-8'><title>Alipay sandbox cashier</title>"
            f"<h1>{html.escape(trade.subject)}</h1><p>Amount: ¥{codec.yuan(trade.amount)}</p>"
            f"<p>Order: {html.escape(trade.out_trade_no)} · Trade: {trade.channel_trade_no}</p>"
            "<p>Pay with <code>POST /sandbox/scan</code> and this order number.</p>"
        )
        return HTMLResponse(page)

    # --- payer API ----------------------------------------------------------------------------------------

    def find_for_scan(self, content: str | None, order_no: str | None) -> SimTrade | None:
        if content:
            trade = self.book.find_by_code(content)
            if trade is not None:
                return trade
            _, sep, query = content.partition("?")
            if not sep:
                return None
            try:
                params = codec.parse_form(query)
            except ValueError:
                return None
            if params.get("method") not in BROWSER_METHODS:
                return None
            try:
                return self._open_browser_trade(params)
            except BizError:
                return None
        if order_no:
            return self.book.find_by_order_no(order_no)
        return None

    def pay_silently(self, trade: SimTrade, at: datetime) -> None:
        trade.state, trade.paid_at, trade.closed_at = TradeState.PAID, at, None

    def complete(self, trade: SimTrade, paid: bool) -> None:
        now = self._state.clock.now()
        if paid:
            trade.state, trade.paid_at = TradeState.PAID, now
        else:
            trade.state, trade.closed_at = TradeState.FAILED, now
        self._notify(trade)

    # --- methods ------------------------------------------------------------------------------------------

    def _precreate(self, app_id: str, params: dict[str, str], biz: Node) -> Node:
        out_trade_no, amount, subject = _order_fields(biz)
        trade = self.book.find(app_id, out_trade_no)
        if trade is None:
            qr_code = self._qr_prefix + secrets.token_hex(12)
            trade = self._new_trade(app_id, out_trade_no, amount, subject, params, TradeState.UNSCANNED)
            trade.extra["qr_code"] = qr_code
            self.book.add(trade, code=qr_code)
        elif trade.state is TradeState.PAID:
            raise BizError("ACQ.TRADE_HAS_SUCCESS", "trade already paid")
        elif trade.state in (TradeState.CLOSED, TradeState.FAILED):
            raise BizError("ACQ.TRADE_HAS_CLOSE", "trade already closed")
        elif trade.amount != amount or "qr_code" not in trade.extra:
            raise BizError("ACQ.CONTEXT_INCONSISTENT", "trade exists with other details")
        return {"code": "10000", "msg": "Success", "out_trade_no": out_trade_no, "qr_code": trade.extra["qr_code"]}

    def _open_browser_trade(self, params: dict[str, str]) -> SimTrade:
        app_id, biz = self._authenticate(params)
        out_trade_no, amount, subject = _order_fields(biz)
        trade = self.book.find(app_id, out_trade_no)
        if trade is None:
            trade = self._new_trade(app_id, out_trade_no, amount, subject, params, TradeState.WAITING)
            self.book.add(trade)
        elif trade.amount != amount:
            raise BizError("ACQ.CONTEXT_INCONSISTENT", "trade exists with another amount")
        return trade

    def _query(self, app_id: str, params: dict[str, str], biz: Node) -> Node:
        trade = self._visible_trade(app_id, biz)
        node = _ok(trade)
        node.update({
            "buyer_logon_id": BUYER_LOGON_ID, "trade_status": _trade_status(trade),
            "total_amount": codec.yuan(trade.amount),
        })
        if trade.paid_at is not None:
            paid = codec.yuan(trade.amount)
            node.update({
                "receipt_amount": paid, "buyer_pay_amount": paid, "point_amount": "0.00", "invoice_amount": paid,
                "send_pay_date": codec.format_beijing(trade.paid_at), "buyer_user_id": BUYER_ID,
                "fund_bill_list": [{"amount": paid, "fund_channel": "ALIPAYACCOUNT"}],
            })
        return node

    def _close(self, app_id: str, params: dict[str, str], biz: Node) -> Node:
        trade = self.book.find(app_id, _str(biz, "out_trade_no"), _str(biz, "trade_no"))
        ignore = self._state.faults[self.channel].ignore_close
        if trade is None or trade.state is TradeState.UNSCANNED:
            if trade is not None and not ignore:  # unknown to Alipay, but the code handed out dies with it
                trade.state, trade.closed_at = TradeState.CLOSED, self._state.clock.now()
            raise BizError("ACQ.TRADE_NOT_EXIST", "trade does not exist")
        if trade.state is TradeState.PAID:
            raise BizError("ACQ.TRADE_STATUS_ERROR", "trade is paid and cannot be closed")
        if trade.state is TradeState.WAITING and not ignore:
            trade.state, trade.closed_at = TradeState.CLOSED, self._state.clock.now()
        return _ok(trade)

    def _refund(self, app_id: str, params: dict[str, str], biz: Node) -> Node:
        if self._state.faults[self.channel].reject_refunds:
            raise BizError("ACQ.TRADE_NOT_ALLOW_REFUND", "refunds refused (sandbox fault)")
        trade = self._visible_trade(app_id, biz)
        amount = _amount(biz, "refund_amount")
        refund_no = _str(biz, "out_request_no") or trade.out_trade_no
        done = trade.refunds.get(refund_no)
        if done is not None:
            if done.amount != amount:
                raise BizError("ACQ.INVALID_PARAMETER", "out_request_no reused with another amount")
            return self._refund_node(trade, fund_change="N")
        if trade.state is not TradeState.PAID:
            raise BizError("ACQ.TRADE_STATUS_ERROR", "trade is not paid")
        if trade.refunded + amount > trade.amount:
            raise BizError("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "refund amount exceeds the refundable balance")
        trade.refunds[refund_no] = SimRefund(refund_no, amount, self._state.clock.now())
        return self._refund_node(trade, fund_change="Y")

    def _refund_node(self, trade: SimTrade, fund_change: str) -> Node:
        node = _ok(trade)
        node.update({
            "buyer_logon_id": BUYER_LOGON_ID, "fund_change": fund_change, "refund_fee": codec.yuan(trade.refunded),
            "gmt_refund_pay": codec.format_beijing(self._state.clock.now()),
        })
        return node

    def _refund_query(self, app_id: str, params: dict[str, str], biz: Node) -> Node:
        trade = self._visible_trade(app_id, biz)
        refund_no = _str(biz, "out_request_no") or trade.out_trade_no
        node = _ok(trade)
        refund = trade.refunds.get(refund_no)
        if refund is not None:  # absent: code 10000 with no refund data, as Alipay answers
            node.update({
                "out_request_no": refund_no, "refund_amount": codec.yuan(refund.amount),
                "total_amount": codec.yuan(trade.amount), "refund_status": "REFUND_SUCCESS",
                "gmt_refund_pay": codec.format_beijing(refund.created_at),
            })
        return node

    def _bill_url(self, app_id: str, params: dict[str, str], biz: Node, base_url: str) -> Node:
        """A trade bill for any date, built from the records (and the date's statement faults), kept for download."""
        if biz.get("bill_type") != "trade":
            raise _invalid("isv.invalid-parameter", "the sandbox serves bill_type=trade only")
        try:
            day = date.fromisoformat(str(biz.get("bill_date", "")))
        except ValueError:
            raise _invalid("isv.invalid-parameter", "bill_date must be yyyy-MM-dd") from None
        rows = self._state.statement_rows(self.channel, app_id, day)
        if not rows and params.get("app_auth_token"):  # a sub-merchant's day without trades has no bill
            raise BizError(alipay_isv.NO_BILL_SUB_CODE, alipay_isv.NO_BILL_SUB_MSG)
        name, data = build_bill(SELLER_ID, day, rows, self._state.clock.now())
        token = secrets.token_urlsafe(24)
        self._bills[token] = (name, data)
        while len(self._bills) > 256:
            self._bills.pop(next(iter(self._bills)))
        url = f"{base_url}{BILL_PATH}?{urlencode({'fileId': token, 'downloadFileName': name})}"
        return {"code": "10000", "msg": "Success", "bill_download_url": url}

    async def _bill_file(self, request: Request) -> Response:
        """The bill download: unsigned zip bytes, as Alipay's bill host serves them."""
        found = self._bills.get(request.query_params.get("fileId", ""))
        if found is None:
            return Response("bill file not found or expired", status_code=404, media_type="text/plain")
        name, data = found
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f"attachment; filename={quote(name)}"})

    # --- helpers ------------------------------------------------------------------------------------------

    def _visible_trade(self, app_id: str, biz: Node) -> SimTrade:
        trade = self.book.find(app_id, _str(biz, "out_trade_no"), _str(biz, "trade_no"))
        if trade is None or trade.state is TradeState.UNSCANNED:
            raise BizError("ACQ.TRADE_NOT_EXIST", "trade does not exist")
        return trade

    def _new_trade(
        self, app_id: str, out_trade_no: str, amount: int, subject: str, params: dict[str, str], state: TradeState
    ) -> SimTrade:
        now = self._state.clock.now()
        trade_no = now.astimezone(codec.BEIJING).strftime("%Y%m%d") + "22001" + f"{secrets.randbelow(10**15):015d}"
        trade = SimTrade(
            channel=self.channel, merchant_id=app_id, out_trade_no=out_trade_no, channel_trade_no=trade_no,
            amount=amount, subject=subject, notify_url=params.get("notify_url", ""), created_at=now, state=state,
            extra={"app_id": params.get("app_id") or app_id},  # the calling app: a provider's for an isv trade
        )
        if _freezes(params):
            trade.extra["royalty_freeze"] = "true"  # its money waits for a split (`alipay_splits.py`)
        return trade

    def _notify(self, trade: SimTrade) -> None:
        if not trade.notify_url:
            return
        fields = self.notify_fields(trade, secrets.token_hex(16))
        self._state.notifier.send(
            Notification(
                channel=self.channel, url=trade.notify_url, body=codec.encode_form(fields),
                headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                accepted=lambda r: r.status_code == 200 and r.content == b"success",
                gaps_s=NOTIFY_GAPS_S, notify_id=fields["notify_id"],
            )
        )

    def notify_fields(self, trade: SimTrade, notify_id: str) -> dict[str, str]:
        """The signed A7 notify for the trade's current state (no empty fields; `sign_type` sent, not signed)."""
        amount = codec.yuan(trade.amount)
        fields = {
            "notify_time": codec.format_beijing(self._state.clock.now()), "notify_type": "trade_status_sync",
            "notify_id": notify_id, "app_id": trade.extra.get("app_id", trade.merchant_id),
            "auth_app_id": trade.merchant_id,
            "charset": "utf-8", "version": "1.0", "sign_type": "RSA2", "trade_no": trade.channel_trade_no,
            "out_trade_no": trade.out_trade_no, "trade_status": _trade_status(trade), "total_amount": amount,
            "subject": trade.subject, "gmt_create": codec.format_beijing(trade.created_at), "buyer_id": BUYER_ID,
            "buyer_logon_id": BUYER_LOGON_ID, "seller_id": SELLER_ID, "seller_email": "merchant@sandbox.example",
        }
        if trade.paid_at is not None:
            fields.update({
                "receipt_amount": amount, "invoice_amount": amount, "buyer_pay_amount": amount, "point_amount": "0.00",
                "gmt_payment": codec.format_beijing(trade.paid_at),
                "fund_bill_list": json.dumps(
                    [{"amount": amount, "fundChannel": "ALIPAYACCOUNT"}], separators=(",", ":")
                ),
            })
        if trade.closed_at is not None:
            fields["gmt_close"] = codec.format_beijing(trade.closed_at)
        return signing.sign_notify({k: v for k, v in fields.items() if v}, self._key)


def _freezes(params: dict[str, str]) -> bool:
    """The create carried `extend_params.royalty_freeze` "true" (a JSON true is read the same)."""
    try:
        extend = json.loads(params.get("biz_content") or "{}").get("extend_params")
    except (ValueError, AttributeError):
        return False
    return isinstance(extend, dict) and str(extend.get("royalty_freeze")).lower() == "true"


def _invalid(sub_code: str, sub_msg: str) -> BizError:
    return BizError(sub_code, sub_msg, "40002", "Invalid Arguments")


def _ok(trade: SimTrade) -> Node:
    return {"code": "10000", "msg": "Success", "trade_no": trade.channel_trade_no, "out_trade_no": trade.out_trade_no}


def _trade_status(trade: SimTrade) -> str:
    if trade.state is TradeState.PAID:
        return "TRADE_CLOSED" if trade.refunded >= trade.amount else "TRADE_SUCCESS"
    if trade.state in (TradeState.WAITING, TradeState.UNSCANNED):
        return "WAIT_BUYER_PAY"
    return "TRADE_CLOSED"


def _str(biz: Node, name: str) -> str | None:
    value = biz.get(name)
    return value if isinstance(value, str) and value else None


def _amount(biz: Node, name: str) -> int:
    value = biz.get(name)
    try:
        amount = codec.fen(str(value)) if isinstance(value, str | Decimal | int) else 0
    except MoneyFormatError:
        amount = 0
    if amount <= 0:
        raise BizError("ACQ.INVALID_PARAMETER", f"{name} must be a positive yuan amount")
    return amount


def _order_fields(biz: Node) -> tuple[str, int, str]:
    out_trade_no = _str(biz, "out_trade_no")
    subject = _str(biz, "subject")
    if not out_trade_no or not subject:
        raise BizError("isv.missing-parameter", "out_trade_no and subject are required", "40001", _MISSING)
    return out_trade_no, _amount(biz, "total_amount"), subject


def _no_braces(value: Any) -> Any:
    """Replace `{`/`}` inside string values: the fzlee SDK counts braces without regard to quotes (A4)."""
    if isinstance(value, str):
        return value.replace("{", "｛").replace("}", "｝")
    if isinstance(value, dict):
        return {k: _no_braces(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_braces(v) for v in value]
    return value
