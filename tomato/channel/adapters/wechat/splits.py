"""WeChat Pay profit sharing (分账, API v3): what the adapter sends and how each answer maps (docs/channels.md,
"Profit sharing").

- bind      `POST /v3/profitsharing/receivers/add` {appid, type, account, name (RSA-OAEP with the platform key the
  `Wechatpay-Serial` header names), relation_type}; WeChat answers 200 for a receiver bound already too;
- split     `POST /v3/profitsharing/orders` {appid, transaction_id, out_order_no = our split_no, receivers [{type,
  account, amount, description}], unfreeze_unsplit = `finish`};
- query     `GET /v3/profitsharing/orders/{out_order_no}?transaction_id=…`;
- finish    `POST /v3/profitsharing/orders/unfreeze` {transaction_id, out_order_no = a new number, description};
- return    `POST /v3/profitsharing/return-orders` {out_order_no, out_return_no, return_mchid, amount, description}.
Partner mode adds `sub_mchid` (body or query) and the sub-merchant's `sub_appid`; `appid` is then the provider's.

An order answer (split, query, finish) is `state` PROCESSING / FINISHED with each receiver's `result` PENDING /
SUCCESS / CLOSED. A split is all or nothing here: WAITING while anything is pending, SUCCESS when every receiver
succeeded, else FAIL (error NONE, code = the first closed receiver's `fail_reason`).
The profit-sharing notify (分账动账通知, event `PROFITSHARING.SUCCESS` / `PROFITSHARING.CLOSED`) reports one
receiver's share: a closed share fails the split, a successful one only says "ask `query_split`" (WAITING), since
the others may still be pending.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

from tomato.channel.adapters.wechat import codec, partner, signing
from tomato.channel.adapters.wechat.config import WechatConfig
from tomato.channel.protocol import (
    ChannelNotify,
    ChannelResult,
    ErrorClass,
    ResultStatus,
    SplitReceiver,
    SplitRef,
    SplitRequest,
    SplitReturnRequest,
    SubMerchant,
)

RELATION_TYPE = "PARTNER"  # 合作伙伴: the relation the platform declares for every receiver it binds
UNFREEZE_DESCRIPTION = "解冻全部剩余资金"
ORDER_RESULTS = frozenset({"PENDING", "SUCCESS", "CLOSED"})
SPLIT_EVENTS = {"PROFITSHARING.SUCCESS": ResultStatus.WAITING, "PROFITSHARING.CLOSED": ResultStatus.FAIL}
_Body = dict[str, Any]
Call = Callable[..., Awaitable[_Body | None | ChannelResult]]


def _q(value: str) -> str:
    return quote(value, safe="")


def _refused(code: str, message: str) -> ChannelResult:
    return ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code=code, message=message)


class SplitClient:
    """The five profit-sharing calls over the adapter's signed `call` (which verifies every answer)."""

    def __init__(self, config: WechatConfig, call: Call) -> None:
        self._config = config
        self._call = call
        self._platform_key = signing.public_key(config.platform_public_key_pem)

    # --- identities ---------------------------------------------------------------------------------------

    def _identity(self, sub: SubMerchant | None, *, appid: bool) -> _Body:
        body: _Body = {}
        if self._config.partner:
            body["sub_mchid"] = sub.sub_mchid if sub is not None else None  # callers check `missing_sub` first
            if appid and sub is not None and sub.sub_appid:
                body["sub_appid"] = sub.sub_appid
        if appid:
            body["appid"] = self._config.appid
        return body

    def _own(self, sub: SubMerchant | None) -> str | None:
        """The splitting merchant's number: WeChat lists the release of the rest as a receiver entry for it."""
        return sub.sub_mchid if self._config.partner and sub is not None else self._config.mchid

    def receiver_type(self, receiver: SplitReceiver, sub: SubMerchant | None) -> str | None:
        """`MERCHANT_ID`, or a person's openid under the app the platform knows them by (see `partner.payer`)."""
        if receiver.account_type == "MERCHANT":
            return "MERCHANT_ID"
        if receiver.account_type == "PERSONAL":
            sub_app = self._config.partner and sub is not None and bool(sub.sub_appid)
            return "PERSONAL_SUB_OPENID" if sub_app else "PERSONAL_OPENID"
        return None

    # --- calls --------------------------------------------------------------------------------------------

    async def bind(self, receiver: SplitReceiver) -> ChannelResult:
        if refusal := partner.missing_sub(self._config, receiver.sub):
            return refusal
        kind = self.receiver_type(receiver, receiver.sub)
        if kind is None:
            return _refused("RECEIVER_TYPE_NOT_SUPPORTED", receiver.account_type)
        if kind == "MERCHANT_ID" and not receiver.name:
            return _refused("RECEIVER_NAME_REQUIRED", "a MERCHANT_ID receiver needs the merchant's full name")
        body: _Body = {**self._identity(receiver.sub, appid=True), "type": kind, "account": receiver.account}
        if receiver.name:
            body["name"] = signing.encrypt_sensitive(self._platform_key, receiver.name)
        body["relation_type"] = RELATION_TYPE
        answer = await self._call("POST", "/v3/profitsharing/receivers/add", body)
        if isinstance(answer, ChannelResult):
            return answer
        if answer is None or answer.get("account") != receiver.account:
            return ChannelResult.unknown(ErrorClass.MALFORMED, "receivers/add answered for another receiver")
        return ChannelResult(ResultStatus.SUCCESS)

    async def split(self, req: SplitRequest) -> ChannelResult:
        if refusal := partner.missing_sub(self._config, req.sub):
            return refusal
        receivers = []
        for share in req.shares:
            kind = self.receiver_type(share.receiver, req.sub)
            if kind is None:
                return _refused("RECEIVER_TYPE_NOT_SUPPORTED", share.receiver.account_type)
            account, amount = share.receiver.account, share.amount
            receivers.append({"type": kind, "account": account, "amount": amount, "description": share.description})
        body: _Body = {
            **self._identity(req.sub, appid=True),
            "transaction_id": req.channel_trade_no,
            "out_order_no": req.split_no,
            "receivers": receivers,
            "unfreeze_unsplit": req.finish,
        }
        answer = await self._call("POST", "/v3/profitsharing/orders", body)
        return order_result(answer, req.split_no, self._own(req.sub))

    async def query(self, ref: SplitRef) -> ChannelResult:
        # Not found: our split request never took effect (or is not visible yet) — WAITING; resending the split
        # with the same split_no is safe (WeChat treats one out_order_no as one request).
        if refusal := partner.missing_sub(self._config, ref.sub):
            return refusal
        no = codec.path_segment(ref.split_no)
        path = f"/v3/profitsharing/orders/{no}?transaction_id={_q(ref.channel_trade_no)}"
        if self._config.partner and ref.sub is not None and ref.sub.sub_mchid:
            path += f"&sub_mchid={_q(ref.sub.sub_mchid)}"
        answer = await self._call("GET", path, not_found=ResultStatus.WAITING)
        return order_result(answer, ref.split_no, self._own(ref.sub))

    async def finish(self, ref: SplitRef) -> ChannelResult:
        if refusal := partner.missing_sub(self._config, ref.sub):
            return refusal
        body: _Body = {
            **self._identity(ref.sub, appid=False),
            "transaction_id": ref.channel_trade_no,
            "out_order_no": ref.split_no,
            "description": UNFREEZE_DESCRIPTION,
        }
        return order_result(await self._call("POST", "/v3/profitsharing/orders/unfreeze", body), ref.split_no)

    async def return_(self, req: SplitReturnRequest) -> ChannelResult:
        if refusal := partner.missing_sub(self._config, req.sub):
            return refusal
        if req.receiver.account_type != "MERCHANT":  # WeChat takes money back from merchant receivers only
            return _refused("SPLIT_RETURN_NOT_SUPPORTED", "WeChat returns splits from MERCHANT_ID receivers only")
        body: _Body = {
            **self._identity(req.sub, appid=False),
            "out_order_no": req.split_no,
            "out_return_no": req.return_no,
            "return_mchid": req.receiver.account,
            "amount": req.amount,
            "description": req.description,
        }
        return return_result(await self._call("POST", "/v3/profitsharing/return-orders", body), req.return_no)


# --- answers ------------------------------------------------------------------------------------------------


def order_result(body: _Body | None | ChannelResult, split_no: str, own: str | None = None) -> ChannelResult:
    """A split/query/unfreeze answer: WAITING while processing, SUCCESS when every receiver got its share.
    `amount` is what went to the receivers, without the entry releasing the rest to `own` (the merchant)."""
    if isinstance(body, ChannelResult):
        return body
    if body is None or body.get("out_order_no") != split_no:
        return ChannelResult.unknown(ErrorClass.MALFORMED, "profit-sharing order answered for another split")
    state, receivers = body.get("state"), body.get("receivers")
    if state not in ("PROCESSING", "FINISHED") or not isinstance(receivers, list):
        return ChannelResult.unknown(ErrorClass.MALFORMED, f"unknown profit-sharing state {state!r}")
    try:
        results = [str(r["result"]) for r in receivers]
        amount = sum(codec.fen_field(r, "amount") for r in receivers if own is None or r.get("account") != own)
    except (KeyError, TypeError, ValueError) as exc:
        return ChannelResult.unknown(ErrorClass.MALFORMED, f"profit-sharing receivers: {exc}")
    if not set(results) <= ORDER_RESULTS:
        return ChannelResult.unknown(ErrorClass.MALFORMED, f"unknown receiver result in {results!r}")
    trade_no = body.get("transaction_id") if isinstance(body.get("transaction_id"), str) else None
    if state == "PROCESSING" or "PENDING" in results:
        return ChannelResult(ResultStatus.WAITING, code=str(state), channel_trade_no=trade_no, amount=amount)
    if all(r == "SUCCESS" for r in results):
        return ChannelResult(ResultStatus.SUCCESS, code="FINISHED", channel_trade_no=trade_no, amount=amount)
    closed = next(r for r in receivers if r.get("result") == "CLOSED")
    return ChannelResult(
        ResultStatus.FAIL,
        code=str(closed.get("fail_reason") or "CLOSED"),
        message=f"share to {closed.get('account')} closed",
        channel_trade_no=trade_no,
        amount=amount,
    )


def return_result(body: _Body | None | ChannelResult, return_no: str) -> ChannelResult:
    """A return answer: PROCESSING is WAITING (ask again with the same return_no), FAILED a definite FAIL."""
    if isinstance(body, ChannelResult):
        return body
    if body is None or body.get("out_return_no") != return_no:
        return ChannelResult.unknown(ErrorClass.MALFORMED, "return answered for another return")
    result = body.get("result")
    status = {"SUCCESS": ResultStatus.SUCCESS, "PROCESSING": ResultStatus.WAITING, "FAILED": ResultStatus.FAIL}.get(
        str(result)
    )
    if status is None:
        return ChannelResult.unknown(ErrorClass.MALFORMED, f"unknown return result {result!r}")
    amount = body.get("amount")
    return_id = body.get("return_id")
    return ChannelResult(
        status,
        code=str(body.get("fail_reason") or result) if status is ResultStatus.FAIL else str(result),
        channel_refund_no=return_id if isinstance(return_id, str) else None,  # WeChat's return number
        amount=amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
    )


def split_notify(
    event: str, data: Mapping[str, Any], raw: Mapping[str, Any], sub_merchant: str | None
) -> ChannelNotify:
    """A 分账动账通知: one receiver's share. The trade is named by `channel_trade_no` (the notify carries no
    out_trade_no, so `order_no` is empty) and the split by `split_no`."""
    status = SPLIT_EVENTS[event]
    receiver = data.get("receiver")
    if not isinstance(receiver, dict):
        raise ValueError("no receiver")
    split_no, trade_no = data.get("out_order_no"), data.get("transaction_id")
    if not isinstance(split_no, str) or not split_no or not isinstance(trade_no, str) or not trade_no:
        raise ValueError("no out_order_no or transaction_id")
    return ChannelNotify(
        kind="split",
        status=status,
        order_no="",
        amount=codec.fen_field(receiver, "amount"),
        channel_trade_no=trade_no,
        failure_reason=f"{receiver.get('account')}: closed" if status is ResultStatus.FAIL else None,
        split_no=split_no,
        sub_merchant=sub_merchant,
        raw=dict(raw),
    )
