"""Payouts (代付) at the simulated bank: txnType 12, txnSubType 00, bizType 000401 on backTransReq.do.

A payout is validated and answered respCode 00 (accepted), as UnionPay answers; `delay_s` later (divided by the
state's time scale) it is final and a signed back-notify carries its result: respCode 00 paid, or — under the
`reject_payouts` fault — respCode 30 (交易未通过), the payee's bank refusing it after acceptance. Until then a query
answers origRespCode 05 (in process). The same orderId again answers 12 (重复交易). accNo comes in the clear, or
encrypted under the bank's key when `encryptCertId` names the bank's cert id.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from tomato.channel.adapters.bank import codec, signing
from tomato.channel.sandbox.bank_wire import OK_MSG, BankError, Fields, common_fields, txn_fields
from tomato.channel.sandbox.state import SandboxState

PAYOUT_DELAY_S = 2.0  # accepted → final, divided by the state's time scale
PAYOUT_REJECT_CODE = "30"
CHANNEL = "bank"


@dataclass
class BankPayout:
    mer_id: str
    order_id: str
    txn_time: str
    query_id: str
    amount: int  # fen
    acc_no: str
    name: str
    back_url: str
    at: datetime
    trace_no: str
    result: str | None = None  # None while in process, then the final respCode
    result_msg: str = ""
    finished_at: datetime | None = None


class BankPayouts:
    """The payouts the bank took, by (merId, orderId); `notify(url, fields, query_id)` sends a back-notify."""

    def __init__(
        self,
        state: SandboxState,
        *,
        key: rsa.RSAPrivateKey,
        cert_id: str,
        notify: Callable[[str, Fields, str], None],
        delay_s: float = PAYOUT_DELAY_S,
    ) -> None:
        self._state = state
        self._key = key
        self._cert_id = cert_id
        self._notify = notify
        self._payouts: dict[tuple[str, str], BankPayout] = {}
        self.delay_s = delay_s

    def all(self) -> list[BankPayout]:
        """Every payout the bank took, oldest first (tests read what really left the merchant's account)."""
        return sorted(self._payouts.values(), key=lambda p: p.at)

    def accept(self, mer_id: str, fields: Fields) -> Fields:
        """Validated and accepted (respCode 00); the result follows by back-notify."""
        order_id, amount, txn_time = txn_fields(fields)
        if (fields.get("txnSubType"), fields.get("bizType")) != ("00", "000401"):
            raise BankError("32", "无此交易权限: payouts are txnSubType 00, bizType 000401")
        back_url, acc_no = fields.get("backUrl", ""), fields.get("accNo", "")
        if "encryptCertId" in fields:  # the newer form: accNo encrypted under the bank's key
            if fields["encryptCertId"] != self._cert_id:
                raise BankError("10", "报文格式错误: encryptCertId is not the bank's")
            try:
                acc_no = signing.decrypt_data(self._key, acc_no)
            except ValueError:
                raise BankError("10", "报文格式错误: accNo does not decrypt") from None
        if urlsplit(back_url).scheme not in ("http", "https") or fields.get("currencyCode") != codec.CURRENCY_CNY:
            raise BankError("13", "报文交易要素缺失: backUrl or currencyCode")
        if not (acc_no.isascii() and acc_no.isdigit() and 8 <= len(acc_no) <= 32):
            raise BankError("10", "报文格式错误: accNo")
        try:
            name = codec.parse_customer_info(fields.get("customerInfo", "")).get("customerNm", "")
        except ValueError:
            raise BankError("10", "报文格式错误: customerInfo") from None
        if not name:
            raise BankError("13", "报文交易要素缺失: customerNm")
        if (mer_id, order_id) in self._payouts:
            raise BankError("12", "重复交易")
        now = self._state.clock.now()
        payout = BankPayout(
            mer_id,
            order_id,
            codec.format_time(txn_time),
            codec.new_query_id(now),
            amount,
            acc_no,
            name,
            back_url,
            now,
            f"{secrets.randbelow(10**6):06d}",
        )
        self._payouts[(mer_id, order_id)] = payout
        rejected = self._state.faults[CHANNEL].reject_payouts
        self._state.notifier.later(self.delay_s / self._state.time_scale, lambda: self._finish(payout, rejected))
        return self._fields(payout) | {"respCode": "00", "respMsg": OK_MSG}

    def query_answer(self, mer_id: str, order_id: str, txn_time: str) -> Fields | None:
        """A query's answer for the payout of exactly this orderId and txnTime, None when there is none."""
        payout = self._payouts.get((mer_id, order_id))
        if payout is None or payout.txn_time != txn_time:
            return None
        code, message = (payout.result, payout.result_msg) if payout.result else ("05", "交易处理中")
        return self._fields(payout) | {"origRespCode": code, "origRespMsg": message}

    def _finish(self, payout: BankPayout, rejected: bool) -> None:
        payout.finished_at = self._state.clock.now()
        if rejected:
            payout.result, payout.result_msg = PAYOUT_REJECT_CODE, "交易未通过: payouts refused (sandbox fault)"
        else:
            payout.result, payout.result_msg = "00", OK_MSG
        answer = self._fields(payout) | {"respCode": payout.result, "respMsg": payout.result_msg}
        self._notify(payout.back_url, answer, payout.query_id)

    @staticmethod
    def _fields(payout: BankPayout) -> Fields:
        """The payout's answer/notify fields; the card number and the payee are not echoed."""
        fields = common_fields(payout.mer_id) | {
            "txnType": "12",
            "txnSubType": "00",
            "bizType": "000401",
            "channelType": "07",
            "orderId": payout.order_id,
            "txnTime": payout.txn_time,
            "txnAmt": str(payout.amount),
            "currencyCode": codec.CURRENCY_CNY,
            "queryId": payout.query_id,
            "traceNo": payout.trace_no,
            "traceTime": codec.format_time(payout.at)[4:],
        }
        if payout.finished_at is not None and payout.result == "00":
            fields |= {
                "settleAmt": str(payout.amount),
                "settleCurrencyCode": codec.CURRENCY_CNY,
                "settleDate": codec.settle_date(codec.beijing_date(payout.finished_at)),
            }
        return fields
