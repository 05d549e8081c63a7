"""The WeChat Pay API v3 simulator: `/v3/…` JSON APIs signed both ways, encrypted notifies (docs/channels.md).

Wire rules it keeps: requests verified over `METHOD\\nURL?query\\nTS\\nNONCE\\nBODY\\n` from the raw request line and
raw body (401 `SIGN_ERROR`, signed, otherwise); every answer — errors and the empty 204 of close included — signed
with `Wechatpay-*` headers in public-key mode; bill downloads unsigned. Behaviour chosen for the sandbox:
- trades exist from prepay (query → `NOTPAY`); `failed` scans give `PAYERROR` and, as at WeChat, no notify (only
  successful payments are notified), so the platform learns it by querying;
- refunds answer `PROCESSING`, then complete at once: from then on the refund query says `SUCCESS` and a
  `REFUND.SUCCESS` notify is on its way; beyond the refundable balance → signed 400 `NOT_ENOUGH`;
- notifies are re-signed on every send (receivers refuse timestamps older than 5 minutes) and count as
  acknowledged on HTTP 200/204 only, retried 15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h ÷ time_scale;
- the trade bill (ALL) is built from these records for any date with activity, else 400 `NO_STATEMENT_EXIST`,
  with the state's fee rate and statement faults (`SandboxState.statement_rows`);
- `time_expire` is recorded, not enforced (as in the Alipay simulator): the platform closes expired orders itself.
Service providers' partner APIs (服务商) are `wechat_partner.py`'s, payment-code pay (API v2 XML, keyed by
`api_v2_key`) `wechat_barcode.py`'s, profit sharing (分账) `wechat_splits.py`'s, on the same keys and records.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import html
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from tomato.channel.adapters.wechat import codec, signing
from tomato.channel.sandbox.notifier import Notification
from tomato.channel.sandbox.resigned import ResignedHeaders
from tomato.channel.sandbox.state import BillRow, ChannelBook, SandboxState, SimRefund, SimTrade, TradeState
from tomato.core.clock import Clock, SystemClock
from tomato.core.crypto import generate_rsa_key, load_public_key, public_key_pem
from tomato.core.money import fen_to_yuan

if TYPE_CHECKING:
    from tomato.channel.sandbox.wechat_barcode import BarcodeDesk
    from tomato.channel.sandbox.wechat_partner import PartnerDesk

NOTIFY_GAPS_S = (15.0, 15.0, 30.0, 180.0, 600.0, 1200.0, 1800.0, 1800.0, 1800.0, 3600.0, 10800.0, 10800.0, 10800.0,
                 21600.0, 21600.0)  # 16 sends over 24h4m
H5_PAGE_PATH = "/wechat/checkmweb"
SIM_OPENID = "oSim0000000000000000000000000"
Body = dict[str, Any]
_CREATE = re.compile(r"/v3/pay/transactions/(native|jsapi|h5)")
_QUERY = re.compile(r"/v3/pay/transactions/(out-trade-no|id)/([^/]+)")
_CLOSE = re.compile(r"/v3/pay/transactions/out-trade-no/([^/]+)/close")
_REFUND = re.compile(r"/v3/refund/domestic/refunds/([^/]+)")
_STATE_DESC = {"SUCCESS": "支付成功", "REFUND": "转入退款", "PAYERROR": "支付失败", "CLOSED": "已关闭",
               "NOTPAY": "订单未支付"}


class WxError(Exception):
    """A signed error answer `{"code","message"}` with its HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


@dataclass
class _Merchant:
    serial_no: str
    public_key: rsa.RSAPublicKey
    api_v3_key: str


@dataclass
class _Refund:
    mchid: str
    out_refund_no: str
    refund_id: str
    trade: SimTrade
    amount: int  # fen
    notify_url: str
    created_at: datetime
    status: str = "PROCESSING"
    success_at: datetime | None = None


@dataclass(frozen=True)
class _Call:
    mchid: str
    query: dict[str, str]
    body: Body
    base_url: str  # e.g. "http://sandbox.test": where the caller reached us, for the URLs we hand out
    serial: str = ""  # the request's Wechatpay-Serial: the platform key its sensitive fields are encrypted with


class WechatSimulator:
    channel = "wechat"

    def __init__(
        self, state: SandboxState, *, private_key: rsa.RSAPrivateKey | None = None, public_key_id: str | None = None,
        signing_clock: Clock | None = None,
    ) -> None:
        """`signing_clock` times signatures and the ±5 min window: real time by default, because adapters sign with
        real time even when tests freeze or advance the sandbox's business clock (`state.clock`)."""
        self._state = state
        self._wall = signing_clock or SystemClock()
        self._key = private_key or generate_rsa_key()
        digest = int.from_bytes(hashlib.sha256(self.public_key_pem.encode()).digest()[:12], "big")
        self._key_id = public_key_id or f"PUB_KEY_ID_0114{digest % 10**28:028d}"
        self._merchants: dict[str, _Merchant] = {}
        self._refunds: dict[tuple[str, str], _Refund] = {}  # (mchid, out_refund_no) → refund
        self._bills: dict[str, tuple[str, bytes]] = {}  # download token → (mchid, file bytes)
        from tomato.channel.sandbox.wechat_barcode import BarcodeDesk  # these build on this module
        from tomato.channel.sandbox.wechat_partner import PartnerDesk
        from tomato.channel.sandbox.wechat_splits import SplitDesk

        self.partner: PartnerDesk = PartnerDesk(self)  # service providers' sub-merchants and partner APIs
        self.splits = SplitDesk(self)  # profit sharing: receivers, splits, returns
        self.barcode: BarcodeDesk = BarcodeDesk(self)  # payment-code pay, API v2
        state.attach(self)

    @property
    def public_key_pem(self) -> str:
        """WeChat's platform public key: configure the account's `platform_public_key_pem` with it."""
        return public_key_pem(self._key)

    @property
    def public_key_id(self) -> str:
        """The `Wechatpay-Serial` it signs with: configure `platform_public_key_id` with it."""
        return self._key_id

    @property
    def book(self) -> ChannelBook:
        return self._state.books[self.channel]

    def register_merchant(
        self, mchid: str, merchant_serial_no: str, merchant_public_key_pem: str, api_v3_key: str,
        api_v2_key: str | None = None,
    ) -> None:
        """Register (or re-key) a merchant, as its console would: API key + certificate serial, APIv3 key, and the
        v2 key its payment-code calls are signed with (optional)."""
        if len(api_v3_key.encode()) != 32:
            raise ValueError("api_v3_key must be 32 bytes")
        if api_v2_key is not None:
            self.barcode.register_key(mchid, api_v2_key)
        key = load_public_key(merchant_public_key_pem)
        self._merchants[mchid] = _Merchant(merchant_serial_no.upper(), key, api_v3_key)
        self.book.merchants[mchid] = merchant_public_key_pem

    def register_sub_merchant(self, sp_mchid: str, sub_mchid: str, sub_appid: str | None = None) -> None:
        """Record that the registered provider `sp_mchid` may act for `sub_mchid` (服务商 受理关系)."""
        self.partner.register_sub_merchant(sp_mchid, sub_mchid, sub_appid)

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route("/v3/{rest:path}", self._api, methods=["GET", "POST"], include_in_schema=False)
        router.add_api_route(H5_PAGE_PATH, self._h5_page, methods=["GET"], include_in_schema=False)
        router.include_router(self.barcode.router())
        return router

    # --- HTTP ---------------------------------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        raw_body = await request.body()
        faults = self._state.faults[self.channel]
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        if self._state.roll(faults.error_rate):
            return self._respond(500, {"code": "SYSTEM_ERROR", "message": "系统错误 (sandbox fault)"})
        stall = self._state.roll(faults.timeout_rate)
        try:
            call = self._authenticate(request, raw_body)
            response = self._dispatch(request.method, request.url.path, call)
        except WxError as exc:
            response = self._respond(exc.status, {"code": exc.code, "message": exc.message})
        if stall:  # the work is done, the answer comes too late: the caller sees a timeout, outcome unknown
            await asyncio.sleep(self._state.timeout_sleep_s)
        return response

    def _respond(self, status: int, body: Body | None) -> Response:
        content = codec.dumps(body) if body is not None else b""
        headers = signing.signed_headers(self._key, self._key_id, content, int(self._wall.timestamp()))
        media_type = codec.JSON_CONTENT_TYPE if body is not None else None
        return Response(content, status_code=status, headers=headers, media_type=media_type)

    def _authenticate(self, request: Request, body: bytes) -> _Call:
        try:
            items = signing.parse_authorization(request.headers.get("authorization", ""))
        except ValueError as exc:
            raise WxError(401, "SIGN_ERROR", f"Authorization: {exc}") from None
        merchant = self._merchants.get(items["mchid"])
        if merchant is None or items["serial_no"].upper() != merchant.serial_no:
            raise WxError(401, "SIGN_ERROR", "unknown mchid or serial_no")
        if not signing.timestamp_fresh(items["timestamp"], self._wall.timestamp()):
            raise WxError(401, "SIGN_ERROR", "timestamp expired")
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string") or b""
        url = (raw_path + (b"?" + query if query else b"")).decode("latin-1")
        if not signing.verify_request(merchant.public_key, items, request.method, url, body):
            raise WxError(401, "SIGN_ERROR", "signature does not verify")
        parsed: Body = {}
        if body:
            try:
                parsed = codec.loads_object(body)
            except (ValueError, UnicodeDecodeError):
                raise WxError(400, "PARAM_ERROR", "body is not a JSON object") from None
        serial = request.headers.get("wechatpay-serial", "")
        return _Call(items["mchid"], dict(request.query_params), parsed, str(request.base_url).rstrip("/"), serial)

    def _dispatch(self, method: str, path: str, call: _Call) -> Response:
        if answer := self.partner.dispatch(method, path, call) or self.splits.dispatch(method, path, call):
            return answer
        if method == "POST" and (m := _CREATE.fullmatch(path)):
            return self._respond(200, self._create(call, m.group(1)))
        if method == "POST" and (m := _CLOSE.fullmatch(path)):
            return self._close(call, m.group(1))
        if method == "GET" and (m := _QUERY.fullmatch(path)):
            if call.query.get("mchid") != call.mchid:
                raise WxError(400, "PARAM_ERROR", "mchid does not match the Authorization")
            by_id = m.group(1) == "id"
            trade = self.book.find(call.mchid, None if by_id else m.group(2), m.group(2) if by_id else None)
            if trade is None:
                raise WxError(404, "ORDER_NOT_EXIST", "订单不存在")
            return self._respond(200, self._transaction(trade))
        if method == "POST" and path == "/v3/refund/domestic/refunds":
            return self._respond(200, self._refund(call))
        if method == "GET" and (m := _REFUND.fullmatch(path)):
            refund = self._refunds.get((call.mchid, m.group(1)))
            if refund is None:
                raise WxError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            return self._respond(200, self._refund_node(refund))
        if method == "GET" and path == "/v3/bill/tradebill":
            return self._respond(200, self._trade_bill(call))
        if method == "GET" and path == "/v3/billdownload/file":
            mchid, data = self._bills.get(call.query.get("token", ""), ("", b""))
            if mchid != call.mchid:
                raise WxError(404, "RESOURCE_NOT_EXISTS", "download token unknown or expired")
            return Response(data, media_type="application/octet-stream")  # bill downloads are unsigned
        raise WxError(404, "NOT_FOUND", f"no API {method} {path}")

    async def _h5_page(self, request: Request) -> HTMLResponse:
        """The H5 cashier the payer's browser lands on; paying is done with `POST /sandbox/scan`."""
        prepay_id = request.query_params.get("prepay_id") or "-"
        trade = next((t for t in self.book.trades.values() if t.extra.get("prepay_id") == prepay_id), None)
        if trade is None:
            return HTMLResponse("<!doctype html><title>WeChat Pay</title><p>unknown prepay_id</p>", status_code=404)
        return HTMLResponse(
            "<!doctype html><meta charset='utf-8'><title>WeChat Pay sandbox</title>"
            f"<h1>{html.escape(trade.subject)}</h1><p>Amount: ¥{fen_to_yuan(trade.amount)}</p>"
            f"<p>Order: {html.escape(trade.out_trade_no)}</p>"
            "<p>Pay with <code>POST /sandbox/scan</code> and this page's URL or the order number.</p>"
        )

    # --- payer API ----------------------------------------------------------------------------------------

    def find_for_scan(self, content: str | None, order_no: str | None) -> SimTrade | None:
        if content:
            return self.book.find_by_code(content.strip())
        return self.book.find_by_order_no(order_no) if order_no else None

    def pay_silently(self, trade: SimTrade, at: datetime) -> None:
        trade.state, trade.paid_at, trade.closed_at = TradeState.PAID, at, None

    def complete(self, trade: SimTrade, paid: bool) -> None:
        now = self._state.clock.now()
        if not paid:  # PAYERROR, never notified: the platform's query finds it
            trade.state, trade.closed_at = TradeState.FAILED, now
            return
        trade.state, trade.paid_at = TradeState.PAID, now
        if self.partner.owns(trade):
            self.partner.notify_payment(trade)
            return
        self._notify(trade.merchant_id, trade.notify_url, "TRANSACTION.SUCCESS", "支付成功", "transaction",
                     self._transaction(trade))

    # --- APIs ---------------------------------------------------------------------------------------------

    def _create(self, call: _Call, kind: str) -> Body:
        _same_mchid(call)
        extra = {"kind": kind, "appid": _text(call.body, "appid"), "openid": SIM_OPENID}
        if kind == "jsapi":
            extra["openid"] = _text(call.body.get("payer"), "openid")
        return self.prepay(call, kind, call.mchid, extra)

    def prepay(self, call: _Call, kind: str, owner: str, extra: dict[str, str]) -> Body:
        """Create (or find again, idempotently) `owner`'s trade from a create body: the answer's pay code."""
        b = call.body
        out_trade_no, description = _text(b, "out_trade_no"), _text(b, "description")
        notify_url = _text(b, "notify_url")
        total = _fen(b, "total")
        if kind == "h5":
            _text(b.get("scene_info"), "payer_client_ip")
            _text((b.get("scene_info") or {}).get("h5_info"), "type")
        expire_at = None
        if "time_expire" in b:
            try:
                expire_at = codec.parse_time(str(b["time_expire"]))
            except ValueError:
                raise WxError(400, "PARAM_ERROR", "time_expire is not RFC 3339") from None
        trade = self.book.find(owner, out_trade_no)
        if trade is not None:
            if trade.state is TradeState.PAID:
                raise WxError(400, "ORDERPAID", "该订单已支付")
            if trade.state in (TradeState.CLOSED, TradeState.FAILED):
                raise WxError(400, "ORDER_CLOSED", "订单已关闭")
            if (trade.amount, trade.subject, trade.extra["kind"]) != (total, description, kind):
                raise WxError(400, "OUT_TRADE_NO_USED", "商户订单号重复 (other parameters)")
        else:
            now = self._state.clock.now()
            trade = SimTrade(
                channel=self.channel, merchant_id=owner, out_trade_no=out_trade_no,
                channel_trade_no=_wx_id("4200", now), amount=total, subject=description, notify_url=notify_url,
                created_at=now, expire_at=expire_at, extra=extra,
            )
            prepay_id = "wx" + now.astimezone(codec.BEIJING).strftime("%d%H%M%S") + secrets.token_hex(13)
            h5_url = f"{call.base_url}{H5_PAGE_PATH}?prepay_id={prepay_id}&package={secrets.randbelow(10**9)}"
            code = {"native": f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(9)}",
                    "jsapi": f"prepay_id={prepay_id}", "h5": h5_url}[kind]
            trade.extra.update(prepay_id=prepay_id, code=code)
            self.splits.mark_profit_sharing(trade, b.get("settle_info"))
            self.book.add(trade, code=code)
        field = {"native": "code_url", "jsapi": "prepay_id", "h5": "h5_url"}[kind]
        return {field: trade.extra["prepay_id" if kind == "jsapi" else "code"]}

    def _close(self, call: _Call, out_trade_no: str) -> Response:
        _same_mchid(call)
        return self.close_trade(call.mchid, out_trade_no)

    def close_trade(self, owner: str, out_trade_no: str) -> Response:
        trade = self.book.find(owner, out_trade_no)
        if trade is None:
            raise WxError(404, "ORDER_NOT_EXIST", "订单不存在")
        if trade.state is TradeState.PAID:
            raise WxError(400, "ORDERPAID", "订单已支付")
        if trade.state is TradeState.WAITING and not self._state.faults[self.channel].ignore_close:
            trade.state, trade.closed_at = TradeState.CLOSED, self._state.clock.now()
        return self._respond(204, None)

    def _transaction(self, trade: SimTrade) -> Body:
        state = {TradeState.PAID: "REFUND" if trade.refunds else "SUCCESS", TradeState.FAILED: "PAYERROR",
                 TradeState.CLOSED: "CLOSED"}.get(trade.state, "NOTPAY")
        node: Body = {
            "appid": trade.extra["appid"], "mchid": trade.merchant_id, "out_trade_no": trade.out_trade_no,
            "trade_type": codec.WIRE_TRADE_TYPES[trade.extra["kind"]], "trade_state": state,
            "trade_state_desc": _STATE_DESC[state], "attach": "",
            "amount": {"total": trade.amount, "currency": "CNY", "payer_currency": "CNY"},
        }
        if trade.state in (TradeState.PAID, TradeState.FAILED):
            node.update(transaction_id=trade.channel_trade_no, bank_type="OTHERS",
                        payer={"openid": trade.extra["openid"]})
        if trade.paid_at is not None:
            node["success_time"] = codec.format_time(trade.paid_at)
            node["amount"]["payer_total"] = trade.amount
        return node

    def _refund(self, call: _Call, owner: str | None = None, identity: Body | None = None) -> Body:
        """Refund `owner`'s trade (default: the caller's); the notify names the merchant by `identity` (default
        `mchid`) and is sealed with the caller's APIv3 key."""
        owner = owner or call.mchid
        identity = identity or {"mchid": call.mchid}
        if self._state.faults[self.channel].reject_refunds:
            raise WxError(403, "NO_AUTH", "refunds refused (sandbox fault)")
        b = call.body
        out_refund_no = _text(b, "out_refund_no")
        refund, total = _fen(b, "refund"), _fen(b, "total")
        trade = self.book.find(owner, b.get("out_trade_no"), b.get("transaction_id"))
        if trade is None:
            raise WxError(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        done = self._refunds.get((owner, out_refund_no))
        if done is not None:  # idempotent on out_refund_no
            if done.trade is not trade or done.amount != refund:
                raise WxError(400, "INVALID_REQUEST", "out_refund_no already used with other parameters")
            return self._refund_node(done)
        if trade.state is not TradeState.PAID:
            raise WxError(400, "INVALID_REQUEST", "trade is not paid")
        if total != trade.amount:
            raise WxError(400, "PARAM_ERROR", "amount.total does not match the order")
        if trade.refunded + refund > trade.amount:
            raise WxError(400, "NOT_ENOUGH", "refund exceeds the refundable balance")
        now = self._state.clock.now()
        trade.refunds[out_refund_no] = SimRefund(out_refund_no, refund, now)
        record = _Refund(owner, out_refund_no, _wx_id("5030", now, 29), trade, refund,
                         str(b.get("notify_url") or ""), now)
        self._refunds[(owner, out_refund_no)] = record
        answer = self._refund_node(record)  # PROCESSING, as WeChat answers
        record.status, record.success_at = "SUCCESS", now
        self._notify(call.mchid, record.notify_url, "REFUND.SUCCESS", "退款成功", "refund", {
            **identity, "out_trade_no": trade.out_trade_no, "transaction_id": trade.channel_trade_no,
            "out_refund_no": out_refund_no, "refund_id": record.refund_id, "refund_status": "SUCCESS",
            "success_time": codec.format_time(now), "user_received_account": "支付用户零钱",
            "amount": {"total": trade.amount, "refund": refund, "payer_total": trade.amount, "payer_refund": refund},
        })
        return answer

    def _refund_node(self, r: _Refund) -> Body:
        t = r.trade
        node: Body = {
            "refund_id": r.refund_id, "out_refund_no": r.out_refund_no, "transaction_id": t.channel_trade_no,
            "out_trade_no": t.out_trade_no, "channel": "ORIGINAL", "user_received_account": "支付用户零钱",
            "create_time": codec.format_time(r.created_at), "status": r.status, "funds_account": "AVAILABLE",
            "amount": {"total": t.amount, "refund": r.amount, "payer_total": t.amount, "payer_refund": r.amount,
                       "settlement_total": t.amount, "settlement_refund": r.amount, "discount_refund": 0,
                       "currency": "CNY", "refund_fee": 0},
            "promotion_detail": [],
        }
        if r.success_at is not None:
            node["success_time"] = codec.format_time(r.success_at)
        return node

    def _trade_bill(self, call: _Call) -> Body:
        try:
            day = date.fromisoformat(call.query.get("bill_date", ""))
        except ValueError:
            raise WxError(400, "PARAM_ERROR", "bill_date must be YYYY-MM-DD") from None
        if call.query.get("bill_type", "ALL") != "ALL":
            raise WxError(400, "PARAM_ERROR", "the sandbox serves bill_type=ALL only")
        self.barcode.settle_all(call.mchid)  # payers who confirmed since the last query
        paid = any(t.merchant_id == call.mchid and t.paid_at is not None and codec.beijing_date(t.paid_at) == day
                   for t in self.book.trades.values())
        if not paid and not any(r.mchid == call.mchid and codec.beijing_date(r.created_at) == day
                                for r in self._refunds.values()):  # faults that leave nothing give an empty bill
            raise WxError(400, "NO_STATEMENT_EXIST", "账单文件不存在")
        lines = [self._bill_line(row) for row in self._state.statement_rows(self.channel, call.mchid, day)]
        return self.bill_answer(call, lines)

    def bill_answer(self, call: _Call, lines: list[codec.BillLine]) -> Body:
        """Store the bill file for download by the caller; the tradebill answer pointing at it."""
        text = codec.format_trade_bill(lines)
        token = secrets.token_urlsafe(24)
        self._bills[token] = (call.mchid, gzip.compress(text) if call.query.get("tar_type") == "GZIP" else text)
        while len(self._bills) > 256:
            self._bills.pop(next(iter(self._bills)))
        url = f"{call.base_url}/v3/billdownload/file?token={token}"
        return {"hash_type": "SHA1", "hash_value": codec.bill_hash(text), "download_url": url}

    def _bill_line(self, row: BillRow) -> codec.BillLine:
        t, refund = row.trade, None
        if row.refund is not None:
            refund = self._refunds[(t.merchant_id, row.refund.refund_no)]
        return codec.BillLine(
            time=row.at, appid=t.extra["appid"], mchid=t.merchant_id, transaction_id=t.channel_trade_no,
            out_trade_no=t.out_trade_no, openid=t.extra["openid"], trade_type=codec.WIRE_TRADE_TYPES[t.extra["kind"]],
            description=t.subject, amount=row.amount, fee=-row.fee if refund else row.fee,
            fee_rate=codec.fee_rate(self._state.fee_ppm), refund_id=refund.refund_id if refund else None,
            out_refund_no=refund.out_refund_no if refund else None, succeeded=row.succeeded,
        )

    # --- notifies -----------------------------------------------------------------------------------------

    def _notify(self, mchid: str, url: str, event: str, summary: str, original_type: str, plain: Body) -> None:
        merchant = self._merchants.get(mchid)
        if not url or merchant is None:
            return
        notify_id = str(uuid.uuid4())
        body = signing.seal_notify(
            merchant.api_v3_key, notify_id=notify_id, create_time=codec.format_time(self._state.clock.now()),
            event_type=event, summary=summary, original_type=original_type, plaintext=codec.dumps(plain),
        )
        headers = ResignedHeaders(lambda: {
            "Content-Type": codec.JSON_CONTENT_TYPE,
            **signing.signed_headers(self._key, self._key_id, body, int(self._wall.timestamp())),
        })
        self._state.notifier.send(Notification(
            channel=self.channel, url=url, body=body, headers=headers,
            accepted=lambda r: r.status_code in (200, 204), gaps_s=NOTIFY_GAPS_S, notify_id=notify_id,
        ))


def _same_mchid(call: _Call) -> None:
    if call.body.get("mchid") != call.mchid:
        raise WxError(400, "PARAM_ERROR", "mchid does not match the Authorization")


def _fen(body: Body, name: str) -> int:
    """`amount.<name>`: a positive JSON integer of fen, currency CNY."""
    amount = body.get("amount")
    amount = amount if isinstance(amount, dict) else {}
    value = amount.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or amount.get("currency", "CNY") != "CNY":
        raise WxError(400, "PARAM_ERROR", f"amount.{name} must be a positive integer (fen), currency CNY")
    return value


def _wx_id(prefix: str, now: datetime, length: int = 28) -> str:
    """WeChat-style numeric ids: prefix, random digits, the Beijing date, random digits (transaction/refund ids)."""
    head = length - len(prefix) - 18
    day = codec.beijing_date(now).strftime("%Y%m%d")
    return f"{prefix}{secrets.randbelow(10**head):0{head}d}{day}{secrets.randbelow(10**10):010d}"


def _text(obj: Any, name: str) -> str:
    value = obj.get(name) if isinstance(obj, dict) else None
    if not isinstance(value, str) or not value:
        raise WxError(400, "PARAM_ERROR", f"{name} is required")
    return value
