"""The bank simulator, modelled on UnionPay ACP 5.1.0 (docs/channels.md).

Endpoints: the app pre-order, the front form (the payer's browser), back transactions (refunds), query and file
transfer; every request is verified (merId, certId, signMethod 01 signature) and every answer is a signed raw
`k=v&…` body. Choices where UnionPay is not known or not followed:
- Web payments are pre-ordered (our deviation, mirrored in the adapter): create POSTs the signed consume to
  `appTransReq.do` as ACP app payments do, and the trade (amount, backUrl, orderId, txnTime) exists from then on,
  so `POST /sandbox/scan` by `order_no` finds it before any form is posted. The same orderId, txnTime,
  amount and backUrl again answer the same `tn`; other terms answer respCode 12. A front form (a browser's, or the
  scan's `content`) must match its pre-order likewise, or opens the trade itself when there was none.
- Unpaid trades are unknown to queries (respCode 34, as for a consume nobody paid); after `payTimeout` the trade
  is closed and scans answer 409. There is no close API, so `ignore_close` does not apply.
- Failed payments are notified too (UnionPay notifies successes only) so the platform learns within seconds.
- Refunds are processed at once: the answer is respCode 00 (accepted), then a refund back-notify follows.
- Barcode pay (付款码): the QR consume (txnType 01 / txnSubType 06) and its reversal (冲正, txnType 99) on
  `backTransReq.do`, served by `bank_barcode` from the sandbox's `BarcodeBook`.
- Payouts (代付) are accepted, then final by back-notify (`bank_payouts`); the same orderId again answers 12
  (重复交易): the platform then asks by query, as UnionPay's demo does. Payouts are not in the reconciliation file.
- Queries match merId + orderId + the exact txnTime, as UnionPay does; a refund's txnTime alone is accepted within
  `TXN_TIME_TOLERANCE`: the platform sends the clock's now but queries with its refund row's created_at.
- `signPubKeyCert` is not sent: accounts pin the bank's public key. Back-notifies count as delivered on HTTP 200
  and are retried after `notify_gaps_s` (unconfirmed for UnionPay), each divided by `state.time_scale`.
- Reconciliation file: the real envelope with our CSV inside (`codec.build_statement_zip`); settleDate is the
  Beijing calendar date of the payment or refund (no 23:00 cut-off), fees at the state's `fee_ppm`, with
  that date's statement faults (`SandboxState.statement_rows`; a row's failed status is respCode 01).
"""

from __future__ import annotations

import asyncio
import html
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from hmac import compare_digest
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from tomato.channel.adapters.bank import codec, signing
from tomato.channel.adapters.bank.config import APP_PATH
from tomato.channel.sandbox.bank_barcode import BankBarcodes
from tomato.channel.sandbox.bank_payouts import PAYOUT_DELAY_S, BankPayout, BankPayouts
from tomato.channel.sandbox.bank_wire import OK_MSG, BankError, Fields, common_fields, txn_fields
from tomato.channel.sandbox.notifier import Notification
from tomato.channel.sandbox.state import ChannelBook, SandboxState, SimRefund, SimTrade, TradeState
from tomato.core.crypto import generate_rsa_key, load_public_key, public_key_pem
from tomato.core.money import fen_to_yuan

FRONT_PATH = "/bank/gateway/api/frontTransReq.do"
BACK_PATH = "/bank/gateway/api/backTransReq.do"
QUERY_PATH = "/bank/gateway/api/queryTrans.do"
FILE_PATH = "/bank/filedownload"
NOTIFY_GAPS_S = (15.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)  # 15s,30s,1m,5m,30m,1h: 7 sends over ~1.6 h
TXN_TIME_TOLERANCE = timedelta(minutes=15)


@dataclass
class BankRefund:
    mer_id: str
    order_id: str
    txn_time: str
    query_id: str
    orig_qry_id: str
    amount: int  # fen
    back_url: str
    req_reserved: str
    at: datetime
    trace_no: str


class BankSimulator:
    channel = "bank"

    def __init__(
        self,
        state: SandboxState,
        *,
        private_key: rsa.RSAPrivateKey | None = None,
        cert_id: str | None = None,
        notify_gaps_s: Sequence[float] = NOTIFY_GAPS_S,
        payout_delay_s: float = PAYOUT_DELAY_S,
    ) -> None:
        self._state = state
        self._key = private_key or generate_rsa_key()
        self._cert_id = cert_id or str(10**10 + secrets.randbelow(9 * 10**10))
        self._gaps = tuple(notify_gaps_s)
        self._merchants: dict[str, tuple[str, rsa.RSAPublicKey]] = {}
        self._refunds: dict[tuple[str, str], BankRefund] = {}
        self.payout_desk = BankPayouts(
            state, key=self._key, cert_id=self._cert_id, notify=self._notify, delay_s=payout_delay_s
        )
        self.barcode_desk = BankBarcodes(state, self._notify)
        self._back: dict[str, Callable[[str, Fields], Fields]] = {
            "01": self.barcode_desk.consume,
            "04": self._refund,
            "12": self.payout_desk.accept,
            "99": self.barcode_desk.reverse,
        }
        state.attach(self)

    @property
    def public_key_pem(self) -> str:
        """The bank's public key: configure the platform's `bank_public_key_pem` with it."""
        return public_key_pem(self._key)

    @property
    def cert_id(self) -> str:
        """The decimal serial the bank signs its answers and notifies with (`certId`)."""
        return self._cert_id

    @property
    def book(self) -> ChannelBook:
        return self._state.books[self.channel]

    def register_merchant(self, mer_id: str, merchant_cert_id: str, merchant_public_key_pem: str) -> None:
        """Register (or re-key) a merchant: its requests must carry this certId and verify with this key."""
        self._merchants[mer_id] = (merchant_cert_id, load_public_key(merchant_public_key_pem))
        self.book.merchants[mer_id] = merchant_public_key_pem

    @staticmethod
    def urls(base_url: str) -> dict[str, str]:
        """The account config URLs of a simulator at `base_url` (the adapter derives `app_url` from front_url)."""
        base = base_url.rstrip("/")
        return {
            "front_url": base + FRONT_PATH,
            "back_url": base + BACK_PATH,
            "query_url": base + QUERY_PATH,
            "file_url": base + FILE_PATH,
        }

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route(FRONT_PATH, self._front, methods=["POST"], include_in_schema=False)
        for path, handler in (
            (APP_PATH, self._pre_order),
            (BACK_PATH, self._back_trans),
            (QUERY_PATH, self._query),
            (FILE_PATH, self._file),
        ):
            router.add_api_route(path, self._endpoint(handler), methods=["POST"], include_in_schema=False)
        return router

    # --- HTTP ---------------------------------------------------------------------------------------------

    def _endpoint(self, handler: Callable[[str, Fields], Fields]) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            faults = self._state.faults[self.channel]
            if faults.latency_ms > 0:
                await asyncio.sleep(faults.latency_ms / 1000)
            if self._state.roll(faults.error_rate):
                return Response("Internal Server Error", status_code=500, media_type="text/plain")
            stall = self._state.roll(faults.timeout_rate)
            fields: Fields = {}
            try:
                try:
                    fields = codec.parse_form(await request.body())
                except ValueError:
                    raise BankError("10", "报文格式错误") from None
                answer = handler(self._authenticate(fields), fields)
            except BankError as exc:
                answer = codec.echo(fields) | {"respCode": exc.code, "respMsg": exc.message}
            body = codec.encode_kv(signing.sign_fields(answer, self._key, self._cert_id))
            if stall:  # the work is done, the answer comes too late: the caller sees a timeout, outcome unknown
                await asyncio.sleep(self._state.timeout_sleep_s)
            return Response(body.encode("utf-8"), media_type="text/plain;charset=UTF-8")

        return serve

    async def _front(self, request: Request) -> Response:
        """The browser flow: the auto-submitted form finds its pre-order (or opens the trade), shows the pay page."""
        try:
            fields = codec.parse_form(await request.body())
            trade = self._open_trade(self._authenticate(fields), fields)
            self._expire_if_due(trade)
        except (ValueError, BankError) as exc:
            text = html.escape(str(exc))
            return HTMLResponse(f"<!doctype html><title>Bank error</title><p>{text}</p>", status_code=400)
        page = (
            "<!doctype html><meta charset='utf-8'><title>Bank sandbox payment</title>"
            f"<h1>{html.escape(trade.subject)}</h1><p>Amount: ¥{fen_to_yuan(trade.amount)}</p>"
            f"<p>Order: {html.escape(trade.out_trade_no)} · Query id: {trade.channel_trade_no} · "
            f"{trade.state.value}</p><p>Pay with <code>POST /sandbox/scan</code> and this order number.</p>"
        )
        return HTMLResponse(page)

    def _authenticate(self, fields: Fields) -> str:
        if fields.get("version") != codec.VERSION or fields.get("signMethod") != codec.SIGN_METHOD_RSA:
            raise BankError("10", "报文格式错误: version 5.1.0 and signMethod 01 only")
        mer_id = fields.get("merId", "")
        merchant = self._merchants.get(mer_id)
        if merchant is None:
            raise BankError("31", "商户状态不正确")
        cert_id, key = merchant
        if not compare_digest(fields.get("certId", "").encode(), cert_id.encode()):
            raise BankError("11", "验证签名失败: unknown certId")
        if not signing.verify_fields(fields, key):
            raise BankError("11", "验证签名失败")
        return mer_id

    # --- payer API ----------------------------------------------------------------------------------------

    def find_for_scan(self, content: str | None, order_no: str | None) -> SimTrade | None:
        trade: SimTrade | None = None
        if content:
            if "<form" not in content.lower():
                return None
            try:
                _, fields = codec.parse_form_html(content)
                trade = self._open_trade(self._authenticate(fields), fields)
            except (ValueError, BankError):
                return None
        elif order_no:
            trade = self.book.find_by_order_no(order_no)
        if trade is not None and "qrNo" in trade.extra:
            return None  # a barcode trade is paid by its code's behaviour (bank_barcode), not by a scan
        if trade is not None:
            self._expire_if_due(trade)
        return trade

    def pay_silently(self, trade: SimTrade, at: datetime) -> None:
        trade.state, trade.paid_at, trade.closed_at = TradeState.PAID, at, None
        trade.extra["traceNo"] = f"{secrets.randbelow(10**6):06d}"
        trade.extra["traceTime"] = codec.format_time(at)[4:]

    def complete(self, trade: SimTrade, paid: bool) -> None:
        now = self._state.clock.now()
        if paid:
            trade.state, trade.paid_at = TradeState.PAID, now
        else:
            trade.state, trade.closed_at = TradeState.FAILED, now
        trade.extra["traceNo"] = f"{secrets.randbelow(10**6):06d}"
        trade.extra["traceTime"] = codec.format_time(now)[4:]
        self._notify(
            trade.notify_url,
            self._payment_fields(trade)
            | {"respCode": "00" if paid else "01", "respMsg": OK_MSG if paid else "交易失败"},
            trade.channel_trade_no,
        )

    # --- transactions -------------------------------------------------------------------------------------

    def _pre_order(self, mer_id: str, fields: Fields) -> Fields:
        """appTransReq.do: the consume is registered before any browser shows up; the answer carries its `tn`."""
        trade = self._open_trade(mer_id, fields)
        return codec.echo(fields) | {"respCode": "00", "respMsg": OK_MSG, "tn": trade.extra["tn"]}

    def _open_trade(self, mer_id: str, fields: Fields) -> SimTrade:
        """The consume of a pre-order or a front form: the known trade when the terms match, else a new one."""
        if (fields.get("txnType"), fields.get("txnSubType"), fields.get("bizType")) != ("01", "01", "000201"):
            raise BankError("32", "无此交易权限: consumes only (txnType 01, txnSubType 01, bizType 000201)")
        order_id, amount, txn_time = txn_fields(fields)
        back_url = fields.get("backUrl", "")
        if urlsplit(back_url).scheme not in ("http", "https") or fields.get("currencyCode") != codec.CURRENCY_CNY:
            raise BankError("13", "报文交易要素缺失: backUrl or currencyCode")
        try:
            expire_at = codec.parse_time(fields["payTimeout"]) if fields.get("payTimeout") else None
        except ValueError:
            raise BankError("10", "报文格式错误: payTimeout") from None
        try:
            subject = codec.parse_nested(fields.get("riskRateInfo", "")).get("commodityName") or order_id
        except ValueError:
            subject = order_id
        trade = self.book.find(mer_id, order_id)
        if trade is not None:
            if (trade.amount, trade.extra["txnTime"], trade.notify_url) != (amount, fields["txnTime"], back_url):
                raise BankError("12", "重复交易: this orderId is known with other terms")
            return trade
        now = self._state.clock.now()
        trade = SimTrade(
            channel=self.channel,
            merchant_id=mer_id,
            out_trade_no=order_id,
            channel_trade_no=codec.new_query_id(now),
            amount=amount,
            subject=subject,
            notify_url=back_url,
            created_at=now,
            expire_at=expire_at,
            extra={"txnTime": codec.format_time(txn_time), "tn": codec.new_query_id(now)},
        )
        self.book.add(trade)
        return trade

    def _back_trans(self, mer_id: str, fields: Fields) -> Fields:
        handler = self._back.get(fields.get("txnType", ""))
        if handler is None:
            raise BankError("32", "无此交易权限")
        return handler(mer_id, fields)

    def _refund(self, mer_id: str, fields: Fields) -> Fields:
        if self._state.faults[self.channel].reject_refunds:
            raise BankError("01", "交易失败: refunds refused (sandbox fault)")
        order_id, amount, txn_time = txn_fields(fields)
        orig_qry_id, back_url = fields.get("origQryId", ""), fields.get("backUrl", "")
        reserved = fields.get("reqReserved", "")
        if fields.get("txnSubType") != "00" or not orig_qry_id or not back_url:
            raise BankError("13", "报文交易要素缺失")
        try:
            codec.encode_kv({"reqReserved": reserved})
        except ValueError:
            raise BankError("10", "报文格式错误: reqReserved") from None
        done = self._refunds.get((mer_id, order_id))
        if done is not None:  # a replay of the same refund is accepted again, anything else is a duplicate
            if (done.orig_qry_id, done.amount) != (orig_qry_id, amount):
                raise BankError("12", "重复交易")
            return self._refund_fields(done) | {"respCode": "00", "respMsg": OK_MSG}
        trade = self.book.find(mer_id, trade_no=orig_qry_id)
        if trade is None or trade.state is not TradeState.PAID:
            raise BankError("35", "原交易不存在或状态不正确")
        if trade.refunded + amount > trade.amount:
            raise BankError("33", "交易金额超限: beyond the refundable balance")
        now = self._state.clock.now()
        refund = BankRefund(
            mer_id,
            order_id,
            codec.format_time(txn_time),
            codec.new_query_id(now),
            orig_qry_id,
            amount,
            back_url,
            reserved,
            now,
            f"{secrets.randbelow(10**6):06d}",
        )
        trade.refunds[order_id] = SimRefund(order_id, amount, now)
        self._refunds[(mer_id, order_id)] = refund
        answer = self._refund_fields(refund)
        self._notify(back_url, answer | {"respCode": "00", "respMsg": OK_MSG}, refund.query_id)
        return answer | {"respCode": "00", "respMsg": OK_MSG}

    def payouts(self) -> list[BankPayout]:
        """Every payout the bank took, oldest first (tests read what really left the merchant's account)."""
        return self.payout_desk.all()

    def _query(self, mer_id: str, fields: Fields) -> Fields:
        order_id = fields.get("orderId", "")
        try:
            asked = codec.parse_time(fields.get("txnTime", ""))
        except ValueError:
            raise BankError("10", "报文格式错误: txnTime") from None
        answer = self.barcode_desk.query_answer(mer_id, order_id, fields["txnTime"])
        trade = self.book.find(mer_id, order_id) if answer is None else None
        if trade is not None and "qrNo" not in trade.extra:
            self._expire_if_due(trade)
            if trade.state in (TradeState.PAID, TradeState.FAILED) and trade.extra["txnTime"] == fields["txnTime"]:
                paid = trade.state is TradeState.PAID
                answer = self._payment_fields(trade) | {
                    "origRespCode": "00" if paid else "01",
                    "origRespMsg": OK_MSG if paid else "交易失败",
                }
        if answer is None:
            answer = self.payout_desk.query_answer(mer_id, order_id, fields["txnTime"])
        refund = self._refunds.get((mer_id, order_id))
        if answer is None and refund is not None and _near(refund.txn_time, asked):
            answer = self._refund_fields(refund) | {"origRespCode": "00", "origRespMsg": OK_MSG}
        if answer is None:
            raise BankError(codec.NOT_FOUND_CODE, "查无此交易")
        return answer | {"txnType": "00", "txnSubType": "00", "bizType": "000000", "respCode": "00", "respMsg": OK_MSG}

    def _file(self, mer_id: str, fields: Fields) -> Fields:
        mmdd = fields.get("settleDate", "")
        day = codec.resolve_settle_date(mmdd, codec.beijing_date(self._state.clock.now()))
        if (fields.get("txnType"), fields.get("fileType")) != ("76", "00") or day is None:
            raise BankError("10", "报文格式错误: txnType 76, fileType 00, settleDate MMdd")
        rows = []
        for row in self._state.statement_rows(self.channel, mer_id, day):
            code = "00" if row.succeeded else "01"
            if row.refund is None:
                t = row.trade
                rows.append(
                    codec.statement_row(
                        t.channel_trade_no,
                        t.extra.get("traceNo", ""),
                        t.out_trade_no,
                        t.extra["txnTime"],
                        "01",
                        row.amount,
                        day,
                        row.fee,
                        code,
                    )
                )
            else:
                r = self._refunds[(mer_id, row.refund.refund_no)]
                rows.append(
                    codec.statement_row(
                        r.query_id, r.trace_no, r.order_id, r.txn_time, "04", -row.amount, day, row.fee, code
                    )
                )
        name = f"INN{day:%y%m%d}01ZM_{mer_id}.csv"
        content = codec.encode_file_content(codec.build_statement_zip(name, rows))
        return codec.echo(fields) | {
            "respCode": "00",
            "respMsg": OK_MSG,
            "settleDate": mmdd,
            "fileType": "00",
            "fileName": f"{mer_id}_{day:%Y%m%d}.zip",
            "fileContent": content,
        }

    # --- helpers ------------------------------------------------------------------------------------------

    def _payment_fields(self, trade: SimTrade) -> Fields:
        fields = common_fields(trade.merchant_id) | {
            "txnType": "01",
            "txnSubType": "01",
            "bizType": "000201",
            "channelType": "07",
            "orderId": trade.out_trade_no,
            "txnTime": trade.extra["txnTime"],
            "txnAmt": str(trade.amount),
            "currencyCode": codec.CURRENCY_CNY,
            "queryId": trade.channel_trade_no,
            "traceNo": trade.extra.get("traceNo", ""),
            "traceTime": trade.extra.get("traceTime", ""),
        }
        if trade.paid_at is not None:
            fields |= {
                "settleAmt": str(trade.amount),
                "settleCurrencyCode": codec.CURRENCY_CNY,
                "settleDate": codec.settle_date(codec.beijing_date(trade.paid_at)),
            }
        return fields

    def _refund_fields(self, refund: BankRefund) -> Fields:
        """Echoes `reqReserved` as sent — a nested `{k=v&…}` value in a raw k=v body."""
        return common_fields(refund.mer_id) | {
            "txnType": "04",
            "txnSubType": "00",
            "bizType": "000201",
            "channelType": "07",
            "orderId": refund.order_id,
            "txnTime": refund.txn_time,
            "txnAmt": str(refund.amount),
            "currencyCode": codec.CURRENCY_CNY,
            "queryId": refund.query_id,
            "origQryId": refund.orig_qry_id,
            "traceNo": refund.trace_no,
            "traceTime": codec.format_time(refund.at)[4:],
            "settleAmt": str(refund.amount),
            "settleCurrencyCode": codec.CURRENCY_CNY,
            "settleDate": codec.settle_date(codec.beijing_date(refund.at)),
            "reqReserved": refund.req_reserved,
        }

    def _notify(self, url: str, fields: Fields, query_id: str) -> None:
        """A back-notify: the signed result fields as a form POST to backUrl, delivered once HTTP 200 comes back."""
        if not url:
            return
        signed = signing.sign_fields(fields, self._key, self._cert_id)
        self._state.notifier.send(
            Notification(
                channel=self.channel,
                url=url,
                body=codec.encode_form(signed),
                headers={"Content-Type": codec.FORM_CONTENT_TYPE},
                accepted=lambda r: r.status_code == 200,
                gaps_s=self._gaps,
                notify_id=f"{query_id}-{secrets.token_hex(4)}",
            )
        )

    def _expire_if_due(self, trade: SimTrade) -> None:
        """An unpaid trade dies at its payTimeout: the bank's only way of closing a gateway payment."""
        if trade.state is TradeState.WAITING and trade.expire_at and self._state.clock.now() >= trade.expire_at:
            trade.state, trade.closed_at = TradeState.CLOSED, trade.expire_at


def _near(original: str, asked: datetime) -> bool:
    """Refunds only: the platform cannot name a refund's txnTime exactly (see the module docstring)."""
    return abs(codec.parse_time(original) - asked) <= TXN_TIME_TOLERANCE
