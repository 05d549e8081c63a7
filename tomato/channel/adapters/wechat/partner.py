"""Who a WeChat Pay request speaks for: the merchant itself (direct mode) or a sub-merchant of a service provider
(partner mode, 服务商), as the wire of each mode spells it (docs/channels.md, "Service-provider accounts").

Partner mode changes only identities and paths, never the flows: the provider's `sp_mchid` signs every request
(its Authorization) and the sub-merchant's `sub_mchid` (with an optional `sub_appid`) rides in the body or query:

- create  `POST /v3/pay/partner/transactions/{native,jsapi,h5}` with `sp_appid`, `sp_mchid`, `sub_appid`?,
  `sub_mchid`; a JSAPI payer is `sub_openid` when a `sub_appid` is given (the openid then belongs to the
  sub-merchant's app, which also calls `requestPayment`), else `sp_openid` (the provider's app);
- query   `GET /v3/pay/partner/transactions/out-trade-no/{no}?sp_mchid=…&sub_mchid=…`;
- close   `POST /v3/pay/partner/transactions/out-trade-no/{no}/close` with `{sp_mchid, sub_mchid}`;
- refund  `POST /v3/refund/domestic/refunds` with `sub_mchid`; its query `GET …/refunds/{no}?sub_mchid=…`;
- bill    `GET /v3/bill/tradebill?…` plus `&sub_mchid=…` for one sub-merchant's bill (without: the provider's).

Answers and notifies name `sp_mchid`/`sub_mchid` where direct mode names `mchid`.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote

from tomato.channel.adapters.wechat import codec
from tomato.channel.adapters.wechat.config import WechatConfig
from tomato.channel.protocol import ChannelResult, ErrorClass, ResultStatus, SubMerchant

SUB_MERCHANT_REQUIRED = "SUB_MERCHANT_REQUIRED"
_Body = dict[str, Any]


def missing_sub(config: WechatConfig, sub: SubMerchant | None) -> ChannelResult | None:
    """A definite refusal (no HTTP call) when a partner-mode request names no sub-merchant, else None."""
    if not config.partner or (sub is not None and sub.sub_mchid):
        return None
    return ChannelResult(
        ResultStatus.FAIL,
        ErrorClass.REJECTED,
        code=SUB_MERCHANT_REQUIRED,
        message="a partner-mode WeChat account needs the sub-merchant's sub_mchid",
    )


def _sub_mchid(sub: SubMerchant | None) -> str:
    if sub is None or not sub.sub_mchid:  # callers check `missing_sub` first
        raise ValueError("no sub_mchid")
    return sub.sub_mchid


def _q(value: str) -> str:
    return quote(value, safe="")


def create_path(config: WechatConfig, kind: str) -> str:
    return f"/v3/pay/partner/transactions/{kind}" if config.partner else f"/v3/pay/transactions/{kind}"


def create_identity(config: WechatConfig, sub: SubMerchant | None) -> _Body:
    """The leading fields of a create body: `appid`, `mchid`, or the partner's four."""
    if not config.partner:
        return {"appid": config.appid, "mchid": config.mchid}
    body: _Body = {"sp_appid": config.appid, "sp_mchid": config.mchid}
    if sub is not None and sub.sub_appid:
        body["sub_appid"] = sub.sub_appid
    body["sub_mchid"] = _sub_mchid(sub)
    return body


def payer(config: WechatConfig, sub: SubMerchant | None, openid: str) -> _Body:
    if not config.partner:
        return {"openid": openid}
    return {"sub_openid": openid} if sub is not None and sub.sub_appid else {"sp_openid": openid}


def jsapi_app_id(config: WechatConfig, sub: SubMerchant | None) -> str:
    """The app the payer's client pays in: the one the payer's openid belongs to (see `payer`)."""
    if config.partner and sub is not None and sub.sub_appid:
        return sub.sub_appid
    return config.appid


def query_path(config: WechatConfig, order_no: str, sub: SubMerchant | None) -> str:
    no = codec.path_segment(order_no)
    if not config.partner:
        return f"/v3/pay/transactions/out-trade-no/{no}?mchid={_q(config.mchid)}"
    return (
        f"/v3/pay/partner/transactions/out-trade-no/{no}?sp_mchid={_q(config.mchid)}&sub_mchid={_q(_sub_mchid(sub))}"
    )


def close_request(config: WechatConfig, order_no: str, sub: SubMerchant | None) -> tuple[str, _Body]:
    no = codec.path_segment(order_no)
    if not config.partner:
        return f"/v3/pay/transactions/out-trade-no/{no}/close", {"mchid": config.mchid}
    return f"/v3/pay/partner/transactions/out-trade-no/{no}/close", {
        "sp_mchid": config.mchid,
        "sub_mchid": _sub_mchid(sub),
    }


def refund_identity(config: WechatConfig, sub: SubMerchant | None) -> _Body:
    """Direct refunds name no merchant in the body (the Authorization does); partner refunds add `sub_mchid`."""
    return {"sub_mchid": _sub_mchid(sub)} if config.partner else {}


def refund_query_path(config: WechatConfig, refund_no: str, sub: SubMerchant | None) -> str:
    path = f"/v3/refund/domestic/refunds/{codec.path_segment(refund_no)}"
    return f"{path}?sub_mchid={_q(_sub_mchid(sub))}" if config.partner else path


def bill_path(config: WechatConfig, bill_date: date, sub: SubMerchant | None) -> str:
    path = f"/v3/bill/tradebill?bill_date={bill_date.isoformat()}&bill_type=ALL&tar_type=GZIP"
    if config.partner and sub is not None and sub.sub_mchid:
        path += f"&sub_mchid={_q(sub.sub_mchid)}"
    return path


def answers_for_us(config: WechatConfig, body: _Body, sub: SubMerchant | None) -> bool:
    """A query answer names this account (and, in partner mode, the sub-merchant asked about)."""
    if not config.partner:
        return body.get("mchid") == config.mchid
    return body.get("sp_mchid") == config.mchid and body.get("sub_mchid") == _sub_mchid(sub)


def notify_sub_merchant(config: WechatConfig, data: _Body) -> str | None:
    """The decrypted resource's sub-merchant (partner mode; None in direct mode), once it is shown to be ours.

    ValueError when the resource names another merchant (direct `mchid`, partner `sp_mchid`) or, in partner
    mode, no `sub_mchid`: the core compares the sub-merchant with the order's, the adapter only reports it.
    """
    if not config.partner:
        if data.get("mchid") != config.mchid:
            raise ValueError("mchid is not this account's")
        return None
    if data.get("sp_mchid") != config.mchid:
        raise ValueError("sp_mchid is not this account's")
    sub_mchid = data.get("sub_mchid")
    if not isinstance(sub_mchid, str) or not sub_mchid:
        raise ValueError("partner notify without sub_mchid")
    return sub_mchid
