"""The WeChat Pay API v3 adapter: flows and the mapping of every answer onto `ChannelResult`.

Outcomes are only definite when WeChat signed them: a transport failure, a 5xx, an unsigned, stale or badly
signed response, or an unparseable one is `UNKNOWN`, never `FAIL`. A signed 4xx refusal is `FAIL`/`REJECTED` with
WeChat's code: for an action (create, close, refund) nothing was done; for a query it is a refusal to answer, which
says nothing about the trade (`ChannelResult.settles_query` is false). A trade or refund WeChat reports as failed
is `FAIL` with error `NONE`: that is the outcome.

Payment-code pay (pay method BARCODE) is API v2 (`barcode.py`): it needs the account's `api_v2_key` and direct mode.

A partner-mode (服务商) account speaks for the sub-merchant each request names (`partner.py` spells the wire);
without one it refuses, `SUB_MERCHANT_REQUIRED`, before any HTTP call.

Profit sharing (分账: receivers, splits, their release and returns) is `splits.py`'s, over the same signed calls;
an order created with `profit_sharing` carries `settle_info.profit_sharing` so WeChat freezes it for splitting.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import httpx

from tomato.channel.adapters.wechat import barcode, codec, partner, signing, splits
from tomato.channel.adapters.wechat.config import WechatConfig, platform_keys
from tomato.channel.http import transport_result
from tomato.channel.protocol import (
    AckResponse,
    CallbackRejected,
    ChannelNotify,
    ChannelResult,
    CreateRequest,
    ErrorClass,
    PayData,
    RefundRef,
    RefundRequest,
    ResultStatus,
    SplitReceiver,
    SplitRef,
    SplitRequest,
    SplitReturnRequest,
    StatementUnavailable,
    SubMerchant,
    TradeRef,
)
from tomato.core.clock import Clock, SystemClock

USER_AGENT = "tomato-pay/0.1 (WeChatPay APIv3)"
PAID_STATES = frozenset({"SUCCESS", "REFUND"})  # REFUND: paid, then (partly) refunded — the payment stands
WAITING_STATES = frozenset({"NOTPAY", "USERPAYING", "ACCEPT"})  # ACCEPT: legacy "received, debiting"
# PAYERROR: the payer's payment failed; CLOSED: closed unpaid (by us or at time_expire); REVOKED: a payment-code
# trade cancelled. None of them can become paid any more, so each is a definite failure of the payment.
FAILED_STATES = frozenset({"PAYERROR", "CLOSED", "REVOKED"})
NOT_FOUND_CODES = frozenset({"ORDER_NOT_EXIST", "ORDERNOTEXIST", "RESOURCE_NOT_EXISTS"})
CLOSED_CODES = frozenset({"ORDER_CLOSED", "ORDERCLOSED"})
REFUND_FAILED = frozenset({"ABNORMAL", "CLOSED"})  # ABNORMAL: could not reach the payer's account; merchant must act
_Body = dict[str, Any]


class WechatAdapter:
    channel = "wechat"
    pay_methods = frozenset({"WECHAT_NATIVE", "WECHAT_JSAPI", "WECHAT_H5", "BARCODE"})

    def __init__(self, config: WechatConfig, http: httpx.AsyncClient, clock: Clock | None = None) -> None:
        self._config = config
        self._http = http
        self._clock = clock or SystemClock()
        self._private_key = signing.private_key(config.private_key_pem)
        self._platform_keys = platform_keys(config)
        v2_key = None if config.partner else config.api_v2_key
        self._micropay = barcode.MicropayClient(config, v2_key, http) if v2_key else None
        self._splits = splits.SplitClient(config, self._call)

    # --- flows ------------------------------------------------------------------------------------------

    async def create(self, req: CreateRequest) -> ChannelResult:
        if req.pay_method == "BARCODE":
            return await self._micropay.pay(req) if self._micropay else barcode.NOT_SUPPORTED
        kind = codec.TRADE_TYPES.get(req.pay_method)
        if kind is None:
            return _refused("PAY_METHOD_NOT_SUPPORTED", req.pay_method)
        if refusal := partner.missing_sub(self._config, req.sub):
            return refusal
        payload: _Body = {
            **partner.create_identity(self._config, req.sub),
            "description": req.subject,
            "out_trade_no": req.order_no,
            "time_expire": codec.format_time(req.expire_at),
            "notify_url": req.notify_url,
            "amount": {"total": req.amount, "currency": "CNY"},
        }
        if req.profit_sharing:
            payload["settle_info"] = {"profit_sharing": True}
        if kind == "jsapi":
            if not req.openid:
                return _refused("PAYER_OPENID_REQUIRED", "WECHAT_JSAPI needs payer.openid")
            payload["payer"] = partner.payer(self._config, req.sub, req.openid)
        elif kind == "h5":
            if not req.client_ip:
                return _refused("PAYER_CLIENT_IP_REQUIRED", "WECHAT_H5 needs the payer's client IP")
            payload["scene_info"] = {"payer_client_ip": req.client_ip, "h5_info": {"type": "Wap"}}
        body = await self._call("POST", partner.create_path(self._config, kind), payload)
        if isinstance(body, ChannelResult):
            return body
        field, pay_type = {
            "native": ("code_url", "qr_code"),
            "jsapi": ("prepay_id", "jsapi"),
            "h5": ("h5_url", "redirect_url"),
        }[kind]
        value = body.get(field) if body else None
        if not isinstance(value, str) or not value:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{kind} create answered without {field}")
        app_id = partner.jsapi_app_id(self._config, req.sub)
        data = PayData(pay_type, self.jsapi_params(value, app_id) if kind == "jsapi" else value)
        return ChannelResult(ResultStatus.SUCCESS, pay_data=data)

    def jsapi_params(self, prepay_id: str, app_id: str | None = None) -> dict[str, str]:
        """What the payer's WeChat client needs to call `requestPayment` (§B5), in `app_id` (default: ours)."""
        app_id = app_id or self._config.appid
        timestamp, nonce, package = str(int(self._clock.timestamp())), signing.nonce_str(), f"prepay_id={prepay_id}"
        pay_sign = signing.jsapi_pay_sign(self._private_key, app_id, timestamp, nonce, package)
        return {
            "appId": app_id,
            "timeStamp": timestamp,
            "nonceStr": nonce,
            "package": package,
            "signType": "RSA",
            "paySign": pay_sign,
        }

    async def query(self, ref: TradeRef) -> ChannelResult:
        # Trades exist from the moment create succeeded (NOTPAY), so ORDER_NOT_EXIST means our create never took
        # effect: nothing can be paid, but a lagging replica may still be catching up — keep waiting, never fail.
        if ref.pay_method == "BARCODE" and self._micropay is not None:
            return await self._micropay.query(ref)
        if refusal := partner.missing_sub(self._config, ref.sub):
            return refusal
        path = partner.query_path(self._config, ref.order_no, ref.sub)
        body = await self._call("GET", path, not_found=ResultStatus.WAITING)
        if isinstance(body, ChannelResult):
            return body
        if body is None or body.get("out_trade_no") != ref.order_no or not partner.answers_for_us(
            self._config, body, ref.sub
        ):
            return ChannelResult.unknown(ErrorClass.MALFORMED, "query answered for another trade")
        state = body.get("trade_state")
        trade_no = _opt_str(body.get("transaction_id"))
        try:
            amount = codec.fen_field(body.get("amount") or {}, "total")
            paid_at = codec.parse_time(body["success_time"]) if state in PAID_STATES else None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"query: {exc}")
        if state in PAID_STATES:
            return ChannelResult(
                ResultStatus.SUCCESS, code=str(state), channel_trade_no=trade_no, amount=amount, paid_at=paid_at
            )
        if state in WAITING_STATES:
            return ChannelResult(ResultStatus.WAITING, code=str(state), channel_trade_no=trade_no, amount=amount)
        if state in FAILED_STATES:
            return ChannelResult(
                ResultStatus.FAIL,
                code=str(state),
                message=_opt_str(body.get("trade_state_desc")),
                channel_trade_no=trade_no,
                amount=amount,
            )
        return ChannelResult.unknown(ErrorClass.MALFORMED, f"unknown trade_state {state!r}")

    async def close(self, ref: TradeRef) -> ChannelResult:
        # A trade WeChat never created, or one already closed, can no longer be paid: as good as closed.
        if refusal := partner.missing_sub(self._config, ref.sub):
            return refusal
        path, close_body = partner.close_request(self._config, ref.order_no, ref.sub)
        body = await self._call("POST", path, close_body, not_found=ResultStatus.SUCCESS)
        if isinstance(body, ChannelResult):
            if body.status is ResultStatus.FAIL and body.code in CLOSED_CODES:
                return ChannelResult(ResultStatus.SUCCESS, code=body.code, message=body.message)
            return body
        return ChannelResult(ResultStatus.SUCCESS)

    async def cancel(self, ref: TradeRef) -> ChannelResult:
        """Barcode reversal (v2 `reverse`): refunds the trade if it was paid, closes it otherwise."""
        return await self._micropay.reverse(ref) if self._micropay else barcode.NOT_SUPPORTED

    async def refund(self, req: RefundRequest) -> ChannelResult:
        if refusal := partner.missing_sub(self._config, req.sub):
            return refusal
        payload: _Body = {
            **partner.refund_identity(self._config, req.sub),
            "out_trade_no": req.order_no,
            "out_refund_no": req.refund_no,
            "notify_url": req.notify_url,
            "amount": {"refund": req.amount, "total": req.total_amount, "currency": "CNY"},
        }
        if req.reason:
            payload["reason"] = req.reason
        body = await self._call("POST", "/v3/refund/domestic/refunds", payload)
        return self._refund_result(body, req.refund_no)

    async def query_refund(self, ref: RefundRef) -> ChannelResult:
        # Not found: the refund request never took effect (or is not visible yet) — keep waiting, as for Alipay.
        if refusal := partner.missing_sub(self._config, ref.sub):
            return refusal
        path = partner.refund_query_path(self._config, ref.refund_no, ref.sub)
        body = await self._call("GET", path, not_found=ResultStatus.WAITING)
        return self._refund_result(body, ref.refund_no)

    def _refund_result(self, body: _Body | None | ChannelResult, refund_no: str) -> ChannelResult:
        if isinstance(body, ChannelResult):
            return body
        if body is None or body.get("out_refund_no") != refund_no:
            return ChannelResult.unknown(ErrorClass.MALFORMED, "refund answered for another refund")
        status = body.get("status")
        refund_id = _opt_str(body.get("refund_id"))
        trade_no = _opt_str(body.get("transaction_id"))
        result = {"SUCCESS": ResultStatus.SUCCESS, "PROCESSING": ResultStatus.WAITING}.get(str(status))
        if result is None and status in REFUND_FAILED:
            result = ResultStatus.FAIL  # the refund's outcome (error NONE), not a refusal to answer
        if result is None:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"unknown refund status {status!r}")
        try:
            amount = codec.fen_field(body.get("amount") or {}, "refund")
            done_at = body.get("success_time") if result is ResultStatus.SUCCESS else None
            succeeded_at = codec.parse_time(done_at) if isinstance(done_at, str) else None
        except (ValueError, AttributeError) as exc:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"refund: {exc}")
        return ChannelResult(
            result,
            code=str(status),
            channel_trade_no=trade_no,
            channel_refund_no=refund_id,
            amount=amount,
            paid_at=succeeded_at,
        )

    async def download_statement(self, bill_date: date, sub: SubMerchant | None = None) -> bytes:
        """The day's ALL trade bill, decompressed and checked against WeChat's SHA1 (§B9): UTF-8 CSV bytes.

        Partner mode: `sub` None is the provider's bill of every sub-merchant (`特约商户号` names each row's)."""
        body = await self._call("GET", partner.bill_path(self._config, bill_date, sub))
        if isinstance(body, ChannelResult):
            raise StatementUnavailable(body)
        answer = body or {}
        url, hash_value = answer.get("download_url"), answer.get("hash_value")
        if not isinstance(url, str) or not isinstance(hash_value, str) or answer.get("hash_type") != "SHA1":
            raise StatementUnavailable(ChannelResult.unknown(ErrorClass.MALFORMED, "tradebill answer incomplete"))
        target = httpx.URL(url)
        if (target.scheme, target.host, target.port) != (self._origin.scheme, self._origin.host, self._origin.port):
            # The signed download request must not leave WeChat's origin.
            raise StatementUnavailable(ChannelResult.unknown(ErrorClass.MALFORMED, "download_url on another host"))
        try:
            response = await self._http.get(target, headers=self._headers("GET", target.raw_path.decode(), b""))
        except httpx.TransportError as exc:
            raise StatementUnavailable(transport_result(exc)) from exc
        if response.status_code != 200:  # downloads are unsigned: a refusal here is not provably WeChat's
            raise StatementUnavailable(ChannelResult.unknown(ErrorClass.SERVER, f"bill HTTP {response.status_code}"))
        try:
            text = codec.checked_bill(response.content, hash_value)
        except ValueError as exc:
            raise StatementUnavailable(ChannelResult.unknown(ErrorClass.MALFORMED, str(exc))) from exc
        return text

    # --- profit sharing (splits.py) -------------------------------------------------------------------------

    async def bind_receiver(self, receiver: SplitReceiver) -> ChannelResult:
        return await self._splits.bind(receiver)

    async def split(self, req: SplitRequest) -> ChannelResult:
        return await self._splits.split(req)

    async def query_split(self, ref: SplitRef) -> ChannelResult:
        return await self._splits.query(ref)

    async def finish_split(self, ref: SplitRef) -> ChannelResult:
        return await self._splits.finish(ref)

    async def return_split(self, req: SplitReturnRequest) -> ChannelResult:
        return await self._splits.return_(req)

    # --- callbacks --------------------------------------------------------------------------------------

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ChannelNotify:
        lowered = {k.lower(): v for k, v in headers.items()}
        problem = self._signature_problem(lowered, body)
        if problem:
            raise CallbackRejected(f"wechat notify: {problem}")
        try:
            envelope, data = signing.open_notify(self._config.api_v3_key, body)
        except ValueError as exc:
            raise CallbackRejected(f"wechat notify: unreadable: {exc}") from None
        try:
            sub_merchant = partner.notify_sub_merchant(self._config, data)
        except ValueError as exc:
            raise CallbackRejected(f"wechat notify: {exc}") from None
        event = str(envelope.get("event_type", ""))
        raw = {"notify_id": envelope.get("id"), "event_type": event, **data}
        try:
            if event == "TRANSACTION.SUCCESS":
                return self._payment_notify(data, raw, sub_merchant)
            if event.startswith("REFUND."):
                return self._refund_notify(event, data, raw, sub_merchant)
            if event in splits.SPLIT_EVENTS:
                return splits.split_notify(event, data, raw, sub_merchant)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CallbackRejected(f"wechat notify: {exc}") from None
        raise CallbackRejected(f"wechat notify: unsupported event_type {event!r}")

    def _payment_notify(self, data: _Body, raw: _Body, sub_merchant: str | None) -> ChannelNotify:
        state = data.get("trade_state")
        status = (
            ResultStatus.SUCCESS
            if state in PAID_STATES
            else ResultStatus.FAIL
            if state in FAILED_STATES
            else ResultStatus.WAITING
        )
        return ChannelNotify(
            kind="payment",
            status=status,
            order_no=_required(data, "out_trade_no"),
            amount=codec.fen_field(data["amount"], "total"),
            channel_trade_no=_opt_str(data.get("transaction_id")),
            paid_at=codec.parse_time(data["success_time"]) if status is ResultStatus.SUCCESS else None,
            sub_merchant=sub_merchant,
            raw=raw,
        )

    def _refund_notify(self, event: str, data: _Body, raw: _Body, sub_merchant: str | None) -> ChannelNotify:
        status = {
            "REFUND.SUCCESS": ResultStatus.SUCCESS,
            "REFUND.ABNORMAL": ResultStatus.FAIL,
            "REFUND.CLOSED": ResultStatus.FAIL,
        }.get(event)
        if status is None:
            raise ValueError(f"unsupported event_type {event!r}")
        done_at = data.get("success_time") if status is ResultStatus.SUCCESS else None
        return ChannelNotify(
            kind="refund",
            status=status,
            order_no=_required(data, "out_trade_no"),
            amount=codec.fen_field(data["amount"], "refund"),
            channel_trade_no=_opt_str(data.get("transaction_id")),
            refund_no=_required(data, "out_refund_no"),
            channel_refund_no=_opt_str(data.get("refund_id")),
            paid_at=codec.parse_time(done_at) if isinstance(done_at, str) else None,  # the refund's time
            sub_merchant=sub_merchant,
            raw=raw,
        )

    @staticmethod
    def callback_ack(ok: bool, message: str = "") -> AckResponse:
        if ok:
            return AckResponse(204)
        return AckResponse(400, codec.dumps({"code": "FAIL", "message": message or "rejected"}), "application/json")

    # --- transport --------------------------------------------------------------------------------------

    @property
    def _origin(self) -> httpx.URL:
        return httpx.URL(self._config.base_url)

    def _headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        auth = signing.authorization(
            mchid=self._config.mchid,
            serial_no=self._config.serial_no,
            private_key=self._private_key,
            method=method,
            url=url,
            body=body,
            timestamp=str(int(self._clock.timestamp())),
            nonce=signing.nonce_str(),
        )
        headers = {
            "Authorization": auth,
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            "Wechatpay-Serial": self._config.platform_public_key_id,
        }
        if body:
            headers["Content-Type"] = "application/json"
        return headers

    async def _call(
        self, method: str, path: str, payload: _Body | None = None, *, not_found: ResultStatus | None = None
    ) -> _Body | None | ChannelResult:
        """One signed call: the verified JSON body (None for 204), or the mapped result."""
        url = httpx.URL(self._config.base_url + path)
        content = codec.dumps(payload) if payload is not None else b""
        signed_url = url.raw_path.decode("ascii")  # path + ?query exactly as it goes on the wire
        try:
            response = await self._http.request(
                method, url, content=content, headers=self._headers(method, signed_url, content)
            )
        except httpx.TransportError as exc:
            return transport_result(exc)
        name = f"{method} {path.split('?')[0]}"
        if response.status_code >= 500:
            return ChannelResult.unknown(ErrorClass.SERVER, f"{name}: HTTP {response.status_code}")
        problem = self._signature_problem({k.lower(): v for k, v in response.headers.items()}, response.content)
        if problem:
            return ChannelResult.unknown(ErrorClass.BAD_SIGNATURE, f"{name}: {problem}")
        if response.status_code == 204:
            return None
        try:
            body = codec.loads_object(response.content)
        except ValueError:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{name}: HTTP {response.status_code}, not JSON")
        if response.status_code == 200:
            return body
        code, message = _opt_str(body.get("code")), _opt_str(body.get("message"))
        if not 400 <= response.status_code < 500 or code is None:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{name}: HTTP {response.status_code} {code}")
        if not_found is not None and (code in NOT_FOUND_CODES or response.status_code == 404):
            return ChannelResult(not_found, code=code, message=message)
        return ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code=code, message=message)

    def _signature_problem(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """None when the `Wechatpay-*` headers prove `body` came from WeChat just now, else why not."""
        signature = headers.get("wechatpay-signature", "")
        timestamp = headers.get("wechatpay-timestamp", "")
        nonce = headers.get("wechatpay-nonce", "")
        serial = headers.get("wechatpay-serial", "")
        if not (signature and timestamp and nonce and serial):
            return "Wechatpay signature headers missing"
        if headers.get("wechatpay-signature-type", signing.SIGNATURE_TYPE) != signing.SIGNATURE_TYPE:
            return "unsupported Wechatpay-Signature-Type"
        if not signing.timestamp_fresh(timestamp, self._clock.timestamp()):
            return "Wechatpay-Timestamp outside the 5-minute window"
        key = next((k for s, k in self._platform_keys if signing.serial_matches(serial, s)), None)
        if key is None:
            return "unknown Wechatpay-Serial"
        if not signing.verify_response(key, timestamp, nonce, body, signature):
            return "signature does not verify"
        return None



def _refused(code: str, message: str) -> ChannelResult:
    return ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code=code, message=message)


def _required(data: _Body, name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"no {name}")
    return value


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
