"""The Alipay OpenAPI (RSA2) adapter: flows and the mapping of every answer onto `ChannelResult`.

Outcomes are only definite when Alipay signed them: a transport failure, a 5xx, an unsigned or badly signed
body, or an unparseable one is `UNKNOWN`, never `FAIL`, so the caller queries instead of giving up on money.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from tomato.channel.adapters.alipay import barcode, codec, isv, signing, splits
from tomato.channel.http import send_bytes, transport_result
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
from tomato.core.crypto import load_private_key, load_public_key

SUCCESS_CODE = "10000"
UNAVAILABLE_CODE = "20000"
TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
# Alipay's own advice for this sub_code is "retry with the same request": the outcome is not known.
UNKNOWN_SUB_CODES = frozenset({"ACQ.SYSTEM_ERROR", "isp.unknow-error", "aop.unknow-error"})
PAID_STATUSES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
_FORM_HEADERS = {"Content-Type": codec.FORM_CONTENT_TYPE}
_BROWSER_METHODS = {
    "ALIPAY_WAP": ("alipay.trade.wap.pay", "QUICK_WAP_PAY"),
    "ALIPAY_PC": ("alipay.trade.page.pay", "FAST_INSTANT_TRADE_PAY"),
}


@dataclass(frozen=True)
class AlipayConfig:
    app_id: str
    private_key_pem: str  # merchant-side key: PKCS#1/PKCS#8 PEM or bare base64
    alipay_public_key_pem: str
    gateway_url: str
    mode: str = isv.DIRECT  # "isv": a service provider's app acting for sub-merchants (docs/channels.md)

    def __repr__(self) -> str:  # never print the private key
        return f"AlipayConfig(app_id={self.app_id!r}, gateway_url={self.gateway_url!r}, mode={self.mode!r})"


def parse_config(raw: Mapping[str, Any]) -> AlipayConfig:
    """Validate a channel-account config dict; the ValueError names the first bad field."""
    values: dict[str, str] = {}
    for name in ("app_id", "private_key_pem", "alipay_public_key_pem", "gateway_url"):
        value = raw.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name}: required non-empty string")
        values[name] = value.strip()
    try:
        _private_key(values["private_key_pem"])
    except ValueError as exc:
        raise ValueError(f"private_key_pem: {exc}") from None
    try:
        _public_key(values["alipay_public_key_pem"])
    except ValueError as exc:
        raise ValueError(f"alipay_public_key_pem: {exc}") from None
    url = urlsplit(values["gateway_url"])
    if url.scheme not in ("http", "https") or not url.netloc:
        raise ValueError("gateway_url: must be an absolute http(s) URL")
    return AlipayConfig(**values, mode=isv.parse_mode(raw.get("mode", isv.DIRECT)))


@lru_cache(maxsize=128)
def _private_key(text: str) -> rsa.RSAPrivateKey:
    """Parsing validates the RSA key (slow); accounts are rebuilt often, their keys rarely change."""
    return load_private_key(text)


@lru_cache(maxsize=128)
def _public_key(text: str) -> rsa.RSAPublicKey:
    return load_public_key(text)


class AlipayAdapter:
    channel = "alipay"
    pay_methods = frozenset({"ALIPAY_QR", "ALIPAY_WAP", "ALIPAY_PC", "BARCODE"})

    def __init__(self, config: AlipayConfig, http: httpx.AsyncClient, *, clock: Clock | None = None) -> None:
        self._config = config
        self._http = http
        self._clock = clock or SystemClock()
        self._private_key = _private_key(config.private_key_pem)
        self._alipay_key = _public_key(config.alipay_public_key_pem)

    # --- flows ------------------------------------------------------------------------------------------

    async def create(self, req: CreateRequest) -> ChannelResult:
        if req.pay_method == "BARCODE":
            return await self._barcode_pay(req)
        biz: dict[str, Any] = {
            "out_trade_no": req.order_no,
            "total_amount": codec.yuan(req.amount),
            "subject": req.subject,
            "time_expire": codec.format_beijing(req.expire_at),
        }
        if req.body:
            biz["body"] = req.body
        if req.profit_sharing:
            biz["extend_params"] = dict(splits.FREEZE_FLAG)
        if req.pay_method in _BROWSER_METHODS:
            token = isv.app_auth_token(self._config.mode, req.sub)
            if isinstance(token, ChannelResult):
                return token
            method, product_code = _BROWSER_METHODS[req.pay_method]
            biz["product_code"] = product_code
            params = self._signed(
                method, biz, notify_url=req.notify_url, return_url=req.return_url, app_auth_token=token
            )
            url = codec.redirect_url(self._config.gateway_url, params)
            return ChannelResult(ResultStatus.SUCCESS, pay_data=PayData("redirect_url", url))
        if req.pay_method != "ALIPAY_QR":
            return ChannelResult(
                ResultStatus.FAIL, ErrorClass.REJECTED, code="PAY_METHOD_NOT_SUPPORTED", message=req.pay_method
            )
        node = await self._call("alipay.trade.precreate", biz, req.sub, notify_url=req.notify_url)
        if isinstance(node, ChannelResult):
            return node
        qr_code = node.get("qr_code")
        if not isinstance(qr_code, str) or not qr_code:
            return ChannelResult.unknown(ErrorClass.MALFORMED, "precreate answered without qr_code")
        return ChannelResult(ResultStatus.SUCCESS, pay_data=PayData("qr_code", qr_code))

    async def query(self, ref: TradeRef) -> ChannelResult:
        node = await self._call("alipay.trade.query", _trade_biz(ref), ref.sub, not_found=ResultStatus.WAITING)
        if isinstance(node, ChannelResult):
            return node
        status = node.get("trade_status")
        trade_no = _opt_str(node.get("trade_no"))
        try:
            amount = codec.fen(str(node["total_amount"])) if "total_amount" in node else None
            if status in PAID_STATUSES:
                paid_at = codec.parse_beijing(str(node["send_pay_date"])) if "send_pay_date" in node else None
                return ChannelResult(ResultStatus.SUCCESS, channel_trade_no=trade_no, amount=amount, paid_at=paid_at)
        except (ValueError, KeyError) as exc:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"trade.query: {exc}")
        if status == "WAIT_BUYER_PAY":
            return ChannelResult(ResultStatus.WAITING, code=status, channel_trade_no=trade_no, amount=amount)
        if status == "TRADE_CLOSED":
            return ChannelResult(
                ResultStatus.FAIL,
                code="TRADE_CLOSED",
                message="closed unpaid, or fully refunded",
                channel_trade_no=trade_no,
                amount=amount,
            )
        return ChannelResult.unknown(ErrorClass.MALFORMED, f"unknown trade_status {status!r}")

    async def close(self, ref: TradeRef) -> ChannelResult:
        # A QR nobody scanned does not exist at Alipay yet; closing it is as good as closed (docs/channels.md).
        node = await self._call("alipay.trade.close", _trade_biz(ref), ref.sub, not_found=ResultStatus.SUCCESS)
        if isinstance(node, ChannelResult):
            return node
        return ChannelResult(ResultStatus.SUCCESS, channel_trade_no=_opt_str(node.get("trade_no")))

    async def _barcode_pay(self, req: CreateRequest) -> ChannelResult:
        """Face-to-face barcode pay (`alipay.trade.pay`, scene bar_code): 10003 "payer confirming" is WAITING."""
        biz = barcode.pay_biz(req)
        if isinstance(biz, ChannelResult):
            return biz
        node = await self._call(
            "alipay.trade.pay", biz, req.sub, notify_url=req.notify_url, passthrough=barcode.is_pay_answer
        )
        return node if isinstance(node, ChannelResult) else barcode.pay_result(node)

    async def cancel(self, ref: TradeRef) -> ChannelResult:
        """Reverse a trade (`alipay.trade.cancel`): closed if unpaid, refunded if paid; `retry_flag` Y = again."""
        node = await self._call("alipay.trade.cancel", _trade_biz(ref), ref.sub, passthrough=barcode.wants_retry)
        return node if isinstance(node, ChannelResult) else barcode.cancel_result(node)

    async def refund(self, req: RefundRequest) -> ChannelResult:
        biz: dict[str, Any] = {
            "out_trade_no": req.order_no,
            "refund_amount": codec.yuan(req.amount),
            "out_request_no": req.refund_no,
        }
        if req.channel_trade_no:
            biz["trade_no"] = req.channel_trade_no
        if req.reason:
            biz["refund_reason"] = req.reason
        if req.split_returns:  # the receivers give their split back within the refund
            biz["refund_royalty_parameters"] = splits.refund_royalty_parameters(req.split_returns)
        node = await self._call("alipay.trade.refund", biz, req.sub)
        if isinstance(node, ChannelResult):
            return node
        trade_no = _opt_str(node.get("trade_no"))
        if node.get("fund_change") == "Y":
            return ChannelResult(ResultStatus.SUCCESS, channel_trade_no=trade_no, amount=req.amount)
        # fund_change N: a replay of a refund already made, or not moved yet — Alipay says confirm by querying.
        return ChannelResult(ResultStatus.WAITING, code="FUND_CHANGE_N", channel_trade_no=trade_no)

    async def query_refund(self, ref: RefundRef) -> ChannelResult:
        biz: dict[str, Any] = {"out_trade_no": ref.order_no, "out_request_no": ref.refund_no}
        if ref.channel_trade_no:
            biz["trade_no"] = ref.channel_trade_no
        node = await self._call("alipay.trade.fastpay.refund.query", biz, ref.sub)
        if isinstance(node, ChannelResult):
            return node
        trade_no = _opt_str(node.get("trade_no"))
        if node.get("refund_status") != "REFUND_SUCCESS":
            # Code 10000 alone only says the query ran; no refund_status means not refunded (yet).
            return ChannelResult(
                ResultStatus.WAITING, code=_opt_str(node.get("refund_status")), channel_trade_no=trade_no
            )
        try:
            amount = codec.fen(str(node["refund_amount"])) if "refund_amount" in node else ref.amount
        except ValueError as exc:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"refund.query: {exc}")
        return ChannelResult(ResultStatus.SUCCESS, channel_trade_no=trade_no, amount=amount)

    async def download_statement(self, bill_date: date, sub: SubMerchant | None = None) -> bytes:
        biz = {"bill_type": "trade", "bill_date": codec.format_bill_date(bill_date)}
        node = await self._call("alipay.data.dataservice.bill.downloadurl.query", biz, sub)
        if isinstance(node, ChannelResult):
            raise StatementUnavailable(node)
        url = node.get("bill_download_url")
        if not isinstance(url, str) or not url:
            raise StatementUnavailable(ChannelResult.unknown(ErrorClass.MALFORMED, "no bill_download_url"))
        if not bill_url_allowed(url, self._config.gateway_url):
            raise StatementUnavailable(ChannelResult.unknown(ErrorClass.MALFORMED, "bill_download_url on another host"))
        try:
            response = await self._http.get(url)
        except httpx.TransportError as exc:
            raise StatementUnavailable(transport_result(exc)) from exc
        if response.status_code != 200:
            raise StatementUnavailable(
                ChannelResult.unknown(ErrorClass.SERVER, f"bill download HTTP {response.status_code}")
            )
        return response.content

    # --- profit sharing (splits.py) ---------------------------------------------------------------------

    async def bind_receiver(self, receiver: SplitReceiver) -> ChannelResult:
        return await splits.bind_receiver(self._call, receiver)

    async def split(self, req: SplitRequest) -> ChannelResult:
        return await splits.split(self._call, req)

    async def query_split(self, ref: SplitRef) -> ChannelResult:
        return await splits.query_split(self._call, ref)

    async def finish_split(self, ref: SplitRef) -> ChannelResult:
        return await splits.finish_split(self._call, ref)

    async def return_split(self, req: SplitReturnRequest) -> ChannelResult:
        return splits.return_refused(req)

    # --- callbacks --------------------------------------------------------------------------------------

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ChannelNotify:
        try:
            fields = codec.parse_form(body)
        except ValueError as exc:
            raise CallbackRejected(f"alipay notify: unparseable body: {exc}") from None
        if fields.get("sign_type", "RSA2") != "RSA2":
            raise CallbackRejected("alipay notify: sign_type is not RSA2")
        if not signing.verify_notify(fields, self._alipay_key):
            raise CallbackRejected("alipay notify: signature does not verify")
        if fields.get("app_id") != self._config.app_id:
            raise CallbackRejected("alipay notify: app_id is not this account's")
        sub_merchant = isv.notify_sub_merchant(self._config.mode, fields)
        order_no = fields.get("out_trade_no")
        if not order_no:
            raise CallbackRejected("alipay notify: no out_trade_no")
        try:
            amount = codec.fen(fields["total_amount"]) if fields.get("total_amount") else None
            paid_at = codec.parse_beijing(fields["gmt_payment"]) if fields.get("gmt_payment") else None
        except ValueError as exc:
            raise CallbackRejected(f"alipay notify: {exc}") from None
        trade_no = fields.get("trade_no") or None
        if fields.get("refund_fee") or fields.get("out_biz_no"):
            # refund_fee is the trade's cumulative refunded amount, not this refund's: leave amount to the caller.
            return ChannelNotify(
                kind="refund",
                status=ResultStatus.SUCCESS,
                order_no=order_no,
                channel_trade_no=trade_no,
                refund_no=fields.get("out_biz_no") or None,
                sub_merchant=sub_merchant,
                raw=fields,
            )
        trade_status = fields.get("trade_status")
        status = (
            ResultStatus.SUCCESS
            if trade_status in PAID_STATUSES
            else ResultStatus.FAIL
            if trade_status == "TRADE_CLOSED"
            else ResultStatus.WAITING
        )
        return ChannelNotify(
            kind="payment",
            status=status,
            order_no=order_no,
            amount=amount,
            channel_trade_no=trade_no,
            paid_at=paid_at,
            sub_merchant=sub_merchant,
            raw=fields,
        )

    @staticmethod
    def callback_ack(ok: bool, message: str = "") -> AckResponse:
        return AckResponse(200, b"success" if ok else b"fail", "text/plain")

    # --- transport --------------------------------------------------------------------------------------

    def _signed(
        self,
        method: str,
        biz: Mapping[str, Any],
        *,
        notify_url: str | None = None,
        return_url: str | None = None,
        app_auth_token: str | None = None,
    ) -> dict[str, str]:
        params = codec.common_params(
            self._config.app_id,
            method,
            self._clock.now(),
            notify_url=notify_url,
            return_url=return_url,
            app_auth_token=app_auth_token,
        )
        params["biz_content"] = codec.biz_content(biz)
        return signing.sign_params(params, self._private_key)

    async def _call(
        self,
        method: str,
        biz: Mapping[str, Any],
        sub: SubMerchant | None,
        *,
        notify_url: str | None = None,
        not_found: ResultStatus | None = None,
        passthrough: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any] | ChannelResult:
        """POST one OpenAPI call; the verified response node on code 10000 (or when `passthrough` accepts it:
        a signed answer the caller maps itself), else the mapped result.

        In isv mode the sub-merchant's `app_auth_token` is a signed common parameter; without one nothing is sent.
        """
        token = isv.app_auth_token(self._config.mode, sub)
        if isinstance(token, ChannelResult):
            return token
        signed = self._signed(method, biz, notify_url=notify_url, app_auth_token=token)
        query, form = codec.split_for_post(signed)
        try:
            response = await send_bytes(
                self._http,
                "POST",
                codec.with_query(self._config.gateway_url, query),
                codec.encode_form(form),
                _FORM_HEADERS,
            )
        except httpx.TransportError as exc:
            return transport_result(exc)
        if response.status_code >= 500:
            return ChannelResult.unknown(ErrorClass.SERVER, f"{method}: HTTP {response.status_code}")
        if response.status_code != 200:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{method}: HTTP {response.status_code}")
        node = self._verified_node(method, response.content)
        if isinstance(node, ChannelResult):
            return node
        if passthrough is not None and passthrough(node):
            return node
        return _classify(method, node, not_found)

    def _verified_node(self, method: str, content: bytes) -> dict[str, Any] | ChannelResult:
        try:
            text = content.decode("utf-8")
            envelope = json.loads(text)
        except (UnicodeDecodeError, ValueError):
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{method}: response is not JSON")
        if not isinstance(envelope, dict):
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{method}: response is not an object")
        key = codec.response_key(method)
        if key not in envelope:
            key = "error_response"
        if key not in envelope:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{method}: no response node")
        signature = envelope.get("sign")
        raw = signing.extract_node(text, key)
        if raw is None:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{method}: response node is not an object")
        if not isinstance(signature, str) or not signing.verify_response_node(raw, signature, self._alipay_key):
            return ChannelResult.unknown(ErrorClass.BAD_SIGNATURE, f"{method}: response signature missing or wrong")
        node = json.loads(raw)
        if not isinstance(node, dict):  # pragma: no cover - extract_node only returns objects
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{method}: response node is not an object")
        return node


def _classify(method: str, node: dict[str, Any], not_found: ResultStatus | None) -> dict[str, Any] | ChannelResult:
    """Signed answers: 10000 → the node; 20000 and system errors → UNKNOWN; any other code → definite refusal."""
    code = str(node.get("code", ""))
    if code == SUCCESS_CODE:
        return node
    sub_code = _opt_str(node.get("sub_code"))
    message = _opt_str(node.get("sub_msg")) or _opt_str(node.get("msg"))
    if code == UNAVAILABLE_CODE or sub_code in UNKNOWN_SUB_CODES:
        return ChannelResult(ResultStatus.UNKNOWN, ErrorClass.SERVER, code=sub_code or code, message=message)
    if sub_code == TRADE_NOT_EXIST and not_found is not None:
        return ChannelResult(not_found, code=TRADE_NOT_EXIST, message=message)
    if not code:
        return ChannelResult.unknown(ErrorClass.MALFORMED, f"{method}: response without code")
    return ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code=sub_code or code, message=message)


def bill_url_allowed(url: str, gateway_url: str) -> bool:
    """A bill URL is followed only to the gateway's own host, or to a host of the gateway's domain over https.

    Alipay serves bills from another host of its own domain (the gateway `openapi.alipay.com`, bills from
    `dwbillcenter.alipay.com`); the simulator serves them from its gateway's host and port. Anything else could make
    the platform fetch an arbitrary URL named in a response.
    """
    target, gateway = urlsplit(url), urlsplit(gateway_url)
    if not target.hostname or target.scheme not in ("http", "https"):
        return False
    if (target.scheme, target.hostname, target.port) == (gateway.scheme, gateway.hostname, gateway.port):
        return True
    labels = (gateway.hostname or "").split(".")
    if len(labels) < 3 or labels[-1].isdigit() or target.scheme != "https":
        return False
    return target.hostname.endswith("." + ".".join(labels[-2:]))


def _trade_biz(ref: TradeRef) -> dict[str, Any]:
    biz: dict[str, Any] = {"out_trade_no": ref.order_no}
    if ref.channel_trade_no:
        biz["trade_no"] = ref.channel_trade_no
    return biz


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
