"""The bank channel adapter, modelled on UnionPay ACP 5.1.0 (docs/channels.md).

Result mapping (respCode = the call's own outcome, origRespCode = the queried transaction's):

| flow         | answer                                              | result                                   |
|--------------|-----------------------------------------------------|------------------------------------------|
| create       | pre-order 00 with `tn`                              | SUCCESS, pay_data `form_html`            |
|              | pre-order 00 without `tn`, or naming another order  | UNKNOWN MALFORMED                        |
| query        | 00 + origRespCode 00/A6                             | SUCCESS (queryId, txnAmt, paid_at)       |
|              | 00 + origRespCode 03/04/05                          | WAITING (in process)                     |
|              | respCode 34 (no such transaction: nobody paid yet)  | WAITING                                  |
|              | 00 + any other origRespCode                         | FAIL, error NONE (the payment failed)    |
| close        | ACP has no close for gateway payments: a query      | paid → FAIL REJECTED `ALREADY_PAID`;     |
|              |                                                     | not found / failed → SUCCESS (the bank   |
|              |                                                     | trade dies at payTimeout); in process →  |
|              |                                                     | WAITING (cannot promise it is closed)    |
| refund       | 00                                                  | WAITING: accepted, result by notify/query|
| query_refund | as query, on the refund's orderId + txnTime         | SUCCESS / WAITING / FAIL                 |
| payout       | 00 (accepted: the result comes by notify or query)  | WAITING (queryId)                        |
|              | 01/12/34/60 (UnionPay's payout demo: query again)   | UNKNOWN, error NONE (query later)        |
| query_payout | 00 + origRespCode 00/A6                             | SUCCESS                                  |
|              | 00 + origRespCode 01/03/04/05/12/34/60, or 34       | WAITING                                  |
|              | 00 + any other origRespCode                         | FAIL, error NONE (the payout failed)     |
| barcode pay  | BARCODE (`barcode.py`): consume with qrNo, cancel = 冲正 | see `barcode.py`                         |
| every call   | connect / timeout / 5xx                             | UNKNOWN CONNECT / TIMEOUT / SERVER       |
|              | unsigned or badly signed / unparseable              | UNKNOWN BAD_SIGNATURE / MALFORMED        |
|              | signed respCode 03/04/05                            | UNKNOWN SERVER (query later)             |
|              | signed other non-00 respCode                        | FAIL REJECTED, code = respCode           |

Create deviates from ACP web payments on purpose. A real B2C gateway payment makes no server call: the bank first
hears of the trade when the payer's browser posts the front form. Our platform must be able to name the trade at
the channel as soon as create answers (the sandbox pays it by `order_no`), so create first registers
the consume server to server the way ACP's app pre-order does — the signed consume fields POSTed to
`appTransReq.do` (config `app_url`, see `config.py`), answered with a signed `tn` — and only then hands out the
auto-submitting form. The form carries exactly the pre-ordered fields and signature (nothing added after signing),
so the bank matches it to the pre-order by merId + orderId + txnTime. `tn` is not returned: `channel_trade_no` is the
bank's `queryId`, learned from the notify or a query.

txnTime: ACP identifies a transaction by merId + orderId + txnTime. Create sends the order's creation time
(`CreateRequest.created_at`, the clock only when absent), so a retried create pre-orders the same trade and a query
from `TradeRef.created_at` names it exactly. A refund likewise sends its own creation time (`RefundRequest.created_at`,
the clock only when absent), and its query names it by `RefundRef.created_at`, the same time.

Payouts (代付, `PayoutChannel`): txnType 12 / txnSubType 00 / bizType 000401 to `backTransReq.do`, with `accType`
01, `accNo` and `customerInfo` = base64(`{customerNm=…}`). With `encrypt_cert_id` in the account config, `accNo`
is encrypted (ACP `encryptData`: RSA PKCS#1 v1.5, base64) and `encryptCertId` names the key — we encrypt under the
pinned `bank_public_key_pem`, where UnionPay uses a separate encryption certificate; without it `accNo` goes in the
clear, the older ACP form. txnTime is the payout row's created_at, on every send and query. The payee's bank name
is not sent: the card number names the bank.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from hmac import compare_digest
from urllib.parse import urlsplit

import httpx

from tomato.channel.adapters.bank import barcode, codec, signing
from tomato.channel.adapters.bank.config import BankConfig, private_key, public_key
from tomato.channel.http import transport_result
from tomato.channel.protocol import (
    AckResponse,
    CallbackRejected,
    ChannelNotify,
    ChannelResult,
    CreateRequest,
    ErrorClass,
    PayData,
    PayoutRef,
    PayoutRequest,
    RefundRef,
    RefundRequest,
    ResultStatus,
    StatementUnavailable,
    SubMerchant,
    TradeRef,
)
from tomato.core.clock import Clock, SystemClock

PAY_METHOD = "BANK_WEB"
ALREADY_PAID = "ALREADY_PAID"


class BankAdapter:
    channel = "bank"
    pay_methods = frozenset({PAY_METHOD, barcode.PAY_METHOD})

    def __init__(self, config: BankConfig, http: httpx.AsyncClient, clock: Clock | None = None) -> None:
        self._config = config
        self._http = http
        self._clock = clock or SystemClock()
        self._private_key = private_key(config.private_key_pem)
        self._bank_key = public_key(config.bank_public_key_pem)
        self._barcode = barcode.BankBarcode(config, self._clock, self._base, self._call, self._query)

    # --- flows ------------------------------------------------------------------------------------------

    async def create(self, req: CreateRequest) -> ChannelResult:
        """Pre-order the consume at the bank (so it knows the trade at once), then hand out the signed form."""
        if req.pay_method == barcode.PAY_METHOD:
            return await self._barcode.pay(req)
        if req.pay_method != PAY_METHOD:
            return _refused("PAY_METHOD_NOT_SUPPORTED", req.pay_method)
        if not codec.valid_order_id(req.order_no):
            return _refused("INVALID_ORDER_ID", "orderId must be 8-40 letters or digits")
        txn_time = codec.format_time(req.created_at or self._clock.now())
        fields = self._base("01", "01", "000201") | {
            "channelType": "07",
            "orderId": req.order_no,
            "txnTime": txn_time,
            "txnAmt": codec.fen_text(req.amount),
            "currencyCode": codec.CURRENCY_CNY,
            "frontUrl": req.return_url or _origin(req.notify_url),
            "backUrl": req.notify_url,
            "payTimeout": codec.format_time(req.expire_at),
            "riskRateInfo": codec.encode_nested({"commodityName": _plain(req.subject)}),
        }
        signed = signing.sign_fields(fields, self._private_key, self._config.cert_id)
        node = await self._send(self._config.pre_order_url, signed, "pre-order")
        if isinstance(node, ChannelResult):
            return node
        if not node.get("tn"):
            return ChannelResult.unknown(ErrorClass.MALFORMED, "pre-order: respCode 00 without tn")
        if (node.get("orderId", req.order_no), node.get("txnTime", txn_time)) != (req.order_no, txn_time):
            return ChannelResult.unknown(ErrorClass.MALFORMED, "pre-order: answer names another order")
        return ChannelResult(
            ResultStatus.SUCCESS, pay_data=PayData("form_html", codec.form_html(self._config.front_url, signed))
        )

    async def query(self, ref: TradeRef) -> ChannelResult:
        return await self._query(ref.order_no, ref.created_at)

    async def close(self, ref: TradeRef) -> ChannelResult:
        """ACP cannot close a gateway payment; the query decides whether there is anything left to close."""
        found = await self.query(ref)
        if found.status is ResultStatus.SUCCESS:
            return ChannelResult(
                ResultStatus.FAIL,
                ErrorClass.REJECTED,
                code=ALREADY_PAID,
                message="the payer already paid",
                channel_trade_no=found.channel_trade_no,
                amount=found.amount,
                paid_at=found.paid_at,
            )
        if found.status is ResultStatus.WAITING and found.code == codec.NOT_FOUND_CODE:
            return ChannelResult(ResultStatus.SUCCESS, code=found.code, message="no payment at the bank")
        if found.status is ResultStatus.FAIL and found.error is ErrorClass.NONE:
            return ChannelResult(
                ResultStatus.SUCCESS,
                code=found.code,
                message="the payment failed at the bank",
                channel_trade_no=found.channel_trade_no,
            )
        return found  # in process (WAITING), UNKNOWN, or a refused query

    async def cancel(self, ref: TradeRef) -> ChannelResult:
        return await self._barcode.cancel(ref)  # 冲正 of a barcode consume (barcode.py)

    async def refund(self, req: RefundRequest) -> ChannelResult:
        if not codec.valid_order_id(req.refund_no) or not codec.valid_order_id(req.order_no):
            return _refused("INVALID_ORDER_ID", "orderIds must be 8-40 letters or digits")
        orig_qry_id = req.channel_trade_no
        if not orig_qry_id:  # the refund names the payment by its queryId: learn it from the bank first
            paid = await self._query(req.order_no, req.order_created_at)
            if paid.status is ResultStatus.UNKNOWN or paid.error is ErrorClass.REJECTED:
                return paid
            if paid.status is not ResultStatus.SUCCESS or not paid.channel_trade_no:
                return _refused("ORIGINAL_NOT_PAID", "the bank knows no paid payment for this order")
            orig_qry_id = paid.channel_trade_no
        reserved = {"origOrderId": req.order_no}
        if req.order_created_at is not None:
            reserved["origTxnTime"] = codec.format_time(req.order_created_at)
        fields = self._base("04", "00", "000201") | {
            "channelType": "07",
            "orderId": req.refund_no,
            "txnTime": codec.format_time(req.created_at or self._clock.now()),
            "txnAmt": codec.fen_text(req.amount),
            "currencyCode": codec.CURRENCY_CNY,
            "origQryId": orig_qry_id,
            "backUrl": req.notify_url,
            "reqReserved": codec.encode_nested(reserved),
        }
        node = await self._call(self._config.back_url, fields, "refund")
        if isinstance(node, ChannelResult):
            return node
        return ChannelResult(
            ResultStatus.WAITING,
            code=node.get("respCode"),
            message=node.get("respMsg"),
            channel_trade_no=node.get("origQryId") or orig_qry_id,
            channel_refund_no=node.get("queryId") or None,
            amount=req.amount,
        )

    async def query_refund(self, ref: RefundRef) -> ChannelResult:
        node = await self._query_node(ref.refund_no, ref.created_at)
        if isinstance(node, ChannelResult):
            return node
        found = _map_query(node, ref.created_at)
        if found.status is not ResultStatus.SUCCESS:
            return found
        return ChannelResult(
            ResultStatus.SUCCESS,
            code=found.code,
            channel_trade_no=node.get("origQryId") or ref.channel_trade_no,
            channel_refund_no=found.channel_trade_no,
            amount=ref.amount if found.amount is None else found.amount,
        )

    async def download_statement(self, bill_date: date, sub: SubMerchant | None = None) -> bytes:
        """The zip of the day's reconciliation file (§C5): our documented CSV inside the real envelope."""
        if not self._config.file_url:
            raise StatementUnavailable(_refused("NO_FILE_URL", "this bank account has no file_url configured"))
        fields = self._base("76", "01", "000000") | {
            "txnTime": codec.format_time(self._clock.now()),
            "settleDate": codec.settle_date(bill_date),
            "fileType": "00",
        }
        node = await self._call(self._config.file_url, fields, "fileTransfer")
        if isinstance(node, ChannelResult):
            raise StatementUnavailable(node)
        try:
            return codec.decode_file_content(node.get("fileContent", ""))
        except ValueError as exc:
            raise StatementUnavailable(ChannelResult.unknown(ErrorClass.MALFORMED, str(exc))) from None

    async def payout(self, req: PayoutRequest) -> ChannelResult:
        """Real-time payout: respCode 00 only says the bank took it; the result follows by notify or query."""
        if not codec.valid_order_id(req.payout_no):
            return _refused("INVALID_ORDER_ID", "orderId must be 8-40 letters or digits")
        fields = self._base(*codec.PAYOUT_TXN) | {
            "channelType": "07",
            "orderId": req.payout_no,
            "txnTime": codec.format_time(req.created_at),
            "txnAmt": codec.fen_text(req.amount),
            "currencyCode": codec.CURRENCY_CNY,
            "backUrl": req.notify_url,
            "accType": codec.ACC_TYPE_CARD,
            "accNo": req.account_number,
            "customerInfo": codec.customer_info(req.account_name),
        }
        if self._config.encrypt_cert_id:
            fields["accNo"] = signing.encrypt_data(self._bank_key, req.account_number)
            fields["encryptCertId"] = self._config.encrypt_cert_id
        node = await self._call(self._config.back_url, fields, "payout", undecided=codec.PAYOUT_PENDING_CODES)
        if isinstance(node, ChannelResult):
            return node
        return ChannelResult(
            ResultStatus.WAITING,
            code=node.get("respCode"),
            message=node.get("respMsg"),
            channel_trade_no=node.get("queryId") or None,
            amount=req.amount,
        )

    async def query_payout(self, ref: PayoutRef) -> ChannelResult:
        node = await self._query_node(ref.payout_no, ref.created_at)
        return node if isinstance(node, ChannelResult) else _map_payout_query(node, ref.created_at)

    # --- callbacks --------------------------------------------------------------------------------------

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ChannelNotify:
        """A back-notify: a form POST of the signed result fields; anything unproven raises CallbackRejected."""
        try:
            fields = codec.parse_form(body)
        except ValueError as exc:
            raise CallbackRejected(f"bank notify: unparseable body: {exc}") from None
        if fields.get("signMethod") != codec.SIGN_METHOD_RSA or fields.get("version") != codec.VERSION:
            raise CallbackRejected("bank notify: not a 5.1.0 signMethod 01 message")
        if not signing.verify_fields(fields, self._bank_key):
            raise CallbackRejected("bank notify: signature does not verify")
        if not compare_digest(fields.get("merId", "").encode(), self._config.mer_id.encode()):
            raise CallbackRejected("bank notify: merId is not this account's")
        order_id, resp_code = fields.get("orderId", ""), fields.get("respCode", "")
        if not order_id or not resp_code:
            raise CallbackRejected("bank notify: orderId or respCode missing")
        status = _status_of(resp_code)
        try:
            amount = codec.parse_fen(fields["txnAmt"])
            txn_time = codec.parse_time(fields["txnTime"])
            when = codec.parse_trace_time(fields["traceTime"], txn_time) if fields.get("traceTime") else txn_time
        except (KeyError, ValueError) as exc:
            raise CallbackRejected(f"bank notify: {exc}") from None
        query_id = fields.get("queryId") or None
        if fields.get("txnType") == codec.PAYOUT_TXN[0]:
            status = _payout_status(resp_code)
            failed = status is ResultStatus.FAIL
            return ChannelNotify(
                kind="payout",
                status=status,
                order_no=order_id,
                payout_no=order_id,
                amount=amount,
                channel_trade_no=query_id,
                paid_at=when if status is ResultStatus.SUCCESS else None,
                failure_reason=_reason(resp_code, fields.get("respMsg")) if failed else None,
                raw={k: v for k, v in fields.items() if k not in ("accNo", "customerInfo")},
            )
        if fields.get("txnType") == "01":
            return ChannelNotify(
                kind="payment",
                status=status,
                order_no=order_id,
                amount=amount,
                channel_trade_no=query_id,
                paid_at=when if status is ResultStatus.SUCCESS else None,
                raw=fields,
            )
        if fields.get("txnType") == "04":
            origin = _reserved(fields.get("reqReserved", "")).get("origOrderId")
            return ChannelNotify(
                kind="refund",
                status=status,
                order_no=origin or order_id,
                amount=amount,
                channel_trade_no=fields.get("origQryId") or None,
                refund_no=order_id,
                channel_refund_no=query_id,
                raw=fields,
            )
        raise CallbackRejected(f"bank notify: unexpected txnType {fields.get('txnType')!r}")

    @staticmethod
    def callback_ack(ok: bool, message: str = "") -> AckResponse:
        """The bank only looks at the status: 200 acknowledges, anything else makes it retry."""
        return AckResponse(200, b"ok") if ok else AckResponse(400, b"fail")

    # --- transport --------------------------------------------------------------------------------------

    def _base(self, txn_type: str, txn_sub_type: str, biz_type: str) -> dict[str, str]:
        return {
            "version": codec.VERSION,
            "encoding": codec.ENCODING,
            "signMethod": codec.SIGN_METHOD_RSA,
            "txnType": txn_type,
            "txnSubType": txn_sub_type,
            "bizType": biz_type,
            "accessType": "0",
            "merId": self._config.mer_id,
        }

    async def _query(self, order_id: str, txn_at: datetime | None) -> ChannelResult:
        node = await self._query_node(order_id, txn_at)
        return node if isinstance(node, ChannelResult) else _map_query(node, txn_at)

    async def _query_node(self, order_id: str, txn_at: datetime | None) -> dict[str, str] | ChannelResult:
        """txnType 00 for any transaction (payment or refund) by its orderId + original txnTime."""
        if txn_at is None:
            return ChannelResult.unknown(ErrorClass.MALFORMED, "query needs the original txnTime (created_at)")
        fields = self._base("00", "00", "000000") | {"orderId": order_id, "txnTime": codec.format_time(txn_at)}
        return await self._call(self._config.query_url, fields, "query", not_found=ResultStatus.WAITING)

    async def _call(
        self,
        url: str,
        fields: dict[str, str],
        op: str,
        *,
        not_found: ResultStatus | None = None,
        undecided: frozenset[str] = frozenset(),
    ) -> dict[str, str] | ChannelResult:
        """Sign and POST one request; the verified answer fields on respCode 00, else the mapped result."""
        signed = signing.sign_fields(fields, self._private_key, self._config.cert_id)
        return await self._send(url, signed, op, not_found=not_found, undecided=undecided)

    async def _send(
        self,
        url: str,
        signed: dict[str, str],
        op: str,
        *,
        not_found: ResultStatus | None = None,
        undecided: frozenset[str] = frozenset(),
    ) -> dict[str, str] | ChannelResult:
        """POST already signed fields (create reuses them in its form): one error mapping for every call."""
        try:
            response = await self._http.post(
                url, content=codec.encode_form(signed), headers={"Content-Type": codec.FORM_CONTENT_TYPE}
            )
        except httpx.TransportError as exc:
            return transport_result(exc)
        if response.status_code >= 500:
            return ChannelResult.unknown(ErrorClass.SERVER, f"{op}: HTTP {response.status_code}")
        if response.status_code != 200:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{op}: HTTP {response.status_code}")
        try:
            node = codec.parse_kv(response.content.decode("utf-8").strip("\r\n"))
        except (UnicodeDecodeError, ValueError) as exc:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{op}: unparseable answer: {exc}")
        if not node:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{op}: empty answer")
        if not signing.verify_fields(node, self._bank_key):
            return ChannelResult.unknown(ErrorClass.BAD_SIGNATURE, f"{op}: answer signature missing or wrong")
        if node.get("merId", self._config.mer_id) != self._config.mer_id:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{op}: answer names another merId")
        code, message = node.get("respCode", ""), node.get("respMsg") or None
        if code == "00":
            return node
        if not code:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{op}: answer without respCode")
        if code in codec.PENDING_CODES:
            return ChannelResult(ResultStatus.UNKNOWN, ErrorClass.SERVER, code=code, message=message)
        if code == codec.NOT_FOUND_CODE and not_found is not None:
            return ChannelResult(not_found, code=code, message=message)
        if code in undecided:  # signed, but "not final": the outcome is to be asked for, never assumed
            return ChannelResult(ResultStatus.UNKNOWN, ErrorClass.NONE, code=code, message=message)
        return ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code=code, message=message)


def _map_query(node: Mapping[str, str], txn_at: datetime | None) -> ChannelResult:
    """A query that ran (respCode 00): the queried transaction's own result is `origRespCode`."""
    orig = node.get("origRespCode", "")
    message = node.get("origRespMsg") or None
    query_id = node.get("queryId") or None
    try:
        amount = codec.parse_fen(node["txnAmt"]) if node.get("txnAmt") else None
        if orig in codec.SUCCESS_CODES:
            txn_time = codec.parse_time(node["txnTime"]) if node.get("txnTime") else txn_at
            trace = node.get("traceTime")
            paid_at = codec.parse_trace_time(trace, txn_time) if trace and txn_time else txn_time
            return ChannelResult(
                ResultStatus.SUCCESS,
                code=orig,
                message=message,
                channel_trade_no=query_id,
                amount=amount,
                paid_at=paid_at,
            )
    except ValueError as exc:
        return ChannelResult.unknown(ErrorClass.MALFORMED, f"query: {exc}")
    if orig in codec.PENDING_CODES:
        return ChannelResult(ResultStatus.WAITING, code=orig, message=message, channel_trade_no=query_id)
    if not orig:
        return ChannelResult.unknown(ErrorClass.MALFORMED, "query: respCode 00 without origRespCode")
    return ChannelResult(ResultStatus.FAIL, code=orig, message=message, channel_trade_no=query_id, amount=amount)


def _map_payout_query(node: Mapping[str, str], txn_at: datetime | None) -> ChannelResult:
    """A payout query that ran: `origRespCode` is the payout's own result (UnionPay's payout demo's code sets)."""
    orig = node.get("origRespCode", "")
    message = node.get("origRespMsg") or None
    query_id = node.get("queryId") or None
    if orig in codec.SUCCESS_CODES:
        try:
            amount = codec.parse_fen(node["txnAmt"]) if node.get("txnAmt") else None
            trace = node.get("traceTime")
            done_at = codec.parse_trace_time(trace, txn_at) if trace and txn_at else None
        except ValueError as exc:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"query: {exc}")
        return ChannelResult(
            ResultStatus.SUCCESS, code=orig, message=message, channel_trade_no=query_id, amount=amount, paid_at=done_at
        )
    if orig in codec.PAYOUT_PENDING_CODES:
        return ChannelResult(ResultStatus.WAITING, code=orig, message=message, channel_trade_no=query_id)
    if not orig:
        return ChannelResult.unknown(ErrorClass.MALFORMED, "query: respCode 00 without origRespCode")
    return ChannelResult(ResultStatus.FAIL, code=orig, message=message, channel_trade_no=query_id)


def _payout_status(resp_code: str) -> ResultStatus:
    if resp_code in codec.SUCCESS_CODES:
        return ResultStatus.SUCCESS
    return ResultStatus.WAITING if resp_code in codec.PAYOUT_PENDING_CODES else ResultStatus.FAIL


def _reason(code: str, message: str | None) -> str:
    return f"{code}: {message}" if message else code


def _status_of(resp_code: str) -> ResultStatus:
    if resp_code in codec.SUCCESS_CODES:
        return ResultStatus.SUCCESS
    return ResultStatus.WAITING if resp_code in codec.PENDING_CODES else ResultStatus.FAIL


def _reserved(value: str) -> dict[str, str]:
    try:
        return codec.parse_nested(value) if value else {}
    except ValueError:
        return {}


def _refused(code: str, message: str) -> ChannelResult:
    return ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code=code, message=message)


def _origin(url: str) -> str:
    """Where the payer's browser lands without a return_url: the platform's public origin."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/" if parts.scheme and parts.netloc else ""


def _plain(text: str) -> str:
    """The subject inside `riskRateInfo={commodityName=…}` without the characters that delimit it."""
    return " ".join("".join(" " if c in "{}[]&=" else c for c in text).split())[:64] or "-"
