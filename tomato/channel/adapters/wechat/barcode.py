"""WeChat Pay payment-code pay (付款码支付), which exists only in API v2: micropay, orderquery and reverse.

Requests go to the account's `base_url` origin (`/pay/micropay`, `/pay/orderquery`, `/secapi/pay/reverse`) as
XML signed HMAC-SHA256 with `api_v2_key` (`v2.py`). What the answers mean (docs/channels.md, "Barcode pay"):
- micropay: `result_code` SUCCESS = paid; `err_code` USERPAYING = the payer is confirming (WAITING); SYSTEMERROR
  and BANKERROR = outcome unknown; ORDERPAID = an earlier request paid this order (the orderquery's SUCCESS, else
  UNKNOWN); any other `err_code` is WeChat's definite refusal (nothing was paid: FAIL REJECTED with that code);
- orderquery: `trade_state` as the v3 query's (SUCCESS/REFUND paid, USERPAYING/NOTPAY waiting, CLOSED/REVOKED/
  PAYERROR failed); ORDERNOTEXIST = the micropay never took effect (WAITING, as the v3 query's not-found);
- reverse: SUCCESS = reversed (refunded if it was paid); ORDERNOTEXIST = WeChat never took the micropay, so nothing
  was taken and nothing is left to reverse (SUCCESS with that code: the order may close); `recall` Y = call reverse
  again (WAITING); otherwise not reversed (SYSTEMERROR UNKNOWN, anything else FAIL REJECTED).
An unsigned answer (`return_code` FAIL, or `sign` missing or wrong), a 5xx or unparseable body is UNKNOWN; a signed
answer naming another merchant, app or order is UNKNOWN too.
"""

from __future__ import annotations

import httpx

from tomato.channel.adapters.wechat import v2
from tomato.channel.adapters.wechat.config import WechatConfig
from tomato.channel.http import transport_result
from tomato.channel.protocol import ChannelResult, CreateRequest, ErrorClass, ResultStatus, TradeRef

MICROPAY_PATH = "/pay/micropay"
ORDERQUERY_PATH = "/pay/orderquery"
REVERSE_PATH = "/secapi/pay/reverse"
USER_AGENT = "tomato-pay/0.1 (WeChatPay APIv2 micropay)"
UNKNOWN_CODES = frozenset({"SYSTEMERROR", "BANKERROR"})  # the outcome is not known: query
PAID_STATES = frozenset({"SUCCESS", "REFUND"})
WAITING_STATES = frozenset({"USERPAYING", "NOTPAY", "ACCEPT"})
FAILED_STATES = frozenset({"CLOSED", "REVOKED", "PAYERROR"})
NOT_SUPPORTED = ChannelResult(
    ResultStatus.FAIL, ErrorClass.REJECTED, code="BARCODE_NOT_SUPPORTED", message="no api_v2_key, or partner mode"
)
_Fields = dict[str, str]


class MicropayClient:
    """The v2 calls of one direct-mode account that has an `api_v2_key`."""

    def __init__(self, config: WechatConfig, api_v2_key: str, http: httpx.AsyncClient) -> None:
        self._config = config
        self._key = api_v2_key
        self._http = http

    def __repr__(self) -> str:  # never the key
        return f"MicropayClient(mchid={self._config.mchid!r})"

    async def pay(self, req: CreateRequest) -> ChannelResult:
        if not req.auth_code:
            return ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code="AUTH_CODE_REQUIRED", message="BARCODE")
        fields = {
            "body": req.subject[:128],
            "out_trade_no": req.order_no,
            "total_fee": str(req.amount),
            "spbill_create_ip": req.client_ip or "127.0.0.1",
            "auth_code": req.auth_code,
        }
        if req.profit_sharing:
            fields["profit_sharing"] = "Y"  # frozen for splitting, as v3's settle_info.profit_sharing
        answer = await self._call(MICROPAY_PATH, fields, req.order_no)
        if isinstance(answer, ChannelResult):
            return answer
        if answer.get("result_code") == "SUCCESS":
            return _paid(answer, "SUCCESS")
        code, message = answer.get("err_code") or "", answer.get("err_code_des")
        if code == "USERPAYING":
            return ChannelResult(ResultStatus.WAITING, code=code, message=message)
        if code in UNKNOWN_CODES or not code:
            return ChannelResult(ResultStatus.UNKNOWN, ErrorClass.SERVER, code=code or None, message=message)
        if code == "ORDERPAID":  # an earlier request (a retry's first try) paid this order: the query has the facts
            paid = await self.query(TradeRef(req.order_no, pay_method="BARCODE"))
            if paid.status is ResultStatus.SUCCESS:
                return paid
            return ChannelResult(ResultStatus.UNKNOWN, code=code, message=message)
        return ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code=code, message=message)

    async def query(self, ref: TradeRef) -> ChannelResult:
        answer = await self._call(ORDERQUERY_PATH, self._trade(ref), ref.order_no)
        if isinstance(answer, ChannelResult):
            return answer
        if answer.get("result_code") != "SUCCESS":
            code, message = answer.get("err_code") or "", answer.get("err_code_des")
            if code == "ORDERNOTEXIST":
                return ChannelResult(ResultStatus.WAITING, code=code, message=message)
            if code in UNKNOWN_CODES or not code:
                return ChannelResult(ResultStatus.UNKNOWN, ErrorClass.SERVER, code=code or None, message=message)
            return ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code=code, message=message)
        state = answer.get("trade_state", "")
        if state in PAID_STATES:
            return _paid(answer, state)
        trade_no = answer.get("transaction_id") or None
        amount = _fen(answer.get("total_fee"))
        if state in WAITING_STATES:
            return ChannelResult(ResultStatus.WAITING, code=state, channel_trade_no=trade_no, amount=amount)
        if state in FAILED_STATES:
            return ChannelResult(
                ResultStatus.FAIL, code=state, message=answer.get("trade_state_desc"), channel_trade_no=trade_no,
                amount=amount,
            )
        return ChannelResult.unknown(ErrorClass.MALFORMED, f"orderquery: unknown trade_state {state!r}")

    async def reverse(self, ref: TradeRef) -> ChannelResult:
        answer = await self._call(REVERSE_PATH, self._trade(ref), None)
        if isinstance(answer, ChannelResult):
            return answer
        if answer.get("result_code") == "SUCCESS":
            return ChannelResult(ResultStatus.SUCCESS, code="SUCCESS")
        code, message = answer.get("err_code") or None, answer.get("err_code_des")
        if code == "ORDERNOTEXIST":  # the pay request never took effect: no money to give back
            return ChannelResult(ResultStatus.SUCCESS, code=code, message=message)
        if answer.get("recall") == "Y":
            return ChannelResult(ResultStatus.WAITING, code=code, message=message)
        if code is None or code in UNKNOWN_CODES:
            return ChannelResult(ResultStatus.UNKNOWN, ErrorClass.SERVER, code=code, message=message)
        return ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code=code, message=message)

    @staticmethod
    def _trade(ref: TradeRef) -> _Fields:
        """The trade named by our order number, and WeChat's number when we know it (it wins at WeChat)."""
        return {"out_trade_no": ref.order_no, "transaction_id": ref.channel_trade_no or ""}

    async def _call(self, path: str, fields: _Fields, order_no: str | None) -> _Fields | ChannelResult:
        """One signed v2 call: the verified answer, or the UNKNOWN it amounts to."""
        params = {
            "appid": self._config.appid,
            "mch_id": self._config.mchid,
            "nonce_str": v2.nonce_str(),
            "sign_type": v2.HMAC_SHA256,
            **fields,
        }
        content = v2.to_xml(v2.signed(params, self._key))
        headers = {"Content-Type": v2.XML_CONTENT_TYPE, "Accept": "text/xml", "User-Agent": USER_AGENT}
        try:
            response = await self._http.post(self._config.base_url + path, content=content, headers=headers)
        except httpx.TransportError as exc:
            return transport_result(exc)
        if response.status_code >= 500:
            return ChannelResult.unknown(ErrorClass.SERVER, f"{path}: HTTP {response.status_code}")
        if response.status_code != 200:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{path}: HTTP {response.status_code}")
        try:
            answer = v2.from_xml(response.content)
        except ValueError as exc:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{path}: {exc}")
        if answer.get("return_code") != "SUCCESS":  # not processed; such answers are unsigned
            return ChannelResult.unknown(ErrorClass.BAD_SIGNATURE, f"{path}: unsigned FAIL: {answer.get('return_msg')}")
        if not v2.verify(answer, self._key, v2.HMAC_SHA256):
            return ChannelResult.unknown(ErrorClass.BAD_SIGNATURE, f"{path}: sign does not verify")
        if (answer.get("mch_id"), answer.get("appid")) != (self._config.mchid, self._config.appid):
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{path}: answered for another merchant")
        if order_no is not None and answer.get("out_trade_no", order_no) != order_no:
            return ChannelResult.unknown(ErrorClass.MALFORMED, f"{path}: answered for another order")
        return answer


def _paid(answer: _Fields, code: str) -> ChannelResult:
    """A paid trade's result, or UNKNOWN when the signed answer lacks what a payment must state."""
    trade_no, amount = answer.get("transaction_id"), _fen(answer.get("total_fee"))
    try:
        paid_at = v2.parse_time(answer.get("time_end", ""))
    except ValueError as exc:
        return ChannelResult.unknown(ErrorClass.MALFORMED, f"paid answer: {exc}")
    if not trade_no or amount is None:
        return ChannelResult.unknown(ErrorClass.MALFORMED, "paid answer without transaction_id or total_fee")
    return ChannelResult(ResultStatus.SUCCESS, code=code, channel_trade_no=trade_no, amount=amount, paid_at=paid_at)


def _fen(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() else None
